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

from dilemmas.agents import ppi
from dilemmas.agents.ppi import Planner, decide, rollout_q
from dilemmas.analysis.best_response import memory_one_best_response

COALA = np.array([[[1, 1], [-1, 2]], [[2, -1], [0, 0]]], np.float64)
# A co-player's cooperation probabilities (first move; after CC, CD, DC, DD in its
# own perspective) and the agent's prior P(C) in its own states s0, CC, CD, DC, DD.
CO_PLAYER = np.array([0.9, 0.8, 0.3, 0.6, 0.2])
PRIOR = np.array([0.5, 0.7, 0.4, 0.6, 0.25])
AGENT_VIEW = [0, 1, 3, 2, 4]  # the co-player's entries in the agent's state order


def exact_model(co_player, prior_coop):
    """The library's exact memory-one model with the COALA payoffs."""
    return ppi.MemoryOneModel(co_player, prior_coop, COALA)


def exact_q(co_player, prior_coop, horizon):
    """``[5, 2]`` Q(s, a) over ``horizon`` rounds, own later actions from the prior:
    Q_h(s, a) = sum_b P(b | s) [R(a, b) + sum_a' p(a' | s') Q_{h-1}(s', a')]."""
    prior = np.stack([prior_coop, 1 - np.asarray(prior_coop)], -1)
    return exact_q_under(co_player, prior, horizon)


def _q(model, planner, t, key=0):
    """Rollout Q at every state s (batch of 5, last own action irrelevant)."""
    h = (jnp.arange(5, dtype=jnp.int32), jnp.zeros(5, jnp.int32))
    t = jnp.full((5,), t, jnp.int32)
    run = jax.jit(lambda k: rollout_q(model, None, h, t, k, planner, 2))
    return np.asarray(run(jax.random.key(key)))


def test_rollout_q_matches_the_exact_q_under_the_prior():
    model = exact_model(CO_PLAYER, PRIOR)
    planner = Planner(rollouts=8192, horizon=4, episode_length=100)
    np.testing.assert_allclose(
        _q(model, planner, t=0), exact_q(CO_PLAYER, PRIOR, 4), atol=0.08
    )


def test_the_horizon_stops_at_the_episode_end():
    model = exact_model(CO_PLAYER, PRIOR)
    planner = Planner(rollouts=8192, horizon=4, episode_length=10)
    np.testing.assert_allclose(
        _q(model, planner, t=8), exact_q(CO_PLAYER, PRIOR, 2), atol=0.06
    )


def test_rollout_q_with_a_defecting_continuation_is_the_dp_q():
    model = exact_model(CO_PLAYER, np.zeros(5))
    planner = Planner(rollouts=8192, horizon=2, episode_length=100)
    best = memory_one_best_response(jnp.asarray(CO_PLAYER), 2, payoffs=COALA)
    assert np.all(np.asarray(best.policy)[1] == 1)  # D in the last round
    np.testing.assert_allclose(_q(model, planner, t=0), best.q[0], atol=0.06)


def test_discount_weighs_later_rounds():
    model = exact_model(CO_PLAYER, np.zeros(5))
    planner = Planner(rollouts=8192, horizon=2, discount=0.5, episode_length=100)
    best = memory_one_best_response(
        jnp.asarray(CO_PLAYER), 2, payoffs=COALA, discount=0.5
    )
    np.testing.assert_allclose(_q(model, planner, t=0), best.q[0], atol=0.05)


def test_beta_zero_gives_the_prior_and_beta_tilts_towards_larger_q():
    model = exact_model(CO_PLAYER, PRIOR)
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


def exact_q_under(co_player, policy, horizon):
    """``[5, 2]`` Q(s, a) over ``horizon`` rounds with own later actions from a
    stationary memory-one ``policy`` ``[5, 2]``."""
    co = np.asarray(co_player)[AGENT_VIEW]
    v = np.zeros(5)
    q = np.zeros((5, 2))
    for _ in range(horizon):
        q = np.zeros((5, 2))
        for s in range(5):
            for a in range(2):
                for b, pb in ((0, co[s]), (1, 1 - co[s])):
                    q[s, a] += pb * (COALA[a, b, 0] + v[1 + 2 * a + b])
        v = np.sum(policy * q, axis=-1)
    return q


def test_own_actions_from_the_improved_policy_match_the_exact_q():
    """Own future actions from pi = p exp(beta Q'), Q' the prior's 2-round Q: the
    rollout Q equals the exact Q under that policy, and differs from the prior's
    by far more than the Monte-Carlo error (so the option is not ignored). The
    co-player cooperates with probability 0.8 whatever happened, so defecting
    gains 1 per round and the improved continuation defects more."""
    co_player = np.full(5, 0.8)
    beta = 2.0
    prior = np.stack([PRIOR, 1 - PRIOR], -1)
    improved = prior * np.exp(beta * exact_q(co_player, PRIOR, 2))
    improved /= improved.sum(-1, keepdims=True)
    want = exact_q_under(co_player, improved, 3)
    assert np.min(np.abs(want - exact_q(co_player, PRIOR, 3))) > 0.5
    planner = Planner(
        beta=beta,
        rollouts=2048,
        horizon=3,
        episode_length=100,
        own_actions="improved",
        inner_rollouts=256,
        inner_horizon=2,
    )
    got = _q(exact_model(co_player, PRIOR), planner, t=0)
    np.testing.assert_allclose(got, want, atol=0.1)


def test_own_actions_must_be_a_known_source():
    import pytest

    with pytest.raises(ValueError, match="own_actions"):
        Planner(own_actions="greedy")


def test_paired_rollouts_stay_unbiased_and_lower_the_variance_of_q_differences():
    model = exact_model(CO_PLAYER, PRIOR)
    want = exact_q(CO_PLAYER, PRIOR, 4)
    h = (jnp.arange(5, dtype=jnp.int32), jnp.zeros(5, jnp.int32))
    t = jnp.zeros((5,), jnp.int32)
    keys = jax.random.split(jax.random.key(3), 200)
    gaps = {}
    for paired in (False, True):
        planner = Planner(rollouts=4096, horizon=4, episode_length=100, paired=paired)
        np.testing.assert_allclose(_q(model, planner, t=0), want, atol=0.08)
        small = Planner(rollouts=8, horizon=4, episode_length=100, paired=paired)
        run = jax.vmap(lambda k, p=small: rollout_q(model, None, h, t, k, p, 2))
        q = np.asarray(jax.jit(run)(keys))
        gaps[paired] = np.std(q[..., 1] - q[..., 0], axis=0)
    # the difference of two independent estimates against that of coupled ones
    assert np.all(gaps[True] < 0.65 * gaps[False]), gaps
