"""The PettingZoo face: PettingZoo's own test suites, determinism, bad input."""

import pickle
import types

import jax
import numpy as np
import pettingzoo
import pytest
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    render_test,
    seed_test,
)

from dilemmas.envs import make, registered
from dilemmas.envs.pettingzoo import env as aec_env
from dilemmas.envs.pettingzoo import parallel_env

IDS = sorted(registered())


@pytest.mark.parametrize("env_id", IDS)
def test_parallel_api(env_id):
    parallel_api_test(parallel_env(env_id, max_steps=20), num_cycles=60)


@pytest.mark.parametrize("env_id", IDS)
def test_aec_api(env_id):
    api_test(aec_env(env_id, max_steps=20), num_cycles=60)


@pytest.mark.parametrize("env_id", IDS)
def test_registered_with_pettingzoo(env_id):
    par = pettingzoo.make("parallel", f"dilemmas/{env_id}", max_cycles=5)
    assert par.max_cycles == 5
    num_agents = make(env_id)[0].num_agents
    assert par.possible_agents == [f"player_{i}" for i in range(num_agents)]
    aec = pettingzoo.make("aec", f"dilemmas/{env_id}")
    aec.reset(seed=0)
    assert aec.agent_selection == "player_0"


def test_pettingzoo_make_passes_game_kwargs():
    aec = pettingzoo.make("aec", "dilemmas/ipd-v0", payoffs="lola")
    assert float(aec.unwrapped.params.payoffs[1, 1, 0]) == -2.0


@pytest.mark.parametrize("env_id", IDS)
def test_seed_tests(env_id):
    seed_test(lambda: aec_env(env_id, max_steps=30), num_cycles=100)
    parallel_seed_test(lambda: parallel_env(env_id, max_steps=30), num_cycles=100)


@pytest.mark.parametrize("env_id", IDS)
def test_max_cycles(env_id):
    module = types.SimpleNamespace(
        env=lambda max_cycles: aec_env(env_id, max_cycles=max_cycles),
        parallel_env=lambda max_cycles: parallel_env(env_id, max_cycles=max_cycles),
    )
    max_cycles_test(module)


@pytest.mark.parametrize("env_id", IDS)
def test_render(env_id):
    render_test(lambda render_mode=None: aec_env(env_id, render_mode=render_mode))


def _rollout(par, seed, actions):
    obs, _ = par.reset(seed=seed)
    trace = [obs]
    for joint in actions:
        if not par.agents:
            break
        trace.append(par.step(dict(zip(par.agents, joint, strict=True))))
    return trace


def _same(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b, strict=True)
    )


def _random_actions(env_id, steps, seed):
    core = make(env_id)[0]
    rng = np.random.default_rng(seed)
    return rng.integers(0, core.num_actions, size=(steps, core.num_agents))


@pytest.mark.parametrize("env_id", IDS)
def test_multi_step_determinism(env_id):
    # pettingzoo.test.parallel_seed_test (<= 1.27.0) compares only one step.
    actions = _random_actions(env_id, 40, 0).tolist()
    first = _rollout(parallel_env(env_id, max_steps=40), 7, actions)
    second = _rollout(parallel_env(env_id, max_steps=40), 7, actions)
    third = _rollout(parallel_env(env_id, max_steps=40), 8, actions)
    assert len(first) == 41
    assert _same(first, second)
    assert make(env_id)[0].stochastic != _same(first, third)
    assert set(first[-1][3].values()) == {True}


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("ipd-v0", {"include_reward": True}), *[(i, {}) for i in IDS if i != "ipd-v0"]],
)
def test_face_matches_core_trajectory(env_id, kwargs):
    core, params = make(env_id, max_steps=25, **kwargs)
    actions = _random_actions(env_id, 25, 1).astype(np.int32)
    par = parallel_env(env_id, max_steps=25, **kwargs)
    face = _rollout(par, 3, actions.tolist())
    agents = par.possible_agents

    key = jax.random.key(3)
    key, key_reset = jax.random.split(key)
    obs, state = core.reset(key_reset, params)
    np.testing.assert_array_equal(face[0]["player_1"], obs[1])
    for t, joint in enumerate(actions):
        key, key_step = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = core.step(
            key_step, state, joint, params
        )
        f_obs, f_reward, f_term, f_trunc, f_info = face[t + 1]
        for i, agent in enumerate(agents):
            np.testing.assert_array_equal(f_obs[agent], obs[i])
            assert f_reward[agent] == float(reward[i])
            assert f_term[agent] == bool(terminated)
            assert f_trunc[agent] == bool(truncated)
            # Each agent's infos are its own counts: the core's at its index.
            assert f_info[agent] == {name: int(v[i]) for name, v in info.items()}


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_round_trip_continues_identically(env_id):
    par = parallel_env(env_id, max_steps=10)
    par.reset(seed=5)
    first, second = _random_actions(env_id, 2, 2).tolist()
    par.step(dict(zip(par.agents, first, strict=True)))
    clone = pickle.loads(pickle.dumps(par))
    actions = dict(zip(par.agents, second, strict=True))
    assert _same(par.step(actions), clone.step(actions))
    assert clone.action_space("player_0") is clone.action_space("player_0")


def test_spaces_are_cached_objects():
    par = parallel_env("ipd-v0")
    for agent in par.possible_agents:
        assert par.observation_space(agent) is par.observation_space(agent)
        assert par.action_space(agent) is par.action_space(agent)
    with pytest.raises(ValueError, match="unknown agent 'player_7'"):
        par.action_space("player_7")


def test_human_render_prints(capsys):
    par = parallel_env("ipd-v0", render_mode="human")
    par.reset(seed=0)
    par.step({"player_0": 1, "player_1": 0})
    assert "player_0 D (+2), player_1 C (-1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ({"player_0": 2, "player_1": 0}, "action of 'player_0' is 2, outside"),
        ({"player_0": 0, "player_1": -1}, "action of 'player_1' is -1, outside"),
        ({"player_0": 0}, r"missing actions for agents \['player_1'\]"),
        ({"player_0": 0, "player_1": 0, "bob": 1}, "unknown agent 'bob'"),
        ({"player_0": 0.5, "player_1": 0}, "'player_0' must be an integer"),
        ({"player_0": True, "player_1": 0}, "'player_0' must be an integer"),
        ({"player_0": "C", "player_1": 0}, "'player_0' must be an integer"),
        ([0, 1], "must be a dict"),
    ],
)
def test_bad_actions_are_rejected_and_state_is_kept(actions, message):
    par = parallel_env("ipd-v0", max_steps=10)
    par.reset(seed=0)
    par.step({"player_0": 0, "player_1": 1})
    before = (par.state().copy(), par._num_steps, list(par.agents))
    with pytest.raises(ValueError, match=message):
        par.step(actions)
    assert (par.state().tolist(), par._num_steps, par.agents) == (
        before[0].tolist(),
        before[1],
        before[2],
    )
    # The env still works, and continues from where it was.
    obs, rewards, *_ = par.step({"player_0": 1, "player_1": 1})
    assert rewards == {"player_0": 0.0, "player_1": 0.0}
    np.testing.assert_array_equal(obs["player_0"], [0, 0, 0, 0, 1])


def test_numpy_integer_actions_are_accepted():
    par = parallel_env("ipd-v0")
    par.reset(seed=0)
    _, rewards, *_ = par.step({"player_0": np.int64(1), "player_1": np.array(0)})
    assert rewards == {"player_0": 2.0, "player_1": -1.0}


def test_step_before_reset_and_after_the_end():
    par = parallel_env("ipd-v0", max_cycles=1)
    with pytest.raises(ValueError, match="before reset"):
        par.step({"player_0": 0, "player_1": 0})
    par.reset(seed=0)
    par.step({"player_0": 0, "player_1": 0})
    assert par.agents == []
    with pytest.raises(ValueError, match="every agent is done"):
        par.step({"player_0": 0, "player_1": 0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"render_mode": "rgb_array"}, "render_mode"),
        ({"max_cycles": 0}, "max_cycles"),
        ({"payoffs": [1, 2]}, "payoffs"),
        ({"max_steps": -1}, "max_steps"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parallel_env("ipd-v0", **kwargs)


@pytest.mark.parametrize("env_id", IDS)
def test_every_game_rejects_bad_actions_and_keeps_its_state(env_id):
    par = parallel_env(env_id, max_steps=10)
    par.reset(seed=1)
    n = par.action_space("player_0").n
    valid = dict.fromkeys(par.agents, 0)
    before = jax.device_get(par._state)
    for bad, message in [
        ({**valid, "player_0": n}, f"action of 'player_0' is {n}, outside"),
        ({**valid, "player_1": -1}, "action of 'player_1' is -1, outside"),
        ({**valid, "player_1": 1.0}, "'player_1' must be an integer"),
        ({k: v for k, v in valid.items() if k != "player_0"}, "missing actions"),
        ({**valid, "ghost": 0}, "unknown agent 'ghost'"),
    ]:
        with pytest.raises(ValueError, match=message):
            par.step(bad)
        assert _same(jax.device_get(par._state), before)
    par.step(valid)
    assert not _same(jax.device_get(par._state), before)
