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
future actions from the prior.

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

from dilemmas.agents.sequence_model import Prediction

OWN_ACTIONS = ("prior", "improved")


@dataclass(frozen=True)
class Planner:
    """Settings of the improved policy.

    Attributes:
      beta: inverse temperature of the tilt (``1 / alpha`` of App. C).
      rollouts: K, simulated continuations per candidate action.
      horizon: H, rounds per continuation (truncated at the episode end).
      discount: discount of the rewards inside a continuation (1: undiscounted).
      episode_length: T, rounds per episode.
      own_actions: ``"prior"`` or ``"improved"``: the source of the agent's own
        actions inside a continuation.
      inner_rollouts, inner_horizon: the nested continuations (under the prior)
        that estimate ``Q'`` for ``own_actions="improved"``.
      paired: common random numbers: rollout ``k`` of every candidate action
        draws the same noise (the policy depends on differences of ``Q``, whose
        variance this lowers; each ``Q`` stays unbiased).
    """

    beta: float = 0.01
    rollouts: int = 32
    horizon: int = 15
    discount: float = 1.0
    episode_length: int = 100
    own_actions: str = "prior"
    inner_rollouts: int = 4
    inner_horizon: int = 5
    paired: bool = False

    def __post_init__(self):
        if self.own_actions not in OWN_ACTIONS:
            raise ValueError(
                f"own_actions must be one of {OWN_ACTIONS}, got {self.own_actions!r}"
            )

    def inner(self) -> Planner:
        """The planner of the nested continuations (own actions from the prior)."""
        return Planner(
            beta=self.beta,
            rollouts=self.inner_rollouts,
            horizon=self.inner_horizon,
            discount=self.discount,
            episode_length=self.episode_length,
            paired=self.paired,
        )


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

    def sample(key, logits):
        """One draw per row by inverting the CDF at a uniform; with ``paired``
        rollouts the ``A`` continuations of rollout ``k`` share their uniforms
        (observations are ordered own action first, so a shared uniform couples
        the co-player's simulated actions across the candidate actions)."""
        n = logits.shape[-1]
        u = jax.random.uniform(key, (B, 1 if planner.paired else A, K))
        u = jnp.broadcast_to(u, (B, A, K)).reshape(-1, 1)
        cdf = jnp.cumsum(jax.nn.softmax(logits), axis=-1)
        return jnp.minimum(jnp.sum(cdf < u, axis=-1), n - 1).astype(jnp.int32)

    def round_(carry, inputs):
        state, total = carry
        j, key = inputs
        k_obs, k_act, k_inner = jax.random.split(key, 3)
        obs = sample(k_obs, model.predict(params, state).obs_logits)
        state = model.feed_obs(params, state, obs)
        reward = model.predict(params, state).reward_mean
        weight = jnp.where(j < remaining, planner.discount**j, 0.0)
        total = total + weight * reward
        state = model.feed_reward(params, state, reward)
        if planner.own_actions == "improved":
            t_next = planner.episode_length - remaining + j + 1
            action_logits = decide(
                model, params, state, t_next, k_inner, planner.inner()
            ).logits
        else:
            action_logits = model.predict(params, state).action_logits
        state = model.feed_action(params, state, sample(k_act, action_logits))
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


# The co-player's entries (s0, CC, CD, DC, DD in its own view) in the agent's state
# order: its CD is the agent's DC and vice versa.
_AGENT_VIEW = (0, 1, 3, 2, 4)


class MemoryOneModel:
    """An exact model of a memory-one co-player and a memory-one prior, with the
    rollout interface of :class:`~dilemmas.agents.sequence_model.SequenceModel`
    (``params`` are ignored): a reference for the rollout Q (the tests check it
    against dynamic programming) and for the rollouts' speed.

    The state is ``(s, a)``: the agent's last observation index (0 = s0, then
    ``1 + 2 * own + co-player`` of the previous round) and its last own action.

    Args:
      co_player: ``[5]`` the co-player's cooperation probabilities (first move;
        after CC, CD, DC, DD in its own view).
      prior_coop: ``[5]`` the agent's prior P(C) in its states s0, CC, CD, DC, DD.
      payoffs: ``[2, 2, 2]`` table ``payoffs[own, co-player, player]``.
    """

    def __init__(self, co_player: Any, prior_coop: Any, payoffs: Any):
        self.co = jnp.asarray(co_player, jnp.float32)[jnp.asarray(_AGENT_VIEW)]
        p = jnp.clip(jnp.asarray(prior_coop, jnp.float32), 1e-7, 1 - 1e-7)
        self.prior = jnp.log(jnp.stack([p, 1 - p], -1))
        self.payoffs = jnp.asarray(payoffs, jnp.float32)

    def initial_state(self, batch_shape: tuple[int, ...] = ()):
        zeros = jnp.zeros(batch_shape, jnp.int32)
        return zeros, zeros

    def feed_obs(self, params, h, obs):
        return obs, h[1]

    def feed_reward(self, params, h, reward):
        return h

    def feed_action(self, params, h, action):
        return h[0], action

    def predict(self, params, h) -> Prediction:
        s, a = h
        c = self.co[s]
        rows = jnp.arange(s.shape[0])
        probs = jnp.zeros((s.shape[0], 5))
        probs = probs.at[rows, 1 + 2 * a].set(c).at[rows, 2 + 2 * a].set(1 - c)
        own, other = (s - 1) // 2, (s - 1) % 2
        reward = jnp.where(s == 0, 0.0, self.payoffs[own, other, 0])
        return Prediction(jnp.log(jnp.maximum(probs, 1e-30)), reward, self.prior[s])
