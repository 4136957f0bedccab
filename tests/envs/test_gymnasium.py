"""The Gymnasium face: env checker, co-player behaviour, core equivalence, bad input."""

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from dilemmas.agents.scripted.coin_game import GreedyCoinTaker
from dilemmas.agents.strategies import make as make_strategy
from dilemmas.envs import make, registered
from dilemmas.envs.gymnasium import SingleAgentEnv, gymnasium_id
from dilemmas.envs.seeding import key_from_seed

IDS = registered()


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_env_checker(env_id):
    for render_mode in make(env_id)[0].render_modes:
        env = gymnasium.make(gymnasium_id(env_id), render_mode=render_mode)
        check_env(env.unwrapped)
        env.close()


def test_every_registered_game_gets_a_gymnasium_id():
    for env_id in IDS:
        assert gymnasium_id(env_id) in gymnasium.registry
    assert {"dilemmas/Cleanup-v0", "dilemmas/Harvest-v0"} <= set(gymnasium.registry)


def test_rgb_frames_where_the_core_draws_them():
    env = gymnasium.make("dilemmas/CoinGame-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    with pytest.raises(ValueError, match="render_mode"):
        SingleAgentEnv("ipd-v0", render_mode="rgb_array")


def test_ids_are_camel_case():
    assert gymnasium_id("ipd-v0") == "dilemmas/IPD-v0"
    assert gymnasium_id("battle_of_the_sexes-v0") == "dilemmas/BattleOfTheSexes-v0"
    assert "dilemmas/StagHunt-v0" in gymnasium.registry


def _play(env, actions, seed=0):
    env.reset(seed=seed)
    out = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        out.append((info["co_player_action"], reward, terminated, truncated))
    return out


def test_tft_co_player_mirrors_the_learner():
    env = gymnasium.make("dilemmas/IPD-v0", co_player="tft", max_steps=4)
    played = _play(env, [1, 0, 0, 1])
    # COALA payoffs: DC pays the row player 2, CD -1, CC 1.
    assert played == [
        (0, 2.0, False, False),
        (1, -1.0, False, False),
        (0, 1.0, False, False),
        (0, 2.0, False, True),
    ]


def test_learner_as_column_player():
    env = gymnasium.make(
        "dilemmas/IPD-v0", co_player="alld", agent=1, payoffs="axelrod"
    )
    played = _play(env, [0, 1])
    assert [(co, reward) for co, reward, *_ in played] == [(1, 0.0), (1, 1.0)]


def test_observation_is_the_learners_first_person_view():
    env = gymnasium.make("dilemmas/IPD-v0", co_player="allc")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [1, 0, 0, 0, 0])
    obs, *_ = env.step(1)
    np.testing.assert_array_equal(obs, [0, 0, 0, 1, 0])  # DC: I defected


def test_face_matches_core_with_a_stochastic_co_player():
    seed, steps = 11, 30
    env = SingleAgentEnv("ipd-v0", co_player="random", max_steps=steps)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, size=steps)
    env.reset(seed=seed)
    face = [env.step(int(a)) for a in actions]

    core, params = make("ipd-v0", max_steps=steps)
    co_player = make_strategy("random")
    key = key_from_seed(seed)
    key, key_reset = jax.random.split(key)
    obs, state = core.reset(key_reset, params)
    co_state = co_player.init()
    co_moves = []
    for t, action in enumerate(actions):
        key, key_co, key_step = jax.random.split(key, 3)
        co_action, co_state = co_player.act(key_co, co_state, obs[1])
        co_moves.append(int(co_action))
        obs, state, reward, _, truncated, _ = core.step(
            key_step, state, np.array([action, co_action], np.int32), params
        )
        np.testing.assert_array_equal(face[t][0], obs[0])
        assert face[t][1] == float(reward[0])
        assert face[t][3] == bool(truncated)
        assert face[t][4]["co_player_action"] == int(co_action)
    assert 0 < sum(co_moves) < steps  # the co-player really was random


def test_same_seed_same_episode_and_new_seed_differs():
    env = SingleAgentEnv("ipd-v0", co_player="random", max_steps=40)
    actions = [0] * 40
    assert _play(env, actions, seed=3) == _play(env, actions, seed=3)
    assert _play(env, actions, seed=3) != _play(env, actions, seed=4)


def test_face_matches_core_with_a_scripted_co_player():
    seed, steps = 2, 20
    env = SingleAgentEnv("coin_game-v0", co_player="greedy", agent=1, max_steps=steps)
    actions = np.random.default_rng(3).integers(0, 4, size=steps)
    env.reset(seed=seed)
    face = [env.step(int(a)) for a in actions]

    core, params = make("coin_game-v0", max_steps=steps)
    greedy = GreedyCoinTaker(env=core)
    key = key_from_seed(seed)
    key, key_reset = jax.random.split(key)
    obs, state = core.reset(key_reset, params)
    for t, action in enumerate(actions):
        key, key_co, key_step = jax.random.split(key, 3)
        co_action = greedy.act(key_co, state, params, 0)
        obs, state, reward, _, truncated, _ = core.step(
            key_step, state, np.array([co_action, action], np.int32), params
        )
        np.testing.assert_array_equal(face[t][0], obs[1])
        assert face[t][1] == float(reward[1])
        assert face[t][4]["co_player_action"] == int(co_action)
    assert face[-1][3]


def test_strategy_object_as_co_player():
    env = SingleAgentEnv("ipd-v0", co_player=make_strategy("alld"))
    assert [co for co, *_ in _play(env, [0, 0, 0])] == [1, 1, 1]


@pytest.mark.parametrize("action", [2, -1, 0.5, True, "C", None])
def test_bad_actions_are_rejected_and_state_is_kept(action):
    env = SingleAgentEnv("ipd-v0", co_player="tft", max_steps=5)
    env.reset(seed=0)
    env.step(1)
    state_before = jax.device_get(env._state)
    with pytest.raises(ValueError, match="player_0"):
        env.step(action)
    assert jax.tree.all(
        jax.tree.map(np.array_equal, jax.device_get(env._state), state_before)
    )
    _, reward, *_ = env.step(0)
    assert reward == -1.0  # TFT answers my earlier defection: I get S


def test_step_before_reset():
    env = SingleAgentEnv("ipd-v0")
    with pytest.raises(ValueError, match="before reset"):
        env.step(0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"co_player": "nobody"}, "nobody"),
        ({"co_player": 3}, "co_player"),
        ({"agent": 2}, "agent"),
        ({"render_mode": "human"}, "render_mode"),
        ({"max_steps": 0}, "max_steps"),
        ({"co_player": make_strategy("tft"), "co_player_kwargs": {"p": 1}}, "named"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SingleAgentEnv("ipd-v0", **kwargs)
