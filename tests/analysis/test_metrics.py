"""Metrics against hand-computed arrays (specs matrix_games.md §1, grid_dilemmas.md §5).

Every expected array is worked out by hand from the tiny episodes below (the
working is in the comments); the Wilson bounds are the textbook values for
1/1, 0/2 and 2/4 at 95 %. One test runs the metrics inside ``jax.lax.scan`` and
``jit``, and one checks the probe against simulated play of a known memory-one
policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.analysis import metrics as m
from dilemmas.envs import cleanup_lite

NAN = np.nan

# Two episodes of T = 4 rounds, (agent 0, agent 1), 0 = C, 1 = D.
# A: CD, CC, DD, CD    B: DD, DC, CC, CC
ACTIONS = np.array(
    [
        [[0, 1], [0, 0], [1, 1], [0, 1]],
        [[1, 1], [1, 0], [0, 0], [0, 0]],
    ],
    np.int32,
)


# --------------------------------------------------------------------------------------
# Matrix games


def test_cooperation_rate_and_joint_outcomes():
    # A: agent 0 C C D C -> 3/4, agent 1 D C D D -> 1/4.
    # B: agent 0 D D C C -> 1/2, agent 1 D C C C -> 3/4.
    np.testing.assert_allclose(m.cooperation_rate(ACTIONS), [[0.75, 0.25], [0.5, 0.75]])
    # (CC, CD, DC, DD): A has CC once, CD twice, DD once; B CC twice, DC, DD once.
    np.testing.assert_allclose(
        m.joint_outcome_distribution(ACTIONS),
        [[0.25, 0.5, 0.0, 0.25], [0.5, 0.0, 0.25, 0.25]],
    )


def test_reward_per_step_mean_and_discounted():
    rewards = np.array([[1.0, 1.0], [-1.0, 2.0], [0.0, 0.0], [2.0, -1.0]])
    np.testing.assert_allclose(m.reward_per_step(rewards), [0.5, 0.5])
    # (1 - 1/2)(r0 + r1/2 + r2/4 + r3/8): agent 0 (1 - 1/2 + 0 + 1/4)/2 = 3/8,
    # agent 1 (1 + 1 + 0 - 1/8)/2 = 15/16.
    np.testing.assert_allclose(m.reward_per_step(rewards, gamma=0.5), [3 / 8, 15 / 16])


def test_cooperation_curves():
    # Round by round, pooled over A and B: agent 0 (1,0) (1,0) (0,1) (1,1) -> means
    # 1/2, 1/2, 1/2, 1; agent 1 (0,0) (1,1) (0,1) (0,1) -> 0, 1, 1/2, 1/2.
    np.testing.assert_allclose(
        m.cooperation_by_round(ACTIONS),
        [[0.5, 0.0], [0.5, 1.0], [0.5, 0.5], [1.0, 0.5]],
    )
    # Inner episodes of 2 rounds: round 0 is t = 0 or 2, round 1 is t = 1 or 3.
    np.testing.assert_allclose(
        m.cooperation_by_round(ACTIONS, episode_length=2),
        [[0.5, 0.25], [0.75, 0.75]],
    )
    # Inner episode 0 (t = 0, 1): agent 0 A 1, B 0; agent 1 A 1/2, B 1/2.
    # Inner episode 1 (t = 2, 3): agent 0 A 1/2, B 1; agent 1 A 0, B 1.
    np.testing.assert_allclose(
        m.cooperation_by_episode(ACTIONS, episode_length=2),
        [[0.5, 0.5], [0.75, 0.5]],
    )


# One probe episode, (own, co-player): CD, DC, CC, CD, DD.
# States: start, CD, DC, CC, CD; own moves there: C, D, C, C, D.
PROBE_EPISODE = np.array([[0, 1], [1, 0], [0, 0], [0, 1], [1, 1]], np.int32)


def test_memory_one_probe_by_hand():
    probe = m.memory_one_probe(PROBE_EPISODE)
    np.testing.assert_array_equal(probe.counts, [1, 1, 2, 1, 0])
    np.testing.assert_array_equal(probe.cooperations, [1, 1, 0, 1, 0])
    np.testing.assert_allclose(probe.p, [1.0, 1.0, 0.0, 1.0, NAN])
    # Wilson 95 %: 1/1 -> (0.2065, 1); 0/2 -> (0, 0.6576); unvisited -> (0, 1).
    np.testing.assert_allclose(
        probe.lower, [0.20655, 0.20655, 0.0, 0.20655, 0.0], atol=1e-5
    )
    np.testing.assert_allclose(probe.upper, [1.0, 1.0, 0.65762, 1.0, 1.0], atol=1e-5)
    # For k = n the Wilson lower bound is 1 / (1 + z^2): z = 2.5758 at 99 %.
    strict = m.memory_one_probe(PROBE_EPISODE, confidence=0.99)
    np.testing.assert_allclose(strict.lower[0], 1 / (1 + 2.575829**2), rtol=1e-5)


def test_wilson_interval_textbook_value():
    lower, upper = m.wilson_interval(jnp.array([2]), jnp.array([4]))
    np.testing.assert_allclose([lower[0], upper[0]], [0.15004, 0.84996], atol=1e-5)
    wider = m.wilson_interval(jnp.array([2]), jnp.array([4]), confidence=0.99)
    assert wider[0][0] < lower[0] and wider[1][0] > upper[0]


def test_memory_one_probe_restarts_at_inner_episodes():
    # A then B as one meta-trajectory of two inner episodes of 4 rounds.
    meta = np.concatenate([ACTIONS[0], ACTIONS[1]])
    split = m.memory_one_probe(meta, episode_length=4)
    stacked = m.memory_one_probe(ACTIONS)
    np.testing.assert_array_equal(split.counts, stacked.counts)
    np.testing.assert_array_equal(split.cooperations, stacked.cooperations)
    # A: start C; CD -> C; CC -> D; DD -> C.  B: start D; DD -> D; DC -> C; CC -> C.
    np.testing.assert_array_equal(stacked.counts, [2, 2, 1, 1, 2])
    np.testing.assert_array_equal(stacked.cooperations, [1, 1, 1, 1, 1])
    # Without the boundary, B's first round is read as following A's last CD.
    joined = m.memory_one_probe(meta)
    np.testing.assert_array_equal(joined.counts, [1, 2, 2, 1, 2])


def _play_memory_one(probs, episodes, rounds, seed):
    """Actions [episodes, rounds, 2] of a memory-one player against a random one."""
    rng = np.random.default_rng(seed)
    actions = np.zeros((episodes, rounds, 2), np.int32)
    state = np.zeros(episodes, np.int64)  # start
    for t in range(rounds):
        own = (rng.random(episodes) >= probs[state]).astype(np.int32)
        co = (rng.random(episodes) >= 0.5).astype(np.int32)
        actions[:, t] = np.stack([own, co], axis=1)
        state = 1 + 2 * own + co
    return actions


def test_memory_one_probe_recovers_a_memory_one_policy():
    probs = np.array([0.8, 0.9, 0.2, 0.6, 0.1])
    probe = m.memory_one_probe(
        _play_memory_one(probs, 64, 32, seed=0), confidence=0.999
    )
    assert int(jnp.sum(probe.counts)) == 64 * 32
    assert int(probe.counts[0]) == 64
    assert bool(jnp.all(probe.counts > 40))
    assert bool(jnp.all((probe.lower <= probs) & (probs <= probe.upper)))
    np.testing.assert_allclose(probe.p, probs, atol=0.15)


# --------------------------------------------------------------------------------------
# Grid games

# Two episodes of 4 steps; agent 0 cleans 1, 1, 2, 0 cells, agent 1 0, 0, 1, 0.
CLEANED = np.array([[[1, 0], [1, 0], [2, 1], [0, 0]], np.zeros((4, 2))], np.int32)


def test_cleaning_metrics():
    # Steps with cleaning / T: agent 0 3/4 (not 4/4: the 2 counts as one step).
    np.testing.assert_allclose(m.cleaning_time(CLEANED), [[0.75, 0.25], [0.0, 0.0]])
    np.testing.assert_allclose(m.cleaning_discrepancy(CLEANED), [0.5, 0.0])
    np.testing.assert_allclose(m.cleaning_discrepancy(CLEANED[:, :, ::-1]), [0.5, 0])
    np.testing.assert_allclose(
        m.cleaning_discrepancy(CLEANED[:, :, ::-1], signed=True), [-0.5, 0.0]
    )
    share = m.cleaning_share(CLEANED)  # cells 4 and 1 of 5; nobody in episode 2
    np.testing.assert_allclose(share.value, [[0.8, 0.2], [NAN, NAN]])
    assert int(share.num_undefined) == 1


def test_levels_and_totals():
    dirt = np.zeros((3, 2, 2), bool)
    dirt[0] = True  # 4 cells
    dirt[1, 0] = True  # 2 cells
    apples = np.zeros((3, 2, 2), bool)
    apples[2, :, 0] = True  # 0, 0, 2 apples
    np.testing.assert_allclose(m.pollution_level(dirt), 2.0)
    np.testing.assert_allclose(m.apple_level(apples), 2 / 3)
    np.testing.assert_allclose(m.pollution_level(np.stack([dirt, ~dirt])), [2.0, 2.0])
    counts = np.array([[1, 0], [0, 2], [1, 1]], np.int32)
    totals = m.episode_totals(counts)
    np.testing.assert_array_equal(totals, [2, 3])
    assert jnp.issubdtype(totals.dtype, jnp.integer)
    np.testing.assert_allclose(m.episode_returns(counts * 0.5), [1.0, 1.5])


def test_cleanup_lite_metrics_by_hand():
    info = {
        "apples_eaten": np.array([[1, 0], [0, 0], [0, 1]]),
        "cells_cleaned": np.array([[0, 1], [0, 1], [0, 0]]),
        "zaps_fired": np.array([[1, 0], [1, 0], [0, 0]]),
        "zaps_received": np.array([[0, 1], [0, 0], [0, 0]]),
        "frozen": np.array([[0, 0], [0, 1], [0, 1]]),
    }
    rewards = info["apples_eaten"].astype(np.float32)
    dirt = np.zeros((3, 5, 4), bool)
    dirt[:, :2, 3] = True  # 2 dirt cells after each step
    apples = np.zeros((3, 5, 4), bool)
    apples[1, 0, 0] = True
    out = m.cleanup_lite_metrics(rewards, info, dirt, apples)
    np.testing.assert_allclose(out.returns, [1.0, 1.0])
    np.testing.assert_array_equal(out.apples_eaten, [1, 1])
    np.testing.assert_allclose(out.cleaning_time, [0.0, 2 / 3])
    np.testing.assert_allclose(out.cleaning_discrepancy, 2 / 3)
    np.testing.assert_allclose(out.cleaning_difference, -2 / 3)
    np.testing.assert_allclose(out.cleaning_share.value, [0.0, 1.0])
    np.testing.assert_array_equal(out.zaps_fired, [2, 0])
    np.testing.assert_array_equal(out.zaps_received, [0, 1])
    np.testing.assert_allclose([out.pollution_level, out.apple_level], [2.0, 1 / 3])
    np.testing.assert_allclose(m.peace(info["frozen"]), 4 / 3)  # (6 - 2) / 3


def test_cleanup_lite_metrics_read_the_env_names():
    # The info keys and state fields the metrics read are the env's own.
    assert {"apples_eaten", "cells_cleaned", "zaps_fired", "zaps_received"} <= set(
        cleanup_lite.INFO_KEYS
    )
    fields = set(cleanup_lite.CleanUpLiteState.__dataclass_fields__)
    assert {"dirt", "apples", "freeze"} <= fields


def test_own_coin_proportion():
    # Episode 1: agent 0 own 2, other 1 -> 2/3; agent 1 own 1, other 0 -> 1; pooled
    # 3/4. Episode 2: agent 0 own 1 -> 1; agent 1 no pickup -> NaN; pooled 1.
    own = np.array([[[1, 0], [0, 1], [1, 0]], [[0, 0], [1, 0], [0, 0]]])
    other = np.array([[[0, 0], [1, 0], [0, 0]], np.zeros((3, 2))], np.int32)
    per_agent = m.own_coin_proportion(own, other)
    np.testing.assert_allclose(per_agent.value, [[2 / 3, 1.0], [1.0, NAN]])
    assert int(per_agent.num_undefined) == 1
    pooled = m.own_coin_proportion(own, other, pooled=True)
    np.testing.assert_allclose(pooled.value, [0.75, 1.0])
    assert int(pooled.num_undefined) == 0


# --------------------------------------------------------------------------------------
# Social outcome metrics

# E1: R = (2, 1); agent 0 paid at t = 0, 3, agent 1 at t = 1.
# E2: nobody paid.  E3: R = (1, 0), agent 0 paid at t = 0.
REWARDS = np.array(
    [
        [[1, 0], [0, 1], [0, 0], [1, 0]],
        np.zeros((4, 2)),
        [[1, 0], [0, 0], [0, 0], [0, 0]],
    ],
    np.float32,
)
TAGGED = np.array(
    [[[0, 1], [0, 1], [1, 0], [0, 0]], np.zeros((4, 2)), np.ones((4, 2))], np.int32
)


def test_gini_by_hand():
    # (1, 2, 3): sum |x_i - x_j| = 2 (1 + 2 + 1) = 8, 2 N sum x = 36 -> 2/9.
    np.testing.assert_allclose(m.gini(np.array([1.0, 2.0, 3.0])).value, 2 / 9)
    np.testing.assert_allclose(
        m.gini(np.array([[1.0, 1.0], [0.0, 4.0]])).value, [0, 0.5]
    )


def test_social_outcome_metrics_by_hand():
    np.testing.assert_allclose(m.efficiency(REWARDS), [3 / 4, 0.0, 1 / 4])
    # E1: Gini = 2 |2 - 1| / (2 * 2 * 3) = 1/6; E3: 2 / (2 * 2 * 1) = 1/2.
    equal = m.equality(REWARDS)
    np.testing.assert_allclose(equal.value, [5 / 6, NAN, 0.5])
    assert int(equal.num_undefined) == 1
    np.testing.assert_allclose(
        m.reward_times(REWARDS), [[1.5, 1.0], [NAN, NAN], [0.0, NAN]]
    )
    # Only positive rewards count: a penalty at t = 0 is not "collecting reward".
    np.testing.assert_allclose(m.reward_times(np.array([[-1.0], [2.0]])), [1.0])
    lasting = m.sustainability(REWARDS)
    np.testing.assert_allclose(lasting.value, [1.25, NAN, NAN])
    assert int(lasting.num_undefined) == 2
    # Peace: (8 - 3) / 4, (8 - 0) / 4, (8 - 8) / 4.
    np.testing.assert_allclose(m.peace(TAGGED), [1.25, 2.0, 0.0])
    out = m.social_outcomes(REWARDS, TAGGED)
    np.testing.assert_allclose(
        [out.efficiency, out.equality, out.sustainability, out.peace],
        [1 / 3, 2 / 3, 1.25, 13 / 12],
        rtol=1e-6,
    )
    assert (int(out.num_equality_undefined), int(out.num_sustainability_undefined)) == (
        1,
        2,
    )
    np.testing.assert_allclose(m.social_outcomes(REWARDS).peace, 2.0)


# --------------------------------------------------------------------------------------
# jit and scan


def _all_metrics(actions, rewards, tagged):
    """A dict of every metric of one batch, for jit and scan comparisons."""
    return {
        "cooperation": m.cooperation_rate(actions),
        "joint": m.joint_outcome_distribution(actions),
        "reward": m.reward_per_step(rewards, gamma=0.9),
        "probe": m.memory_one_probe(actions).p,
        "equality": m.equality(rewards).value,
        "sustainability": m.sustainability(rewards).value,
        "peace": m.peace(tagged),
        "social": m.social_outcomes(rewards, tagged).efficiency,
    }


def test_metrics_inside_jit_and_scan():
    actions = np.concatenate([ACTIONS, ACTIONS[:1]])  # three episodes, as REWARDS
    eager = _all_metrics(actions, REWARDS, TAGGED)
    jitted = jax.jit(_all_metrics)(actions, REWARDS, TAGGED)

    def body(carry, episode):
        out = _all_metrics(*(x[None] for x in episode))
        return carry + out["cooperation"][0], {k: v for k, v in out.items()}

    total, scanned = jax.jit(lambda xs: jax.lax.scan(body, jnp.zeros(2), xs))(
        (actions, REWARDS, TAGGED)
    )
    for name in ("cooperation", "joint", "reward", "equality", "sustainability"):
        np.testing.assert_allclose(jitted[name], eager[name], err_msg=name)
        np.testing.assert_allclose(scanned[name][:, 0], eager[name], err_msg=name)
    np.testing.assert_allclose(jitted["probe"], eager["probe"])
    np.testing.assert_allclose(scanned["peace"][:, 0], eager["peace"])
    np.testing.assert_allclose(total, jnp.sum(eager["cooperation"], axis=0))


# --------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: m.cooperation_rate(np.zeros(4)),
            r"actions must have shape \[\.\.\., T",
        ),
        (lambda: m.joint_outcome_distribution(np.zeros((4, 3))), r"actions .*T, 2\]"),
        (lambda: m.memory_one_probe(np.zeros((5, 2)), episode_length=2), "multiple"),
        (lambda: m.memory_one_probe(np.zeros((4, 2)), episode_length=0), "episode_len"),
        (lambda: m.cooperation_by_episode(np.zeros((4, 2)), None), "episode_length"),
        (lambda: m.reward_per_step(np.zeros((4, 2)), gamma=1.0), "gamma"),
        (lambda: m.reward_per_step(np.zeros((0, 2))), "at least one time step"),
        (lambda: m.wilson_interval(np.ones(2), np.ones(2), 1.5), "confidence"),
        (lambda: m.wilson_interval(np.ones(2), np.ones(3)), "successes and trials"),
        (lambda: m.pollution_level(np.zeros((4, 5))), r"dirt must have shape"),
        (lambda: m.apple_level(np.zeros(4)), r"apples must have shape"),
        (lambda: m.cleaning_discrepancy(np.zeros((4, 3))), "cells_cleaned"),
        (
            lambda: m.own_coin_proportion(np.zeros((4, 2)), np.zeros((3, 2))),
            "own_coins and other_coins",
        ),
        (lambda: m.social_outcomes(REWARDS, TAGGED[:, :2]), "rewards and tagged"),
        (lambda: m.gini(np.float32(1.0)), r"x must have shape"),
        (lambda: m.peace(np.zeros(3)), "tagged"),
        (
            lambda: m.cleanup_lite_metrics(
                np.zeros((3, 2)), {"apples_eaten": np.zeros((3, 2))}, None, None
            ),
            "missing the key 'cells_cleaned'",
        ),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
