"""Exact finite-horizon best response to a known memory-one co-player.

Against a memory-one co-player the agent's own-perspective observation is a
sufficient statistic for the co-player's next move, so the optimal policy over a
game of ``H`` rounds is found by backward dynamic programming over the 5 states and
``H`` rounds (spec ``coplayer_inference.md`` §10.1, E4). It is the reference ``V*``
for the in-context best-response gap of mechanism check M1.

Conventions
-----------
* **States**, index 0..4: s0 (start), CC, CD, DC, DD, in the agent's own perspective
  (own action first). Round 0 is always in s0; after the joint action ``(a, b)``
  (agent, co-player; C = 0, D = 1) the next state is ``1 + 2 a + b``, as in the
  observation of :class:`dilemmas.envs.matrix_games.MatrixGame`.
* **Co-player vector** ``[5]``: cooperation probabilities (first move; after CC, CD,
  DC, DD) in the **co-player's own** perspective, as everywhere in the library
  (:func:`dilemmas.agents.strategies.memory_one`). In the agent's state ``s`` the
  co-player cooperates with probability ``co_player[[0, 1, 3, 2, 4]][s]``: CD and DC
  swap between the two perspectives.
* **Payoffs**: a preset name, an (R, S, T, P) 4-vector or a ``[2, 2, 2]`` table
  ``payoffs[a_agent, a_co, player]`` (see :mod:`dilemmas.envs.payoffs`); the agent is
  the row player (player 0).
* **Bellman recursion**, rounds ``t = 0 .. H-1``, ``V_H = 0``::

      Q_t(s, a) = sum_b P(b | s) [payoffs[a, b, 0] + discount * V_{t+1}(1 + 2a + b)]
      V_t(s)    = max_a Q_t(s, a)

  ``V_0(s0)`` is the expected (discounted) total return of the best response over
  the whole game. Every state gets a value in every round, including the ones that
  are unreachable there (s0 after round 0, CC..DD in round 0): those rows are the
  value of the remaining rounds as if the game were in that state.

Everything is pure ``jax.numpy`` with ``lax.scan``: the functions jit (``horizon``
static, and ``payoffs`` too when it is a name) and ``jax.vmap`` over the co-player
vector. Argument values are checked only when concrete; shapes are always checked.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.envs.exact_ipd import initial_distribution, transition_matrix
from dilemmas.envs.payoffs import PayoffsLike, payoff_table

#: Number of memory-one states: s0, CC, CD, DC, DD.
NUM_STATES = 5
# The co-player's own-perspective entries read in the agent's state order (Python
# ints: static indices, so no int32/int64 index constant leaks between traces made
# with and without x64).
_AGENT_PERSPECTIVE = (0, 1, 3, 2, 4)


class BestResponse(NamedTuple):
    """The exact best response to one memory-one co-player (a pytree).

    Attributes:
      value: scalar ``V_0(s0)``, the best response's expected (discounted) total
        return over the game, not divided by the horizon.
      values: ``[H + 1, 5]`` optimal values ``V_t(s)``; the last row is zero.
      q: ``[H, 5, 2]`` action values ``Q_t(s, a)``, ``a`` = 0 (C) or 1 (D).
      policy: ``[H, 5]`` int32 optimal action, 0 = C, 1 = D. Ties (equal Q values
        in floating point) go to C.
    """

    value: jax.Array
    values: jax.Array
    q: jax.Array
    policy: jax.Array


class Match(NamedTuple):
    """Exact per-round expectations of a memory-one agent against a co-player.

    Attributes:
      rewards: ``[H, 2]`` expected reward in each round, (agent, co-player).
      cooperation: ``[H, 2]`` probability of cooperating in each round, (agent,
        co-player).
    """

    rewards: jax.Array
    cooperation: jax.Array


def _is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_horizon(horizon: Any) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer):
        raise ValueError(
            f"horizon must be a Python int >= 1 (it is static), got {horizon!r}"
        )
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return int(horizon)


def _check_policy(p: Any, name: str) -> jax.Array:
    """A float ``[5]`` vector of probabilities; values are checked when concrete."""
    p = jnp.asarray(p)
    if p.shape != (NUM_STATES,):
        raise ValueError(
            f"{name} must have shape (5,) (cooperation probabilities for the first "
            f"move and after CC, CD, DC, DD); got shape {p.shape}. Use jax.vmap for "
            "batches."
        )
    if not _is_traced(p):
        values = np.asarray(p, dtype=np.float64)
        if not np.all((values >= 0.0) & (values <= 1.0)):
            raise ValueError(
                f"{name} must hold probabilities in [0, 1]; got {values.tolist()}"
            )
    return p.astype(jnp.promote_types(p.dtype, jnp.float32))


def _check_discount(discount: Any) -> None:
    if _is_traced(discount):
        return
    try:
        value = np.asarray(discount, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"discount must be a number in [0, 1], got {discount!r}"
        ) from None
    if value.shape != () or not 0.0 <= value <= 1.0:
        raise ValueError(f"discount must be a scalar in [0, 1], got {discount!r}")


def _payoff_table(payoffs: PayoffsLike | jax.Array) -> jax.Array:
    """The ``[2, 2, 2]`` table ``payoffs[a_agent, a_co, player]``.

    Concrete payoffs go through :func:`dilemmas.envs.payoffs.payoff_table` (names,
    4-vectors, validation); a traced table must already have shape ``[2, 2, 2]``.
    """
    if not _is_traced(payoffs):
        return jnp.asarray(payoff_table(payoffs))
    table = jnp.asarray(payoffs)
    if table.shape != (2, 2, 2):
        raise ValueError(
            f"traced payoffs must be a [2, 2, 2] table; got shape {table.shape}"
        )
    return table


def memory_one_best_response(
    co_player: jax.Array,
    horizon: int,
    payoffs: PayoffsLike | jax.Array = "coala",
    discount: float | jax.Array = 1.0,
) -> BestResponse:
    """Exact best response to a memory-one co-player over ``horizon`` rounds.

    Backward induction (one ``lax.scan``) of the recursion in the module docstring.
    The best response is deterministic and Markov in (round, state); no
    history-dependent policy does better against a memory-one co-player.

    Args:
      co_player: ``[5]`` cooperation probabilities of the co-player in its own
        perspective (first move; after CC, CD, DC, DD).
      horizon: number of rounds ``H``, a Python int >= 1 (static under ``jit``).
      payoffs: preset name, (R, S, T, P) 4-vector or ``[2, 2, 2]`` table
        ``payoffs[a_agent, a_co, player]``; the agent is the row player.
      discount: per-round discount in ``[0, 1]`` (1, the default, is the
        undiscounted total return).

    Returns:
      A :class:`BestResponse` with ``value`` (scalar), ``values`` ``[H + 1, 5]``,
      ``q`` ``[H, 5, 2]`` and ``policy`` ``[H, 5]`` (int32, ties to C).

    Raises:
      ValueError: a bad ``horizon``, ``co_player`` shape, concrete ``co_player``
        entries outside [0, 1], bad ``payoffs`` or a concrete ``discount`` outside
        [0, 1].
    """
    horizon = _check_horizon(horizon)
    co_player = _check_policy(co_player, "co_player")
    _check_discount(discount)
    rewards = _payoff_table(payoffs)[:, :, 0].astype(co_player.dtype)  # [a, b]
    return _backward_induction(co_player, rewards, discount, horizon)


@functools.partial(jax.jit, static_argnames="horizon")
def _backward_induction(
    co_player: jax.Array, rewards: jax.Array, discount: Any, horizon: int
) -> BestResponse:
    """The DP itself (jitted, so eager calls compile once per horizon and dtype)."""
    # Co-player cooperation probability in agent state s.
    p_co = jnp.stack([co_player[i] for i in _AGENT_PERSPECTIVE])
    p_b = jnp.stack([p_co, 1.0 - p_co], axis=-1)  # [s, b]
    discount = jnp.asarray(discount, co_player.dtype)

    def backward(v_next, _):
        # Next state after (a, b) is 1 + 2a + b: v_next[1:] reshaped to [a, b].
        continuation = rewards + discount * jnp.reshape(v_next[1:], (2, 2))
        q_t = p_b @ continuation.T  # [s, a] = sum_b P(b | s) continuation[a, b]
        v_t = jnp.max(q_t, axis=-1)
        policy_t = (q_t[:, 1] > q_t[:, 0]).astype(jnp.int32)
        return v_t, (v_t, q_t, policy_t)

    v_final = jnp.zeros((NUM_STATES,), co_player.dtype)
    v_0, (values, q, policy) = jax.lax.scan(
        backward, v_final, None, length=horizon, reverse=True
    )
    values = jnp.concatenate([values, v_final[None]], axis=0)
    return BestResponse(value=v_0[0], values=values, q=q, policy=policy)


def best_response_gap(
    best_response: BestResponse, states: jax.Array, coop_prob: jax.Array
) -> jax.Array:
    """Per-round gap of an agent's action distribution to the best response.

    ``gap_t = V_t(s_t) - [coop_prob_t Q_t(s_t, C) + (1 - coop_prob_t) Q_t(s_t, D)]``,
    non-negative. For any agent, history-dependent or not, the co-player's future
    depends only on ``s_t`` and the joint action, so the gaps telescope: in
    expectation over the agent's own trajectories,
    ``E[sum_t discount^t gap_t] = V_0(s0) - E[sum_t discount^t r_t]`` (the plain sum
    when the best response was computed undiscounted). Each ``gap_t`` is therefore
    round ``t``'s share of the agent's regret against the best response.

    Args:
      best_response: one (unbatched) result of :func:`memory_one_best_response`,
        horizon ``H``; ``jax.vmap`` this function for batches.
      states: ``[..., H]`` int agent-perspective state at each round (0 = s0 in
        round 0, then ``1 + 2 a + b`` of the previous joint action).
      coop_prob: ``[..., H]`` the agent's probability of cooperating in each round
        (0 or 1 for the action actually taken).

    Returns:
      ``[..., H]`` gaps.

    Raises:
      ValueError: a batched ``best_response``; ``states`` and ``coop_prob`` shapes
        differ or do not end in ``H``; non-integer states; concrete states outside
        0..4 or probabilities outside [0, 1].
    """
    if jnp.ndim(best_response.q) != 3:
        raise ValueError(
            "best_response must be one unbatched BestResponse (q of shape [H, 5, 2]); "
            f"got q of shape {jnp.shape(best_response.q)}. Use jax.vmap for batches."
        )
    horizon = best_response.q.shape[0]
    states = jnp.asarray(states)
    coop_prob = jnp.asarray(coop_prob)
    if states.shape != coop_prob.shape:
        raise ValueError(
            f"states and coop_prob must have the same shape; got {states.shape} "
            f"and {coop_prob.shape}"
        )
    if states.ndim == 0 or states.shape[-1] != horizon:
        raise ValueError(
            f"states must have shape [..., {horizon}] (one state per round of the "
            f"best response's horizon); got shape {states.shape}"
        )
    if not jnp.issubdtype(states.dtype, jnp.integer):
        raise ValueError(f"states must be integers, got dtype {states.dtype}")
    if not _is_traced(states):
        concrete = np.asarray(states)
        if np.any((concrete < 0) | (concrete >= NUM_STATES)):
            raise ValueError(f"states must lie in 0..4; got {np.unique(concrete)}")
    if not _is_traced(coop_prob):
        concrete = np.asarray(coop_prob, dtype=np.float64)
        if not np.all((concrete >= 0.0) & (concrete <= 1.0)):
            raise ValueError("coop_prob must hold probabilities in [0, 1]")
    return _gap(best_response.q, best_response.values, states, coop_prob)


@jax.jit
def _gap(
    q: jax.Array, values: jax.Array, states: jax.Array, coop_prob: jax.Array
) -> jax.Array:
    rounds = jnp.arange(q.shape[0])
    q_t = q[rounds, states]  # [..., H, 2]
    v_t = values[rounds, states]  # [..., H]
    played = coop_prob * q_t[..., 0] + (1.0 - coop_prob) * q_t[..., 1]
    return v_t - played


def memory_one_match(
    agent: jax.Array,
    co_player: jax.Array,
    horizon: int,
    payoffs: PayoffsLike | jax.Array = "coala",
) -> Match:
    """Exact per-round expectations of two memory-one players over ``horizon`` rounds.

    Propagates the distribution of the joint move forward (one ``lax.scan``) with
    :func:`dilemmas.envs.exact_ipd.initial_distribution` and
    :func:`~dilemmas.envs.exact_ipd.transition_matrix`; the rewards summed over
    rounds equal :func:`dilemmas.envs.exact_ipd.finite_horizon_returns`.

    Args:
      agent: ``[5]`` the agent's (row player's) cooperation probabilities, own
        perspective.
      co_player: ``[5]`` the co-player's cooperation probabilities, own
        perspective.
      horizon: number of rounds, a Python int >= 1 (static under ``jit``).
      payoffs: preset name, (R, S, T, P) 4-vector or ``[2, 2, 2]`` table.

    Returns:
      A :class:`Match`: ``rewards`` ``[H, 2]`` and ``cooperation`` ``[H, 2]``,
      columns (agent, co-player).

    Raises:
      ValueError: a bad ``horizon``, policy shape, concrete probabilities outside
        [0, 1] or bad ``payoffs``.
    """
    horizon = _check_horizon(horizon)
    agent = _check_policy(agent, "agent")
    co_player = _check_policy(co_player, "co_player")
    dtype = jnp.promote_types(agent.dtype, co_player.dtype)
    agent, co_player = agent.astype(dtype), co_player.astype(dtype)
    # Rows in the joint order (CC, CD, DC, DD) = 2 a_agent + a_co.
    joint_rewards = jnp.reshape(_payoff_table(payoffs), (4, 2)).astype(dtype)
    return _forward(agent, co_player, joint_rewards, horizon)


@functools.partial(jax.jit, static_argnames="horizon")
def _forward(
    agent: jax.Array, co_player: jax.Array, joint_rewards: jax.Array, horizon: int
) -> Match:
    """The forward propagation (jitted, so eager calls compile once per horizon)."""
    transitions = transition_matrix(agent, co_player)

    def forward(d_t, _):
        return d_t @ transitions, d_t

    _, joint = jax.lax.scan(
        forward, initial_distribution(agent, co_player), None, length=horizon
    )  # [H, 4]
    cooperation = jnp.stack(
        [joint[:, 0] + joint[:, 1], joint[:, 0] + joint[:, 2]], axis=-1
    )
    return Match(rewards=joint @ joint_rewards, cooperation=cooperation)
