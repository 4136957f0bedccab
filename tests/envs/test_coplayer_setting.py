"""Environment checks of the in-context co-player inference setting.

Spec ``coplayer_inference.md`` §10.1: E1 (payoffs and first-person observations of
``ipd-v0``), E2 (closed-form per-round values against fixed strategies over 100
rounds, through the real env and through the exact
:func:`dilemmas.analysis.best_response.memory_one_match`) and E3 (random memory-one
pairs cooperate half the time on average). Expected numbers are typed from the spec.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents import strategies
from dilemmas.analysis.best_response import memory_one_match
from dilemmas.envs import make

# COALA Table 1, payoffs[a_row, a_col, player]: CC (1, 1), CD (-1, 2), DC (2, -1),
# DD (0, 0).
COALA = np.array([[[1, 1], [-1, 2]], [[2, -1], [0, 0]]], dtype=np.float32)
ROUNDS = 100


def _state(obs: jax.Array) -> list[int]:
    """The one-hot index of each agent's observation."""
    obs = np.asarray(obs)
    assert obs.shape == (2, 5)
    np.testing.assert_array_equal(obs.sum(axis=1), [1.0, 1.0])
    return [int(i) for i in obs.argmax(axis=1)]


# --------------------------------------------------------------------------------------
# E1


def test_e1_payoffs_match_coala_table_1():
    env, params = make("ipd-v0", max_steps=ROUNDS)
    np.testing.assert_array_equal(params.payoffs, COALA)
    assert int(params.max_steps) == ROUNDS
    key = jax.random.key(0)
    for a0 in (0, 1):
        for a1 in (0, 1):
            _, state = env.reset(key, params)
            ts = env.step(key, state, jnp.array([a0, a1]), params)
            np.testing.assert_array_equal(ts.reward, COALA[a0, a1])


def test_e1_observations_are_first_person():
    env, params = make("ipd-v0", max_steps=ROUNDS)
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    assert _state(obs) == [0, 0]  # s0 for both
    # Own action first: CD for the cooperator is DC for the defector.
    names = {1: "CC", 2: "CD", 3: "DC", 4: "DD"}
    expected = {
        (0, 0): ("CC", "CC"),
        (0, 1): ("CD", "DC"),
        (1, 0): ("DC", "CD"),
        (1, 1): ("DD", "DD"),
    }
    for actions, (seen_0, seen_1) in expected.items():
        ts = env.step(key, state, jnp.array(actions), params)
        assert [names[i] for i in _state(ts.obs)] == [seen_0, seen_1]
        state = ts.state


def test_e1_episode_is_truncated_after_100_rounds():
    env, params = make("ipd-v0", max_steps=ROUNDS)
    key = jax.random.key(0)
    _, state = env.reset(key, params)

    def round_(state, _):
        ts = env.step(key, state, jnp.array([0, 1]), params)
        return ts.state, (ts.truncated, ts.terminated)

    _, (truncated, terminated) = jax.lax.scan(round_, state, None, length=ROUNDS)
    assert not np.any(terminated)
    np.testing.assert_array_equal(truncated, np.arange(1, ROUNDS + 1) == ROUNDS)


# --------------------------------------------------------------------------------------
# E2


E2_CASES = [
    # (row, column, row per-round value, column per-round value), spec §10.1.
    ("allc", "allc", 1.0, 1.0),
    ("alld", "allc", 2.0, -1.0),
    ("tft", "tft", 1.0, 1.0),
    ("alld", "tft", (2 + 99 * 0) / 100, (-1 + 0) / 100),
    ("tft", "alld", (-1 + 0) / 100, (2 + 99 * 0) / 100),
]


@pytest.mark.parametrize(("row", "column", "v_row", "v_column"), E2_CASES)
def test_e2_closed_form_values_through_the_env(row, column, v_row, v_column):
    _, params = make("ipd-v0", max_steps=ROUNDS)
    out = strategies.rollout(
        jax.random.key(1),
        strategies.make(row),
        strategies.make(column),
        params,
        steps=ROUNDS,
    )
    assert out.rewards.shape == (ROUNDS, 2)
    np.testing.assert_allclose(
        np.asarray(out.rewards).mean(axis=0), [v_row, v_column], atol=1e-6
    )


@pytest.mark.parametrize(("row", "column", "v_row", "v_column"), E2_CASES)
def test_e2_closed_form_values_exactly(row, column, v_row, v_column):
    match = memory_one_match(
        strategies.memory_one(row), strategies.memory_one(column), ROUNDS
    )
    np.testing.assert_allclose(
        np.asarray(match.rewards).mean(axis=0), [v_row, v_column], atol=1e-6
    )


def test_e2_alld_against_tft_round_by_round():
    # TFT is exploited once (DC), then both defect.
    match = memory_one_match(
        strategies.memory_one("alld"), strategies.memory_one("tft"), ROUNDS
    )
    expected = np.zeros((ROUNDS, 2))
    expected[0] = (2.0, -1.0)
    np.testing.assert_array_equal(match.rewards, expected)
    assert strategies.play("alld", "tft", 3) == [(1, 0), (1, 1), (1, 1)]


# --------------------------------------------------------------------------------------
# E3


def _random_pair_episodes(key: jax.Array, episodes: int):
    """Actions ``[E, T, 2]`` and vectors of fresh U(0, 1)^5 pairs, one per episode."""
    _, params = make("ipd-v0", max_steps=ROUNDS)
    k_probs, k_play = jax.random.split(key)
    probs = jax.random.uniform(k_probs, (episodes, 2, 5))

    @jax.jit
    @jax.vmap
    def episode(key, pair):
        out = strategies.rollout(
            key,
            strategies.MemoryOne(probs=pair[0]),
            strategies.MemoryOne(probs=pair[1]),
            params,
            steps=ROUNDS,
        )
        return out.actions, out.rewards

    actions, rewards = episode(jax.random.split(k_play, episodes), probs)
    return np.asarray(actions), np.asarray(rewards), probs


def test_e3_random_memory_one_pairs_cooperate_half_the_time():
    # Relabelling C <-> D maps U(0, 1)^5 onto itself, so the expected cooperation
    # rate is exactly 0.5.
    episodes = 2048
    actions, _, probs = _random_pair_episodes(jax.random.key(2), episodes)
    per_episode = (actions == 0).mean(axis=(1, 2))  # both players, all rounds
    mean = per_episode.mean()
    standard_error = per_episode.std(ddof=1) / np.sqrt(episodes)
    assert abs(mean - 0.5) < 4 * standard_error
    # The exact per-pair cooperation rates average to 0.5 as well.
    exact = jax.vmap(lambda pair: memory_one_match(pair[0], pair[1], ROUNDS))(probs)
    per_pair = np.asarray(exact.cooperation).mean(axis=(1, 2))
    assert abs(per_pair.mean() - 0.5) < 4 * per_pair.std(ddof=1) / np.sqrt(episodes)


def test_e3_exact_match_agrees_with_sampled_episodes():
    # One fixed random pair, many episodes: per-round cooperation and reward of the
    # env agree with memory_one_match within 4.5 standard errors.
    episodes = 4096
    pair = jax.random.uniform(jax.random.key(3), (2, 5))
    key = jax.random.key(4)
    _, params = make("ipd-v0", max_steps=ROUNDS)
    keys = jax.random.split(key, episodes)
    out = jax.jit(
        jax.vmap(
            lambda k: strategies.rollout(
                k,
                strategies.MemoryOne(probs=pair[0]),
                strategies.MemoryOne(probs=pair[1]),
                params,
                steps=ROUNDS,
            )
        )
    )(keys)
    match = memory_one_match(pair[0], pair[1], ROUNDS)
    p = np.asarray(match.cooperation, np.float64)
    coop = (np.asarray(out.actions) == 0).mean(axis=0)
    se = np.sqrt(p * (1 - p) / episodes)
    assert np.all(np.abs(coop - p) <= 4.5 * se + 1e-9)
    rewards = np.asarray(out.rewards, np.float64)
    se = rewards.std(axis=0, ddof=1) / np.sqrt(episodes)
    assert np.all(
        np.abs(rewards.mean(axis=0) - np.asarray(match.rewards)) <= 4.5 * se + 1e-6
    )
