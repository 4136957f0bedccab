"""Is a policy extortionate? Zero-determinant fits and exploitation measures.

The tests of spec ``matrix_games.md`` §5.6, used together:

1. :func:`zd_fit`, algebraic least squares with the punishment baseline (Knight,
   Harper, Glynatsi & Gillard, PLoS ONE 2024): regress ``p~ = (p1 - 1, p2 - 1, p3,
   p4)`` on ``C = [S_X - P, S_Y - P]``; extortionate when the residual is ~0,
   ``x1 > 0`` and ``chi = -x2 / x1 > 1``.
2. :func:`linear_relation_fit`, the three-column regression on ``[S_X, S_Y, 1]``
   giving Hilbe et al.'s ``(phi_H, s, l)`` (PLoS ONE 2013, Eq. 14): it also finds
   generous (``l = R``) and equalizer (``s = 0``) strategies that test 1 misses.
3. :func:`behavioural_slope`, the slope of ``s_X - P = chi (s_Y - P)`` over many
   random memory-one co-players in the exact game; it needs only the policy's
   payoffs, so it works for policies that are not memory-one.
4. :func:`coala_zd_fit`, the fit of COALA-PG App. C.1: the nearest extortionate ZD
   vector, with :func:`random_policy_zd_losses` as the paper's random baseline.

Conventions: a memory-one vector is ``[..., 4]`` (cooperation after CC, CD, DC, DD,
own perspective) or ``[..., 5]`` with the first-move probability first (the order of
:mod:`dilemmas.envs.exact_ipd`; the fits drop it, the behavioural slope uses it).
Payoffs are a preset name, an (R, S, T, P) 4-vector or a ``[2, 2, 2]`` table (the
row player's (R, S, T, P) is used) and must be concrete. ``phi`` is always the
**Press-Dyson** scale of §5.2, ``p~ = phi [(S_X - P) - chi (S_Y - P)]``; COALA-PG's
Eq. 18 scale is ``phi_C = phi (P - S)`` and Hilbe et al.'s is ``phi_H = chi phi``
(§5.3). The Press-Dyson relation holds for time-averaged payoffs (``gamma -> 1``);
with discounting it is only approximate (§5.5), so measure slopes at ``gamma >=
0.99``.

:func:`zd_fit`, :func:`linear_relation_fit` and :func:`coala_zd_fit` are pure
``jax.numpy`` in the vector (they jit, and batch over leading axes); their flags are
bool arrays. :func:`behavioural_slope` is a host-side driver (its exact values are
one jitted ``vmap``), since it may call an arbitrary policy.

Exploitation measures: :func:`payoff_gap` and :func:`surplus_share` (share of the
surplus over mutual defection), plus :func:`surplus_ratio` (``(s_X - P) / (s_Y -
P)``, the outcome test 5).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.envs.exact_ipd import average_rewards
from dilemmas.envs.payoffs import PayoffsLike, payoff_table, rstp

# Resolution of coala_zd_fit's search over u = 1 / chi in [0, 1].
_GRID_POINTS = 1025
_REFINE_POINTS = 33
_REFINE_ROUNDS = 6


class ZDFit(NamedTuple):
    """Least-squares zero-determinant fit with the P baseline (§5.6 test 1).

    Attributes:
      chi: ``[...]`` ``chi_hat = -x2 / x1`` (IEEE division: meaningless where
        ``x1 ~ 0``, e.g. WSLS under COALA payoffs, whose residual rejects it).
      phi: ``[...]`` Press-Dyson scale ``x1`` (``p~ ~= phi [(S_X - P) - chi (S_Y -
        P)]``).
      residual: ``[...]`` sum of squared errors ``||p~ - C x||^2``.
      coefficients: ``[..., 2]`` ``x = (x1, x2)``.
      is_extortionate: ``[...]`` bool, ``residual <= sse_tol``, ``x1 > 0`` and
        ``chi > 1 + chi_tol`` (for vectors in ``[0, 1]^4`` the last two with a zero
        residual already imply ``x1 > 0``: ``p3 = x1 (T-P) + x2 (S-P) >= 0``).
    """

    chi: jax.Array
    phi: jax.Array
    residual: jax.Array
    coefficients: jax.Array
    is_extortionate: jax.Array


class LinearRelationFit(NamedTuple):
    """Three-column fit ``p~ ~= alpha S_X + beta S_Y + gamma0`` (§5.6 test 2).

    The strategy enforces ``s_Y - l = s (s_X - l)`` when the residual is 0.

    Attributes:
      phi_h: ``[...]`` ``-beta`` (Hilbe et al.'s scale, ``chi phi`` for extortion).
      s: ``[...]`` slope ``-alpha / beta``.
      l: ``[...]`` baseline ``-gamma0 / (alpha + beta)``; NaN where ``|s - 1| <=
        atol`` (e.g. TFT), where it is undefined.
      chi: ``[...]`` ``1 / s``.
      residual: ``[...]`` sum of squared errors.
      coefficients: ``[..., 3]`` ``(alpha, beta, gamma0)``.
      is_extortionate: residual ~0, ``phi_h > 0``, ``0 < s < 1``, ``l ~ P``.
      is_generous: residual ~0, ``phi_h > 0``, ``l ~ R`` (``l`` is NaN at ``s ~ 1``).
      is_equalizer: residual ~0, ``phi_h > 0``, ``s ~ 0``.
    """

    phi_h: jax.Array
    s: jax.Array
    l: jax.Array  # noqa: E741 (the name in the spec and in Hilbe et al.)
    chi: jax.Array
    residual: jax.Array
    coefficients: jax.Array
    is_extortionate: jax.Array
    is_generous: jax.Array
    is_equalizer: jax.Array


class SlopeFit(NamedTuple):
    """Behavioural slope through the origin (§5.6 test 3).

    Attributes:
      chi: ``()`` ``sum xy / sum x^2`` with ``x = s_Y - P``, ``y = s_X - P``.
      r_squared: ``()`` ``1 - SSE / sum (y - mean y)^2`` (the centred R^2, stricter
        than the uncentred one usual for fits through the origin).
      own_rewards, co_player_rewards: ``[N]`` rewards per step ``s_X``, ``s_Y``.
      opponents: ``[N, 5]`` the co-players' memory-one vectors.
    """

    chi: jax.Array
    r_squared: jax.Array
    own_rewards: jax.Array
    co_player_rewards: jax.Array
    opponents: jax.Array


class CoalaZDFit(NamedTuple):
    """Nearest extortionate ZD vector (COALA-PG App. C.1, §5.6 test 4).

    Attributes:
      chi: ``[...]`` fitted ``chi >= 1`` (``inf`` for the ``chi -> inf`` limit).
      phi: ``[...]`` fitted Press-Dyson scale.
      phi_coala: ``[...]`` the same as COALA-PG Eq. 18's ``phi_C = phi (P - S)``.
      loss: ``[...]`` ``||p[CC, CD, DC, DD] - p_ZD(chi, phi)||^2``.
      p_zd: ``[..., 4]`` the fitted ZD vector.
    """

    chi: jax.Array
    phi: jax.Array
    phi_coala: jax.Array
    loss: jax.Array
    p_zd: jax.Array


# --------------------------------------------------------------------------------------
# Inputs


def _memory_one(p: Any, name: str = "p") -> jax.Array:
    """``[..., 4]`` float vectors (a leading first-move entry dropped)."""
    try:
        p = jnp.asarray(p)
    except TypeError as err:
        raise ValueError(
            f"{name} must be an array of probabilities, got {p!r}"
        ) from err
    if p.ndim == 0 or p.shape[-1] not in (4, 5):
        raise ValueError(
            f"{name} must have shape [..., 4] (after CC, CD, DC, DD) or [..., 5] "
            f"(first move first); got shape {p.shape}"
        )
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.result_type(float))
    if not isinstance(p, jax.core.Tracer):
        _check_probabilities(np.asarray(p), name)
    return p[..., -4:]


def _check_probabilities(values: np.ndarray, name: str) -> None:
    tolerance = 1e-6
    if not (np.all(values >= -tolerance) and np.all(values <= 1 + tolerance)):
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; got {values.tolist()}"
        )


def _game(payoffs: PayoffsLike) -> tuple[float, float, float, float]:
    if isinstance(payoffs, jax.core.Tracer):
        raise ValueError("payoffs must be concrete (a preset, a 4-vector or a table)")
    return rstp(payoffs)


def _tilde(p: jax.Array) -> jax.Array:
    """Press-Dyson ``p~ = (p1 - 1, p2 - 1, p3, p4)``."""
    return p - jnp.asarray([1.0, 1.0, 0.0, 0.0], p.dtype)


def _least_squares(p_tilde: jax.Array, columns: np.ndarray, payoffs: Any):
    """Coefficients ``[..., k]`` and SSE ``[...]`` of ``p~ ~= columns @ x``."""
    if np.linalg.matrix_rank(columns) < columns.shape[1]:
        raise ValueError(
            f"payoffs {payoffs!r} make the regression columns linearly dependent "
            f"({columns.T.tolist()}); the fit is undefined for this game"
        )
    pinv = jnp.asarray(np.linalg.pinv(columns), p_tilde.dtype)  # [k, 4]
    return _project(p_tilde, pinv, jnp.asarray(columns, p_tilde.dtype))


@jax.jit
def _project(p_tilde: jax.Array, pinv: jax.Array, columns: jax.Array):
    coefficients = jnp.einsum("kj,...j->...k", pinv, p_tilde)
    fitted = jnp.einsum("jk,...k->...j", columns, coefficients)
    return coefficients, jnp.sum((p_tilde - fitted) ** 2, axis=-1)


def _divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """IEEE division (``x / 0`` is +-inf, ``0 / 0`` NaN), as the spec's formulas."""
    return numerator / denominator


# --------------------------------------------------------------------------------------
# Algebraic fits


def zd_fit(
    p: jax.Array,
    payoffs: PayoffsLike = "coala",
    sse_tol: float = 1e-6,
    chi_tol: float = 1e-4,
) -> ZDFit:
    """Least-squares ZD fit with the punishment baseline (§5.6 test 1).

    ``C = [S_X - P 1, S_Y - P 1]`` (4 x 2), ``x = argmin ||p~ - C x||^2``,
    ``chi_hat = -x2 / x1``, ``phi = x1``. An exact ZD(chi) vector gives ``chi_hat =
    chi`` and residual 0 under any payoffs; TFT gives ``chi_hat = 1``; AllD (under
    COALA or LOLA payoffs) residual 0 but ``x1 < 0``; WSLS and GTFT a clearly
    positive residual.

    Args:
      p: ``[..., 4]`` or ``[..., 5]`` memory-one cooperation probabilities.
      payoffs: preset name, (R, S, T, P) or ``[2, 2, 2]`` table (concrete).
      sse_tol: largest residual that counts as "exactly ZD".
      chi_tol: ``chi_hat`` must exceed ``1 + chi_tol`` (round-off makes TFT's
        ``chi_hat`` 1 only up to about 1e-7 in float32).

    Returns:
      :class:`ZDFit`.

    Raises:
      ValueError: ``p`` of the wrong shape or (concrete) outside ``[0, 1]``; bad
        payoffs.
    """
    p = _memory_one(p)
    r, s, t, pun = _game(payoffs)
    s_x = np.array([r, s, t, pun]) - pun
    s_y = np.array([r, t, s, pun]) - pun
    x, sse = _least_squares(_tilde(p), np.stack([s_x, s_y], axis=1), payoffs)
    chi = _divide(-x[..., 1], x[..., 0])
    extortionate = (sse <= sse_tol) & (x[..., 0] > 0) & (chi > 1.0 + chi_tol)
    return ZDFit(
        chi=chi,
        phi=x[..., 0],
        residual=sse,
        coefficients=x,
        is_extortionate=extortionate,
    )


def linear_relation_fit(
    p: jax.Array,
    payoffs: PayoffsLike = "coala",
    sse_tol: float = 1e-6,
    atol: float = 1e-4,
) -> LinearRelationFit:
    """General linear-relation fit on ``[S_X, S_Y, 1]`` (§5.6 test 2).

    ``phi_H = -beta``, ``s = -alpha / beta``, ``l = -gamma0 / (alpha + beta)``: the
    parameters of Hilbe et al.'s form ``p = (1 - phi_H (1-s)(R-l), 1 - phi_H (s(l-S)
    + (T-l)), phi_H ((l-S) + s(T-l)), phi_H (1-s)(l-P))``. Extortion has ``l = P``
    and ``s = 1/chi``; GTFT(g = 1/2) under COALA payoffs has ``l = R``, ``s = 0``.

    Args:
      p: ``[..., 4]`` or ``[..., 5]`` memory-one cooperation probabilities.
      payoffs: preset name, (R, S, T, P) or ``[2, 2, 2]`` table (concrete).
      sse_tol: largest residual that counts as an exact linear relation.
      atol: tolerance of ``l ~ P``, ``l ~ R``, ``s ~ 0`` and ``s > 0``.

    Returns:
      :class:`LinearRelationFit`.

    Raises:
      ValueError: ``p`` of the wrong shape or (concrete) outside ``[0, 1]``; bad
        payoffs.
    """
    p = _memory_one(p)
    r, s, t, pun = _game(payoffs)
    columns = np.stack(
        [np.array([r, s, t, pun]), np.array([r, t, s, pun]), np.ones(4)], axis=1
    )
    coefficients, sse = _least_squares(_tilde(p), columns, payoffs)
    alpha, beta, gamma0 = (coefficients[..., i] for i in range(3))
    phi_h = -beta
    slope = _divide(-alpha, beta)
    # l is undefined at s = 1 (TFT): alpha + beta = phi_H (s - 1) is then 0.
    baseline = jnp.where(
        jnp.abs(slope - 1.0) <= atol, jnp.nan, _divide(-gamma0, alpha + beta)
    )
    exact = (sse <= sse_tol) & (phi_h > 0)
    return LinearRelationFit(
        phi_h=phi_h,
        s=slope,
        l=baseline,
        chi=_divide(jnp.ones_like(slope), slope),
        residual=sse,
        coefficients=coefficients,
        is_extortionate=exact
        & (slope > atol)
        & (slope < 1.0 - atol)
        & (jnp.abs(baseline - pun) <= atol),
        is_generous=exact & (jnp.abs(baseline - r) <= atol),
        is_equalizer=exact & (jnp.abs(slope) <= atol),
    )


# --------------------------------------------------------------------------------------
# Behavioural slope


@jax.jit
def _exact_rewards(
    p: jax.Array, opponents: jax.Array, table: jax.Array, gamma: jax.Array
) -> jax.Array:
    """``[N, 2]`` rewards per step of ``p`` against each opponent (one compilation)."""
    return jax.vmap(lambda q: average_rewards(p, q, table, gamma))(opponents)


def behavioural_slope(
    policy_or_p: jax.Array | Callable[[jax.Array], jax.Array],
    payoffs: PayoffsLike = "coala",
    gamma: float = 0.999,
    num_opponents: int = 256,
    key: jax.Array | None = None,
) -> SlopeFit:
    """Slope of ``s_X - P = chi (s_Y - P)`` against random memory-one co-players.

    Draws ``num_opponents`` co-players with all five entries ~ U(0, 1) (the random
    memory-one pool of spec §6), computes both players' rewards per step and fits
    a line through the origin (§5.6 test 3). An extortioner gives ``chi > 1`` with
    ``R^2 ~ 1`` at ``gamma -> 1``; at ``gamma = 0.96`` the slope falls visibly below
    ``chi`` (§5.5).

    Args:
      policy_or_p: either a memory-one ``[5]`` vector (first move first; its
        values come from :func:`dilemmas.envs.exact_ipd.average_rewards`, exact,
        normalised ``(1 - gamma) V``), or a callable ``f(opponents) -> [N, 2]``
        returning (own, co-player) rewards per step against each row of the
        ``[N, 5]`` opponents, e.g. from rollouts of a recurrent policy.
      payoffs: preset name, (R, S, T, P) or ``[2, 2, 2]`` table (concrete).
      gamma: discount in ``[0, 1)`` of the exact values (unused by a callable).
      num_opponents: number of random co-players, an int ``>= 2``.
      key: PRNG key of the co-players; ``None`` uses ``jax.random.key(0)``.

    Returns:
      :class:`SlopeFit`. Use float64 (``jax.enable_x64``) at ``gamma`` near 1.

    Raises:
      ValueError: a vector not of shape ``[5]``, a callable's output not ``[N, 2]``,
        bad ``num_opponents``, ``gamma`` or payoffs.
    """
    if (
        isinstance(num_opponents, bool)
        or not isinstance(num_opponents, int | np.integer)
        or num_opponents < 2
    ):
        raise ValueError(f"num_opponents must be an int >= 2, got {num_opponents!r}")
    punishment = _game(payoffs)[3]
    if key is None:
        key = jax.random.key(0)
    dtype = jnp.result_type(float)
    opponents = jax.random.uniform(key, (int(num_opponents), 5), dtype)
    if callable(policy_or_p):
        rewards = jnp.asarray(policy_or_p(opponents))
        if rewards.shape != (num_opponents, 2):
            raise ValueError(
                f"policy_or_p(opponents) must return shape ({num_opponents}, 2) "
                f"(own, co-player reward per step); got shape {rewards.shape}"
            )
    else:
        p = jnp.asarray(policy_or_p)
        if p.shape != (5,):
            raise ValueError(
                "policy_or_p must be a memory-one vector of shape (5,) (first move "
                f"first) or a callable; got shape {p.shape}"
            )
        if not jnp.issubdtype(p.dtype, jnp.floating):
            p = p.astype(dtype)
        if not isinstance(p, jax.core.Tracer):
            _check_probabilities(np.asarray(p), "policy_or_p")
        gamma_value = np.asarray(gamma, np.float64)
        if gamma_value.shape != () or not 0.0 <= gamma_value < 1.0:
            raise ValueError(f"gamma must be a scalar in [0, 1); got {gamma!r}")
        table = jnp.asarray(payoff_table(payoffs), p.dtype)
        rewards = _exact_rewards(
            p, opponents.astype(p.dtype), table, jnp.asarray(gamma, p.dtype)
        )
    own, co = rewards[:, 0], rewards[:, 1]
    x, y = co - punishment, own - punishment
    chi = jnp.sum(x * y) / jnp.sum(x * x)
    sse = jnp.sum((y - chi * x) ** 2)
    r_squared = 1.0 - sse / jnp.sum((y - jnp.mean(y)) ** 2)
    return SlopeFit(chi, r_squared, own, co, opponents)


# --------------------------------------------------------------------------------------
# COALA-PG fit


def _zd_directions(u: jax.Array, game: tuple[float, ...]) -> tuple[jax.Array, ...]:
    """ZD family in ``u = 1 / chi``: ``p = (1, 1, 0, 0) + psi w(u)``, ``psi = chi phi``.

    ``w(u) = (-(1-u)(R-P), -[u(P-S) + (T-P)], u(T-P) + (P-S), 0)`` (§5.2 divided by
    chi), well defined at ``u = 0`` (``chi -> inf``); ``psi`` runs over ``[0,
    psi_max(u)]`` with ``psi_max`` keeping every entry in ``[0, 1]``.
    """
    r, s, t, p = game
    zeros = jnp.zeros_like(u)
    w = jnp.stack(
        [
            -(1.0 - u) * (r - p),
            -(u * (p - s) + (t - p)),
            u * (t - p) + (p - s),
            zeros,
        ],
        axis=-1,
    )
    psi_max = 1.0 / jnp.max(jnp.abs(w), axis=-1)
    return w, psi_max


def _coala_loss(q_tilde: jax.Array, u: jax.Array, game: tuple[float, ...]):
    """Best loss and ``psi`` at each ``u`` (``q_tilde = q - (1, 1, 0, 0)``)."""
    w, psi_max = _zd_directions(u, game)
    psi = jnp.clip(jnp.sum(w * q_tilde, -1) / jnp.sum(w * w, -1), 0.0, psi_max)
    loss = jnp.sum((q_tilde - psi[..., None] * w) ** 2, axis=-1)
    return loss, psi


def _coala_fit_one(q: jax.Array, game: tuple[float, ...]) -> tuple[jax.Array, ...]:
    """Dense grid over ``u in [0, 1]``, then ``_REFINE_ROUNDS`` zooming grids."""
    q_tilde = _tilde(q)
    u = jnp.linspace(0.0, 1.0, _GRID_POINTS, dtype=q.dtype)
    loss, _ = _coala_loss(q_tilde, u, game)
    offsets = jnp.linspace(-1.0, 1.0, _REFINE_POINTS, dtype=q.dtype)

    def zoom(_, carry):
        best, width = carry
        u = jnp.clip(best + width * offsets, 0.0, 1.0)
        loss, _ = _coala_loss(q_tilde, u, game)
        return u[jnp.argmin(loss)], 2.0 * width / (_REFINE_POINTS - 1)

    start = (u[jnp.argmin(loss)], jnp.asarray(1.0 / (_GRID_POINTS - 1), q.dtype))
    best, _ = jax.lax.fori_loop(0, _REFINE_ROUNDS, zoom, start)
    loss, psi = _coala_loss(q_tilde, best, game)
    w, _ = _zd_directions(best, game)
    return best, psi, loss, jnp.asarray([1.0, 1.0, 0.0, 0.0], q.dtype) + psi * w


@functools.partial(jax.jit, static_argnames="game")
def _coala_fit_batch(flat: jax.Array, game: tuple[float, ...]) -> tuple[jax.Array, ...]:
    """:func:`_coala_fit_one` over ``[N, 4]`` vectors, compiled once per game."""
    return jax.vmap(lambda q: _coala_fit_one(q, game))(flat)


def coala_zd_fit(p: jax.Array, payoffs: PayoffsLike = "coala") -> CoalaZDFit:
    """The COALA-PG fit: the extortionate ZD vector nearest to ``p`` (§5.6 test 4).

    Minimises ``||p[CC, CD, DC, DD] - p_ZD(chi, phi)||^2`` over ``chi >= 1`` and
    feasible ``phi`` (every entry of ``p_ZD`` in ``[0, 1]``; ``phi = 0``, the
    degenerate ``(1, 1, 0, 0)``, is the closed end). For each ``chi`` the best
    ``phi`` is a clipped projection (``p_ZD`` is affine in ``phi``), so the search is
    one-dimensional over ``u = 1 / chi in [0, 1]``: a grid of 1025 points, then six
    zooming grids of 33 points around the best one. Deterministic, pure jnp.

    The loss of a learned shaper is meant to be compared with
    :func:`random_policy_zd_losses`; a perfect match is not expected (discounting,
    and the shaping objective sums over a naive learner's whole trajectory).

    Args:
      p: ``[..., 4]`` or ``[..., 5]`` memory-one cooperation probabilities, e.g.
        ``sigmoid(theta)``.
      payoffs: preset name, (R, S, T, P) or ``[2, 2, 2]`` table of a prisoner's
        dilemma (concrete).

    Returns:
      :class:`CoalaZDFit`.

    Raises:
      ValueError: ``p`` of the wrong shape or (concrete) outside ``[0, 1]``;
        payoffs that are not a prisoner's dilemma (``T > R > P > S``).
    """
    p = _memory_one(p)
    game = _game(payoffs)
    r, s, t, pun = game
    if not t > r > pun > s:
        raise ValueError(
            f"coala_zd_fit needs a prisoner's dilemma, T > R > P > S; got (R, S, T, "
            f"P) = {game}"
        )
    u, psi, loss, p_zd = _coala_fit_batch(jnp.reshape(p, (-1, 4)), game)
    batch = p.shape[:-1]
    chi = jnp.where(u > 0, 1.0 / jnp.where(u > 0, u, 1.0), jnp.inf)
    phi = psi * u
    return CoalaZDFit(
        chi=jnp.reshape(chi, batch),
        phi=jnp.reshape(phi, batch),
        phi_coala=jnp.reshape(phi * (pun - s), batch),
        loss=jnp.reshape(loss, batch),
        p_zd=jnp.reshape(p_zd, (*batch, 4)),
    )


def random_policy_zd_losses(
    key: jax.Array, num_policies: int = 64, payoffs: PayoffsLike = "coala"
) -> jax.Array:
    """:func:`coala_zd_fit` losses of uniform-random memory-one policies.

    The baseline histogram of COALA-PG Fig. 8 (64 random policies there).

    Returns:
      ``[num_policies]`` losses.
    """
    if (
        isinstance(num_policies, bool)
        or not isinstance(num_policies, int | np.integer)
        or num_policies < 1
    ):
        raise ValueError(f"num_policies must be a positive int, got {num_policies!r}")
    policies = jax.random.uniform(key, (int(num_policies), 4), jnp.result_type(float))
    return coala_zd_fit(policies, payoffs).loss


# --------------------------------------------------------------------------------------
# Exploitation


def _pair(rewards: Any) -> jax.Array:
    rewards = jnp.asarray(rewards)
    if rewards.ndim == 0 or rewards.shape[-1] != 2:
        raise ValueError(
            "rewards must have shape [..., 2] (the exploiter's, then the "
            f"co-player's reward per step); got shape {rewards.shape}"
        )
    if not jnp.issubdtype(rewards.dtype, jnp.floating):
        rewards = rewards.astype(jnp.result_type(float))
    return rewards


def payoff_gap(rewards: jax.Array) -> jax.Array:
    """``s_X - s_Y``: how much more the first agent earns per step.

    Args:
      rewards: ``[..., 2]`` rewards per step (exploiter, co-player), e.g.
        :func:`dilemmas.envs.exact_ipd.average_rewards` or
        :func:`dilemmas.analysis.metrics.reward_per_step`.

    Returns:
      ``[...]``.
    """
    rewards = _pair(rewards)
    return rewards[..., 0] - rewards[..., 1]


def surplus_share(rewards: jax.Array, payoffs: PayoffsLike = "coala") -> jax.Array:
    """Share of the surplus over mutual defection taken by the first agent.

    ``(s_X - P) / ((s_X - P) + (s_Y - P))``: 1/2 for a fair split (mutual
    cooperation), ``chi / (1 + chi)`` for an extortioner against an unconditional
    cooperator. NaN where the joint surplus is not positive (nothing to share).

    Args:
      rewards: ``[..., 2]`` rewards per step (exploiter, co-player).
      payoffs: the game (its P is the baseline).

    Returns:
      ``[...]``.
    """
    rewards = _pair(rewards)
    surplus = rewards - _game(payoffs)[3]
    total = jnp.sum(surplus, axis=-1)
    positive = total > 0
    return jnp.where(
        positive, surplus[..., 0] / jnp.where(positive, total, 1.0), jnp.nan
    )


def surplus_ratio(rewards: jax.Array, payoffs: PayoffsLike = "coala") -> jax.Array:
    """``(s_X - P) / (s_Y - P)`` (§5.6 test 5: ``chi`` against a cooperator).

    IEEE division: ``+-inf`` or NaN where the co-player's surplus is 0.

    Args:
      rewards: ``[..., 2]`` rewards per step (exploiter, co-player).
      payoffs: the game (its P is the baseline).

    Returns:
      ``[...]``.
    """
    rewards = _pair(rewards)
    surplus = rewards - _game(payoffs)[3]
    return _divide(surplus[..., 0], surplus[..., 1])
