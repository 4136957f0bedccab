"""Cleanup: conformance, hand-worked rules and the social dilemma.

Expected numbers come from the rules in the module docstring (Melting Pot's
constants), worked by hand: beam footprints on a small map, the time-out and
cooldown schedules, ``0.05 (1 - f / 0.4)`` for apple growth, ``0.5`` for dirt, and
binomial tolerances of 5 standard errors with fixed seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents.scripted.cleanup import (
    DedicatedCleaner,
    Harvester,
    TurnTaker,
    joint_actions,
)
from dilemmas.envs import cleanup, grid, make
from dilemmas.envs.cleanup import (
    BACKWARD,
    FIRE_CLEAN,
    FIRE_ZAP,
    FORWARD,
    NOOP,
    STEP_LEFT,
    STEP_RIGHT,
    TURN_LEFT,
    TURN_RIGHT,
    Cleanup,
)
from dilemmas.envs.testing import check_env

UP, RIGHT, DOWN, LEFT = grid.UP, grid.RIGHT, grid.DOWN, grid.LEFT

# A small map for hand-worked scenarios: river rows 1-2 (16 cells), ground rows 3-5
# with a wall at (4, 5), orchard rows 6-7 (16 cells).
LAYOUT = """
##########
#~~~~~~~~#
#~~~~~~~~#
#........#
#....#...#
#........#
#oooooooo#
#oooooooo#
##########
"""
ENV = Cleanup(num_agents=3, layout=LAYOUT)
PARAMS = ENV.default_params
STEP = jax.jit(ENV.step)
MANY_STEPS = jax.jit(jax.vmap(ENV.step, in_axes=(0, None, None, None)))


def _state(pos, orientation, *, dirt=(), apples=(), **fields):
    """A hand-made state of ENV: avatars at ``pos`` facing ``orientation``."""
    _, state = ENV.reset(jax.random.key(0), PARAMS)
    dirt_grid = np.zeros((ENV.height, ENV.width), bool)
    apple_grid = np.zeros((ENV.height, ENV.width), bool)
    for row, col in dirt:
        dirt_grid[row, col] = True
    for row, col in apples:
        apple_grid[row, col] = True
    state = state.replace(
        pos=jnp.asarray(pos, jnp.int32),
        orientation=jnp.asarray(orientation, jnp.int32),
        dirt=jnp.asarray(dirt_grid),
        apples=jnp.asarray(apple_grid),
    )
    return state.replace(
        **{name: jnp.asarray(value, jnp.int32) for name, value in fields.items()}
    )


def _step(state, actions, params=PARAMS, seed=0):
    return STEP(jax.random.key(seed), state, jnp.asarray(actions, jnp.int32), params)


def _pos(ts):
    return np.asarray(ts.state.pos).tolist()


# ---------------------------------------------------------------- conformance


def test_check_env_on_the_registered_id():
    env, params = make("cleanup-v0")
    assert isinstance(env, Cleanup) and env.num_agents == 5
    check_env(env, params)


def test_default_map_and_start_state():
    env, params = make("cleanup-v0")
    assert (env.height, env.width) == (16, 20)
    assert env.river.sum() == 72 and env.orchard.sum() == 90 and env.spawn.sum() == 90
    assert env.layout.split("\n")[1] == "#" + "~" * 18 + "#"
    assert env.layout.split("\n")[-2] == "#" + "o" * 18 + "#"
    obs, state = env.reset(jax.random.key(3), params)
    assert obs.shape == (5, 12, 11, 11) and obs.dtype == jnp.uint8
    # Melting Pot's 79 of 147 dirty river cells, scaled: round(72 * 79 / 147) = 39.
    assert int(state.dirt.sum()) == 39 and not state.dirt[~env.river].any()
    assert int(state.apples.sum()) == 0
    pos = np.asarray(state.pos)
    assert len({tuple(p) for p in pos}) == 5
    assert all(env.spawn[r, c] for r, c in pos)


def test_info_keys_shapes_and_dtypes():
    state = _state([[3, 1], [5, 7], [5, 8]], [UP, UP, UP])
    ts = _step(state, [NOOP, NOOP, NOOP])
    assert set(ts.info) == set(cleanup.INFO_KEYS)
    for value in ts.info.values():
        assert value.shape == (3,) and value.dtype == jnp.int32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"river_rows": 0}, "no river"),
        ({"orchard_rows": 0}, "no orchard"),
        ({"num_agents": 91}, "ground cells"),
        ({"river_rows": 8, "orchard_rows": 7}, "do not fit"),
        ({"height": 2}, "height"),
        ({"num_agents": 0}, "num_agents"),
        ({"layout": "###\n#o#\n###"}, "no river"),
        ({"layout": "####\n#~o#\n####"}, "ground cells"),
        ({"layout": "#~o.#\n#~x.#"}, "unknown characters"),
        ({"layout": LAYOUT, "height": 9}, "either layout"),
        ({"view": (9, 1, 5)}, "view"),
    ],
)
def test_constructor_rejects_impossible_maps(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Cleanup(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"threshold_restoration": 0.5}, "below threshold_depletion"),
        ({"dirt_spawn_prob": 1.5}, "dirt_spawn_prob"),
        ({"zap_respawn": -1}, "zap_respawn"),
        ({"max_steps": 0}, "max_steps"),
        ({"grow_under_agents": 1}, "bool"),
        ({"cleaning_reward": 1.0}, "unknown"),
    ],
)
def test_make_params_validates(overrides, message):
    with pytest.raises(ValueError, match=message):
        ENV.make_params(**overrides)


def test_render_modes():
    state = _state([[3, 1], [5, 7], [1, 8]], [UP, LEFT, DOWN], dirt=[(1, 1)])
    state = state.replace(removed=jnp.array([0, 0, 7], jnp.int32))
    text = ENV.render_ansi(state, PARAMS)
    rows = text.split("\n")
    assert rows[2] == "#%~~~~~~~#"  # the dirt; the removed avatar 2 is not drawn
    assert rows[4] == "#0.......#" and rows[6] == "#......1.#"
    assert "removed, back in 7 steps" in text
    frame = ENV.render_rgb(state, PARAMS)
    assert frame.shape == (9 * 16, 10 * 16, 3) and frame.dtype == np.uint8
    assert (frame[16 * 1 + 3, 16 * 1 + 3] == ENV.PALETTE[3]).all()  # dirt colour
    assert "rgb_array" in ENV.render_modes and "ansi" in ENV.render_modes


# ---------------------------------------------------------------- movement


@pytest.mark.parametrize(
    ("action", "pos", "orientation"),
    [
        (FORWARD, [3, 3], RIGHT),
        (BACKWARD, [3, 1], RIGHT),
        (STEP_LEFT, [2, 2], RIGHT),  # facing right, left is up (into the river)
        (STEP_RIGHT, [4, 2], RIGHT),
        (TURN_LEFT, [3, 2], UP),
        (TURN_RIGHT, [3, 2], DOWN),
        (NOOP, [3, 2], RIGHT),
        (FIRE_ZAP, [3, 2], RIGHT),
    ],
)
def test_moves_are_relative_to_the_orientation(action, pos, orientation):
    state = _state([[3, 2], [5, 7], [5, 8]], [RIGHT, UP, UP])
    ts = _step(state, [action, NOOP, NOOP])
    assert _pos(ts)[0] == pos
    assert int(ts.state.orientation[0]) == orientation


def test_walls_and_avatars_block_moves():
    # 0 walks into the wall at (4, 5); 1 into the cell 2 keeps.
    state = _state([[4, 4], [3, 7], [4, 7]], [RIGHT, DOWN, UP])
    ts = _step(state, [FORWARD, FORWARD, NOOP])
    assert _pos(ts) == [[4, 4], [3, 7], [4, 7]]
    # The border wall.
    state = _state([[3, 1], [5, 7], [5, 8]], [LEFT, UP, UP])
    assert _pos(_step(state, [FORWARD, NOOP, NOOP]))[0] == [3, 1]


def test_two_avatars_heading_for_one_cell_one_gets_it():
    state = _state([[5, 1], [5, 3], [3, 8]], [RIGHT, LEFT, UP])
    winners = set()
    for seed in range(12):
        pos = _pos(_step(state, [FORWARD, FORWARD, NOOP], seed=seed))
        assert [pos[0], pos[1]] in ([[5, 2], [5, 3]], [[5, 1], [5, 2]])
        winners.add(0 if pos[0] == [5, 2] else 1)
    assert winners == {0, 1}  # a random order, not a fixed priority


# ---------------------------------------------------------------- eating


def test_an_avatar_eats_the_apple_it_steps_onto_only():
    apples = [(6, 2), (6, 5), (6, 8)]
    # 0 steps onto (6, 2); 1 stands on an apple that grew under it; 2 turns.
    state = _state([[5, 2], [6, 5], [5, 8]], [DOWN, UP, DOWN], apples=apples)
    ts = _step(state, [FORWARD, NOOP, TURN_LEFT])
    assert np.asarray(ts.reward).tolist() == [1.0, 0.0, 0.0]
    assert np.asarray(ts.info["apples_eaten"]).tolist() == [1, 0, 0]
    assert not ts.state.apples[6, 2] and ts.state.apples[6, 5] and ts.state.apples[6, 8]


# ---------------------------------------------------------------- beams


def test_zap_lanes_stop_at_walls_and_at_the_first_avatar():
    params = PARAMS  # Melting Pot: length 3, radius 1
    # 0 at (4, 3) facing right: its own lane is cut by the wall at (4, 5), so 1 at
    # (4, 6) (3 ahead) is safe; 2 at (3, 6) is 3 ahead in the lane on 0's left.
    state = _state([[4, 3], [4, 6], [3, 6]], [RIGHT, UP, UP])
    ts = _step(state, [FIRE_ZAP, NOOP, NOOP], params)
    assert np.asarray(ts.info["zaps_received"]).tolist() == [0, 0, 1]
    assert np.asarray(ts.info["zap_hits"]).tolist() == [1, 0, 0]
    assert np.asarray(ts.state.removed).tolist() == [0, 0, 50]
    # Two avatars in one lane: only the nearer is hit.
    state = _state([[3, 1], [3, 3], [3, 4]], [RIGHT, UP, UP])
    ts = _step(state, [FIRE_ZAP, NOOP, NOOP], params)
    assert np.asarray(ts.info["zaps_received"]).tolist() == [0, 1, 0]
    # Out of reach: 4 cells ahead, or 2 lanes aside.
    state = _state([[3, 1], [3, 5], [5, 2]], [RIGHT, UP, UP])
    ts = _step(state, [FIRE_ZAP, NOOP, NOOP], params)
    assert np.asarray(ts.info["zaps_received"]).tolist() == [0, 0, 0]
    assert np.asarray(ts.info["zaps_fired"]).tolist() == [1, 0, 0]


@pytest.mark.parametrize("orientation", [UP, RIGHT, DOWN, LEFT])
def test_zap_beam_points_where_the_avatar_faces(orientation):
    ahead = np.asarray(grid.DIRECTIONS[orientation])
    right = np.asarray(grid.DIRECTIONS[(orientation + 1) % 4])
    firer = np.array([3, 3])
    # 1 is two cells ahead and one to the left (in reach); 2 is right behind.
    pos = [firer, firer + 2 * ahead - right, firer - ahead]
    state = _state(pos, [orientation, UP, UP])
    ts = _step(state, [FIRE_ZAP, NOOP, NOOP])
    assert np.asarray(ts.info["zaps_received"]).tolist() == [0, 1, 0]


def test_equal_settings_give_equal_envs():
    assert Cleanup(num_agents=3, layout=LAYOUT) == ENV
    assert hash(Cleanup(num_agents=3, layout=LAYOUT)) == hash(ENV)
    assert Cleanup(num_agents=3, layout=LAYOUT, view=None) != ENV
    assert Cleanup() == make("cleanup-v0")[0]


def test_simultaneous_zaps_both_land():
    state = _state([[3, 2], [3, 4], [5, 8]], [RIGHT, LEFT, UP])
    ts = _step(state, [FIRE_ZAP, FIRE_ZAP, NOOP])
    assert np.asarray(ts.info["zaps_received"]).tolist() == [1, 1, 0]
    assert np.asarray(ts.state.removed).tolist() == [50, 50, 0]


@pytest.mark.parametrize("respawn", [50, 3])
def test_a_zapped_avatar_is_removed_for_exactly_zap_respawn_steps(respawn):
    params = ENV.make_params(zap_respawn=respawn, dirt_spawn_prob=0.0)
    state = _state([[3, 2], [3, 4], [5, 8]], [RIGHT, LEFT, UP])
    ts = _step(state, [FIRE_ZAP, NOOP, NOOP], params)  # step t: 1 is hit
    assert int(ts.state.removed[1]) == respawn
    off_steps = 0
    for t in range(1, respawn + 3):
        # 1 keeps trying to walk, and 0 keeps zapping its old cell.
        ts = _step(ts.state, [FIRE_ZAP, FORWARD, NOOP], params, seed=t)
        removed = int(ts.info["removed"][1])
        off_steps += removed
        if t <= respawn:
            assert removed == 1, t
            assert int(ts.info["zaps_received"][1]) == 0
            assert float(ts.reward[1]) == 0.0
            # Off the map after this step too (until t = respawn): sees zeros.
            assert np.asarray(ts.obs[1]).any() == (t == respawn)
        if t == respawn:  # back on a free ground cell after step t + respawn
            assert int(ts.state.removed[1]) == 0
            row, col = _pos(ts)[1]
            assert ENV.spawn[row, col] and [row, col] not in _pos(ts)[::2]
            assert np.asarray(ts.obs[1]).any()
    assert off_steps == respawn


def test_zap_cooldown_spaces_shots_by_cooldown_plus_one_steps():
    params = ENV.make_params(zap_respawn=0)  # SSD: hits do not remove
    state = _state([[3, 1], [5, 7], [5, 8]], [RIGHT, UP, UP])
    fired = []
    for t in range(24):
        ts = _step(state, [FIRE_ZAP, NOOP, NOOP], params, seed=t)
        fired.append(int(ts.info["zaps_fired"][0]))
        flag = np.asarray(ts.obs[0, ENV.channel_names.index("ready_to_zap")])
        assert flag.all() == (int(ts.state.zap_timer[0]) == 0)
        state = ts.state
    assert [t for t, f in enumerate(fired) if f] == [0, 11, 22]  # cooldown 10


def test_ssd_zap_costs_and_penalties():
    params = ENV.make_params(zap_cost=1.0, zap_penalty=50.0, zap_respawn=0)
    state = _state([[3, 2], [3, 4], [5, 8]], [RIGHT, UP, UP])
    ts = _step(state, [FIRE_ZAP, NOOP, NOOP], params)
    assert np.asarray(ts.reward).tolist() == [-1.0, -50.0, 0.0]
    assert int(ts.state.removed[1]) == 0  # SSD's beam does not remove


def test_clean_beam_removes_the_first_dirt_of_each_lane():
    # 0 at (3, 4) facing up: lanes are columns 3, 4, 5, rows 2..0 (stopped by the
    # border wall at row 0). Column 4 holds two dirt cells: only the nearer goes.
    dirt = [(2, 4), (1, 4), (1, 3), (2, 6), (1, 5)]
    state = _state([[3, 4], [5, 7], [5, 8]], [UP, UP, UP], dirt=dirt)
    params = ENV.make_params(dirt_spawn_prob=0.0)
    ts = _step(state, [FIRE_CLEAN, NOOP, NOOP], params)
    left = {(int(r), int(c)) for r, c in np.argwhere(np.asarray(ts.state.dirt))}
    assert left == {(1, 4), (2, 6)}
    assert np.asarray(ts.info["cells_cleaned"]).tolist() == [3, 0, 0]
    # The clean beam passes avatars; the clean cooldown is 2: shots 3 steps apart.
    state = _state([[3, 4], [2, 4], [5, 8]], [UP, UP, UP], dirt=[(1, 4)])
    fired = []
    for t in range(7):
        ts = _step(state, [FIRE_CLEAN, NOOP, NOOP], params, seed=t)
        fired.append(int(ts.info["cells_cleaned"][0]))
        state = ts.state.replace(dirt=state.dirt)  # keep the dirt there
    assert fired == [1, 0, 0, 1, 0, 0, 1]


# ---------------------------------------------------------------- river and orchard


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.0, 0.05), (0.1, 0.0375), (0.2, 0.025), (0.3, 0.0125), (0.4, 0.0), (0.6, 0.0)],
)
def test_apple_growth_probability_formula(fraction, expected):
    assert float(
        cleanup.apple_growth_probability(jnp.float32(fraction), PARAMS)
    ) == pytest.approx(expected, abs=1e-7)


def test_apple_growth_saturates_below_threshold_restoration():
    params = ENV.make_params(threshold_restoration=0.1)
    prob = cleanup.apple_growth_probability(jnp.float32(0.05), params)
    assert float(prob) == pytest.approx(0.05)  # min(1, ...) caps the rate


def _many(state, params, num):
    keys = jax.random.split(jax.random.key(11), num)
    actions = jnp.zeros((ENV.num_agents,), jnp.int32)
    return MANY_STEPS(keys, state, actions, params)


@pytest.mark.parametrize(
    ("num_dirt", "expected"),
    # f = num_dirt / 16 river cells; p = 0.05 (1 - f / 0.4), 0 from f = 0.4 on.
    [(0, 0.05), (4, 0.05 * (1 - 0.25 / 0.4)), (6, 0.05 * (1 - 0.375 / 0.4)), (7, 0.0)],
)
def test_apple_growth_rate_at_a_dirt_level(num_dirt, expected):
    dirt = [(1 + i // 8, 1 + i % 8) for i in range(num_dirt)]
    state = _state([[3, 1], [3, 2], [6, 1]], [UP, UP, UP], dirt=dirt)
    params = ENV.make_params(dirt_spawn_prob=0.0)
    ts = _many(state, params, 2000)
    grown = np.asarray(ts.state.apples.sum(axis=(1, 2)))
    trials = 2000 * int(ENV.orchard.sum())  # every orchard cell, even under avatar 2
    if expected == 0.0:
        assert grown.sum() == 0
    else:
        se = np.sqrt(expected * (1 - expected) / trials)
        assert abs(grown.sum() / trials - expected) < 5 * se
    assert not np.asarray(ts.state.apples)[:, ~ENV.orchard].any()


def test_ssd_option_no_growth_under_avatars():
    params = ENV.make_params(dirt_spawn_prob=0.0, grow_under_agents=False)
    state = _state([[6, 1], [6, 2], [7, 3]], [UP, UP, UP])
    ts = _many(state, params, 2000)
    apples = np.asarray(ts.state.apples)
    assert not apples[:, 6, 1].any() and not apples[:, 7, 3].any()
    assert apples[:, 6, 4].mean() > 0.02  # p = 0.05 elsewhere


@pytest.mark.parametrize(("t", "expected"), [(49, 0.0), (50, 0.5)])
def test_dirt_spawns_with_probability_one_half_after_frame_50(t, expected):
    state = _state([[3, 1], [3, 2], [5, 1]], [UP, UP, UP], dirt=[(1, 1)])
    state = state.replace(t=jnp.int32(t))
    ts = _many(state, PARAMS, 2000)
    new = np.asarray(ts.state.dirt.sum(axis=(1, 2))) - 1
    assert set(np.unique(new)) <= {0, 1}
    assert not np.asarray(ts.state.dirt)[:, ~ENV.river].any()
    if expected == 0.0:
        assert new.sum() == 0
    else:
        assert abs(new.mean() - 0.5) < 5 * np.sqrt(0.25 / 2000)


def test_ssd_option_dirt_stops_at_the_threshold():
    params = ENV.make_params(dirt_stops_at_threshold=True, dirt_spawn_delay=0)
    dirt = [(1 + i // 8, 1 + i % 8) for i in range(7)]  # f = 7/16 >= 0.4
    state = _state([[3, 1], [3, 2], [5, 1]], [UP, UP, UP], dirt=dirt)
    ts = _many(state, params, 2000)
    assert (np.asarray(ts.state.dirt.sum(axis=(1, 2))) == 7).all()


# ---------------------------------------------------------------- observation


def test_egocentric_view_hand_worked():
    # 0 at (5, 2) facing left sits at window (9, 5): ahead is column 2 - d, its
    # left is row + 1 (the orchard), its right row - 1.
    state = _state([[5, 2], [4, 2], [3, 8]], [LEFT, UP, DOWN], apples=[(6, 1)])
    obs = np.asarray(jax.jit(ENV.observe)(state))[0]
    channel = {name: obs[i] for i, name in enumerate(ENV.channel_names)}
    assert channel["self"][9, 5] == 1 and channel["self"].sum() == 1
    assert channel["wall"][9 - 2, 5] == 1  # (5, 0), the border
    assert channel["wall"][9 - 3, 5] == 1  # outside the map reads as wall
    assert channel["wall"][9 - 1, 5] == 0  # (5, 1), ground
    assert channel["orchard"][9, 4] == 1 and channel["orchard"][9, 6] == 0
    assert channel["apple"][8, 4] == 1 and channel["apple"].sum() == 1
    # 1 faces up; seen by an avatar facing left, it faces the viewer's right.
    assert channel["others_facing_right"][9, 6] == 1
    assert (
        sum(channel[f"others_facing_{d}"].sum() for d in ("same", "back", "left")) == 0
    )
    assert channel["ready_to_zap"].all() and channel["ready_to_clean"].all()


def test_full_state_observation():
    env = Cleanup(num_agents=3, layout=LAYOUT, view=None)
    state = _state([[5, 2], [4, 2], [3, 8]], [LEFT, UP, DOWN], dirt=[(1, 1)])
    obs = np.asarray(jax.jit(env.observe)(state))
    assert obs.shape == (3, 15, 9, 10) == (3, *env.observation_space().shape)
    channel = {name: obs[0, i] for i, name in enumerate(env.channel_names)}
    assert channel["self_facing_l"][5, 2] == 1 and channel["self_facing_l"].sum() == 1
    assert channel["others_facing_u"][4, 2] == 1 and channel["others_facing_d"][3, 8]
    assert channel["dirt"][1, 1] == 1 and (channel["wall"] == env.walls).all()


# ---------------------------------------------------------------- scripted roles

TEAM = (DedicatedCleaner(ENV), Harvester(ENV), Harvester(ENV))
TEAM_ACT = jax.jit(lambda key, state: joint_actions(TEAM, key, state, PARAMS))


def test_scripted_roles_hand_worked():
    # The cleaner faces dirt at (2, 4) with its beam ready: it fires. Harvester 1
    # (facing down) walks down to the apple at (7, 2); harvester 2 (facing up) has
    # 6 columns and 2 rows to go, so it steps left first.
    state = _state([[3, 4], [5, 2], [5, 8]], [UP, DOWN, UP], dirt=[(2, 4)])
    state = state.replace(apples=state.apples.at[7, 2].set(True))
    actions = TEAM_ACT(jax.random.key(0), state)
    assert actions.dtype == jnp.int32
    assert np.asarray(actions).tolist() == [FIRE_CLEAN, FORWARD, STEP_LEFT]
    # Facing right, the dirt is out of its beam: it turns left to face it. Cooling
    # down, it waits. Removed, it does nothing.
    state = state.replace(orientation=jnp.array([RIGHT, DOWN, UP], jnp.int32))
    assert int(TEAM_ACT(jax.random.key(1), state)[0]) == TURN_LEFT
    cooling = _state([[3, 4], [5, 2], [5, 8]], [UP, DOWN, UP], dirt=[(2, 4)])
    cooling = cooling.replace(clean_timer=jnp.array([1, 0, 0], jnp.int32))
    assert int(TEAM_ACT(jax.random.key(2), cooling)[0]) == NOOP
    removed = cooling.replace(removed=jnp.array([4, 0, 0], jnp.int32))
    assert int(TEAM_ACT(jax.random.key(3), removed)[0]) == NOOP
    # Far from the dirt at (2, 8), it walks to the nearest firing spot: (3, 8) and
    # (2, 7) are both 3 steps away, ties go to (2, 7) (row-major), which is 2
    # columns right and 1 row up, so it steps right first (facing up).
    far = _state([[3, 5], [5, 2], [5, 8]], [UP, DOWN, UP], dirt=[(2, 8)])
    assert int(TEAM_ACT(jax.random.key(4), far)[0]) == STEP_RIGHT


TURNS_ACT = jax.jit(
    lambda key, state: joint_actions((TurnTaker(ENV),) * 3, key, state, PARAMS)
)


def test_turn_taker_hand_worked():
    # Shifts of 20 steps: at t = 0 agent 0 is on duty. It stands in the orchard at
    # (7, 3) below dirt at (2, 3): the nearest firing spot is (3, 3), straight up,
    # through orchard cells, so it steps forward. Agents 1 and 2 are off duty
    # and the river holds 1 dirt of 16 (f < 0.2): they go for the apple at (7, 1),
    # one step down for agent 1 (facing up: backward), 7 columns left and 4 rows
    # down for agent 2 (left first).
    pos, facing = [[7, 3], [6, 1], [3, 8]], [UP, UP, UP]
    state = _state(pos, facing, dirt=[(2, 3)], apples=[(7, 1)])
    actions = np.asarray(TURNS_ACT(jax.random.key(0), state)).tolist()
    assert actions == [FORWARD, BACKWARD, STEP_LEFT]
    # At t = 20 agent 1 is on duty: it walks up towards the river; agent 0 now
    # harvests, two columns left of the apple.
    later = state.replace(t=jnp.asarray(20, jnp.int32))
    actions = np.asarray(TURNS_ACT(jax.random.key(0), later)).tolist()
    assert actions[:2] == [STEP_LEFT, FORWARD]
    # Off duty, agent 1 cleans once the dirt fraction reaches half of the
    # depletion threshold, 0.2: 3 of 16 cells (0.1875) is not enough, 4 (0.25) is;
    # its nearest firing spot is then (2, 1), below the dirt at (1, 1).
    three = [(2, 3), (1, 1), (1, 2)]
    for dirt, expected in ((three, BACKWARD), ([*three, (1, 4)], FORWARD)):
        dirty = _state(pos, facing, dirt=dirt, apples=[(7, 1)])
        assert int(TURNS_ACT(jax.random.key(0), dirty)[1]) == expected


# ---------------------------------------------------------------- the dilemma

# Five players (the default) on a 9 x 10 map: river rows 1-2 (16 cells), ground
# rows 3-4, orchard rows 5-7 (24 cells); the default 1000-step episode.
DILEMMA_ENV = Cleanup(num_agents=5, height=9, width=10, river_rows=2, orchard_rows=3)
DILEMMA_STEPS = 1000
DILEMMA_SEEDS = 8


@jax.jit
def _play(cooperators: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Episode returns and dirt cells cleaned, ``[seeds, 5]`` each;
    ``cooperators[i]``: agent i is a TurnTaker, else a Harvester."""
    env, params = DILEMMA_ENV, DILEMMA_ENV.default_params
    cooperator, defector = TurnTaker(env), Harvester(env)

    def episode(key):
        _, state = env.reset(key, params)

        def body(state, key_t):
            key_act, key_step = jax.random.split(key_t)
            keys = jax.random.split(key_act, env.num_agents)

            def act(agent, key_agent):
                return jnp.where(
                    cooperators[agent],
                    cooperator.act(key_agent, state, params, agent),
                    defector.act(key_agent, state, params, agent),
                )

            actions = jax.vmap(act)(jnp.arange(env.num_agents), keys)
            ts = env.step(key_step, state, actions, params)
            return ts.state, (ts.reward, ts.info["cells_cleaned"])

        _, (rewards, cleaned) = jax.lax.scan(
            body, state, jax.random.split(key, DILEMMA_STEPS)
        )
        return rewards.sum(axis=0), cleaned.sum(axis=0)

    keys = jax.random.split(jax.random.key(2024), DILEMMA_SEEDS)
    return jax.vmap(episode)(keys)


def _mean_and_se(values):
    values = np.asarray(values, float)
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


def _exceeds(larger, smaller, sigmas=5.0):
    """Mean of ``larger`` above mean of ``smaller`` by ``sigmas`` standard errors
    of the difference (independent samples)."""
    (high, se_high), (low, se_low) = _mean_and_se(larger), _mean_and_se(smaller)
    return high - low > sigmas * np.hypot(se_high, se_low)


def test_cleanup_is_a_social_dilemma():
    """Mutual cooperation against mutual defection (Hughes et al. 2018, spec
    grid_dilemmas.md section 5.6), 5 players, with TurnTaker as the cooperator
    (it cleans on its turn or when the river is dirty, and eats otherwise) and
    Harvester as the defector (it never cleans).

    From the rules: the map starts with round(16 * 79/147) = 9 of 16 river cells
    dirty (f = 0.5625 >= 0.4), dirt only ever decreases by cleaning and apples grow
    only while f < 0.4, so with nobody cleaning every return is exactly 0 (P).
    The conditions, with R = a cooperator's return under mutual cooperation,
    T = a lone defector's among 4 cooperators, S = a lone cooperator's among 4
    defectors: R > P (the group gains from cooperating), R > S, and greed T > R
    (each player gains by defecting); and the defector out-earns the cooperators
    it plays with.
    """
    _, state = DILEMMA_ENV.reset(jax.random.key(0), DILEMMA_ENV.default_params)
    assert int(state.dirt.sum()) == 9
    defect = 0  # seat of the lone defector, and of the lone cooperator
    profiles = {
        "all_defect": np.zeros(5, bool),
        "all_cooperate": np.ones(5, bool),
        "one_defector": np.arange(5) != defect,
        "one_cooperator": np.arange(5) == defect,
    }
    played = {name: _play(jnp.asarray(c)) for name, c in profiles.items()}
    returns = {name: np.asarray(r) for name, (r, _) in played.items()}
    cleaned = {name: np.asarray(c) for name, (_, c) in played.items()}

    # Mutual defection: nothing is cleaned, nothing grows (exact).
    assert (cleaned["all_defect"] == 0).all() and (returns["all_defect"] == 0).all()
    # Mutual cooperation: every player cleans and eats in every episode.
    assert (cleaned["all_cooperate"] > 0).all()
    assert (returns["all_cooperate"] > 0).all()
    # A harvester eats at most one apple a step.
    for r in returns.values():
        assert (r <= DILEMMA_STEPS).all()

    group = {name: r.mean(axis=1) for name, r in returns.items()}  # per agent
    # R > P: the group earns more when all cooperate than when all defect.
    assert _exceeds(group["all_cooperate"], group["all_defect"])
    mutual = returns["all_cooperate"][:, defect]  # R, at the same seat
    tempted = returns["one_defector"][:, defect]  # T
    sucker = returns["one_cooperator"][:, defect]  # S
    assert _exceeds(tempted, mutual)  # greed: T > R
    assert _exceeds(mutual, sucker)  # R > S
    # The lone defector earns more than each of the 4 cooperators beside it.
    others = np.delete(returns["one_defector"], defect, axis=1)
    assert (cleaned["one_defector"][:, defect] == 0).all()
    for seat in range(4):
        assert _exceeds(tempted, others[:, seat])
