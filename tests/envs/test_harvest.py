"""Harvest: conformance, hand-worked rules and the social dilemma.

Expected numbers come from the rules in the module docstring (Melting Pot's
constants), worked by hand: neighbour counts on a small map, the regrowth table
``[0, 0.0025, 0.005, 0.025]``, the time-out and cooldown schedules, and binomial
tolerances of 5 standard errors with fixed seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents.scripted.harvest import (
    GreedyHarvester,
    RestrainedHarvester,
    joint_actions,
    patch_cores,
)
from dilemmas.envs import grid, harvest, make
from dilemmas.envs.harvest import FIRE_ZAP, FORWARD, NOOP, STEP_LEFT, Harvest
from dilemmas.envs.testing import check_env

UP, RIGHT, DOWN, LEFT = grid.UP, grid.RIGHT, grid.DOWN, grid.LEFT

# Grass cells in row 3 start empty; the others hold the apples that set their
# neighbour counts (squared distance <= 4 for Melting Pot, <= 2 for SSD's 3 x 3):
#   (3, 2):  no apple near                          n = 0 (MP), 0 (SSD)
#   (3, 6):  apple at (3, 7), d² = 1                n = 1, 1
#   (3, 11): apple at (3, 13), d² = 4               n = 1, 0
#   (3, 17): apples at (2, 18), (4, 17): d² = 2, 1  n = 2, 2
#   (3, 23): apples at (2, 22), (2, 23), (2, 24), (4, 23)   n = 4, 4
#   (3, 28): apple at (2, 30), d² = 5               n = 0, 0
# Groups are 4 or more columns apart, so no cell sees another group's apples.
LAYOUT = """
################################
#..............................#
#.................A...AAA.....A#
#.A...AA...A.A...A.....A....A..#
#................A.....A.......#
#..............................#
################################
"""
APPLES = [
    (3, 7),
    (3, 13),
    (2, 18),
    (4, 17),
    (2, 22),
    (2, 23),
    (2, 24),
    (4, 23),
    (2, 30),
]
EMPTY = {(3, 2): (0, 0), (3, 6): (1, 1), (3, 11): (1, 0), (3, 17): (2, 2)}
EMPTY.update({(3, 23): (4, 4), (3, 28): (0, 0)})
ENV = Harvest(num_agents=3, layout=LAYOUT)
PARAMS = ENV.default_params
STEP = jax.jit(ENV.step)
MANY_STEPS = jax.jit(jax.vmap(ENV.step, in_axes=(0, None, None, None)))


def _state(pos, orientation, *, apples=APPLES, **fields):
    """A hand-made state of ENV: avatars at ``pos`` facing ``orientation``."""
    _, state = ENV.reset(jax.random.key(0), PARAMS)
    apple_grid = np.zeros((ENV.height, ENV.width), bool)
    for row, col in apples:
        apple_grid[row, col] = True
    state = state.replace(
        pos=jnp.asarray(pos, jnp.int32),
        orientation=jnp.asarray(orientation, jnp.int32),
        apples=jnp.asarray(apple_grid),
    )
    return state.replace(
        **{name: jnp.asarray(value, jnp.int32) for name, value in fields.items()}
    )


def _step(state, actions, params=PARAMS, seed=0):
    return STEP(jax.random.key(seed), state, jnp.asarray(actions, jnp.int32), params)


# ---------------------------------------------------------------- conformance


def test_check_env_on_the_registered_id():
    env, params = make("harvest-v0")
    assert isinstance(env, Harvest) and env.num_agents == 5
    check_env(env, params)


def test_default_map_and_start_state():
    env, params = make("harvest-v0")
    assert (env.height, env.width) == (15, 22)
    assert env.patch_centres == [(3, 3), (3, 10), (3, 17), (10, 3), (10, 10), (10, 17)]
    assert env.grass.sum() == 6 * 13 and env.spawn.sum() == 13 * 20 - 78
    # Patches regrow independently: no grass cell of one is within distance² 8 of
    # another's (the largest neighbourhood the params allow).
    cells = np.argwhere(env.grass)
    owner = np.array(
        [
            min(range(6), key=lambda i, c=c: abs(c - env.patch_centres[i]).sum())
            for c in cells
        ]
    )
    d2 = ((cells[:, None, :] - cells[None, :, :]) ** 2).sum(-1)
    assert d2[owner[:, None] != owner[None, :]].min() > harvest.MAX_RADIUS_SQ
    obs, state = jax.jit(env.reset)(jax.random.key(1), params)
    assert obs.shape == (5, 9, 11, 11) and obs.dtype == jnp.uint8
    assert (np.asarray(state.apples) == env.grass).all()  # every apple present
    pos = np.asarray(state.pos)
    assert len({tuple(p) for p in pos}) == 5 and all(env.spawn[r, c] for r, c in pos)


def test_info_keys_shapes_and_dtypes():
    ts = _step(_state([[1, 1], [1, 5], [5, 9]], [UP, UP, UP]), [NOOP, NOOP, NOOP])
    assert set(ts.info) == set(harvest.INFO_KEYS)
    for value in ts.info.values():
        assert value.shape == (3,) and value.dtype == jnp.int32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 6}, "no orchard"),
        ({"width": 6, "patch_radius": 2}, "no orchard"),
        ({"num_agents": 183}, "ground cells"),
        ({"layout": "#####\n#...#\n#####"}, "no orchard"),
        ({"layout": "#####\n#AAA#\n#####"}, "ground cells"),
        ({"layout": "#A.#\n#A?#"}, "unknown characters"),
        ({"layout": LAYOUT, "width": 9}, "either layout"),
        ({"patch_spacing": 3}, "patch_spacing"),
        ({"num_agents": 0}, "num_agents"),
    ],
)
def test_constructor_rejects_impossible_maps(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Harvest(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"regrowth_radius_sq": 9}, "at most 8"),
        ({"regrowth_probabilities": (0.0, 1.5)}, "regrowth_probabilities"),
        ({"regrowth_probabilities": ()}, "non-empty"),
        ({"zap_cooldown": -1}, "zap_cooldown"),
        ({"max_steps": 0}, "max_steps"),
        ({"respawn": 3}, "unknown"),
    ],
)
def test_make_params_validates(overrides, message):
    with pytest.raises(ValueError, match=message):
        ENV.make_params(**overrides)


def test_render_modes():
    state = _state([[1, 1], [5, 2], [1, 5]], [UP, UP, UP], removed=[0, 0, 3])
    text = ENV.render_ansi(state, PARAMS)
    rows = text.split("\n")
    assert rows[0] == "step 0/1000: 9 of 15 apples"
    assert rows[2] == "#0.............................#"  # 2 is removed
    assert rows[4] == "#.:...:a...:.a...:.....:....:..#"
    frame = ENV.render_rgb(state, PARAMS)
    assert frame.shape == (7 * 16, 32 * 16, 3) and frame.dtype == np.uint8
    assert (frame[16 * 3 + 8, 16 * 7 + 8] == ENV.PALETTE[5]).all()  # an apple


# ---------------------------------------------------------------- regrowth


@pytest.mark.parametrize("radius_sq", [4, 2])
def test_neighbour_counts_hand_worked(radius_sq):
    apples = np.asarray(_state([[1, 1], [1, 2], [1, 3]], [UP] * 3).apples)
    counts = np.asarray(harvest.neighbour_counts(jnp.asarray(apples), radius_sq))
    column = 0 if radius_sq == 4 else 1
    for cell, expected in EMPTY.items():
        assert counts[cell] == expected[column], cell


def test_regrowth_probability_table():
    counts = jnp.arange(6)
    probs = harvest.regrowth_probability(counts, PARAMS)
    assert np.allclose(probs, [0.0, 0.0025, 0.005, 0.025, 0.025, 0.025])


NUM_KEYS = 20000


def _regrowth_frequencies(params):
    state = _state([[1, 1], [1, 5], [5, 9]], [UP, UP, UP])
    keys = jax.random.split(jax.random.key(5), NUM_KEYS)
    ts = MANY_STEPS(keys, state, jnp.zeros((3,), jnp.int32), params)
    grown = np.asarray(ts.state.apples) & ~np.asarray(state.apples)[None]
    assert not grown[:, ~ENV.grass].any()
    return {cell: grown[:, cell[0], cell[1]].mean() for cell in EMPTY}


@pytest.mark.parametrize(
    ("overrides", "column"),
    [
        ({}, 0),  # Melting Pot: L2 radius 2
        ({"regrowth_radius_sq": 2}, 1),  # SSD's code: the 3 x 3 block
        ({"regrowth_probabilities": harvest.SSD_REGROWTH_PROBABILITIES}, 0),
    ],
)
def test_regrowth_rate_at_a_neighbour_count(overrides, column):
    params = ENV.make_params(**overrides)
    table = np.asarray(params.regrowth_probabilities, float)
    frequencies = _regrowth_frequencies(params)
    for cell, counts in EMPTY.items():
        expected = table[min(counts[column], len(table) - 1)]
        if expected == 0.0:
            assert frequencies[cell] == 0.0, cell  # a lost patch never regrows
        else:
            se = np.sqrt(expected * (1 - expected) / NUM_KEYS)
            assert abs(frequencies[cell] - expected) < 5 * se, (cell, expected)


def test_ssd_option_no_regrowth_under_avatars():
    params = ENV.make_params(grow_under_agents=False)
    state = _state([[3, 23], [1, 5], [5, 9]], [UP, UP, UP])
    keys = jax.random.split(jax.random.key(6), NUM_KEYS)
    ts = MANY_STEPS(keys, state, jnp.zeros((3,), jnp.int32), params)
    assert not np.asarray(ts.state.apples)[:, 3, 23].any()  # p = 0.025 otherwise


# ---------------------------------------------------------------- avatars


def test_an_avatar_eats_the_apple_it_steps_onto_only():
    # 0 steps onto (3, 7); 1 stands on the apple (3, 13); 2 walks on ground.
    state = _state([[3, 8], [3, 13], [5, 9]], [LEFT, UP, UP])
    ts = _step(state, [FORWARD, NOOP, FORWARD])
    assert np.asarray(ts.reward).tolist() == [1.0, 0.0, 0.0]
    assert np.asarray(ts.info["apples_eaten"]).tolist() == [1, 0, 0]
    assert not ts.state.apples[3, 7] and ts.state.apples[3, 13]
    assert np.asarray(ts.state.pos).tolist()[2] == [4, 9]


def test_zap_hits_the_first_avatar_of_a_lane_and_removes_it_for_4_steps():
    # 0 at (1, 2) facing right: 1 (2 ahead) shields 2 (3 ahead) in the same lane.
    state = _state([[1, 2], [1, 4], [1, 5]], [RIGHT, UP, UP])
    ts = _step(state, [FIRE_ZAP, NOOP, NOOP])
    assert np.asarray(ts.info["zaps_received"]).tolist() == [0, 1, 0]
    assert np.asarray(ts.state.removed).tolist() == [0, 4, 0]
    removed_steps = []
    for t in range(1, 8):
        ts = _step(ts.state, [NOOP, FORWARD, NOOP], seed=t)
        removed_steps.append(int(ts.info["removed"][1]))
    assert removed_steps == [1, 1, 1, 1, 0, 0, 0]  # exactly framesTillRespawn = 4


def test_zap_cooldown_2_spaces_shots_3_steps_apart():
    state = _state([[5, 2], [1, 5], [1, 9]], [RIGHT, UP, UP])
    fired = []
    for t in range(10):
        ts = _step(state, [FIRE_ZAP, NOOP, NOOP], seed=t)
        fired.append(int(ts.info["zaps_fired"][0]))
        state = ts.state
    assert [t for t, f in enumerate(fired) if f] == [0, 3, 6, 9]


def test_egocentric_view_hand_worked():
    # 0 at (3, 8) facing left sits at window (9, 5): (3, 7) one ahead is an apple,
    # (3, 6) two ahead is empty grass; 1 at (2, 8) is one to its right.
    state = _state([[3, 8], [2, 8], [5, 9]], [LEFT, DOWN, UP], zap_timer=[2, 0, 0])
    obs = np.asarray(jax.jit(ENV.observe)(state))[0]
    channel = {name: obs[i] for i, name in enumerate(ENV.channel_names)}
    assert channel["apple"][8, 5] == 1 and channel["grass"][8, 5] == 1
    assert channel["grass"][7, 5] == 1 and channel["apple"][7, 5] == 0
    assert channel["self"][9, 5] == 1
    assert channel["others_facing_left"][9, 6] == 1  # faces down: the viewer's left
    assert not channel["ready_to_zap"].any()  # cooling down


# ---------------------------------------------------------------- the dilemma

DILEMMA_ENV = Harvest(num_agents=4, height=9, width=16)
DILEMMA_STEPS = 500
DILEMMA_SEEDS = 32


@jax.jit
def _play(greedy: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Rewards ``[seeds, steps, 4]``, apples on the map ``[seeds, steps]`` and
    final apples ``[seeds, H, W]``; ``greedy[i]``: agent i is a GreedyHarvester,
    else a RestrainedHarvester."""
    env, params = DILEMMA_ENV, DILEMMA_ENV.default_params
    greedy_policy, restrained_policy = GreedyHarvester(env), RestrainedHarvester(env)

    def episode(key):
        _, state = env.reset(key, params)

        def body(state, key_t):
            key_act, key_step = jax.random.split(key_t)
            keys = jax.random.split(key_act, env.num_agents)

            def act(agent, key_agent):
                return jnp.where(
                    greedy[agent],
                    greedy_policy.act(key_agent, state, params, agent),
                    restrained_policy.act(key_agent, state, params, agent),
                )

            actions = jax.vmap(act)(jnp.arange(env.num_agents), keys)
            ts = env.step(key_step, state, actions, params)
            return ts.state, (ts.reward, ts.state.apples.sum())

        final, (rewards, count) = jax.lax.scan(
            body, state, jax.random.split(key, DILEMMA_STEPS)
        )
        return rewards, count, final.apples

    keys = jax.random.split(jax.random.key(7), DILEMMA_SEEDS)
    return jax.vmap(episode)(keys)


def test_scripted_roles_hand_worked():
    env, params = DILEMMA_ENV, DILEMMA_ENV.default_params
    row, col = env.patch_centres[0]
    core = patch_cores(env.grass)
    assert core.sum() == 10 and core[row, col] and core[row + 1, col]
    assert not core[row + 1, col + 1]  # a diagonal cell is not core
    # Apples: the core of patch 0 and one outer apple at (row + 1, col + 1).
    apples = np.zeros(env.grass.shape, bool)
    apples[core & (np.abs(np.arange(env.height)[:, None] - row) <= 2)] = True
    apples[row + 1, col + 1] = True
    team = (GreedyHarvester(env), RestrainedHarvester(env), RestrainedHarvester(env))
    team += (RestrainedHarvester(env),)
    _, state = env.reset(jax.random.key(0), params)
    state = state.replace(
        pos=jnp.array(
            [[row, col - 3], [row, col + 3], [row - 2, col], [row + 4, col + 8]],
            jnp.int32,
        ),
        orientation=jnp.array([RIGHT, LEFT, DOWN, UP], jnp.int32),
        apples=jnp.asarray(apples),
    )
    actions = jax.jit(lambda k, s: joint_actions(team, k, s, params))(
        jax.random.key(1), state
    )
    # 0 (greedy) heads for the nearest apple, a core one two cells right. 1 heads
    # for the outer apple. 2 stands on the top tip: straight down is a core apple,
    # so it sidesteps to the right (its left, facing down).
    assert np.asarray(actions)[:3].tolist() == [FORWARD, FORWARD, STEP_LEFT]


def _mean_and_se(values):
    """Mean and standard error over seeds of the per-seed mean of ``values``."""
    values = np.asarray(values, float).reshape(len(values), -1).mean(axis=1)
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


def test_harvest_is_a_social_dilemma():
    """Schelling diagram of the scripted roles: 4 players, 2 patches, 500 steps.

    From the rules: a diamond patch of radius 2 has 13 cells, 5 of them its core.
    RestrainedHarvesters never eat a core apple, so the core stays full and each of
    the 8 other cells regrows with p(3) = 0.025 (the 4 diagonal cells) or
    p(2) = 0.005 (the 4 tips): 0.12 apples per step and patch while they stand
    empty. Restrained players eat them as they appear, so the group earns about the
    16 outer apples of the start plus 2 * 0.12 per step; 15 % covers regrown apples
    waiting to be eaten, the extra neighbours they give, and the end of the episode.
    A patch with no apple left regrows with p(0) = 0, so once GreedyHarvesters have
    emptied the map nobody earns anything again.
    """
    env = DILEMMA_ENV
    assert env.grass.sum() == 26 and patch_cores(env.grass).sum() == 10
    runs = {k: _play(jnp.arange(4) < k) for k in range(5)}  # k greedy players
    returns = {k: np.asarray(run[0]).sum(axis=1) for k, run in runs.items()}

    # All restrained: cores intact, income at the rule-derived regrowth rate.
    assert np.asarray(runs[0][2])[:, patch_cores(env.grass)].all()
    expected = 16 + 2 * 0.12 * (DILEMMA_STEPS - 1)
    assert abs(returns[0].sum(axis=1).mean() - expected) < 0.15 * expected

    # All greedy: the commons die and never come back.
    rewards = np.asarray(runs[4][0]).sum(axis=-1)  # [seeds, steps]
    counts = np.asarray(runs[4][1])
    for seed in range(DILEMMA_SEEDS):
        assert rewards[seed].sum() >= 26  # every apple of the start was eaten
        empty = np.flatnonzero(counts[seed] == 0)
        assert empty.size > 0  # the map was emptied ...
        assert (counts[seed, empty[0] :] == 0).all()  # ... for good
        assert rewards[seed, empty[0] + 1 :].sum() == 0

    # The group does better the more players restrain themselves ...
    totals = [_mean_and_se(returns[k].sum(axis=1)) for k in range(5)]
    assert totals[0][0] - 5 * totals[0][1] > 3 * (totals[4][0] + 5 * totals[4][1])
    assert all(totals[k][0] >= totals[k + 1][0] - 5 * totals[k][1] for k in range(4))
    # ... while a player facing j restrained others and 3 - j greedy ones earns
    # more by being greedy (D) than by restraint (C), for j = 0, 1, 2. (Facing 3
    # restrained players, restraint pays over 500 steps: a lone greedy player
    # still empties every patch, its own future included.)
    for j in (0, 1, 2):
        defect = _mean_and_se(returns[4 - j][:, : 4 - j])
        cooperate = _mean_and_se(returns[3 - j][:, 3 - j :])
        se = np.hypot(defect[1], cooperate[1])
        assert defect[0] - cooperate[0] > 5 * se, (j, defect, cooperate)
