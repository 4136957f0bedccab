"""Gymnasium face: one agent against a fixed co-player, over any JAX core env.

After ``import dilemmas.envs``::

    import gymnasium
    env = gymnasium.make("dilemmas/IPD-v0", co_player="tft")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(0)  # cooperate

``co_player`` is a name from the core env's catalogue of co-players
(``env.co_players``: :mod:`dilemmas.agents.strategies` for the matrix games,
``dilemmas.agents.scripted.<game>`` for the grid games; keyword arguments in
``co_player_kwargs``; default ``env.default_co_player``), a strategy object with the
pure ``init() -> state`` / ``act(key, state, obs) -> (action, state)`` interface, or a
scripted policy with ``act(key, env_state, params, agent) -> action`` (no ``init``). The
learner plays as ``player_0`` by default (``agent=1`` makes it the column player).
The co-player acts inside the same jitted call as the core ``step``, so a step is one
compiled call; ``info["co_player_action"]`` reports its move.

``reset(seed=...)`` takes any integer (Python, numpy or a 0-d integer array, of any
size or sign) and plays from ``dilemmas.envs.seeding.key_from_seed(seed)``, the key
the PettingZoo faces use for the same seed. Gymnasium's own ``np_random`` is seeded
too: with the seed itself when it is non-negative (Gymnasium accepts no other), else
with ``2**64`` plus the 64 bits of the seed's key. ``reset()`` without a seed draws the
next key from ``np_random``, so ``reset(seed=s)`` followed by seedless resets is one
reproducible sequence of episodes.

An action is any integer in the action space (a Python int, a numpy integer or a 0-d
integer numpy or JAX array). A bad action, a bad seed, and ``step`` before ``reset`` or
after the episode ended (``terminated`` or ``truncated``) raise ``ValueError``, the
first naming the learner's agent, and leave the env unchanged.

Named co-players come from the catalogues that ``import dilemmas.agents`` registers in
:mod:`dilemmas.envs.registry`; this module imports nothing from ``dilemmas.agents``.
The Gymnasium ids' entry point is ``dilemmas.agents:SingleAgentEnv`` (this class,
re-exported), so ``gymnasium.make`` loads the catalogues before building the env;
constructing :class:`SingleAgentEnv` directly with a name needs ``dilemmas.agents``
imported first.

Gymnasium ids are the core ids in CamelCase: ``dilemmas/IPD-v0``,
``dilemmas/StagHunt-v0``, ``dilemmas/Chicken-v0``, ``dilemmas/BattleOfTheSexes-v0``,
``dilemmas/MatchingPennies-v0``.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.envs.core import MultiAgentEnv
from dilemmas.envs.pettingzoo import check_action
from dilemmas.envs.registry import co_player_catalogue, registered
from dilemmas.envs.registry import make as make_core
from dilemmas.envs.seeding import check_seed, key_from_seed

_ACRONYMS = {"ipd": "IPD"}


def gymnasium_id(env_id: str) -> str:
    """``"stag_hunt-v0"`` -> ``"dilemmas/StagHunt-v0"``."""
    name, version = env_id.rsplit("-", 1)
    camel = _ACRONYMS.get(name) or "".join(p.capitalize() for p in name.split("_"))
    return f"dilemmas/{camel}-{version}"


def _reads_env_state(co_player: Any) -> bool:
    """Scripted policies act on the env state; strategies on an observation."""
    return not hasattr(co_player, "init")


@functools.partial(jax.jit, static_argnums=(0, 1))
def _reset(env: MultiAgentEnv, agent: int, co_player: Any, key: jax.Array, params: Any):
    key, key_reset = jax.random.split(key)
    obs, state = env.reset(key_reset, params)
    if _reads_env_state(co_player):
        co_state = jnp.zeros((), jnp.int32)
    else:
        co_state = co_player.init()
    return key, obs, state, co_state


@functools.partial(jax.jit, static_argnums=(0, 1))
def _step(
    env: MultiAgentEnv,
    agent: int,
    co_player: Any,
    key: jax.Array,
    state: Any,
    co_state: Any,
    obs: jax.Array,
    action: jax.Array,
    params: Any,
):
    key, key_co, key_step = jax.random.split(key, 3)
    if _reads_env_state(co_player):
        co_action = co_player.act(key_co, state, params, 1 - agent)
    else:
        co_action, co_state = co_player.act(key_co, co_state, obs[1 - agent])
    actions = jnp.zeros((env.num_agents,), jnp.int32)
    actions = actions.at[agent].set(action).at[1 - agent].set(co_action)
    ts = env.step(key_step, state, actions, params)
    return key, ts, co_state, co_action


def named_co_player(env: MultiAgentEnv, name: str, **kwargs: Any) -> Any:
    """A co-player from the catalogue the core env names in ``co_players``.

    The catalogue is looked up in :mod:`dilemmas.envs.registry`, where
    ``import dilemmas.agents`` registers each ``co_player(name, env, **kwargs)``.
    """
    catalogue = env.unwrapped.co_players
    if catalogue is None:
        raise ValueError(f"{env.name} has no catalogue of named co-players")
    return co_player_catalogue(catalogue)(name, env, **kwargs)


class SingleAgentEnv(gymnasium.Env):
    """A two-player core env seen by one agent against a fixed co-player.

    Args:
      env_id: a registered core id (used when ``env`` is not given).
      co_player: a name, strategy or scripted policy (see the module docstring);
        ``None`` takes the game's ``default_co_player``.
      co_player_kwargs: keyword arguments for a named strategy.
      agent: which player the learner controls (0 or 1).
      env: a core env instance instead of ``env_id``; ``params`` its params.
      render_mode: ``None`` or ``"ansi"``.
      **static_kwargs: passed to ``dilemmas.envs.make(env_id, ...)``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 1}

    def __init__(
        self,
        env_id: str = "ipd-v0",
        co_player: Any = None,
        *,
        co_player_kwargs: dict | None = None,
        agent: int = 0,
        env: MultiAgentEnv | None = None,
        params: Any = None,
        render_mode: str | None = None,
        **static_kwargs: Any,
    ):
        if env is None:
            env, default_params = make_core(env_id, **static_kwargs)
        else:
            default_params = env.default_params
        if env.num_agents != 2:
            raise ValueError(
                f"a fixed co-player needs a two-player game; {env.name} has "
                f"{env.num_agents} agents"
            )
        if agent not in (0, 1):
            raise ValueError(f"agent must be 0 or 1, got {agent!r}")
        if render_mode is not None and render_mode not in env.render_modes:
            raise ValueError(
                f"render_mode must be one of {list(env.render_modes)} or None, "
                f"got {render_mode!r}"
            )
        if co_player is None:
            co_player = env.unwrapped.default_co_player
            if co_player is None:
                raise ValueError(f"{env.name} needs an explicit co_player")
        if isinstance(co_player, str):
            co_player = named_co_player(env, co_player, **(co_player_kwargs or {}))
        elif co_player_kwargs:
            raise ValueError("co_player_kwargs only apply to a named co_player")
        if not callable(getattr(co_player, "act", None)):
            raise ValueError(
                "co_player must be a name, a strategy with init() and "
                "act(key, state, obs), or a scripted policy with "
                f"act(key, env_state, params, agent); got {co_player!r}"
            )
        self.core = env
        self.params = default_params if params is None else params
        self.co_player = co_player
        self.agent = agent
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_modes": list(env.render_modes)}
        self.observation_space = env.observation_space()
        self.action_space = env.action_space()
        self._key = None
        self._state = None
        self._done = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` is any integer (see the module docstring)."""
        del options
        if seed is None:
            super().reset()
            key = key_from_seed(int(self.np_random.integers(2**64, dtype=np.uint64)))
        else:
            seed = check_seed(seed)
            key = key_from_seed(seed)
            if seed < 0:
                high, low = (int(word) for word in jax.random.key_data(key))
                super().reset(seed=2**64 + (high << 32 | low))
            else:
                super().reset(seed=seed)
        key, obs, state, co_state = _reset(
            self.core, self.agent, self.co_player, key, self.params
        )
        self._key, self._state, self._co_state, self._obs_all = (
            key,
            state,
            co_state,
            obs,
        )
        self._done = False
        return np.asarray(obs[self.agent]), {}

    def step(self, action: Any):
        if self._state is None:
            raise ValueError("step() called before reset()")
        if self._done:
            raise ValueError("step() called after the episode ended; call reset()")
        action = check_action(action, self.action_space, f"player_{self.agent}")
        key, ts, co_state, co_action = _step(
            self.core,
            self.agent,
            self.co_player,
            self._key,
            self._state,
            self._co_state,
            self._obs_all,
            jnp.int32(action),
            self.params,
        )
        obs, reward, terminated, truncated, co_action = jax.device_get(
            (ts.obs, ts.reward, ts.terminated, ts.truncated, co_action)
        )
        self._key, self._state, self._co_state, self._obs_all = (
            key,
            ts.state,
            co_state,
            ts.obs,
        )
        self._done = bool(terminated or truncated)
        info = {"co_player_action": int(co_action)}
        return (
            obs[self.agent],
            float(reward[self.agent]),
            bool(terminated),
            bool(truncated),
            info,
        )

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode")
            return None
        if self._state is None:
            raise ValueError("render() called before reset()")
        if self.render_mode == "rgb_array":
            return self.core.render_rgb(self._state, self.params)
        return self.core.render_ansi(self._state, self.params)


def register_all() -> None:
    """Register every two-player core id with Gymnasium (``dilemmas/CamelCase-vN``)."""
    for env_id in registered():
        gym_id = gymnasium_id(env_id)
        if gym_id in gymnasium.registry or make_core(env_id)[0].num_agents != 2:
            continue
        gymnasium.register(
            gym_id,
            entry_point="dilemmas.agents:SingleAgentEnv",
            kwargs={"env_id": env_id},
        )
