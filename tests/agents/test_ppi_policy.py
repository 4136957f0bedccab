"""The PPI improved policy: the prior at beta = 0, the tilt, and the rollout Q of a
model that is exact by construction.

The exact model is a known memory-one co-player written with the sequence model's
rollout interface: its next-observation distribution is the co-player's memory-one
response, its reward the COALA payoff of the observed joint action, its action head
a memory-one prior. Its Q under the prior's continuation is computed by a small
exact recursion in numpy; with horizon 2 and an always-defect continuation it is the
dynamic-programming Q of :mod:`dilemmas.analysis.best_response` (defection is
optimal in the last round of the prisoner's dilemma).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.agents.ppi import Planner, decide, rollout_q
from dilemmas.agents.sequence_model import Prediction
from dilemmas.analysis.best_response import memory_one_best_response

COALA = np.array([[[1, 1], [-1, 2]], [[2, -1], [0, 0]]], np.float64)
# A co-player's cooperation probabilities (first move; after CC, CD, DC, DD in its
# own perspective) and the agent's prior P(C) in its own states s0, CC, CD, DC, DD.
CO_PLAYER = np.array([0.9, 0.8, 0.3, 0.6, 0.2])
PRIOR = np.array([0.5, 0.7, 0.4, 0.6, 0.25])
AGENT_VIEW = [0, 1, 3, 2, 4]  # the co-player's entries in the agent's state order


class MemoryOneModel:
    """An exact model of a memory-one co-player and a memory-one prior.

    State: ``(s, a)``, the agent's last observation index and last own action.
    """

    def __init__(self, co_player, prior_coop):
        self.co = jnp.asarray(np.asarray(co_player)[AGENT_VIEW], jnp.float32)
        p = np.clip(np.asarray(prior_coop, np.float64), 1e-12, 1 - 1e-12)
        self.prior = jnp.asarray(np.log(np.stack([p, 1 - p], -1)), jnp.float32)
        self.payoffs = jnp.asarray(COALA, jnp.float32)

    def feed_obs(self, params, h, obs):
        return obs, h[1]

    def feed_reward(self, params, h, reward):
        return h

    def feed_action(self, params, h, action):
        return h[0], action

    def predict(self, params, h):
        s, a = h
        c = self.co[s]
        rows = jnp.arange(s.shape[0])
        probs = jnp.zeros((s.shape[0], 5))
        probs = probs.at[rows, 1 + 2 * a].set(c).at[rows, 2 + 2 * a].set(1 - c)
        own, other = (s - 1) // 2, (s - 1) % 2
        reward = jnp.where(s == 0, 0.0, self.payoffs[own, other, 0])
        return Prediction(jnp.log(jnp.maximum(probs, 1e-30)), reward, self.prior[s])


def exact_q(co_player, prior_coop, horizon):
    """``[5, 2]`` Q(s, a) over ``horizon`` rounds, own later actions from the prior:
    Q_h(s, a) = sum_b P(b | s) [R(a, b) + sum_a' p(a' | s') Q_{h-1}(s', a')]."""
    co = np.asarray(co_player)[AGENT_VIEW]
    prior = np.stack([prior_coop, 1 - np.asarray(prior_coop)], -1)
    v = np.zeros(5)
    q = np.zeros((5, 2))
    for _ in range(horizon):
        q = np.zeros((5, 2))
        for s in range(5):
            for a in range(2):
                for b, pb in ((0, co[s]), (1, 1 - co[s])):
                    q[s, a] += pb * (COALA[a, b, 0] + v[1 + 2 * a + b])
        v = np.sum(prior * q, axis=-1)
    return q


def _q(model, planner, t, key=0):
    """Rollout Q at every state s (batch of 5, last own action irrelevant)."""
    h = (jnp.arange(5, dtype=jnp.int32), jnp.zeros(5, jnp.int32))
    t = jnp.full((5,), t, jnp.int32)
    run = jax.jit(lambda k: rollout_q(model, None, h, t, k, planner, 2))
    return np.asarray(run(jax.random.key(key)))


def test_rollout_q_matches_the_exact_q_under_the_prior():
    model = MemoryOneModel(CO_PLAYER, PRIOR)
    planner = Planner(rollouts=8192, horizon=4, episode_length=100)
    np.testing.assert_allclose(
        _q(model, planner, t=0), exact_q(CO_PLAYER, PRIOR, 4), atol=0.08
    )


def test_the_horizon_stops_at_the_episode_end():
    model = MemoryOneModel(CO_PLAYER, PRIOR)
    planner = Planner(rollouts=8192, horizon=4, episode_length=10)
    np.testing.assert_allclose(
        _q(model, planner, t=8), exact_q(CO_PLAYER, PRIOR, 2), atol=0.06
    )


def test_rollout_q_with_a_defecting_continuation_is_the_dp_q():
    model = MemoryOneModel(CO_PLAYER, np.zeros(5))
    planner = Planner(rollouts=8192, horizon=2, episode_length=100)
    best = memory_one_best_response(jnp.asarray(CO_PLAYER), 2, payoffs=COALA)
    assert np.all(np.asarray(best.policy)[1] == 1)  # D in the last round
    np.testing.assert_allclose(_q(model, planner, t=0), best.q[0], atol=0.06)


def test_discount_weighs_later_rounds():
    model = MemoryOneModel(CO_PLAYER, np.zeros(5))
    planner = Planner(rollouts=8192, horizon=2, discount=0.5, episode_length=100)
    best = memory_one_best_response(
        jnp.asarray(CO_PLAYER), 2, payoffs=COALA, discount=0.5
    )
    np.testing.assert_allclose(_q(model, planner, t=0), best.q[0], atol=0.05)


def test_beta_zero_gives_the_prior_and_beta_tilts_towards_larger_q():
    model = MemoryOneModel(CO_PLAYER, PRIOR)
    h = (jnp.arange(5, dtype=jnp.int32), jnp.zeros(5, jnp.int32))
    t = jnp.zeros(5, jnp.int32)
    key = jax.random.key(1)
    prior = np.log(np.stack([PRIOR, 1 - PRIOR], -1))
    flat = decide(model, None, h, t, key, Planner(beta=0.0, horizon=3))
    np.testing.assert_allclose(np.asarray(flat.logits), prior, atol=1e-6)
    beta = 0.5
    planner = Planner(beta=beta, rollouts=8192, horizon=3)
    tilted = decide(model, None, h, t, key, planner)
    q = exact_q(CO_PLAYER, PRIOR, 3)
    want = np.exp(prior + beta * q)
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.exp(np.asarray(tilted.logits)), want, atol=0.01)
    larger = np.argmax(q, axis=-1)
    gained = np.exp(np.asarray(tilted.logits))[np.arange(5), larger]
    assert np.all(gained > np.exp(prior)[np.arange(5), larger])
