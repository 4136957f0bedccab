"""Registry, auto-reset, meta-episodes and the checked mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from dilemmas.envs import (
    AutoReset,
    Checked,
    MetaEpisodes,
    check_env,
    make,
    register,
    registered,
)
from dilemmas.envs.matrix_games import MatrixGame
from dilemmas.envs.testing import EnvCheckError


def test_make_returns_env_and_default_params():
    env, params = make("ipd-v0", max_steps=12, payoffs="lola")
    assert isinstance(env, MatrixGame)
    assert int(params.max_steps) == 12
    assert float(params.payoffs[1, 1, 0]) == -2.0


def test_unknown_id_lists_registered_ids():
    with pytest.raises(ValueError, match="ipd-v0"):
        make("ipd-v9")


def test_register_rejects_duplicates_and_unversioned_ids():
    with pytest.raises(ValueError, match="already registered"):
        register("ipd-v0", MatrixGame)
    with pytest.raises(ValueError, match="versioned"):
        register("my_game", MatrixGame)
    assert "my_game" not in registered()


def test_equal_static_config_envs_are_equal():
    assert MatrixGame(payoffs="lola") == MatrixGame(payoffs="coala")
    assert hash(MatrixGame()) == hash(MatrixGame(max_steps=3))
    assert MatrixGame(include_reward=True) != MatrixGame()


def _run(env, params, actions, key):
    obs, state = env.reset(key, params)

    def body(state, xs):
        key_t, a = xs
        ts = env.step(key_t, state, a, params)
        return ts.state, ts

    keys = jax.random.split(key, len(actions))
    return obs, jax.lax.scan(body, state, (keys, jnp.asarray(actions)))[1]


def test_auto_reset_keeps_the_true_final_transition():
    env, params = make("ipd-v0", max_steps=2)
    actions = [[0, 1], [1, 1], [0, 0], [1, 0]]
    _, traj = _run(AutoReset(env), params, actions, jax.random.key(0))
    np.testing.assert_array_equal(traj.truncated, [False, True, False, True])
    np.testing.assert_array_equal(traj.reward[:, 0], [-1, 0, 1, 2])
    # The final observation of the first episode is DD; the next obs is the start.
    np.testing.assert_array_equal(traj.info["final_obs"][1, 0], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(traj.obs[1, 0], [1, 0, 0, 0, 0])
    assert int(traj.state.t[1]) == 0


def test_meta_episodes_flag_inner_boundaries_only():
    env, params = make("ipd-v0", max_steps=3)
    meta = MetaEpisodes(env, num_inner_episodes=2)
    obs0, traj = _run(meta, params, [[1, 1]] * 6, jax.random.key(1))
    np.testing.assert_array_equal(obs0[0], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(
        traj.info["inner_done"], [False, False, True, False, False, True]
    )
    np.testing.assert_array_equal(traj.info["inner_episode"], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(
        traj.truncated, [False, False, False, False, False, True]
    )
    assert not bool(traj.terminated.any())
    # s0 is emitted again at the start of the second inner episode.
    np.testing.assert_array_equal(traj.obs[2, 0], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(traj.info["final_obs"][2, 0], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(traj.obs[3, 0], [0, 0, 0, 0, 1])


def test_wrapped_envs_pass_the_conformance_check():
    env, params = make("ipd-v0", max_steps=4)
    check_env(MetaEpisodes(env, 3), params, num_steps=30)


def test_meta_episodes_rejects_bad_counts():
    env, _ = make("ipd-v0")
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="num_inner_episodes"):
            MetaEpisodes(env, bad)


def test_checked_mode_reports_the_bad_action():
    env, params = make("ipd-v0")
    checked = Checked(env)
    step = jax.jit(checkify.checkify(checked.step))
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    err, _ = step(key, state, jnp.array([0, 1]), params)
    err.throw()
    err, _ = step(key, state, jnp.array([0, 2]), params)
    with pytest.raises(Exception, match="action of agent 1 is 2"):
        err.throw()
    with pytest.raises(ValueError, match="shape"):
        checked.step(key, state, jnp.array([0, 1, 1]), params)
    with pytest.raises(ValueError, match="integers"):
        checked.step(key, state, jnp.array([0.0, 1.0]), params)


class _Int16Counter(MatrixGame):
    def reset(self, key, params):
        obs, state = super().reset(key, params)
        return obs, state.replace(t=state.t.astype(jnp.int16))


class _SecretlyRandom(MatrixGame):
    def step(self, key, state, actions, params):
        ts = super().step(key, state, actions, params)
        return ts._replace(reward=ts.reward + jax.random.uniform(key, (2,)))


class _NaNReward(MatrixGame):
    def step(self, key, state, actions, params):
        ts = super().step(key, state, actions, params)
        return ts._replace(reward=ts.reward * jnp.nan)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (_Int16Counter(), "int32"),
        (_SecretlyRandom(), "stochastic=False"),
        (_NaNReward(), "non-finite"),
    ],
)
def test_check_env_catches_broken_envs(env, message):
    with pytest.raises(EnvCheckError, match=message):
        check_env(env, env.default_params, num_steps=8)
