"""A public conformance checker for JAX core environments.

``check_env(env, params)`` is what our tests run on every registered id, and what a
user writing a new game should run on theirs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.envs.core import MultiAgentEnv, Timestep
from dilemmas.envs.wrappers import AutoReset

_EAGER_STEPS = 8


class EnvCheckError(AssertionError):
    """An environment broke the contract of :mod:`dilemmas.envs.core`."""


def _fail(message: str) -> None:
    raise EnvCheckError(message)


def _rollout(
    env: MultiAgentEnv,
    params: Any,
    key: jax.Array,
    num_steps: int,
    actions: jax.Array | None = None,
):
    """Reset, then ``num_steps`` auto-resetting steps; random actions unless given."""
    looped = AutoReset(env)
    key_reset, key_steps = jax.random.split(key)
    obs, state = looped.reset(key_reset, params)

    def body(carry, xs):
        state = carry
        key_t, actions_t = xs
        key_env, key_act = jax.random.split(key_t)
        if actions is None:
            actions_t = jax.random.randint(
                key_act, (env.num_agents,), 0, env.num_actions, jnp.int32
            )
        ts = looped.step(key_env, state, actions_t, params)
        return ts.state, (ts, actions_t)

    keys = jax.random.split(key_steps, num_steps)
    given = (
        jnp.zeros((num_steps, env.num_agents), jnp.int32)
        if actions is None
        else actions
    )
    final_state, (traj, taken) = jax.lax.scan(body, state, (keys, given))
    return obs, state, final_state, traj, taken


def _leaves_equal(a: Any, b: Any) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    if jax.tree.structure(a) != jax.tree.structure(b) or len(la) != len(lb):
        return False
    return all(
        np.asarray(x).shape == np.asarray(y).shape
        and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb, strict=True)
    )


def _leaves_close(a: Any, b: Any) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        np.allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6, equal_nan=True)
        for x, y in zip(la, lb, strict=True)
    )


def _signature(tree: Any) -> Any:
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def _take(tree: Any, index: int) -> Any:
    return jax.tree.map(lambda x: x[index], tree)


def _check_dtypes(env: MultiAgentEnv, obs, state, ts: Timestep) -> None:
    num_agents = env.num_agents
    obs_space = env.observation_space()
    expected = (num_agents, *obs_space.shape)
    if obs.shape != expected:
        _fail(f"obs has shape {obs.shape}, expected {expected} ([num_agents, *space])")
    if obs.dtype != obs_space.dtype:
        _fail(f"obs dtype {obs.dtype} differs from the space's {obs_space.dtype}")
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        leaf = jnp.asarray(leaf)
        if jnp.issubdtype(leaf.dtype, jnp.integer) and leaf.dtype != jnp.int32:
            _fail(
                f"state field {jax.tree_util.keystr(path)} is {leaf.dtype}; "
                "counters and indices must be int32"
            )
    if ts.reward.shape != (num_agents,) or ts.reward.dtype != jnp.float32:
        _fail(
            f"reward is {ts.reward.dtype}{list(ts.reward.shape)}, "
            f"expected float32[{num_agents}]"
        )
    for name in ("terminated", "truncated"):
        flag = getattr(ts, name)
        if flag.shape != () or flag.dtype != jnp.bool_:
            _fail(f"{name} is {flag.dtype}{list(flag.shape)}, expected a scalar bool")


def check_env(
    env: MultiAgentEnv, params: Any, *, num_steps: int = 64, seed: int = 0
) -> None:
    """Check that ``env`` honours the core contract; raise :class:`EnvCheckError`.

    Checks: shapes and dtypes (int32 counters, float32 rewards, scalar bool flags),
    stable across steps and between ``reset`` and ``step``; observations inside the
    observation space and rewards finite; jit gives the same rollout as eager
    execution; the same key gives the same rollout; for a stochastic env, different
    keys with the same actions give different rollouts, and for a deterministic one
    the same; ``vmap`` over keys and over params matches unbatched calls; the
    auto-reset path (a fresh ``reset`` mid-rollout) keeps every signature.
    """
    key = jax.random.key(seed)
    key_a, key_b = jax.random.split(key)

    obs0, state0 = env.reset(key_a, params)
    ts = env.step(key_a, state0, jnp.zeros((env.num_agents,), jnp.int32), params)
    _check_dtypes(env, obs0, state0, ts)
    if _signature(ts.state) != _signature(state0):
        _fail(
            "step changed the state's structure, shapes or dtypes: "
            f"reset gave {_signature(state0)}, step gave {_signature(ts.state)}"
        )
    if _signature(ts.obs) != _signature(obs0):
        _fail("step and reset return observations of different shapes/dtypes")

    rollout = jax.jit(_rollout, static_argnums=(0, 3))
    jitted = rollout(env, params, key_a, num_steps)
    # Eager execution runs op by op: compare a short prefix, which exercises every
    # op of reset and step, and keep the check cheap for big games.
    eager_steps = min(num_steps, _EAGER_STEPS)
    with jax.disable_jit():
        eager = _rollout(env, params, key_a, eager_steps)
    if not _leaves_close(rollout(env, params, key_a, eager_steps), eager):
        _fail("jit and eager execution give different rollouts")
    if not _leaves_equal(jitted, rollout(env, params, key_a, num_steps)):
        _fail("the same key gave two different rollouts")

    _, _, _, traj, actions = jitted
    for t in range(num_steps):
        ts_t = _take(traj, t)
        _check_dtypes(env, ts_t.obs, ts_t.state, ts_t)
        for agent in range(env.num_agents):
            if not env.observation_space().contains(np.asarray(ts_t.obs[agent])):
                _fail(
                    f"step {t}: obs of agent {agent} is outside the observation "
                    f"space: {np.asarray(ts_t.obs[agent])}"
                )
        if not np.all(np.isfinite(np.asarray(ts_t.reward))):
            _fail(f"step {t}: non-finite reward {np.asarray(ts_t.reward)}")

    other = rollout(env, params, key_b, num_steps)
    replayed = jax.jit(_rollout, static_argnums=(0, 3))(
        env, params, key_b, num_steps, actions
    )
    same_actions_same_traj = _leaves_equal(replayed[3].reward, traj.reward) and (
        _leaves_equal(replayed[3].obs, traj.obs)
    )
    if env.stochastic and same_actions_same_traj:
        _fail(
            "env declares stochastic=True but different keys gave identical "
            "trajectories for the same actions"
        )
    if not env.stochastic and not same_actions_same_traj:
        _fail(
            "env declares stochastic=False but the key changed the trajectory "
            "for the same actions"
        )
    if _leaves_equal(other[3].reward, traj.reward) and _leaves_equal(other[4], actions):
        _fail("different keys gave identical random-action rollouts")

    keys = jnp.stack([key_a, key_b])
    batched = jax.vmap(rollout, in_axes=(None, None, 0, None))(
        env, params, keys, num_steps
    )
    if not (
        _leaves_close(_take(batched, 0), jitted)
        and _leaves_close(_take(batched, 1), other)
    ):
        _fail("vmap over keys differs from unbatched rollouts")

    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    by_params = jax.vmap(rollout, in_axes=(None, 0, 0, None))(
        env, stacked, keys, num_steps
    )
    if not (
        _leaves_close(_take(by_params, 0), jitted)
        and _leaves_close(_take(by_params, 1), other)
    ):
        _fail("vmap over params differs from unbatched rollouts")
