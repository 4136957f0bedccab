"""The faces over every game: N-player Gymnasium ids, event counts, episode lengths,
scaled frames and legends.

Expected numbers come from outside the code: the episode lengths the module
docstrings and papers state, the rules worked by hand on hand-built grid states
(pickup +1 and penalty -2 in the Coin Game; eat, clean and zap in Cleanup), and
``np.repeat`` for the scaled frames.
"""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from dilemmas.agents.scripted.cleanup import DedicatedCleaner, Harvester
from dilemmas.envs import grid, make, registered
from dilemmas.envs.cleanup import FIRE_CLEAN, FIRE_ZAP, FORWARD, NOOP, Cleanup
from dilemmas.envs.coin_game import DOWN as COIN_DOWN
from dilemmas.envs.coin_game import RIGHT as COIN_RIGHT
from dilemmas.envs.gymnasium import SingleAgentEnv, gymnasium_id
from dilemmas.envs.pettingzoo import JaxParallelEnv, parallel_env
from dilemmas.envs.pettingzoo import env as aec_env
from dilemmas.envs.seeding import key_from_seed

UP, RIGHT, DOWN, LEFT = grid.UP, grid.RIGHT, grid.DOWN, grid.LEFT

# The small Cleanup map of tests/envs/test_cleanup.py: river rows 1-2, ground rows
# 3-5 with a wall at (4, 5), orchard rows 6-7.
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
SMALL = Cleanup(num_agents=3, layout=LAYOUT)
STEP = jax.jit(SMALL.step)


@struct.dataclass
class Always:
    """A scripted co-player that always plays ``action``."""

    action: int = struct.field(pytree_node=False)

    def act(self, key, state, params, agent):
        del key, state, params, agent
        return jnp.int32(self.action)


# --------------------------------------------------------------------------------------
# Ids and episode lengths


#: The default episode lengths the games' docstrings and sources state.
EPISODE_LENGTHS = {
    "ipd-v0": 100,
    "stag_hunt-v0": 100,
    "chicken-v0": 100,
    "battle_of_the_sexes-v0": 100,
    "matching_pennies-v0": 100,
    "coin_game-v0": 50,  # POLA/LOQA
    "coin_game_two_coins-v0": 50,
    "cleanup_lite-v0": 64,  # COALA-PG's T
    "cleanup-v0": 1000,  # SSD
    "harvest-v0": 1000,
}


def test_every_id_has_a_gymnasium_id_with_its_episode_length():
    assert sorted(EPISODE_LENGTHS) == registered()
    for env_id, length in EPISODE_LENGTHS.items():
        assert gymnasium.spec(gymnasium_id(env_id)).max_episode_steps == length
    env = gymnasium.make("dilemmas/Harvest-v0")
    assert env.spec.max_episode_steps == 1000
    assert env.unwrapped.core.num_agents == 5


def test_the_time_limit_and_the_core_end_an_episode_together():
    env = gymnasium.make("dilemmas/IPD-v0", co_player="tft")
    env.reset(seed=0)
    ends = [env.step(0)[2:4] for _ in range(100)]
    assert ends[:-1] == [(False, False)] * 99 and ends[-1] == (False, True)
    # Longer episodes than the default: the same length to both.
    env = gymnasium.make("dilemmas/IPD-v0", max_steps=120, max_episode_steps=120)
    assert env.spec.max_episode_steps == 120
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(120)].index(True) == 119


# --------------------------------------------------------------------------------------
# N players: the learner among scripted co-players


def test_cleanup_and_harvest_put_the_default_co_player_on_every_other_player():
    env = gymnasium.make("dilemmas/Cleanup-v0", agent=3).unwrapped
    assert env.co_player_agents == (0, 1, 2, 4)
    assert all(isinstance(co, Harvester) for co in env.co_players)
    env.reset(seed=1)
    _, _, _, _, info = env.step(NOOP)
    assert sorted(info["co_player_actions"]) == [
        "player_0",
        "player_1",
        "player_2",
        "player_4",
    ]
    assert "co_player_action" not in info


def test_a_list_of_co_players_plays_the_others_in_index_order():
    seed, steps = 4, 12
    cleaner = DedicatedCleaner(SMALL)
    env = SingleAgentEnv(
        env=SMALL, co_player=["dedicated_cleaner", Harvester(SMALL)], agent=1
    )
    assert env.co_players == (cleaner, Harvester(SMALL))
    actions = np.random.default_rng(5).integers(0, 9, size=steps)
    env.reset(seed=seed)
    face = [env.step(int(a)) for a in actions]

    params = SMALL.default_params
    clean, harvest = (
        jax.jit(cleaner.act, static_argnums=3),
        jax.jit(Harvester(SMALL).act, static_argnums=3),
    )
    key = key_from_seed(seed)
    key, key_reset = jax.random.split(key)
    obs, state = SMALL.reset(key_reset, params)
    for t, action in enumerate(actions):
        key, key_co, key_step = jax.random.split(key, 3)
        key_0, key_2 = jax.random.split(key_co, 2)
        joint = [
            int(clean(key_0, state, params, 0)),
            int(action),
            int(harvest(key_2, state, params, 2)),
        ]
        obs, state, reward, _, _, info = STEP(
            key_step, state, jnp.asarray(joint, jnp.int32), params
        )
        f_obs, f_reward, _, _, f_info = face[t]
        np.testing.assert_array_equal(f_obs, obs[1])
        assert f_reward == float(reward[1])
        assert f_info["co_player_actions"] == {
            "player_0": joint[0],
            "player_2": joint[2],
        }
        for name, value in info.items():
            assert f_info[name] == int(value[1]), (t, name)


class CopyCat:
    """A user's own strategy as a plain class (not a pytree): plays the co-player's
    previous move, C at the start (tit for tat)."""

    def init(self):
        return jnp.zeros((), jnp.int32)

    def act(self, key, state, obs):
        del key, state
        # obs is one-hot over (start, CC, CD, DC, DD) in its own view; the other's
        # previous move was D in CD and DD.
        move = (obs[2] + obs[4] > 0).astype(jnp.int32)
        return move, move


class Still:
    """A user's own scripted policy as a plain class: always noop."""

    def act(self, key, state, params, agent):
        del key, state, params, agent
        return jnp.int32(NOOP)


def test_plain_python_co_players_play_through_the_face():
    env = SingleAgentEnv("ipd-v0", co_player=CopyCat())
    env.reset(seed=0)
    moves = [env.step(a)[4]["co_player_action"] for a in (1, 0, 0, 1, 1)]
    assert moves == [0, 1, 0, 0, 1]  # tit for tat, by hand
    env = SingleAgentEnv(env=SMALL, co_player=[Still(), "harvester"], agent=1)
    env.reset(seed=0)
    assert env.step(NOOP)[4]["co_player_actions"]["player_0"] == NOOP


def test_an_unhashable_plain_co_player_is_refused():
    class Unhashable(Still):
        __hash__ = None

    with pytest.raises(ValueError, match="unhashable"):
        SingleAgentEnv(env=SMALL, co_player=Unhashable())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"co_player": ["harvester"] * 3}, "4 co-players"),
        ({"co_player": ["harvester"] * 5}, r"player_1', 'player_2'"),
        ({"co_player": ["harvester", 3, None, None]}, r"co_player\[1\]"),
        ({"co_player": ["harvester", "nobody", None, None]}, "nobody"),
        ({"agent": 5}, r"agent must be an int in 0\.\.4"),
        ({"agent": -1}, "agent"),
        ({"agent": True}, "agent"),
    ],
)
def test_bad_co_players_and_agents_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gymnasium.make("dilemmas/Cleanup-v0", **kwargs)


# --------------------------------------------------------------------------------------
# Event counts: each agent's own, at its own index


def _cleanup_scene():
    """A hand-built step of SMALL and each agent's counts, worked by hand.

    0 at (3, 2) faces up at dirt (2, 2), the only dirt, and fires its clean beam: it
    cleans 1 cell. 1 at (5, 2) faces down and steps onto the apple at (6, 2): it eats
    1. 2 at (6, 5) faces left and fires a zap: its lane along row 6 reaches (6, 4),
    (6, 3), (6, 2), where 1 now stands, so 2 fires 1 zap that hits 1 avatar and 1
    receives 1 zap.
    """
    _, state = SMALL.reset(jax.random.key(0), SMALL.default_params)
    dirt = np.zeros((SMALL.height, SMALL.width), bool)
    dirt[2, 2] = True
    apples = np.zeros_like(dirt)
    apples[6, 2] = True
    state = state.replace(
        pos=jnp.asarray([[3, 2], [5, 2], [6, 5]], jnp.int32),
        orientation=jnp.asarray([UP, DOWN, LEFT], jnp.int32),
        dirt=jnp.asarray(dirt),
        apples=jnp.asarray(apples),
    )
    actions = [FIRE_CLEAN, FORWARD, FIRE_ZAP]
    counts = [
        {"cells_cleaned": 1, "apples_eaten": 0, "zaps_fired": 0, "zaps_received": 0},
        {"cells_cleaned": 0, "apples_eaten": 1, "zaps_fired": 0, "zaps_received": 1},
        {"cells_cleaned": 0, "apples_eaten": 0, "zaps_fired": 1, "zaps_received": 0},
    ]
    hits = [0, 0, 1]
    return state, actions, counts, hits


def test_gymnasium_info_holds_the_learners_own_counts_in_cleanup():
    state, actions, counts, hits = _cleanup_scene()
    for agent in range(3):
        co_players = [Always(actions[i]) for i in range(3) if i != agent]
        env = SingleAgentEnv(env=SMALL, co_player=co_players, agent=agent)
        env.reset(seed=0)
        env._state = state
        *_, info = env.step(actions[agent])
        assert {k: info[k] for k in counts[agent]} == counts[agent], agent
        assert info["zap_hits"] == hits[agent] and info["removed"] == 0
        others = [i for i in range(3) if i != agent]
        assert info["co_player_actions"] == {f"player_{i}": actions[i] for i in others}


def test_pettingzoo_infos_hold_each_agents_own_counts_in_cleanup():
    state, actions, counts, hits = _cleanup_scene()
    par = JaxParallelEnv(SMALL)
    par.reset(seed=0)
    par._state = state
    _, rewards, _, _, infos = par.step(
        {f"player_{i}": action for i, action in enumerate(actions)}
    )
    assert rewards == {"player_0": 0.0, "player_1": 1.0, "player_2": 0.0}
    for i in range(3):
        info = infos[f"player_{i}"]
        assert {k: info[k] for k in counts[i]} == counts[i]
        assert info["zap_hits"] == hits[i]
        assert all(isinstance(value, int) for value in info.values())


def _coin_state(env_id):
    """Blue (1) at (1, 0) steps right onto the red coin at (1, 1); red (0) at (2, 2)
    steps down (to (0, 2) on the 3 x 3 torus)."""
    core, params = make(env_id)
    _, state = core.reset(jax.random.key(0), params)
    return state.replace(
        agent_pos=jnp.asarray([[2, 2], [1, 0]], jnp.int32),
        coin_pos=jnp.asarray([[1, 1]], jnp.int32),
        coin_colour=jnp.asarray([0], jnp.int32),
    )


def test_coin_game_counts_reach_both_faces_for_the_right_agent():
    state = _coin_state("coin_game-v0")
    # Blue takes red's coin: +1 to blue, -2 to red; a coin of the other colour
    # for blue, a coin lost for red.
    expected = {
        "player_0": ({"own_coins": 0, "other_coins": 0, "coin_lost": 1}, -2.0),
        "player_1": ({"own_coins": 0, "other_coins": 1, "coin_lost": 0}, 1.0),
    }
    par = parallel_env("coin_game-v0")
    par.reset(seed=0)
    par._state = state
    _, rewards, _, _, infos = par.step({"player_0": COIN_DOWN, "player_1": COIN_RIGHT})
    assert {a: (infos[a], rewards[a]) for a in infos} == expected

    env = SingleAgentEnv("coin_game-v0", co_player=Always(COIN_DOWN), agent=1)
    env.reset(seed=0)
    env._state = state
    _, reward, _, _, info = env.step(COIN_RIGHT)
    assert (info, reward) == (
        {**expected["player_1"][0], "co_player_action": COIN_DOWN},
        1.0,
    )


def test_matrix_game_infos_stay_empty_but_for_the_co_player():
    par = parallel_env("ipd-v0")
    par.reset(seed=0)
    assert par.step({"player_0": 0, "player_1": 1})[4] == {
        "player_0": {},
        "player_1": {},
    }


# --------------------------------------------------------------------------------------
# Frames: scale k is np.repeat of scale 1; bad scales are refused


#: Frame sizes at scale 1: 16 pixels a cell (3 x 3, 5 x 4, 16 x 20, 15 x 22 maps).
FRAME_SHAPES = {
    "coin_game-v0": (48, 48, 3),
    "cleanup_lite-v0": (80, 64, 3),
    "cleanup-v0": (256, 320, 3),
    "harvest-v0": (240, 352, 3),
}


def _repeat(frame, k):
    return np.repeat(np.repeat(frame, k, axis=0), k, axis=1)


@pytest.mark.parametrize("env_id", sorted(FRAME_SHAPES))
def test_a_scaled_frame_is_the_frame_with_each_pixel_repeated(env_id):
    par = {k: parallel_env(env_id, render_mode="rgb_array", scale=k) for k in (1, 3)}
    for env in par.values():
        env.reset(seed=2)
    frame = par[1].render()
    assert frame.shape == FRAME_SHAPES[env_id] and frame.dtype == np.uint8
    np.testing.assert_array_equal(par[3].render(), _repeat(frame, 3))

    gym = {
        k: gymnasium.make(gymnasium_id(env_id), render_mode="rgb_array", scale=k)
        for k in (1, 2)
    }
    for env in gym.values():
        env.reset(seed=2)
    np.testing.assert_array_equal(gym[2].render(), _repeat(gym[1].render(), 2))


def test_aec_face_passes_scale_on():
    aec = aec_env("coin_game-v0", render_mode="rgb_array", scale=2)
    aec.reset(seed=0)
    assert aec.render().shape == (96, 96, 3)


@pytest.mark.parametrize("scale", [0, -1, 1.5, 2.0, True, "2", None, [2]])
def test_bad_scales_are_refused(scale):
    with pytest.raises(ValueError, match="scale must be a positive int"):
        parallel_env("coin_game-v0", render_mode="rgb_array", scale=scale)
    with pytest.raises(ValueError, match="scale must be a positive int"):
        SingleAgentEnv("coin_game-v0", render_mode="rgb_array", scale=scale)


def test_scale_without_rgb_frames_is_refused():
    for render_mode in (None, "ansi"):
        with pytest.raises(ValueError, match="scale=2 applies only to render_mode"):
            parallel_env("coin_game-v0", render_mode=render_mode, scale=2)
        with pytest.raises(ValueError, match="scale=2 applies only to render_mode"):
            SingleAgentEnv("coin_game-v0", render_mode=render_mode, scale=2)
    assert (
        np.int64(2)
        == parallel_env(
            "coin_game-v0", render_mode="rgb_array", scale=np.int64(2)
        ).scale
    )


# --------------------------------------------------------------------------------------
# Legends: every symbol and colour drawn is explained


def _drawn(env_id, steps=30, **kwargs):
    """The characters of the map rows and the colours of the frames along a random
    episode, and the legend."""
    core, params = make(env_id, **kwargs)
    step = jax.jit(core.step)
    key = jax.random.key(0)
    _, state = core.reset(key, params)
    rng = np.random.default_rng(0)
    chars, colours = set(), set()
    for t in range(steps):
        text = core.render_ansi(state, params).split("\n")
        rows = text[1 : 1 + core.height] if hasattr(core, "height") else []
        chars |= {c for row in rows for c in row if c != " "}
        if "rgb_array" in core.render_modes:
            frame = core.render_rgb(state, params)
            colours |= {tuple(int(v) for v in p) for p in frame.reshape(-1, 3)}
        actions = rng.integers(0, core.num_actions, core.num_agents)
        state = step(
            jax.random.key(t), state, jnp.asarray(actions, jnp.int32), params
        ).state
    return chars, colours, core.render_legend()


@pytest.mark.parametrize("env_id", sorted(FRAME_SHAPES))
def test_every_symbol_and_colour_drawn_is_in_the_legend(env_id):
    chars, colours, legend = _drawn(env_id)
    symbols = {c for entry in legend if entry.ansi for c in entry.ansi}
    assert chars and chars <= symbols
    assert colours and colours <= {entry.rgb for entry in legend if entry.rgb}


def test_legend_colours_are_the_palettes():
    cleanup, _ = make("cleanup-v0")
    legend = {entry.meaning: entry for entry in cleanup.render_legend()}
    assert legend["wall"].ansi == "#" and legend["wall"].rgb == (95, 95, 95)
    assert [legend[f"avatar {i} (player_{i})"].ansi for i in range(5)] == list("01234")
    coin, _ = make("coin_game-v0")
    assert coin.render_legend()[1].rgb == (214, 39, 40)  # the red agent
    ipd, _ = make("ipd-v0")
    assert [entry.ansi for entry in ipd.render_legend()][:2] == ["C", "D"]
