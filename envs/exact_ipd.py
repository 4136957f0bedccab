"""The exact, differentiable infinite-horizon iterated 2x2 game for memory-one policies.

Two memory-one players, each a vector of 5 cooperation probabilities, induce a Markov
chain over joint moves, so their discounted values have a closed form (as in LOLA,
M-FOS and COALA-PG App. C). Every function here is pure ``jax.numpy``: it jits, vmaps
and differentiates (``jax.grad`` through the linear solve gives exact policy
gradients, LOLA terms included).

Conventions
-----------
* **Policy vector.** ``p = [p0, p_CC, p_CD, p_DC, p_DD]``: the first-move cooperation
  probability (the s0 entry) comes **first**, then the probabilities of cooperating
  after each previous joint move, in the player's **own perspective** (own move
  first: CD means "I cooperated, the co-player defected"). This is the order of the
  one-hot observation of :class:`dilemmas.envs.matrix_games.MatrixGame`, so the same
  vector drives both the sampled and the exact game. Pax and ``alshedivat/lola`` put
  the first-move entry last; reorder with ``p[[4, 0, 1, 2, 3]]`` to read theirs.
* **Global states.** The chain runs over ``(CC, CD, DC, DD)`` with player 1's action
  first (index ``2 a_1 + a_2``, C = 0, D = 1). Player 2's vector is reordered into
  this order, ``q2 = (p2_CC, p2_DC, p2_CD, p2_DD)``: forgetting this CD<->DC swap is
  the classic bug. Tit-for-tat is ``(1; 1, 0, 1, 0)`` for both players, and player
  2's tit-for-tat reads ``(1, 1, 0, 0)`` in the global order.
* **Payoffs.** A preset name, an (R, S, T, P) 4-vector or a ``[2, 2, 2]`` table
  ``payoffs[a_row, a_col, agent]`` (see :mod:`dilemmas.envs.payoffs`), so any 2x2
  game works, not only prisoner's dilemmas. The reward vectors over the global
  states are ``r1 = payoffs[:, :, 0].ravel()`` and ``r2 = payoffs[:, :, 1].ravel()``;
  for a PD, ``r1 = (R, S, T, P)`` and ``r2 = (R, T, S, P)``.
* **Transpose.** ``P`` is row-stochastic (row = current state, column = next
  state), and values are ``V = d0^T (I - gamma P)^-1 r``. COALA-PG writes the same
  thing with a column-stochastic ``M = P^T``; mixing the two conventions is silently
  wrong whenever ``P`` is not symmetric. The visitation is obtained by solving
  ``(I - gamma P)^T x = d0`` (never an explicit inverse), and ``(1 - gamma) x``
  sums to 1.
* **Time.** The first joint move is ``t = 0`` and its distribution is ``d0`` (the
  literature's ``s0``; it is not the s0 observation).
* **Normalisation.** :func:`values` returns the unnormalised ``V`` (mutual
  cooperation is worth ``R / (1 - gamma)``, the LOLA / M-FOS / Pax convention);
  :func:`average_rewards` returns ``(1 - gamma) V``, a reward per step (mutual
  cooperation is worth ``R``). The two differ by 25x at ``gamma = 0.96``, so
  learning rates do not transfer between them.

``gamma`` must lie in ``[0, 1)`` for the infinite-horizon functions; it is checked
when it is a concrete number and left alone when it is traced (under ``jit`` or
``vmap``). Use float64 (``jax.enable_x64``) near ``gamma = 1``: the conditioning of
``I - gamma P`` degrades like ``1 / (1 - gamma)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.envs.payoffs import PayoffsLike, payoff_table

# Player 2's own-perspective entries (p_CC, p_CD, p_DC, p_DD) sit at positions 1..4 of
# its vector; these indices read them in the global order (CC, CD, DC, DD). Python
# ints, not an index array: an array constant captured in a trace made without x64
# keeps int32 and breaks a later float64 trace of the same function.
_PLAYER_2_GLOBAL = (1, 3, 2, 4)


def _policy(p: Any, name: str) -> jax.Array:
    """A ``[5]`` float array, or a ValueError naming the argument."""
    p = jnp.asarray(p)
    if p.shape != (5,):
        raise ValueError(
            f"{name} must have shape (5,) ([first move, CC, CD, DC, DD]); got shape "
            f"{p.shape}. Use jax.vmap for batches of policies."
        )
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.result_type(float))
    return p


def _policies(p1: Any, p2: Any) -> tuple[jax.Array, jax.Array]:
    p1, p2 = _policy(p1, "p1"), _policy(p2, "p2")
    dtype = jnp.result_type(p1, p2)
    return p1.astype(dtype), p2.astype(dtype)


def _check_gamma(gamma: Any, *, allow_one: bool) -> None:
    """Validate a concrete discount; traced discounts pass unchecked."""
    if isinstance(gamma, jax.core.Tracer):
        return
    value = np.asarray(gamma, dtype=np.float64)
    upper = "1]" if allow_one else "1)"
    if value.shape != ():
        raise ValueError(
            f"gamma must be a scalar in [0, {upper}; got shape {value.shape}"
        )
    in_range = 0.0 <= value <= 1.0 if allow_one else 0.0 <= value < 1.0
    if not in_range:
        raise ValueError(f"gamma must lie in [0, {upper}; got {float(value)}")


def _reward_vectors(payoffs: PayoffsLike | jax.Array, dtype: Any) -> jax.Array:
    """Rewards ``[4, 2]`` over the global states (CC, CD, DC, DD), one column a player.

    Concrete payoffs go through :func:`payoff_table` (names, validation); traced ones
    (a ``vmap`` over games) must already be a 4-vector or a ``[2, 2, 2]`` table.
    """
    if isinstance(payoffs, jax.core.Tracer):
        table = jnp.asarray(payoffs)
        if table.shape == (4,):
            r, s, t, p = table
            pairs = [(r, r), (s, t), (t, s), (p, p)]  # CC, CD, DC, DD
            table = jnp.reshape(jnp.array(pairs), (2, 2, 2))
        if table.shape != (2, 2, 2):
            raise ValueError(
                "traced payoffs must be an (R, S, T, P) 4-vector or a [2, 2, 2] "
                f"table; got shape {table.shape}"
            )
    else:
        table = jnp.asarray(payoff_table(payoffs))
    # payoffs[a_row, a_col, agent] -> rows in the order 2 a_row + a_col.
    return jnp.reshape(table, (4, 2)).astype(dtype)


def _joint(q1: jax.Array, q2: jax.Array) -> jax.Array:
    """Joint move distribution(s) over (CC, CD, DC, DD) from cooperation probs."""
    pi1 = jnp.stack([q1, 1.0 - q1], axis=-1)  # [..., a1]
    pi2 = jnp.stack([q2, 1.0 - q2], axis=-1)  # [..., a2]
    joint = pi1[..., :, None] * pi2[..., None, :]  # [..., a1, a2]
    return jnp.reshape(joint, (*joint.shape[:-2], 4))


def initial_distribution(p1: jax.Array, p2: jax.Array) -> jax.Array:
    """Distribution ``d0`` of the first joint move over (CC, CD, DC, DD).

    ``d0 = [p1_0 p2_0, p1_0 (1 - p2_0), (1 - p1_0) p2_0, (1 - p1_0)(1 - p2_0)]``.

    Args:
      p1, p2: ``[5]`` own-perspective cooperation probabilities.

    Returns:
      ``[4]`` probabilities summing to 1.
    """
    p1, p2 = _policies(p1, p2)
    return _joint(p1[0], p2[0])


def transition_matrix(p1: jax.Array, p2: jax.Array) -> jax.Array:
    """Row-stochastic transition matrix over the global states (CC, CD, DC, DD).

    ``P[s, s'] = Pr(next joint move s' | current joint move s)``:
    ``P[s] = [q1_s q2_s, q1_s (1 - q2_s), (1 - q1_s) q2_s, (1 - q1_s)(1 - q2_s)]``
    with ``q1 = p1[1:]`` and ``q2 = p2[[1, 3, 2, 4]]`` (player 2's CD<->DC swap).

    Args:
      p1, p2: ``[5]`` own-perspective cooperation probabilities.

    Returns:
      ``[4, 4]`` matrix whose rows sum to 1.
    """
    p1, p2 = _policies(p1, p2)
    return _joint(p1[1:], jnp.stack([p2[i] for i in _PLAYER_2_GLOBAL]))


def _discounted_occupancy(p1: jax.Array, p2: jax.Array, gamma: Any) -> jax.Array:
    """``x = (I - gamma P)^-T d0``, i.e. ``x^T = sum_t gamma^t d0^T P^t``."""
    d0 = initial_distribution(p1, p2)
    transitions = transition_matrix(p1, p2)
    a = jnp.eye(4, dtype=transitions.dtype) - gamma * transitions
    return jnp.linalg.solve(a.T, d0)


def visitation(p1: jax.Array, p2: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """Normalised discounted state visitation over (CC, CD, DC, DD).

    ``d_gamma = (1 - gamma) (I - gamma P)^-T d0``, i.e.
    ``d_gamma^T = (1 - gamma) sum_t gamma^t d0^T P^t``, computed with a linear
    solve. It sums to 1 and tends to the stationary distribution of ``P`` as
    ``gamma -> 1``.

    Args:
      p1, p2: ``[5]`` own-perspective cooperation probabilities.
      gamma: discount in ``[0, 1)``.

    Returns:
      ``[4]`` probabilities.

    Raises:
      ValueError: bad policy shape, or a concrete ``gamma`` outside ``[0, 1)``.
    """
    _check_gamma(gamma, allow_one=False)
    return (1.0 - gamma) * _discounted_occupancy(p1, p2, gamma)


def values(
    p1: jax.Array,
    p2: jax.Array,
    payoffs: PayoffsLike | jax.Array = "coala",
    gamma: float | jax.Array = 0.96,
) -> jax.Array:
    """Unnormalised discounted values ``V_i = d0^T (I - gamma P)^-1 r_i``.

    ``V_i = sum_{t >= 0} gamma^t E[r_i(s_t)]``, with the first joint move at
    ``t = 0``. Computed as ``solve((I - gamma P)^T, d0) @ r_i`` (no explicit
    inverse); mutual cooperation is worth ``R / (1 - gamma)``.

    Args:
      p1, p2: ``[5]`` own-perspective cooperation probabilities
        ``[first move, CC, CD, DC, DD]``.
      payoffs: preset name, (R, S, T, P) 4-vector or ``[2, 2, 2]`` table.
      gamma: discount in ``[0, 1)``.

    Returns:
      ``[2]`` array ``[V_1, V_2]``.

    Raises:
      ValueError: bad policy shape, bad payoffs, or a concrete ``gamma`` outside
        ``[0, 1)``.
    """
    _check_gamma(gamma, allow_one=False)
    occupancy = _discounted_occupancy(p1, p2, gamma)
    return occupancy @ _reward_vectors(payoffs, occupancy.dtype)


def average_rewards(
    p1: jax.Array,
    p2: jax.Array,
    payoffs: PayoffsLike | jax.Array = "coala",
    gamma: float | jax.Array = 0.96,
) -> jax.Array:
    """Normalised values ``v_i = (1 - gamma) V_i = d_gamma^T r_i`` (reward per step).

    Mutual cooperation is worth ``R`` at every ``gamma``.

    Args:
      p1, p2: ``[5]`` own-perspective cooperation probabilities
        ``[first move, CC, CD, DC, DD]``.
      payoffs: preset name, (R, S, T, P) 4-vector or ``[2, 2, 2]`` table.
      gamma: discount in ``[0, 1)``.

    Returns:
      ``[2]`` array ``[v_1, v_2]``.

    Raises:
      ValueError: bad policy shape, bad payoffs, or a concrete ``gamma`` outside
        ``[0, 1)``.
    """
    d_gamma = visitation(p1, p2, gamma)
    return d_gamma @ _reward_vectors(payoffs, d_gamma.dtype)


def average_rewards_from_logits(
    theta1: jax.Array,
    theta2: jax.Array,
    payoffs: PayoffsLike | jax.Array = "coala",
    gamma: float | jax.Array = 0.96,
) -> jax.Array:
    """:func:`average_rewards` of ``sigmoid(theta1)`` and ``sigmoid(theta2)``.

    Args:
      theta1, theta2: ``[5]`` logits in the order of the policy vectors.
      payoffs: preset name, (R, S, T, P) 4-vector or ``[2, 2, 2]`` table.
      gamma: discount in ``[0, 1)``.

    Returns:
      ``[2]`` array ``[v_1, v_2]``.
    """
    theta1, theta2 = _policy(theta1, "theta1"), _policy(theta2, "theta2")
    return average_rewards(
        jax.nn.sigmoid(theta1), jax.nn.sigmoid(theta2), payoffs, gamma
    )


def finite_horizon_returns(
    p1: jax.Array,
    p2: jax.Array,
    payoffs: PayoffsLike | jax.Array = "coala",
    horizon: int = 100,
    gamma: float | jax.Array = 1.0,
) -> jax.Array:
    """Expected (discounted) return over the first ``horizon`` joint moves.

    ``G_i = sum_{t < horizon} gamma^t d0^T P^t r_i``, accumulated exactly by a
    ``lax.scan`` over the state distribution ``d_t^T = d0^T P^t``; with
    ``gamma < 1`` this equals ``d0^T (I - (gamma P)^horizon)(I - gamma P)^-1 r_i``.
    It is the expected total reward of one episode of
    :class:`dilemmas.envs.matrix_games.MatrixGame` with ``max_steps=horizon``
    (``gamma = 1``, the default, gives the undiscounted return).

    Args:
      p1, p2: ``[5]`` own-perspective cooperation probabilities.
      payoffs: preset name, (R, S, T, P) 4-vector or ``[2, 2, 2]`` table.
      horizon: number of joint moves, a positive Python int (it fixes the scan
        length).
      gamma: discount in ``[0, 1]``.

    Returns:
      ``[2]`` array of expected returns (not divided by ``horizon``).

    Raises:
      ValueError: bad policy shape, bad payoffs, a non-positive ``horizon`` or a
        concrete ``gamma`` outside ``[0, 1]``.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer):
        raise ValueError(f"horizon must be a positive int, got {horizon!r}")
    if horizon <= 0:
        raise ValueError(f"horizon must be positive, got {horizon}")
    _check_gamma(gamma, allow_one=True)
    d0 = initial_distribution(p1, p2)
    transitions = transition_matrix(p1, p2)
    rewards = _reward_vectors(payoffs, d0.dtype)

    def step(carry, _):
        d_t, discount_t, total = carry
        total = total + discount_t * (d_t @ rewards)
        return (d_t @ transitions, discount_t * gamma, total), None

    init = (d0, jnp.ones((), d0.dtype), jnp.zeros((2,), d0.dtype))
    (_, _, total), _ = jax.lax.scan(step, init, None, length=int(horizon))
    return total
