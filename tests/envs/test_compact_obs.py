"""The compact observation format of the grid games (issue #16).

``obs_format="compact"`` gives one small-integer code per cell instead of one-hot
planes. The code tables below are written out here from the documentation (module
docstrings of Cleanup, Harvest and the Coin Game), not taken from the library's
encoder: compact observations decoded with them must equal the planes of the same
state, and the planes encoded with them must equal the compact observations.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.envs import make
from dilemmas.envs.cleanup import Cleanup
from dilemmas.envs.coin_game import CoinGame
from dilemmas.envs.harvest import Harvest
from dilemmas.envs.pettingzoo import parallel_env
from dilemmas.envs.testing import check_env

SEEDS = (0, 1, 2)
STEPS = 40

# ------------------------------------------------------------------ code tables
# Cleanup/Harvest: code = terrain + T * avatar. Each table entry lists the planes
# (by name, as in env.channel_names) that are set in a cell with that code.

CLEANUP_TERRAIN = (
    (),  # 0 ground
    ("wall",),  # 1
    ("river",),  # 2
    ("river", "dirt"),  # 3
    ("orchard",),  # 4
    ("orchard", "apple"),  # 5
)
HARVEST_TERRAIN = (
    (),  # 0 ground
    ("wall",),  # 1
    ("grass",),  # 2
    ("grass", "apple"),  # 3
)
EGO_OTHERS = tuple(f"others_facing_{d}" for d in ("same", "right", "back", "left"))
FULL_SELF = tuple(f"self_facing_{d}" for d in "urdl")
FULL_OTHERS = tuple(f"others_facing_{d}" for d in "urdl")


def _avatar_table(flags: tuple[str, ...], egocentric: bool) -> list[tuple[str, ...]]:
    """Avatar part: 0 none; the viewer itself with each flag combination (flag k
    is bit k; full view: ``1 + facing + 4 * bits``); then the others."""
    table: list[tuple[str, ...]] = [()]
    own = ("self",) if egocentric else FULL_SELF
    for bits in range(2 ** len(flags)):
        set_flags = tuple(f for k, f in enumerate(flags) if bits >> k & 1)
        table += [(name, *set_flags) for name in own]
    table += [(name,) for name in (EGO_OTHERS if egocentric else FULL_OTHERS)]
    return table


def _commons_table(env) -> list[tuple[str, ...]]:
    """``table[code]``: the planes set in a cell with that code (the flag names in
    an entry stand for the constant flag planes, read from the viewer's own cell)."""
    if isinstance(env, Cleanup):
        terrain, flags = CLEANUP_TERRAIN, ("ready_to_zap", "ready_to_clean")
    else:
        terrain, flags = HARVEST_TERRAIN, ("ready_to_zap",)
    avatars = _avatar_table(flags, env.view is not None)
    return [cell + avatar for avatar in avatars for cell in terrain]


def _decode_commons(env, codes: np.ndarray) -> np.ndarray:
    """``uint8[N, C, h, w]`` planes from ``codes`` (``[N, h, w]``)."""
    table = _commons_table(env)
    names = env.channel_names
    flag_names = [n for n in names if n.startswith("ready_to_")]
    planes = np.zeros((codes.shape[0], len(names), *codes.shape[1:]), np.uint8)
    for agent, code_grid in enumerate(codes):
        for row, col in itertools.product(*map(range, code_grid.shape)):
            for name in table[code_grid[row, col]]:
                if name in flag_names:  # a constant plane, set everywhere
                    planes[agent, names.index(name)] = 1
                else:
                    planes[agent, names.index(name), row, col] = 1
    return planes


def _encode_commons(env, planes: np.ndarray) -> np.ndarray:
    """``[N, h, w]`` codes from planes, by looking each cell up in the table."""
    table = _commons_table(env)
    names = env.channel_names
    lookup = {frozenset(entry): code for code, entry in enumerate(table)}
    assert len(lookup) == len(table), "two codes decode to the same planes"
    flag_names = [n for n in names if n.startswith("ready_to_")]
    codes = np.zeros((planes.shape[0], *planes.shape[2:]), np.int64)
    for agent, cell_planes in enumerate(planes):
        for row, col in itertools.product(*map(range, cell_planes.shape[1:])):
            on = {n for i, n in enumerate(names) if cell_planes[i, row, col]}
            if not on & {"self", *FULL_SELF}:  # flags live on the own cell only
                on -= set(flag_names)
            codes[agent, row, col] = lookup[frozenset(on)]
    return codes


def _decode_coin(codes: np.ndarray) -> np.ndarray:
    """Coin Game: bit k of a code is plane k (own, other, own coin, other coin)."""
    return np.stack([(codes >> k) & 1 for k in range(4)], axis=1).astype(np.float32)


def _encode_coin(planes: np.ndarray) -> np.ndarray:
    weights = np.array([1, 2, 4, 8])
    return np.einsum("nk...,k->n...", planes.astype(np.int64), weights)


# ------------------------------------------------------------------ rollouts


def _rollout_pairs(planes_env, compact_env, params, seed: int):
    """Yield ``(planes_obs, compact_obs)`` of the same states: reset and ``STEPS``
    random-action steps with the same keys (the format does not touch the rules)."""
    key = jax.random.key(seed)
    key, key_reset = jax.random.split(key)
    obs_p, state_p = planes_env.reset(key_reset, params)
    obs_c, state_c = compact_env.reset(key_reset, params)
    yield np.asarray(obs_p), np.asarray(obs_c)
    for _ in range(STEPS):
        key, key_act, key_step = jax.random.split(key, 3)
        actions = jax.random.randint(
            key_act, (planes_env.num_agents,), 0, planes_env.num_actions, jnp.int32
        )
        ts_p = planes_env.step(key_step, state_p, actions, params)
        ts_c = compact_env.step(key_step, state_c, actions, params)
        assert jax.tree.all(jax.tree.map(np.array_equal, ts_p.state, ts_c.state)), (
            "the observation format changed the dynamics"
        )
        state_p, state_c = ts_p.state, ts_c.state
        yield np.asarray(ts_p.obs), np.asarray(ts_c.obs)


SMALL_CLEANUP = dict(num_agents=4, height=9, width=10, river_rows=2, orchard_rows=3)
SMALL_HARVEST = dict(num_agents=4, height=10, width=12, patch_radius=1)
# Apples and dirt early, zaps often, short time-outs: every kind of cell shows up.
CLEANUP_PARAMS = dict(
    initial_dirt_fraction=0.3,
    max_apple_growth=0.5,
    dirt_spawn_delay=0,
    zap_cooldown=2,
    clean_cooldown=1,
    zap_respawn=2,
)
HARVEST_PARAMS = dict(zap_cooldown=1, zap_respawn=2)

COMMONS_CASES = {
    "cleanup": (Cleanup, SMALL_CLEANUP, CLEANUP_PARAMS, (9, 1, 5, 5)),
    "cleanup_full": (Cleanup, SMALL_CLEANUP, CLEANUP_PARAMS, None),
    "cleanup_ssd_view": (Cleanup, SMALL_CLEANUP, CLEANUP_PARAMS, (7, 7, 7, 7)),
    "harvest": (Harvest, SMALL_HARVEST, HARVEST_PARAMS, (9, 1, 5, 5)),
    "harvest_full": (Harvest, SMALL_HARVEST, HARVEST_PARAMS, None),
}


@pytest.mark.parametrize("case", sorted(COMMONS_CASES))
def test_commons_compact_codes_match_the_planes(case):
    cls, sizes, overrides, view = COMMONS_CASES[case]
    planes_env = cls(**sizes, view=view)
    compact_env = cls(**sizes, view=view, obs_format="compact")
    params = planes_env.make_params(**overrides)
    space = compact_env.observation_space()
    seen_codes: set[int] = set()
    removed_seen = False
    for seed in SEEDS:
        for planes, compact in _rollout_pairs(planes_env, compact_env, params, seed):
            assert planes.dtype == planes_env.observation_space().dtype == np.uint8
            assert compact.dtype == np.uint8
            assert compact.shape == (planes_env.num_agents, *space.shape)
            assert compact.shape == (planes.shape[0], *planes.shape[2:])
            np.testing.assert_array_equal(_decode_commons(planes_env, compact), planes)
            np.testing.assert_array_equal(_encode_commons(planes_env, planes), compact)
            seen_codes |= set(np.unique(compact).tolist())
            removed_seen |= bool((planes.reshape(len(planes), -1).max(1) == 0).any())
    table = _commons_table(planes_env)
    assert space.high.max() == len(table) - 1 and len(compact_env.code_names) == len(
        table
    )
    # The rollouts reach apples, other avatars, both flag states and removals.
    names = [set(table[c]) for c in seen_codes]
    assert any("apple" in n for n in names)
    assert sum(bool(n & set(EGO_OTHERS + FULL_OTHERS)) for n in names) >= 4
    assert any(n & {"self", *FULL_SELF} and "ready_to_zap" in n for n in names)
    assert any(n & {"self", *FULL_SELF} and "ready_to_zap" not in n for n in names)
    assert removed_seen


COIN_CASES = [
    dict(num_coins=c, flat_obs=f, egocentric=e, height=h, width=w)
    for c, f, e, (h, w) in itertools.product(
        (1, 2), (True, False), (False, True), ((3, 3), (4, 5))
    )
]


@pytest.mark.parametrize(
    "kwargs", COIN_CASES, ids=lambda k: "-".join(f"{v}" for v in k.values())
)
def test_coin_game_compact_codes_match_the_planes(kwargs):
    planes_env = CoinGame(**kwargs)
    compact_env = CoinGame(**kwargs, obs_format="compact")
    params = planes_env.default_params
    shape = (planes_env.height, planes_env.width)
    seen: set[int] = set()
    for seed in SEEDS:
        for planes, compact in _rollout_pairs(planes_env, compact_env, params, seed):
            assert compact.dtype == np.uint8
            assert compact.shape == (2, *compact_env.observation_space().shape)
            planes = planes.reshape(2, 4, *shape)
            codes = compact.reshape(2, *shape)
            np.testing.assert_array_equal(_decode_coin(codes), planes)
            np.testing.assert_array_equal(_encode_coin(planes), codes)
            seen |= set(np.unique(codes).tolist())
    assert {0, 1, 2} <= seen and seen & {4, 5, 6, 7} and seen & {8, 9, 10, 11}


# ------------------------------------------------------------------ contract


COMPACT_IDS = ("cleanup-v0", "harvest-v0", "coin_game-v0", "coin_game_two_coins-v0")


@pytest.mark.parametrize("env_id", COMPACT_IDS)
def test_check_env_passes_on_the_compact_variant(env_id):
    env, params = make(env_id, obs_format="compact")
    check_env(env, params)


@pytest.mark.parametrize("env_id", COMPACT_IDS)
def test_pettingzoo_observations_lie_in_the_compact_space(env_id):
    par = parallel_env(env_id, obs_format="compact")
    observations, _ = par.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        for agent in par.agents:
            space = par.observation_space(agent)
            assert space.dtype == np.uint8 and space.low.min() == 0
            assert observations[agent].dtype == np.uint8
            assert space.contains(observations[agent]), observations[agent]
        actions = {a: int(rng.integers(par.action_space(a).n)) for a in par.agents}
        observations, *_ = par.step(actions)
    par.close()


@pytest.mark.parametrize("env_id", COMPACT_IDS)
def test_rendering_works_with_the_compact_format(env_id):
    env, params = make(env_id, obs_format="compact")
    planes_env, _ = make(env_id)
    _, state = env.reset(jax.random.key(0), params)
    assert env.render_ansi(state, params) == planes_env.render_ansi(state, params)
    np.testing.assert_array_equal(
        env.render_rgb(state, params), planes_env.render_rgb(state, params)
    )


@pytest.mark.parametrize("env_id", COMPACT_IDS)
def test_the_format_is_part_of_the_static_config(env_id):
    planes_env, _ = make(env_id)
    assert planes_env.obs_format == "planes"
    assert make(env_id, obs_format="planes")[0] == planes_env
    compact, _ = make(env_id, obs_format="compact")
    other, _ = make(env_id, obs_format="compact")
    assert compact == other and hash(compact) == hash(other)
    assert compact != planes_env
    assert "compact" in compact.static_config()


@pytest.mark.parametrize("env_id", COMPACT_IDS)
@pytest.mark.parametrize("bad", ["dense", "Planes", "", None, 1])
def test_a_bad_obs_format_is_refused_naming_the_allowed_values(env_id, bad, caplog):
    with (
        jax.log_compiles(True),
        caplog.at_level("DEBUG", logger="jax"),
        pytest.raises(ValueError, match="obs_format") as error,
    ):
        make(env_id, obs_format=bad)
    compiled = [r.getMessage() for r in caplog.records if "ompil" in r.getMessage()]
    assert not compiled, f"compiled before refusing: {compiled}"
    assert "'planes'" in str(error.value) and "'compact'" in str(error.value)
    with pytest.raises(ValueError, match="'planes', 'compact'"):
        parallel_env(env_id, obs_format=bad)
