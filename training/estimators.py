"""Return and advantage estimators for learning-aware policy gradients (COALA-PG).

Meulemans et al., "Multi-agent cooperation through learning-aware policy gradients",
ICLR 2025 (arXiv:2410.18636); ``specs/coala_pg.md`` §2-§4.

Every function takes explicitly batched ``[B, L]`` arrays: ``B`` inner-episode
trajectories played in lockstep against the same co-player (the batch of the
batched co-player shaping POMDP) and ``L = M * T`` long-time steps, ``M`` inner
episodes of ``T`` steps each. A meta-batch is a further axis the caller vmaps
over. ``discount`` and ``lambda_`` may be traced; ``inner_episode_length`` and the
two flags fix the program and must be static under ``jax.jit``.

There is deliberately no ``done`` argument. A learning-aware agent's long-context
policy carries on across inner-episode boundaries, so values and advantages
bootstrap through them; the only terminal is the end of the meta-trajectory, after
step ``L - 1`` (spec §3.3, pitfalls). Cutting at inner-episode dones would silently
remove the shaping signal.

Two value conventions appear below:

* :func:`batch_lambda_returns` is the paper's Algorithm 1 verbatim and uses the
  rlax ``lambda_returns`` convention: ``values[:, t]`` is the value of the state
  *after* step ``t``, the bootstrap for step ``t``.
* The TD(λ) and GAE wrappers take ``values_t[:, t] = V̂(h_t)``, the value of the
  history *before* acting at step ``t``, and a ``bootstrap_value`` ``[B]`` for the
  history after the last step, zero by default because the meta-trajectory ends
  there.

How the rules weight an action's rewards, with ``cur_b`` its own trajectory's
reward-to-go to the end of the current inner episode and ``fut_b'`` trajectory
``b'``'s rewards in all later inner episodes (spec §2.3):

============== ======== ============ ===================== ==========================
rule           sum on b cur_b weight future term           flags (average, normalize)
============== ======== ============ ===================== ==========================
COALA-PG       Σ_b      1/B          (1/B) Σ_b' fut_b'     (True, True), Eqs. 3 and 5
batch-unaware  (1/B)Σ_b 1            fut_b                 (False, False), Eq. 6
M-FOS          Σ_b      1            (1/B) Σ_b' fut_b'     (True, False), Eq. 7
============== ======== ============ ===================== ==========================

The outer sum or mean over ``b`` is the loss's business; see
:func:`scale_coala_advantages` for the mean-over-samples losses of
``dilemmas.agents.losses``.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp

__all__ = [
    "batch_lambda_returns",
    "batch_unaware_gae",
    "coala_gae",
    "mfos_gae",
    "scale_coala_advantages",
    "td_lambda_targets",
    "temporal_differences",
]

Scalar = float | jax.Array


def _check_batch_sequence(name: str, x: jax.Array) -> None:
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [B, M*T], got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {x.shape}")


def _check_scalar(name: str, x: Scalar) -> None:
    if jnp.ndim(x) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(x)}")


def batch_lambda_returns(
    rewards: jax.Array,
    values: jax.Array,
    *,
    discount: Scalar,
    lambda_: Scalar,
    inner_episode_length: int,
    average_future_episodes: bool,
    normalize_current_episode: bool,
) -> jax.Array:
    r"""Batch lambda returns, Algorithm 1 of the paper (App. A.3; spec §3.3).

    With ``n = B`` if ``normalize_current_episode`` else ``1``, ``e_t`` true at the
    last step of an inner episode (``t mod T == T - 1``) and the boundary values
    ``G_L = v_{L-1}`` (per row) and ``Ḡ_L = mean_b v_{L-1}``, a reverse scan computes

    .. math::

        Ḡ_t &= \mathrm{mean}_b\,[r^b_t + γ((1-λ) v^b_t + λ Ḡ_{t+1})] \\
        G^b_t &= r^b_t / n + γ((1-λ) v^b_t + λ Ĝ^b_{t+1}),\quad
        Ĝ^b_{t+1} = Ḡ_{t+1} \text{ if averaging and } e_t \text{ else } G^b_{t+1}.

    ``Ḡ`` is the batch mean of the ordinary (batch-unaware) λ-return, so at every
    inner-episode boundary the own-trajectory accumulator is replaced by the batch
    average of the future. Both accumulators are the carry of one reverse
    ``jax.lax.scan``.

    Special cases:

    * flags ``(False, False)``: ordinary TD(λ) returns per row, rlax
      ``lambda_returns`` with a constant discount;
    * flags ``(True, True)``, ``γ = λ = 1``, ``v_{L-1} = 0``: the Eq. 3 weights,
      ``G^b_l = (1/B) cur_b + (1/B) Σ_b' fut_b'``;
    * on temporal-difference errors with ``v ≡ 0``, discount ``γλ`` and ``λ = 1``:
      the GAE variants below.

    Inner-episode boundaries never cut the bootstrap; the end of the sequence is the
    only boundary (see the module docstring).

    Args:
      rewards: ``[B, M*T]`` rewards ``r_t`` (or TD errors for the GAE variants).
      values: ``[B, M*T]``; ``values[:, t]`` is the value of the state after step
        ``t`` (the bootstrap of step ``t``); ``values[:, -1]`` is the bootstrap
        after the meta-trajectory, zero when it is terminal.
      discount: scalar discount ``γ``.
      lambda_: scalar ``λ`` mixing bootstrapped values and longer returns.
      inner_episode_length: ``T`` (static); ``M*T`` must be a multiple of it.
      average_future_episodes: replace the own future by the batch mean of the
        future at each inner-episode end (static).
      normalize_current_episode: divide the current-episode rewards by ``B``
        (static).

    Returns:
      ``[B, M*T]`` returns ``G_t``.

    Raises:
      ValueError: on non-``[B, L]`` or mismatched shapes, a non-scalar ``discount``
        or ``lambda_``, ``inner_episode_length < 1`` or ``L`` not a multiple of it.
    """
    rewards = jnp.asarray(rewards)
    values = jnp.asarray(values)
    _check_batch_sequence("rewards", rewards)
    if values.shape != rewards.shape:
        raise ValueError(
            f"values shape {values.shape} differs from rewards shape {rewards.shape}"
        )
    _check_scalar("discount", discount)
    _check_scalar("lambda_", lambda_)
    try:
        episode_length = operator.index(inner_episode_length)
    except TypeError:
        episode_length = 0
    if episode_length < 1:
        raise ValueError(
            "inner_episode_length must be a positive static integer, got "
            f"{inner_episode_length!r}"
        )
    batch, seq_len = rewards.shape
    if seq_len % episode_length:
        raise ValueError(
            f"sequence length {seq_len} is not a multiple of inner_episode_length "
            f"{episode_length}"
        )

    dtype = jnp.result_type(rewards, values, float)
    r_t = rewards.astype(dtype).T  # [L, B]
    v_t = values.astype(dtype).T  # [L, B]
    discount = jnp.asarray(discount, dtype)
    lambda_ = jnp.asarray(lambda_, dtype)
    norm = batch if normalize_current_episode else 1
    episode_end_t = jnp.arange(seq_len) % episode_length == episode_length - 1

    def step(carry, inputs):
        acc, global_acc = carry  # [B], ()
        r, v, episode_end = inputs
        if average_future_episodes:
            acc = jnp.where(episode_end, jnp.broadcast_to(global_acc, acc.shape), acc)
        bootstrap = (1.0 - lambda_) * v
        acc = r / norm + discount * (bootstrap + lambda_ * acc)
        global_acc = jnp.mean(r + discount * (bootstrap + lambda_ * global_acc))
        return (acc, global_acc), acc

    init = (v_t[-1], jnp.mean(v_t[-1]))
    _, returns_t = jax.lax.scan(step, init, (r_t, v_t, episode_end_t), reverse=True)
    return returns_t.T


def temporal_differences(
    rewards: jax.Array,
    values_t: jax.Array,
    *,
    discount: Scalar,
    bootstrap_value: jax.Array | None = None,
) -> jax.Array:
    """One-step TD errors ``δ_t = r_t + γ V̂(h_{t+1}) - V̂(h_t)`` (App. A.4).

    ``V̂(h_L)`` after the last step is ``bootstrap_value`` (zero by default: the end
    of the meta-trajectory is terminal). Inner-episode ends are not terminal.

    Args:
      rewards: ``[B, L]`` rewards.
      values_t: ``[B, L]`` values ``V̂(h_t)`` of the histories before acting.
      discount: scalar ``γ``.
      bootstrap_value: ``[B]`` value after the last step, or ``None`` for zero.

    Returns:
      ``[B, L]`` TD errors.
    """
    rewards = jnp.asarray(rewards)
    values_t = jnp.asarray(values_t)
    _check_batch_sequence("rewards", rewards)
    if values_t.shape != rewards.shape:
        raise ValueError(
            f"values_t shape {values_t.shape} differs from rewards shape "
            f"{rewards.shape}"
        )
    _check_scalar("discount", discount)
    values_tp1 = _shift_in_bootstrap(values_t, bootstrap_value)
    return rewards + discount * values_tp1 - values_t


def _shift_in_bootstrap(
    values_t: jax.Array, bootstrap_value: jax.Array | None
) -> jax.Array:
    """``[B, L]`` values ``V̂(h_{t+1})``: ``values_t`` shifted left, bootstrap last."""
    if bootstrap_value is None:
        bootstrap_value = jnp.zeros(values_t.shape[:1], values_t.dtype)
    bootstrap_value = jnp.asarray(bootstrap_value, values_t.dtype)
    if bootstrap_value.shape != values_t.shape[:1]:
        raise ValueError(
            f"bootstrap_value must have shape {values_t.shape[:1]}, got "
            f"{bootstrap_value.shape}"
        )
    return jnp.concatenate([values_t[:, 1:], bootstrap_value[:, None]], axis=1)


def td_lambda_targets(
    rewards: jax.Array,
    values_t: jax.Array,
    *,
    discount: Scalar,
    lambda_: Scalar,
    inner_episode_length: int,
    bootstrap_value: jax.Array | None = None,
    average_future_episodes: bool = False,
    normalize_current_episode: bool = False,
) -> jax.Array:
    """TD(λ) value targets for the batch-unaware value of Eq. 10 (spec §3.1).

    Algorithm 1 on the rewards with ``values[:, t] = V̂(h_{t+1})``. The default flags
    ``(False, False)`` give the ordinary λ-return, the unbiased target for Eq. 10,
    used for vs-meta data and (spec §3.1 ambiguity, default) for vs-naive data too.

    Args:
      rewards: ``[B, L]`` rewards.
      values_t: ``[B, L]`` values ``V̂(h_t)`` before acting at step ``t``.
      discount: scalar ``γ``.
      lambda_: scalar ``λ_td``.
      inner_episode_length: ``T`` (static).
      bootstrap_value: ``[B]`` value after the last step; ``None`` for zero.
      average_future_episodes: Algorithm 1 flag (static).
      normalize_current_episode: Algorithm 1 flag (static).

    Returns:
      ``[B, L]`` targets.
    """
    values_t = jnp.asarray(values_t)
    _check_batch_sequence("values_t", values_t)
    return batch_lambda_returns(
        rewards,
        _shift_in_bootstrap(values_t, bootstrap_value),
        discount=discount,
        lambda_=lambda_,
        inner_episode_length=inner_episode_length,
        average_future_episodes=average_future_episodes,
        normalize_current_episode=normalize_current_episode,
    )


def _gae(
    rewards: jax.Array,
    values_t: jax.Array,
    *,
    discount: Scalar,
    lambda_: Scalar,
    inner_episode_length: int,
    bootstrap_value: jax.Array | None,
    average_future_episodes: bool,
    normalize_current_episode: bool,
) -> jax.Array:
    """Algorithm 1 on TD errors: ``v ≡ 0``, discount ``γλ``, ``λ = 1`` (spec §3.3).

    ``v ≡ 0`` makes the accumulators start at zero; the bootstrap is already
    inside the δ's.
    """
    deltas = temporal_differences(
        rewards, values_t, discount=discount, bootstrap_value=bootstrap_value
    )
    return batch_lambda_returns(
        deltas,
        jnp.zeros_like(deltas),
        discount=discount * lambda_,
        lambda_=1.0,
        inner_episode_length=inner_episode_length,
        average_future_episodes=average_future_episodes,
        normalize_current_episode=normalize_current_episode,
    )


def coala_gae(
    rewards: jax.Array,
    values_t: jax.Array,
    *,
    discount: Scalar,
    lambda_: Scalar,
    inner_episode_length: int,
    bootstrap_value: jax.Array | None = None,
) -> jax.Array:
    r"""COALA-GAE advantages against a naive co-player (App. A.4, Eqs. 11-14).

    Algorithm 1 with both flags true on ``δ_t = r_t + γV̂_{t+1} - V̂_t``: with ``e``
    the last step of ``t``'s inner episode and ``Â`` ordinary GAE,

    .. math::

        A^b_t = \frac{1}{B}\sum_{k=t}^{e} (γλ)^{k-t} δ^b_k
              + (γλ)^{e+1-t}\,\mathrm{mean}_{b'} Â^{b'}_{e+1}.

    At ``γ = λ = 1`` the δ's telescope into Eqs. 13-14,

    .. math::

        A^b_l = \frac{1}{B} cur_b + \frac{1}{B}\sum_{b'} fut_{b'}
              - \frac{1}{B} V̂(h^b_l) - \frac{1}{B}\sum_{b' \ne b} V̂(h^{b'}_{Tm_l+1}),

    the unbiased estimator of Theorem 3.1 with a baseline. These advantages carry
    the ``1/B`` of Eq. 3 and are meant for a *sum* over ``b`` (Eq. 5); see
    :func:`scale_coala_advantages` for mean-over-samples losses.

    Args:
      rewards: ``[B, M*T]`` rewards.
      values_t: ``[B, M*T]`` batch-unaware values ``V̂(h_t)`` (Eq. 10).
      discount: scalar ``γ``.
      lambda_: scalar ``λ_gae``.
      inner_episode_length: ``T`` (static).
      bootstrap_value: ``[B]`` value after the last step; ``None`` (default) for
        zero, the terminal end of the meta-trajectory.

    Returns:
      ``[B, M*T]`` advantages.
    """
    return _gae(
        rewards,
        values_t,
        discount=discount,
        lambda_=lambda_,
        inner_episode_length=inner_episode_length,
        bootstrap_value=bootstrap_value,
        average_future_episodes=True,
        normalize_current_episode=True,
    )


def batch_unaware_gae(
    rewards: jax.Array,
    values_t: jax.Array,
    *,
    discount: Scalar,
    lambda_: Scalar,
    inner_episode_length: int,
    bootstrap_value: jax.Array | None = None,
) -> jax.Array:
    """Ordinary GAE per trajectory (Schulman et al. 2016; paper Eqs. 6 and 25).

    Algorithm 1 with both flags false on the TD errors,
    ``A_t = Σ_k (γλ)^{k-t} δ_k`` over the whole meta-trajectory. Correct against
    meta co-players, whose ``B`` trajectories are independent; the "batch-unaware"
    ablation against naive ones, where it drops the cross-trajectory shaping terms.
    ``inner_episode_length`` is only validated, so that every GAE variant shares one
    signature.

    Args and returns as :func:`coala_gae`.
    """
    return _gae(
        rewards,
        values_t,
        discount=discount,
        lambda_=lambda_,
        inner_episode_length=inner_episode_length,
        bootstrap_value=bootstrap_value,
        average_future_episodes=False,
        normalize_current_episode=False,
    )


def mfos_gae(
    rewards: jax.Array,
    values_t: jax.Array,
    *,
    discount: Scalar,
    lambda_: Scalar,
    inner_episode_length: int,
    bootstrap_value: jax.Array | None = None,
) -> jax.Array:
    """M-FOS weighting rebuilt from the Lu et al. (2022) code (paper Eqs. 7 and 26).

    Algorithm 1 with ``average_future_episodes=True`` and
    ``normalize_current_episode=False`` on the TD errors: the batch-mean future of
    COALA-GAE, but the current episode at full weight, which over-weights it by
    ``B`` and makes the estimator biased for the batched objective once ``B > 1``.

    Args and returns as :func:`coala_gae`.
    """
    return _gae(
        rewards,
        values_t,
        discount=discount,
        lambda_=lambda_,
        inner_episode_length=inner_episode_length,
        bootstrap_value=bootstrap_value,
        average_future_episodes=True,
        normalize_current_episode=False,
    )


def scale_coala_advantages(advantages: jax.Array) -> jax.Array:
    """Multiply ``[B, L]`` vs-naive COALA advantages by ``B`` (spec §4 ambiguity).

    Eq. 5 *sums* the score terms over the ``B`` trajectories with ``1/B``-scaled
    advantages, Eq. 6 *averages* them; both are gradients of a per-trajectory
    average return. A loss that takes a plain mean over all ``(b, l)`` samples
    would weight COALA terms ``1/B`` times less than vs-meta terms, so the default
    is to scale vs-naive COALA advantages by ``B`` before such a loss:
    ``B A^b_l = cur_b + Σ_b' fut_b' - V̂^b_l - Σ_{b'≠b} V̂^{b'}_{next}`` at
    ``γ = λ = 1``. The unscaled variant is simply not calling this function.

    Args:
      advantages: ``[B, L]`` output of :func:`coala_gae`.

    Returns:
      ``[B, L]`` advantages times ``B``.
    """
    advantages = jnp.asarray(advantages)
    _check_batch_sequence("advantages", advantages)
    return advantages * advantages.shape[0]
