"""The improved (behaviour) policy of Predictive Policy Improvement (PPI).

Spec ``coplayer_inference.md`` §3.3 and §9 (Weis et al. 2026, Eq. 1 / Eq. 6)::

    pi(a | x_{<=t})  proportional to  p(a | x_{<=t}) * exp(beta * Q(x_{<=t}, a))

``p`` is the sequence model's action head (the prior / self-model) and ``Q`` a
Monte-Carlo estimate of the return under the prior, from ``rollouts`` (K) simulated
continuations of ``horizon`` (H) rounds per candidate action *inside the model*:

1. feed the candidate action ``a_t``;
2. for ``j = 1 .. H``: sample the next observation ``o_{t+j}`` from the observation
   head (the co-player's response), feed it; read the predicted reward ``mu`` (the
   mean of the model's fixed-variance Gaussian), add ``discount^(j-1) * mu`` to the
   return if round ``t + j - 1`` is still inside the episode (the horizon is
   ``min(H, T - t)``), feed ``mu`` as the reward token; sample the agent's own
   next action from the prior (the action head), feed it.

``Q(x, a)`` is the mean of the K returns. The reward is fed as its predicted mean
rather than a Gaussian sample: the Gaussian's variance is a fixed constant, so a
sample carries no information the mean lacks, and its noise would only add
variance to ``Q``. Defaults (§3.3, §9): beta 0.01, K 32, H 15, undiscounted; own
future actions from the prior (the only source implemented).

Everything is one computation over episodes x actions x rollouts (flattened into
one batch) and a ``lax.scan`` over the H rounds, jittable. The model is any object
with the rollout interface of :class:`dilemmas.agents.sequence_model.SequenceModel`
(``feed_obs``, ``feed_reward``, ``feed_action``, ``predict``; the state may be any
pytree with a leading batch axis), so an exact model of a known co-player can be
plugged in to check the estimate.

:class:`PPIAgent` is a side for :meth:`dilemmas.training.coplayer.Coplayer.play`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class Planner:
    """Settings of the improved policy.

    Attributes:
      beta: inverse temperature of the tilt (``1 / alpha`` of App. C).
      rollouts: K, simulated continuations per candidate action.
      horizon: H, rounds per continuation (truncated at the episode end).
      discount: discount of the rewards inside a continuation (1: undiscounted).
      episode_length: T, rounds per episode.
    """

    beta: float = 0.01
    rollouts: int = 32
    horizon: int = 15
    discount: float = 1.0
    episode_length: int = 100


class Decision(NamedTuple):
    """One decision for ``B`` episodes."""

    logits: jax.Array  # [B, A] log pi (normalised)
    q: jax.Array  # [B, A] the rollout estimates Q(x, a)
    prior_logits: jax.Array  # [B, A] log p (normalised)


def _tile(tree: Any, copies: int) -> Any:
    """Repeat every leaf's rows ``copies`` times: ``[B, ...] -> [B * copies, ...]``."""
    return jax.tree.map(lambda x: jnp.repeat(x, copies, axis=0), tree)


def rollout_q(
    model: Any,
    params: Any,
    h: Any,
    t: jax.Array,
    key: jax.Array,
    planner: Planner,
    num_actions: int,
) -> jax.Array:
    """Monte-Carlo ``Q(x_{<=t}, a)`` for every action, ``[B, A]``.

    Args:
      model: the sequence model (rollout interface, see the module docstring).
      params: its parameters.
      h: the model state after ``x_{<=t}`` (after the round's ``o_t`` and ``r_t``,
        before ``a_t``), leaves ``[B, ...]``.
      t: ``[B]`` the round index ``t`` (0-based) of the decision.
      key: PRNG key.
      planner: K, H, discount, T.
      num_actions: A.

    Returns:
      ``[B, A]`` mean (discounted) predicted return of rounds ``t .. t + H - 1``
      (those inside the episode) after taking ``a`` at round ``t``.
    """
    A, K, H = num_actions, planner.rollouts, planner.horizon
    B = jnp.shape(t)[0]
    state = _tile(h, A * K)  # [B * A * K, ...], order (episode, action, rollout)
    actions = jnp.tile(jnp.repeat(jnp.arange(A, dtype=jnp.int32), K), B)
    remaining = jnp.repeat(planner.episode_length - t, A * K)
    state = model.feed_action(params, state, actions)

    def round_(carry, inputs):
        state, total = carry
        j, key = inputs
        k_obs, k_act = jax.random.split(key)
        obs_logits = model.predict(params, state).obs_logits
        obs = jax.random.categorical(k_obs, obs_logits).astype(jnp.int32)
        state = model.feed_obs(params, state, obs)
        reward = model.predict(params, state).reward_mean
        weight = jnp.where(j < remaining, planner.discount**j, 0.0)
        total = total + weight * reward
        state = model.feed_reward(params, state, reward)
        action_logits = model.predict(params, state).action_logits
        action = jax.random.categorical(k_act, action_logits).astype(jnp.int32)
        state = model.feed_action(params, state, action)
        return (state, total), None

    steps = (jnp.arange(H), jax.random.split(key, H))
    total = jnp.zeros((B * A * K,), jnp.float32)
    (_, total), _ = jax.lax.scan(round_, (state, total), steps)
    return jnp.mean(total.reshape(B, A, K), axis=-1)


def decide(
    model: Any,
    params: Any,
    h: Any,
    t: jax.Array,
    key: jax.Array,
    planner: Planner,
) -> Decision:
    """The improved policy at the state ``h`` (after ``o_t`` and ``r_t``).

    ``log pi = log_softmax(log p + beta * Q)``; with ``beta = 0`` it is the prior
    exactly (the rollouts are then skipped).
    """
    prior = jax.nn.log_softmax(model.predict(params, h).action_logits)
    A = prior.shape[-1]
    if planner.beta == 0.0:
        q = jnp.zeros_like(prior)
    else:
        q = rollout_q(model, params, h, t, key, planner, A)
    logits = jax.nn.log_softmax(prior + planner.beta * q)
    return Decision(logits, q, prior)


class PPIAgent:
    """A PPI learner as a side of :meth:`~dilemmas.training.coplayer.Coplayer.play`.

    The carry is ``(h, t)``: the model state after the previous round's own action
    (the ``z`` token at the start with Opponent ID) and the round index ``[B]``.
    Each round feeds ``o_t`` and ``r_t`` (the previous reward, 0 at the start),
    samples ``a_t`` from the improved policy and feeds it. Returns the improved
    policy's probabilities and, as the "value", ``sum_a pi(a) Q(x, a)``.

    Args:
      model: the sequence model.
      planner: the improved policy's settings.
      params: the model's parameters.
      z: ``[B, z_dim]`` Opponent-ID vectors, or ``None`` without them.
    """

    def __init__(self, model: Any, planner: Planner, params: Any, z: Any = None):
        self.model = model
        self.planner = planner
        self.params = params
        self.z = z

    def start_carry(self, key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
        del key
        h = self.model.initial_state((batch,))
        if self.z is not None:
            h = self.model.feed_z(self.params, h, self.z)
        return h, jnp.zeros((batch,), jnp.int32)

    def act(self, carry, obs, prev_action, prev_reward, key):
        del prev_action
        h, t = carry
        batch = t.shape[0]
        k_plan, k_act = jax.random.split(key)
        index = jnp.argmax(obs.reshape(batch, -1), axis=-1).astype(jnp.int32)
        h = self.model.feed_obs(self.params, h, index)
        h = self.model.feed_reward(self.params, h, prev_reward)
        decision = decide(self.model, self.params, h, t, k_plan, self.planner)
        action = jax.random.categorical(k_act, decision.logits).astype(jnp.int32)
        h = self.model.feed_action(self.params, h, action)
        probs = jnp.exp(decision.logits)
        value = jnp.sum(probs * decision.q, axis=-1)
        return (h, t + 1), action, value, probs
