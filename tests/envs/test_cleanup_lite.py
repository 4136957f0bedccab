"""CleanUp-lite against the rules of COALA-PG App. B.1.2 (spec grid_dilemmas.md §1).

Every expected number is worked out here from the rules: probabilities by hand
(binomial tests, 5 standard errors, fixed seeds), scenarios step by step on states
built with ``.replace``, and the social-dilemma value from an exact Markov chain of
the river written below from the rules and the cleaner's documented behaviour.
"""

from __future__ import annotations

import math
from itertools import combinations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents.scripted import cleanup_lite as scripted
from dilemmas.envs import cleanup_lite
from dilemmas.envs.cleanup_lite import (
    CHEBYSHEV,
    MOVE_DOWN,
    MOVE_LEFT,
    MOVE_RIGHT,
    MOVE_UP,
    NOOP,
    TIE_BOTH,
    TIE_SPLIT,
    ZAP,
    CleanUpLite,
)
from dilemmas.envs.registry import make, registered
from dilemmas.envs.testing import check_env

ENV = CleanUpLite()
PARAMS = ENV.default_params
H, W = 5, 4
T = 64
N = 4000  # vmapped single steps per statistical test
_, BASE = ENV.reset(jax.random.key(0), PARAMS)
KEY = jax.random.key(0)


def make_state(
    agents=((0, 1), (4, 2)),
    dirt_rows=(),
    apple_rows=(),
    freeze=(0, 0),
    t=0,
):
    """A state built by ``.replace`` on a reset state: dirt and apples by row."""
    dirt = np.zeros((H, W), bool)
    dirt[list(dirt_rows), W - 1] = True
    apples = np.zeros((H, W), bool)
    apples[list(apple_rows), 0] = True
    return BASE.replace(
        agent_pos=jnp.asarray(agents, jnp.int32),
        dirt=jnp.asarray(dirt),
        apples=jnp.asarray(apples),
        freeze=jnp.asarray(freeze, jnp.int32),
        t=jnp.asarray(t, jnp.int32),
    )


@jax.jit
def _steps(keys, state, actions, params):
    return jax.vmap(ENV.step, in_axes=(0, None, None, None))(
        keys, state, actions, params
    )


def many_steps(state, actions, params=PARAMS, seed=1):
    """``N`` independent single steps from ``state`` (one key each)."""
    keys = jax.random.split(jax.random.key(seed), N)
    return _steps(keys, state, jnp.asarray(actions, jnp.int32), params)


_resets = jax.jit(jax.vmap(ENV.reset, in_axes=(0, None)))


def resets(params=PARAMS, seed=3):
    """``N`` independent resets."""
    return _resets(jax.random.split(jax.random.key(seed), N), params)


def one_step(state, actions, params=PARAMS, seed=0):
    """One step from ``state`` (the first of :func:`many_steps`, to share its
    compiled code)."""
    return jax.tree.map(lambda x: x[0], many_steps(state, actions, params, seed))


def play(state, actions_seq, params, seed=0):
    """Steps ``state`` through a list of joint actions; returns the timesteps."""
    out = []
    for t, actions in enumerate(actions_seq):
        ts = one_step(state, actions, params, seed + t)
        out.append(ts)
        state = ts.state
    return out


def assert_binomial(successes, n, p, sigmas=5.0):
    """``successes / n`` is within ``sigmas`` standard errors of ``p`` (exact for
    p in {0, 1})."""
    successes = int(successes)
    if p in (0.0, 1.0):
        assert successes == round(p * n), (successes, n, p)
        return
    se = math.sqrt(p * (1 - p) / n)
    assert abs(successes / n - p) <= sigmas * se, (successes / n, p, se)


# --------------------------------------------------------------------- contract


def test_check_env_on_registered_id():
    assert "cleanup_lite-v0" in registered()
    env, params = make("cleanup_lite-v0")
    assert env == ENV and hash(env) == hash(ENV)
    check_env(env, params)


def test_paper_constants_are_the_defaults():
    p = PARAMS
    assert ENV.num_agents == 2 and ENV.num_actions == 6
    assert ENV.observation_space().shape == (102,)
    assert float(p.p_pollution) == pytest.approx(0.35)
    assert float(p.dirt_threshold) == 3.0
    assert float(p.p_zap) == pytest.approx(0.9)
    assert int(p.zap_range) == 2 and int(p.freeze_steps) == 5
    assert float(p.apple_reward) == 1.0
    assert int(p.initial_dirt) == 3 and int(p.max_steps) == T
    assert ENV.render_modes == ("ansi", "rgb_array") and ENV.stochastic
    assert cleanup_lite.ACTION_NAMES == ("right", "left", "up", "down", "zap", "noop")


def test_info_keys_dtypes_and_truncation():
    state = make_state(t=T - 2)
    ts = one_step(state, [ZAP, NOOP])
    assert set(ts.info) == set(cleanup_lite.INFO_KEYS)
    for value in ts.info.values():
        assert value.dtype == jnp.int32 and value.shape == (2,)
    assert not bool(ts.truncated) and not bool(ts.terminated)
    ts = one_step(ts.state, [NOOP, NOOP], seed=1)
    assert bool(ts.truncated) and not bool(ts.terminated)


# ------------------------------------------------------------------------ start


def test_start_state_has_three_river_dirt_and_no_apples():
    obs, states = resets()
    dirt = np.asarray(states.dirt)
    assert (dirt.sum((1, 2)) == 3).all()
    assert not dirt[:, :, : W - 1].any()
    assert not np.asarray(states.apples).any()
    assert (np.asarray(states.freeze) == 0).all() and (np.asarray(states.t) == 0).all()
    # 3 dirt on a uniform 3-subset of 5 river cells: each cell dirty w.p. 3/5.
    for row in range(H):
        assert_binomial(dirt[:, row, W - 1].sum(), N, 3 / 5)
    # Agents independent and uniform over the 20 cells: they share one w.p. 1/20.
    pos = np.asarray(states.agent_pos)
    assert_binomial((pos[:, 0] == pos[:, 1]).all(-1).sum(), N, 1 / 20)
    assert_binomial(((pos[:, 1, 0] == 2) & (pos[:, 1, 1] == 3)).sum(), N, 1 / 20)
    # The start observation shows 3 dirt and 0 apples.
    objects = np.asarray(obs)[:, 0, 2 * H * W : 5 * H * W].reshape(N, 3, H * W)
    assert (objects[:, 0].sum(-1) == 0).all() and (objects[:, 1].sum(-1) == 3).all()


def test_distinct_start_option():
    _, states = resets(ENV.make_params(distinct_start=True), seed=4)
    pos = np.asarray(states.agent_pos)
    assert not (pos[:, 0] == pos[:, 1]).all(-1).any()


# ----------------------------------------------------------------- §1.3 phases


@pytest.mark.parametrize(
    ("num_dirt", "p_apple"),
    [(0, 1.0), (1, 2 / 3), (2, 1 / 3), (3, 0.0), (4, 0.0), (5, 0.0)],
)
def test_apple_probability_by_dirt_level(num_dirt, p_apple):
    # No pollution, so P = num_dirt; agents on plain ground harvest nothing.
    params = ENV.make_params(p_pollution=0.0)
    state = make_state(dirt_rows=range(num_dirt))
    ts = many_steps(state, [NOOP, NOOP], params)
    apples = np.asarray(ts.state.apples)
    assert not apples[:, :, 1:].any()
    assert apples.sum((1, 2)).max() <= 1
    assert_binomial(apples.sum(), N, p_apple)


def test_apple_probability_uses_dirt_after_pollution():
    # One dirt; pollution (0.35) may add a second before the apple phase (A5):
    # p_apple = 0.65 * 2/3 + 0.35 * 1/3.
    state = make_state(dirt_rows=[0])
    ts = many_steps(state, [NOOP, NOOP])
    assert_binomial(np.asarray(ts.state.apples).sum(), N, 0.65 * 2 / 3 + 0.35 / 3)
    start_count = ENV.make_params(apple_dirt_after_pollution=False)
    ts = many_steps(state, [NOOP, NOOP], start_count)
    assert_binomial(np.asarray(ts.state.apples).sum(), N, 2 / 3)
    # Two dirt plus certain pollution make three: no apple can grow.
    params = ENV.make_params(p_pollution=1.0)
    ts = many_steps(make_state(dirt_rows=[0, 1]), [NOOP, NOOP], params)
    assert np.asarray(ts.state.apples).sum() == 0


def test_apples_spawn_uniformly_on_free_orchard_cells_only():
    params = ENV.make_params(p_pollution=0.0)
    ts = many_steps(make_state(apple_rows=[0, 1, 3]), [NOOP, NOOP], params)
    apples = np.asarray(ts.state.apples)[:, :, 0]
    assert apples[:, [0, 1, 3]].all()
    assert_binomial(apples[:, 2].sum(), N, 0.5)
    assert (apples.sum(1) == 4).all()
    full = many_steps(make_state(apple_rows=range(H)), [NOOP, NOOP], params)
    assert (np.asarray(full.state.apples).sum((1, 2)) == H).all()


def test_literal_spawn_rule_can_draw_an_occupied_orchard_cell():
    # A2 literal reading: any orchard cell (none has dirt) is drawn; a draw on one of
    # the 3 existing apples changes nothing, so a new apple appears w.p. 2/5.
    params = ENV.make_params(p_pollution=0.0, apple_spawn_literal=True)
    ts = many_steps(make_state(apple_rows=[0, 1, 3]), [NOOP, NOOP], params)
    assert_binomial((np.asarray(ts.state.apples).sum((1, 2)) == 4).sum(), N, 2 / 5)


def test_pollution_rate_and_cells():
    ts = many_steps(make_state(), [NOOP, NOOP])
    dirt = np.asarray(ts.state.dirt)
    assert not dirt[:, :, : W - 1].any() and dirt.sum((1, 2)).max() <= 1
    assert_binomial(dirt.sum(), N, 0.35)
    for row in range(H):  # uniform over the 5 clean river cells
        assert_binomial(dirt[:, row, W - 1].sum(), N, 0.35 / H)
    # Only the one clean cell can get dirty; a full river gets no more.
    ts = many_steps(make_state(dirt_rows=[0, 1, 2, 4]), [NOOP, NOOP])
    assert_binomial(np.asarray(ts.state.dirt)[:, 3, W - 1].sum(), N, 0.35)
    ts = many_steps(make_state(dirt_rows=range(H)), [NOOP, NOOP])
    assert (np.asarray(ts.state.dirt).sum((1, 2)) == H).all()


def test_dirt_under_an_agent_is_cleaned_in_the_same_step():
    # A4: agent 0 stands on the only clean river cell and pollution is certain.
    state = make_state(agents=((3, 3), (0, 1)), dirt_rows=[0, 1, 2, 4])
    params = ENV.make_params(p_pollution=1.0)
    (ts,) = play(state, [[NOOP, NOOP]], params)
    assert np.asarray(ts.state.dirt).sum() == 4
    assert ts.info["cells_cleaned"].tolist() == [1, 0]
    forbid = ENV.make_params(p_pollution=1.0, dirt_under_agent=False)
    (ts,) = play(state, [[NOOP, NOOP]], forbid)
    assert np.asarray(ts.state.dirt).sum() == 4
    assert ts.info["cells_cleaned"].tolist() == [0, 0]


def test_apple_under_an_agent_is_eaten_in_the_same_step():
    # A3: agent 1 stands on the only free orchard cell; no dirt, so p_apple = 1.
    state = make_state(agents=((0, 1), (2, 0)), apple_rows=[0, 1, 3, 4])
    params = ENV.make_params(p_pollution=0.0)
    (ts,) = play(state, [[NOOP, NOOP]], params)
    assert ts.reward.tolist() == [0.0, 1.0]
    assert np.asarray(ts.state.apples).sum() == 4
    forbid = ENV.make_params(p_pollution=0.0, apple_under_agent=False)
    (ts,) = play(state, [[NOOP, NOOP]], forbid)
    assert ts.reward.tolist() == [0.0, 0.0]


def test_apple_reward_is_one_and_the_apple_goes():
    state = make_state(agents=((1, 0), (4, 2)), dirt_rows=[0, 1, 2], apple_rows=[1])
    (ts,) = play(state, [[NOOP, NOOP]], PARAMS)
    assert ts.reward.dtype == jnp.float32 and ts.reward.tolist() == [1.0, 0.0]
    assert ts.info["apples_eaten"].tolist() == [1, 0]
    assert not np.asarray(ts.state.apples).any()
    (ts,) = play(state, [[NOOP, NOOP]], ENV.make_params(apple_reward=2.5))
    assert ts.reward.tolist() == [2.5, 0.0]


def test_cleaning_comes_after_the_apple_phase():
    # Three dirt; agent 0 stands on one: P = 3 when apples grow, then it cleans.
    params = ENV.make_params(p_pollution=0.0)
    state = make_state(agents=((1, 3), (0, 1)), dirt_rows=[0, 1, 2])
    ts = many_steps(state, [NOOP, NOOP], params)
    assert np.asarray(ts.state.apples).sum() == 0
    assert (np.asarray(ts.state.dirt).sum((1, 2)) == 2).all()
    assert (np.asarray(ts.info["cells_cleaned"]) == [1, 0]).all()
    # Next step P = 2, so p_apple = 1/3.
    after = jax.tree.map(lambda x: x[0], ts.state)
    ts2 = many_steps(after, [NOOP, NOOP], params)
    assert_binomial(np.asarray(ts2.state.apples).sum(), N, 1 / 3)


def test_move_is_the_last_phase():
    # A13: stepping onto an apple pays at the next step, not this one.
    params = ENV.make_params(p_pollution=0.0)
    state = make_state(agents=((1, 1), (4, 2)), dirt_rows=[0, 1, 2], apple_rows=[1])
    first, second = play(state, [[MOVE_LEFT, NOOP], [NOOP, NOOP]], params)
    assert first.reward.tolist() == [0.0, 0.0]
    assert first.state.agent_pos.tolist() == [[1, 0], [4, 2]]
    assert second.reward.tolist() == [1.0, 0.0]
    (early,) = play(state, [[MOVE_LEFT, NOOP]], ENV.make_params(move_first=True))
    assert early.reward.tolist() == [1.0, 0.0]


def test_moves_follow_the_action_order_and_clip_at_borders():
    state = make_state(agents=((2, 1), (0, 0)))
    expected = {MOVE_RIGHT: [2, 2], MOVE_LEFT: [2, 0], MOVE_UP: [1, 1]}
    expected |= {MOVE_DOWN: [3, 1], ZAP: [2, 1], NOOP: [2, 1]}
    for action, where in expected.items():
        (ts,) = play(state, [[action, MOVE_UP]], PARAMS)
        assert ts.state.agent_pos[0].tolist() == where, action
        assert ts.state.agent_pos[1].tolist() == [0, 0]  # clipped at the top
    (ts,) = play(state, [[NOOP, MOVE_LEFT]], PARAMS)
    assert ts.state.agent_pos[1].tolist() == [0, 0]


# ------------------------------------------------------------------------ zaps


@pytest.mark.parametrize(
    ("other", "p_hit"),
    [
        ((2, 1), 0.9),
        ((2, 2), 0.9),
        ((1, 2), 0.9),
        ((4, 1), 0.9),
        ((2, 3), 0.9),
        ((3, 3), 0.0),
        ((0, 2), 0.0),
        ((0, 3), 0.0),
    ],
)
def test_zap_hits_with_090_within_two_cells_and_never_beyond(other, p_hit):
    # Agent 0 at (2, 1): Manhattan distances 0, 1, 2, 2, 2 hit; 3, 3, 4 never do.
    state = make_state(agents=((2, 1), other))
    distance = abs(other[0] - 2) + abs(other[1] - 1)
    assert (distance <= 2) == (p_hit > 0)
    ts = many_steps(state, [ZAP, NOOP])
    assert (np.asarray(ts.info["zaps_fired"]) == [1, 0]).all()
    assert (np.asarray(ts.info["zaps_received"])[:, 0] == 0).all()
    hits = np.asarray(ts.info["zaps_received"])[:, 1]
    assert_binomial(hits.sum(), N, p_hit)
    assert (np.asarray(ts.state.freeze)[:, 1] == 5 * hits).all()


def test_zap_metric_option():
    # (0, 0) to (2, 2): Manhattan 4 (out of range), Chebyshev 2 (in range).
    state = make_state(agents=((0, 0), (2, 2)))
    ts = many_steps(state, [ZAP, NOOP])
    assert np.asarray(ts.info["zaps_received"]).sum() == 0
    ts = many_steps(state, [ZAP, NOOP], ENV.make_params(zap_metric=CHEBYSHEV))
    assert_binomial(np.asarray(ts.info["zaps_received"])[:, 1].sum(), N, 0.9)


def test_freeze_lasts_exactly_five_steps_without_rezap():
    # Agent 0 zaps at steps 0..5 (certain hits); agent 1 tries to move down at step
    # 0, zaps back at steps 1..5 and moves up at step 6. A8: hit at step 0, it does
    # not move at 0, takes no part in steps 1..5, acts again at step 6.
    params = ENV.make_params(p_zap=1.0)
    state = make_state(agents=((2, 1), (1, 1)), dirt_rows=[0, 1, 2])
    actions = [[ZAP, MOVE_DOWN]] + [[ZAP, ZAP]] * 5 + [[NOOP, MOVE_UP]]
    steps = play(state, actions, params)

    def col(key):
        return [int(ts.info[key][1]) for ts in steps]

    assert col("zaps_received") == [1, 0, 0, 0, 0, 0, 0]
    assert col("frozen") == [0, 1, 1, 1, 1, 1, 0]
    assert col("zaps_fired") == [0] * 7
    assert [int(ts.info["zaps_fired"][0]) for ts in steps] == [1] * 6 + [0]
    assert [int(ts.info["zaps_received"][0]) for ts in steps] == [0] * 7
    assert [ts.state.agent_pos[1].tolist() for ts in steps] == [[1, 1]] * 6 + [[0, 1]]
    assert [int(ts.state.freeze[1]) for ts in steps] == [5, 4, 3, 2, 1, 0, 0]
    own_flag = [float(ts.obs[1, 5 * H * W]) for ts in steps]
    other_flag = [float(ts.obs[0, 5 * H * W + 1]) for ts in steps]
    assert own_flag == other_flag == [1, 1, 1, 1, 1, 0, 0]


def test_frozen_agent_neither_harvests_nor_cleans():
    state = make_state(
        agents=((0, 0), (1, 3)), dirt_rows=[1], apple_rows=[0], freeze=(2, 3)
    )
    params = ENV.make_params(p_pollution=0.0)
    (ts,) = play(state, [[NOOP, NOOP]], params)
    assert ts.reward.tolist() == [0.0, 0.0]
    assert ts.info["apples_eaten"].tolist() == [0, 0]
    assert ts.info["cells_cleaned"].tolist() == [0, 0]
    assert bool(ts.state.apples[0, 0]) and bool(ts.state.dirt[1, 3])
    assert ts.state.freeze.tolist() == [1, 2]


def test_zap_stops_move_option():
    params = ENV.make_params(p_zap=1.0, zap_stops_move=False)
    state = make_state(agents=((2, 1), (1, 1)))
    (ts,) = play(state, [[ZAP, MOVE_UP]], params)
    assert ts.info["zaps_received"].tolist() == [0, 1]
    assert ts.state.agent_pos[1].tolist() == [0, 1]
    assert int(ts.state.freeze[1]) == 5


def test_simultaneous_zaps_both_land():
    # A7: both unfrozen at the start of phase 5, so both certain zaps land.
    state = make_state(agents=((2, 1), (1, 1)))
    (ts,) = play(state, [[ZAP, ZAP]], ENV.make_params(p_zap=1.0))
    assert ts.info["zaps_received"].tolist() == [1, 1]
    assert ts.state.freeze.tolist() == [5, 5]
    params = ENV.make_params(p_zap=1.0, sequential_zaps=True)
    ts = many_steps(state, [ZAP, ZAP], params)
    received = np.asarray(ts.info["zaps_received"])
    assert (received.sum(1) == 1).all()
    assert_binomial(received[:, 0].sum(), N, 0.5)


# ---------------------------------------------------------------- shared cells


def test_both_on_one_apple_one_reward():
    state = make_state(agents=((2, 0), (2, 0)), dirt_rows=[0, 1, 2], apple_rows=[2])
    ts = many_steps(state, [NOOP, NOOP])
    reward = np.asarray(ts.reward)
    assert (reward.sum(1) == 1.0).all()
    assert (np.asarray(ts.info["apples_eaten"]).sum(1) == 1).all()
    assert_binomial(reward[:, 0].sum(), N, 0.5)
    (ts,) = play(state, [[NOOP, NOOP]], ENV.make_params(apple_tie=TIE_SPLIT))
    assert ts.reward.tolist() == [0.5, 0.5]
    (ts,) = play(state, [[NOOP, NOOP]], ENV.make_params(apple_tie=TIE_BOTH))
    assert ts.reward.tolist() == [1.0, 1.0]


def test_both_on_one_dirt_both_credited():
    state = make_state(agents=((2, 3), (2, 3)), dirt_rows=[2])
    params = ENV.make_params(p_pollution=0.0)
    (ts,) = play(state, [[NOOP, NOOP]], params)
    assert ts.info["cells_cleaned"].tolist() == [1, 1]
    assert not np.asarray(ts.state.dirt).any()
    params = ENV.make_params(p_pollution=0.0, clean_credit_random=True)
    ts = many_steps(state, [NOOP, NOOP], params)
    cleaned = np.asarray(ts.info["cells_cleaned"])
    assert (cleaned.sum(1) == 1).all()
    assert_binomial(cleaned[:, 0].sum(), N, 0.5)


def test_agents_may_share_a_cell_unless_blocking():
    state = make_state(agents=((2, 0), (2, 2)))
    (ts,) = play(state, [[MOVE_RIGHT, MOVE_LEFT]], PARAMS)
    assert ts.state.agent_pos.tolist() == [[2, 1], [2, 1]]
    blocking = ENV.make_params(blocking=True)
    ts = many_steps(state, [MOVE_RIGHT, MOVE_LEFT], blocking)
    pos = np.asarray(ts.state.agent_pos)
    zero_won = (pos[:, 0] == [2, 1]).all(-1)
    assert (zero_won == (pos[:, 1] == [2, 2]).all(-1)).all()
    assert (
        ~zero_won == ((pos[:, 1] == [2, 1]).all(-1) & (pos[:, 0] == [2, 0]).all(-1))
    ).all()
    assert_binomial(zero_won.sum(), N, 0.5)
    # A swap fails; so does a move into the cell the co-player keeps.
    adjacent = make_state(agents=((2, 1), (2, 2)))
    (ts,) = play(adjacent, [[MOVE_RIGHT, MOVE_LEFT]], blocking)
    assert ts.state.agent_pos.tolist() == [[2, 1], [2, 2]]
    (ts,) = play(adjacent, [[MOVE_RIGHT, NOOP]], blocking)
    assert ts.state.agent_pos.tolist() == [[2, 1], [2, 2]]
    (ts,) = play(adjacent, [[MOVE_RIGHT, MOVE_RIGHT]], blocking)
    assert ts.state.agent_pos.tolist() == [[2, 2], [2, 3]]


# ------------------------------------------------------------------ observation


def test_observation_layout():
    state = make_state(
        agents=((1, 2), (3, 0)), dirt_rows=[0, 4], apple_rows=[3], freeze=(0, 2)
    )
    obs = np.asarray(ENV.observe(state, PARAMS))
    assert obs.shape == (2, 102) and obs.dtype == np.float32

    def cell(r, c):
        return r * W + c

    own0 = np.zeros(20)
    own0[cell(1, 2)] = 1
    own1 = np.zeros(20)
    own1[cell(3, 0)] = 1
    apple, dirt = np.zeros(20), np.zeros(20)
    apple[cell(3, 0)] = 1
    dirt[[cell(0, 3), cell(4, 3)]] = 1
    objects = np.concatenate([apple, dirt, 1 - apple - dirt])
    np.testing.assert_array_equal(obs[0], np.concatenate([own0, own1, objects, [0, 1]]))
    np.testing.assert_array_equal(obs[1], np.concatenate([own1, own0, objects, [1, 0]]))
    fraction = ENV.observe(state, ENV.make_params(obs_freeze_fraction=True))
    assert float(fraction[0, 101]) == pytest.approx(2 / 5)


def test_swapping_the_agents_swaps_the_observations():
    # End states of random play: apples, dirt and frozen agents in various places.
    states, _, _ = episodes([RANDOM, RANDOM], seed=7)
    assert np.asarray(states.apples).any() and (np.asarray(states.freeze) > 0).any()
    swapped = states.replace(
        agent_pos=states.agent_pos[:, ::-1], freeze=states.freeze[:, ::-1]
    )
    observe = jax.jit(jax.vmap(ENV.observe, in_axes=(0, None)))
    obs, obs_swapped = observe(states, PARAMS), observe(swapped, PARAMS)
    np.testing.assert_array_equal(obs_swapped, obs[:, ::-1])
    assert not np.array_equal(obs[:, 0], obs[:, 1])


def test_include_time_and_transposed_map():
    timed = CleanUpLite(include_time=True)
    obs, state = timed.reset(jax.random.key(0), timed.default_params)
    assert obs.shape == (2, 103) and float(obs[0, -1]) == 0.0
    ts = timed.step(jax.random.key(1), state, jnp.array([NOOP, NOOP]), PARAMS)
    assert float(ts.obs[1, -1]) == pytest.approx(1 / 64)
    wide = CleanUpLite(height=4, width=5)
    obs, state = wide.reset(jax.random.key(0), wide.default_params)
    assert obs.shape == (2, 102) and wide.observation_space().shape == (102,)
    assert int(state.dirt[:, 4].sum()) == 3 and int(state.dirt.sum()) == 3
    assert CleanUpLite(height=2).default_params.initial_dirt == 2


def test_rendering():
    state = make_state(agents=((1, 2), (3, 0)), dirt_rows=[0], apple_rows=[3, 4])
    text = ENV.render_ansi(state, PARAMS)
    assert text.splitlines()[1:] == [":..#", ":.0~", ":..~", "1..~", "a..~"]
    assert "1 dirt, 2 apples" in text.splitlines()[0]
    frame = ENV.render_rgb(state, PARAMS)
    assert frame.shape == (H * 16, W * 16, 3) and frame.dtype == np.uint8
    assert (frame[16 * 4, 0] == ENV.PALETTE[2]).all()  # apple at (4, 0)
    assert (frame[0, 16 * 3] == ENV.PALETTE[4]).all()  # dirt at (0, 3)


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 1}, "no separate river and orchard"),
        ({"width": 0}, "width"),
        ({"height": 0}, "height"),
        ({"height": 2.5}, "height must be an int"),
        ({"width": True}, "width must be an int"),
        ({"include_time": "yes"}, "include_time"),
    ],
)
def test_constructor_rejects_impossible_maps(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CleanUpLite(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"initial_dirt": 6}, "exceeds the 5 river cells"),
        ({"p_pollution": 1.5}, "probability"),
        ({"p_zap": -0.1}, "probability"),
        ({"dirt_threshold": 0.0}, "positive"),
        ({"max_steps": 0}, "max_steps"),
        ({"freeze_steps": -1}, "freeze_steps"),
        ({"zap_metric": 3}, "zap_metric"),
        ({"apple_tie": 5}, "apple_tie"),
        ({"blocking": 1}, "blocking must be a bool"),
        ({"p_zap": float("nan")}, "finite"),
        ({"colour": 1}, "unknown"),
    ],
)
def test_make_params_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        ENV.make_params(**overrides)


# --------------------------------------------------------------- scripted policies

HARVEST, CLEAN, ZAPPER, RANDOM, TURNS = range(5)
POLICIES = (
    scripted.AlwaysHarvest(),
    scripted.DedicatedCleaner(),
    scripted.Zapper(),
    scripted.RandomAction(),
    scripted.TurnTaker(),
)


def _act(policy_id, key, state, params, agent):
    branches = [
        lambda k, s, p=policy: p.act(k, s, params, agent) for policy in POLICIES
    ]
    return jax.lax.switch(policy_id, branches, key, state)


_policy_action = jax.jit(_act)


@jax.jit
def _episodes(keys, starts, policy_ids, params):
    """Vmapped T-step episodes from ``starts`` with policies ``policy_ids[2]``."""

    def episode(key, state):
        def body(state, key_t):
            key_env, key_0, key_1 = jax.random.split(key_t, 3)
            actions = jnp.stack(
                [
                    _act(policy_ids[0], key_0, state, params, 0),
                    _act(policy_ids[1], key_1, state, params, 1),
                ]
            )
            ts = ENV.step(key_env, state, actions, params)
            return ts.state, (ts.reward, ts.info, ts.truncated)

        return jax.lax.scan(body, state, jax.random.split(key, T))

    return jax.vmap(episode)(keys, starts)


def episodes(policy_ids, agents=None, params=PARAMS, seed=11):
    """Reset states (agents moved to ``agents`` if given), then scripted play."""
    _, starts = resets(params, seed)
    if agents is not None:
        starts = starts.replace(
            agent_pos=jnp.broadcast_to(jnp.asarray(agents, jnp.int32), (N, 2, 2))
        )
    keys = jax.random.split(jax.random.key(seed + 1), N)
    final, (rewards, infos, truncated) = _episodes(
        keys, starts, jnp.asarray(policy_ids), params
    )
    assert (
        np.asarray(truncated)[:, -1].all() and not np.asarray(truncated)[:, :-1].any()
    )
    return final, np.asarray(rewards), infos


@pytest.mark.parametrize(
    ("policy", "agents", "apple_rows", "dirt_rows", "freeze", "expected"),
    [
        (HARVEST, ((2, 2), (0, 3)), [], [], (0, 0), MOVE_LEFT),
        (HARVEST, ((2, 0), (0, 3)), [0, 4], [], (0, 0), MOVE_UP),  # tie: up
        (HARVEST, ((2, 0), (0, 3)), [2, 3], [], (0, 0), MOVE_DOWN),  # skip own cell
        (HARVEST, ((0, 0), (0, 3)), [], [], (0, 0), MOVE_DOWN),  # to the middle
        (HARVEST, ((2, 0), (0, 3)), [2], [], (0, 0), NOOP),
        (HARVEST, ((2, 2), (0, 3)), [], [], (3, 0), NOOP),  # frozen
        (CLEAN, ((1, 1), (0, 0)), [], [], (0, 0), MOVE_RIGHT),
        (CLEAN, ((1, 3), (0, 0)), [], [4], (0, 0), MOVE_DOWN),
        (CLEAN, ((4, 3), (0, 0)), [], [0, 4], (0, 0), MOVE_UP),
        (CLEAN, ((2, 3), (0, 0)), [], [], (0, 0), NOOP),
        (ZAPPER, ((2, 0), (2, 2)), [0], [], (0, 0), ZAP),  # distance 2
        (ZAPPER, ((2, 0), (2, 3)), [0], [], (0, 0), MOVE_UP),  # distance 3
        (ZAPPER, ((2, 0), (2, 1)), [0], [], (0, 1), MOVE_UP),  # target frozen
        (ZAPPER, ((2, 0), (2, 1)), [0], [], (1, 0), NOOP),  # itself frozen
    ],
)
def test_scripted_actions(policy, agents, apple_rows, dirt_rows, freeze, expected):
    state = make_state(
        agents=agents, apple_rows=apple_rows, dirt_rows=dirt_rows, freeze=freeze
    )
    action = _policy_action(policy, jax.random.key(0), state, PARAMS, 0)
    assert action.dtype == jnp.int32 and int(action) == expected
    swapped = state.replace(agent_pos=state.agent_pos[::-1], freeze=state.freeze[::-1])
    assert (
        int(_policy_action(policy, jax.random.key(0), swapped, PARAMS, 1)) == expected
    )


def test_turn_taker_actions():
    # Shifts of 16 steps: agent 0 is on duty at t = 0, agent 1 at t = 16. On duty
    # it walks to the river (right); off duty to the orchard (left), or, in it,
    # towards the apple in row 0 (up).
    def actions(state):
        return [int(_policy_action(TURNS, KEY, state, PARAMS, i)) for i in (0, 1)]

    state = make_state(agents=((2, 0), (2, 2)), apple_rows=[0])
    assert actions(state) == [MOVE_RIGHT, MOVE_LEFT]
    later = state.replace(t=jnp.asarray(16, jnp.int32))
    assert actions(later) == [MOVE_UP, MOVE_RIGHT]
    # Off duty it cleans once the river holds dirt_threshold / 2 = 1.5 dirt: with
    # 1 it harvests, with 2 it walks to the river. Frozen, it waits.
    for dirt_rows, expected in (([1], MOVE_UP), ([1, 4], MOVE_RIGHT)):
        dirty = later.replace(dirt=make_state(dirt_rows=dirt_rows).dirt)
        assert actions(dirty)[0] == expected
    assert actions(state.replace(freeze=jnp.asarray([2, 0], jnp.int32)))[0] == NOOP


def test_co_player_catalogue():
    names = ("always_harvest", "dedicated_cleaner", "turn_taker", "zapper", "random")
    kinds = (scripted.AlwaysHarvest, scripted.DedicatedCleaner, scripted.TurnTaker)
    kinds = (*kinds, scripted.Zapper, scripted.RandomAction)
    for name, kind in zip(names, kinds, strict=True):
        assert isinstance(scripted.co_player(name, ENV), kind)
    assert ENV.co_players == scripted.__name__
    assert ENV.default_co_player in names
    with pytest.raises(ValueError, match="unknown CleanUp-lite policy"):
        scripted.co_player("cleaner", ENV)
    with pytest.raises(ValueError, match="no options"):
        scripted.co_player("zapper", ENV, zap_range=3)


# ------------------------------------------------------------- episode-level rules


def test_joint_return_at_most_one_apple_per_step():
    # Random play from the reset distribution, and two harvesters on a clean river
    # (p_apple = 1 every step): at most T = 64 together. In the latter an apple
    # grows every step (the harvester's cell is always free) and at most 4 are left
    # at the end, so the pair earns at least 60.
    _, rewards, _ = episodes([RANDOM, RANDOM])
    grown_at_most = np.arange(1, T + 1)  # one apple per step at most
    assert (rewards.sum(-1).cumsum(-1) <= grown_at_most).all()
    clean = ENV.make_params(p_pollution=0.0, initial_dirt=0)
    _, rewards, infos = episodes([HARVEST, HARVEST], ((0, 0), (4, 0)), clean)
    assert (rewards.sum(-1).cumsum(-1) <= grown_at_most).all()
    joint = rewards.sum((1, 2))
    assert joint.max() <= T and joint.min() >= T - 4
    assert (np.asarray(infos["apples_eaten"]).sum((1, 2)) == joint).all()


def exact_apples_with_a_cleaner(
    height=H, p_pollution=0.35, threshold=3, steps=T, start_row=2, initial_dirt=3
):
    """E[apples that grow in an episode] with a DedicatedCleaner that starts in the
    river at ``start_row`` and nobody else in the river: an exact Markov chain over
    (cleaner row, dirty river rows), from the rules (phases 1, 2, 4, 6) and the
    cleaner's documented walk. The harvester never blocks growth (see the test)."""
    masks = 1 << height
    dist = np.zeros((height, masks))
    subsets = list(combinations(range(height), initial_dirt))
    for subset in subsets:
        dist[start_row, sum(1 << r for r in subset)] += 1 / len(subsets)
    expected = 0.0
    for _ in range(steps):
        new = np.zeros_like(dist)
        for row in range(height):
            for mask in range(masks):
                weight = dist[row, mask]
                if weight == 0:
                    continue
                dirty = [r for r in range(height) if mask >> r & 1 and r != row]
                goal = (
                    min(dirty, key=lambda r: (abs(r - row), r))
                    if dirty
                    else (height - 1) // 2
                )
                next_row = row + int(np.sign(goal - row))
                clean = [r for r in range(height) if not mask >> r & 1]
                outcomes = [(mask, 1.0)]
                if clean:
                    outcomes = [(mask, 1 - p_pollution)] + [
                        (mask | 1 << r, p_pollution / len(clean)) for r in clean
                    ]
                for polluted, prob in outcomes:
                    num_dirt = bin(polluted).count("1")
                    expected += weight * prob * (1 - min(1, num_dirt / threshold))
                    new[next_row, polluted & ~(1 << row)] += weight * prob
        dist = new
    return expected


def test_cleaner_and_harvester_from_the_rules():
    """The two pure roles, whose returns the rules give exactly or by the chain.

    Controlled starts (reset dirt, agents placed by ``.replace``):
    * two AlwaysHarvest in the orchard: nobody ever stands in the river, so the
      3 dirt never go, P >= 3 at every apple phase, p_apple = 0: exactly 0 each;
    * two DedicatedCleaners in the river: nobody ever enters the orchard: 0 each;
    * DedicatedCleaner (river) + AlwaysHarvest (orchard): the cleaner never enters
      the orchard, so it earns exactly 0. The harvester's cell is emptied in every
      harvest phase, so the orchard is never full at an apple phase and an apple
      grows with probability exactly 1 - min(1, P/3): the expected number grown, G,
      is the exact river chain above (about 35.9). Every apple is eaten by the
      harvester except those left at the end (at most 4), so its return R lies in
      [G - 4, G]; grown = R + apples left is checked against G itself.
    """
    num = N
    _, rewards, _ = episodes([HARVEST, HARVEST], ((0, 0), (3, 1)))
    assert (rewards == 0).all()
    _, rewards, _ = episodes([CLEAN, CLEAN], ((0, 3), (4, 3)))
    assert (rewards == 0).all()

    final, rewards, infos = episodes([CLEAN, HARVEST], ((2, 3), (2, 0)))
    grown_exact = exact_apples_with_a_cleaner()
    assert 35 < grown_exact < 37  # the chain's value, for the reader
    returns = rewards.sum(1)
    cleaner, harvester = returns[:, 0], returns[:, 1]
    assert (cleaner == 0).all()
    grown = harvester + np.asarray(final.apples).sum((1, 2))
    se = grown.std(ddof=1) / math.sqrt(num)
    assert abs(grown.mean() - grown_exact) <= 5 * se, (grown.mean(), grown_exact, se)
    se = harvester.std(ddof=1) / math.sqrt(num)
    assert grown_exact - 4 - 5 * se <= harvester.mean() <= grown_exact + 5 * se
    # Group: cleaner + harvester earn ~32-36 together versus 0 for two harvesters;
    # individual: the harvester out-earns its cleaning partner in every episode
    # where an apple was eaten, and on average by more than G - 4.
    assert harvester.mean() > 30 and (harvester >= cleaner).all()
    cleaned = np.asarray(infos["cells_cleaned"]).sum(1)
    assert (cleaned[:, 1] == 0).all() and cleaned[:, 0].mean() > 3


def test_social_dilemma_mutual_cooperation_against_mutual_defection():
    """TurnTaker (cooperates: cleans on its turn or when the river holds 2 dirt,
    eats otherwise) against AlwaysHarvest (defects: never enters the river), both
    agents starting on the plain cell (2, 1) (spec section 5.6; Hughes et al. 2018).

    From the rules: two AlwaysHarvest walk left from column 1 and never reach the
    river (column 3), so the 3 start dirt stay, P >= 3 at every apple phase and
    p_apple = 0: mutual defection pays exactly 0 (P). With R, T, S the returns of
    a seat under mutual cooperation, as the lone defector and as the lone
    cooperator: R > P, R > S, greed T > R, and the defector out-earns its
    cooperating partner.
    """
    start = ((2, 1), (2, 1))
    profiles = {
        "defect": (HARVEST, HARVEST),
        "cooperate": (TURNS, TURNS),
        "defector_0": (HARVEST, TURNS),
        "defector_1": (TURNS, HARVEST),
    }
    returns, cleaned = {}, {}
    for name, policies in profiles.items():
        _, rewards, infos = episodes(policies, start)
        returns[name] = rewards.sum(1)
        cleaned[name] = np.asarray(infos["cells_cleaned"]).sum(1)
        assert (returns[name].sum(1) <= T).all()  # one apple a step at most

    assert (returns["defect"] == 0).all() and (cleaned["defect"] == 0).all()
    # Both cooperators clean in every episode (and eat: R > P below, by seat).
    assert (cleaned["cooperate"] > 0).all()

    def exceeds(larger, smaller, sigmas=5.0):
        se = math.hypot(larger.std(ddof=1), smaller.std(ddof=1)) / math.sqrt(N)
        return larger.mean() - smaller.mean() > sigmas * se

    # R > P for the group (mean per agent).
    assert exceeds(returns["cooperate"].mean(1), returns["defect"].mean(1))
    for seat in (0, 1):
        mutual = returns["cooperate"][:, seat]  # R
        assert exceeds(mutual, returns["defect"][:, seat])
        tempted = returns[f"defector_{seat}"][:, seat]  # T
        sucker = returns[f"defector_{1 - seat}"][:, seat]  # S
        partner = returns[f"defector_{seat}"][:, 1 - seat]
        assert (cleaned[f"defector_{seat}"][:, seat] == 0).all()
        assert exceeds(tempted, mutual)  # greed
        assert exceeds(mutual, sucker)
        assert exceeds(tempted, partner)
