"""The matrix-game core against payoff tables and the observation convention."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dilemmas.envs import check_env, make, registered
from dilemmas.envs.matrix_games import GAMES, PAX_OBS_ORDER, MatrixGame
from dilemmas.envs.payoffs import rstp

# (CC, CD, DC, DD) as (row, col) rewards, typed from specs/matrix_games.md section 1.
TABLES = {
    ("ipd-v0", "coala"): [(1, 1), (-1, 2), (2, -1), (0, 0)],
    ("ipd-v0", "lola"): [(-1, -1), (-3, 0), (0, -3), (-2, -2)],
    ("ipd-v0", "axelrod"): [(3, 3), (0, 5), (5, 0), (1, 1)],
    ("ipd-v0", "pax_test"): [(2, 2), (0, 3), (3, 0), (1, 1)],
    ("ipd-v0", "openspiel"): [(5, 5), (0, 10), (10, 0), (1, 1)],
    ("stag_hunt-v0", None): [(4, 4), (1, 3), (3, 1), (2, 2)],
    ("chicken-v0", None): [(0, 0), (-1, 1), (1, -1), (-2, -2)],
    ("battle_of_the_sexes-v0", None): [(3, 2), (0, 0), (0, 0), (2, 3)],
    ("matching_pennies-v0", None): [(1, -1), (-1, 1), (-1, 1), (1, -1)],
}
JOINT = [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_every_game_is_registered():
    assert {env_id for env_id, _ in TABLES} == set(GAMES)
    assert set(GAMES) <= set(registered())


@pytest.mark.parametrize(("env_id", "preset"), TABLES)
def test_every_joint_action_pays_the_table(env_id, preset):
    kwargs = {} if preset is None else {"payoffs": preset}
    env, params = make(env_id, **kwargs)
    step = jax.jit(env.step)
    key = jax.random.key(0)
    for (a0, a1), expected in zip(JOINT, TABLES[env_id, preset], strict=True):
        _, state = env.reset(key, params)
        ts = step(key, state, jnp.array([a0, a1], jnp.int32), params)
        np.testing.assert_array_equal(ts.reward, np.array(expected, np.float32))


@pytest.mark.parametrize("env_id", sorted(GAMES))
def test_conformance(env_id):
    env, params = make(env_id)
    check_env(env, params)


def test_conformance_with_reward_in_obs():
    env, params = make("ipd-v0", include_reward=True, max_steps=7)
    check_env(env, params)


def test_default_ipd_is_coala():
    env, _ = make("ipd-v0")
    assert rstp(env._payoffs) == (1.0, -1.0, 2.0, 0.0)


def test_first_person_observations():
    env, params = make("ipd-v0")
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    np.testing.assert_array_equal(obs, [[1, 0, 0, 0, 0]] * 2)
    # player_0 cooperates, player_1 defects: player_0 sees CD, player_1 sees DC.
    ts = env.step(key, state, jnp.array([0, 1]), params)
    np.testing.assert_array_equal(ts.obs, [[0, 0, 1, 0, 0], [0, 0, 0, 1, 0]])
    for a0, a1 in itertools.product((0, 1), repeat=2):
        ts = env.step(key, state, jnp.array([a0, a1]), params)
        assert int(jnp.argmax(ts.obs[0])) == 1 + 2 * a0 + a1
        assert int(jnp.argmax(ts.obs[1])) == 1 + 2 * a1 + a0


def test_pax_permutation_puts_start_last():
    env, params = make("ipd-v0")
    obs, _ = env.reset(jax.random.key(0), params)
    np.testing.assert_array_equal(obs[0][np.array(PAX_OBS_ORDER)], [0, 0, 0, 0, 1])


def test_previous_reward_in_observation():
    env, params = make("ipd-v0", include_reward=True)
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    assert obs.shape == (2, 6)
    np.testing.assert_array_equal(obs[:, 5], [0, 0])
    ts = env.step(key, state, jnp.array([0, 1]), params)
    np.testing.assert_array_equal(ts.obs[:, 5], [-1, 2])


def test_truncation_after_max_steps_and_int32_counter():
    env, params = make("ipd-v0", max_steps=3)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    flags = []
    for _ in range(3):
        ts = env.step(key, state, jnp.array([0, 0]), params)
        state = ts.state
        flags.append((bool(ts.terminated), bool(ts.truncated)))
    assert flags == [(False, False), (False, False), (False, True)]
    assert state.t.dtype == jnp.int32


def test_vmap_over_payoff_presets_is_one_sweep():
    env = MatrixGame()
    presets = ["coala", "lola", "axelrod"]
    params = jax.tree.map(
        lambda *x: jnp.stack(x), *[env.make_params(payoffs=p) for p in presets]
    )

    def mutual_defection(p):
        _, state = env.reset(jax.random.key(0), p)
        return env.step(jax.random.key(0), state, jnp.array([1, 1]), p).reward

    rewards = jax.vmap(mutual_defection)(params)
    np.testing.assert_array_equal(rewards[:, 0], [0, -2, 1])


@pytest.mark.parametrize(
    ("payoffs", "message"),
    [
        ([[1, 2], [3, 4]], "shape"),
        ([1, 2, 3], "shape"),
        ([1.0, np.nan, 2.0, 0.0], "finite"),
        ("prisoners", "unknown payoff preset"),
        ("nope", "coala"),
        (object(), "numeric"),
    ],
)
def test_malformed_payoffs_are_rejected(payoffs, message):
    with pytest.raises(ValueError, match=message):
        MatrixGame(payoffs=payoffs)


@pytest.mark.parametrize("max_steps", [0, -5, 2.5, True, "10"])
def test_bad_horizons_are_rejected(max_steps):
    with pytest.raises(ValueError, match="max_steps"):
        MatrixGame(max_steps=max_steps)
    with pytest.raises(ValueError, match="max_steps"):
        MatrixGame().make_params(max_steps=max_steps)


def test_render_ansi_names_moves_and_rewards():
    env, params = make("ipd-v0", max_steps=5)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    assert env.render_ansi(state, params) == "round 0/5: no moves yet"
    ts = env.step(key, state, jnp.array([1, 0]), params)
    assert env.render_ansi(ts.state, params) == (
        "round 1/5: player_0 D (+2), player_1 C (-1)"
    )


_FINITE = st.floats(-100, 100, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(
    table=st.lists(_FINITE, min_size=8, max_size=8),
    actions=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=12
    ),
)
def test_any_table_any_actions_pay_the_lookup_and_observe_the_last_move(table, actions):
    env = MatrixGame(payoffs=np.reshape(table, (2, 2, 2)), max_steps=len(actions))
    params = env.default_params
    _, traj = _STEP_SCAN(env, params, jnp.asarray(actions, jnp.int32))
    expected_reward = np.array(
        [[table[4 * a0 + 2 * a1], table[4 * a0 + 2 * a1 + 1]] for a0, a1 in actions],
        np.float32,
    )
    np.testing.assert_array_equal(traj.reward, expected_reward)
    expected_obs = [[1 + 2 * a0 + a1, 1 + 2 * a1 + a0] for a0, a1 in actions]
    np.testing.assert_array_equal(np.argmax(traj.obs, axis=-1), expected_obs)
    truncated = np.zeros(len(actions), bool)
    truncated[-1] = True
    np.testing.assert_array_equal(traj.truncated, truncated)


def _scan_actions(env, params, actions):
    _, state = env.reset(jax.random.key(0), params)

    def body(state, a):
        ts = env.step(jax.random.key(0), state, a, params)
        return ts.state, ts

    return jax.lax.scan(body, state, actions)


_STEP_SCAN = jax.jit(_scan_actions, static_argnums=0)
