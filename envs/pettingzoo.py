"""PettingZoo face: any JAX core env as a ``pettingzoo.ParallelEnv`` (and AEC).

After ``import dilemmas.envs`` every registered game is available as::

    import pettingzoo
    env = pettingzoo.make("parallel", "dilemmas/ipd-v0", max_cycles=50)
    aec = pettingzoo.make("aec", "dilemmas/ipd-v0")

or directly as ``dilemmas.envs.pettingzoo.parallel_env("ipd-v0", payoffs="lola")``.

The adapter is thin: ``step`` validates the actions, calls the jitted core ``step`` once
and converts the result to numpy dicts keyed by ``player_0 ... player_{N-1}``. The
trajectory is exactly the core's under this key schedule::

    key = dilemmas.envs.seeding.key_from_seed(seed)  # jax.random.key(seed) if < 2**32
    key, key_reset = jax.random.split(key);  obs, state = core.reset(key_reset, params)
    key, key_step = jax.random.split(key);   ts = core.step(key_step, state, a, params)

``reset(seed=...)`` takes any integer (Python, numpy or a 0-d integer array, of any
size or sign; distinct seeds give distinct keys); ``reset(seed=None)`` draws a fresh
seed from OS entropy. Episodes end by the core's own termination or truncation, or
after ``max_cycles`` steps (truncation); finished agents are removed from ``agents``.

``infos[agent]`` after a step holds that agent's own part of the core's ``info``
(:func:`agent_info`): in the grid games its own event counts as Python ints, e.g.
``infos["player_1"]["apples_eaten"]`` is the apples ``player_1`` ate in that step.
``render_mode="rgb_array"`` returns the core's picture (16 pixels a cell in the grid
games); ``scale=k`` (a positive int) makes each pixel a ``k`` x ``k`` block.

An action is any integer in ``0 <= action < n``: a Python int, a numpy integer, or a
0-d integer numpy or JAX array. Bad input (an unknown or missing agent, a non-integer
or out-of-range action, a non-integer seed, stepping before ``reset`` or after the end)
raises ``ValueError`` naming the agent and the problem, and leaves the env exactly as
it was.

The AEC face (:func:`env`) is PettingZoo's ``parallel_to_aec`` conversion with two
changes: each action is checked in the ``step`` call that receives it, so a bad action
is refused there, naming the acting agent, and is never buffered (PettingZoo's own
conversion buffers it and fails at the last agent's step, and then on every step until
``reset``); and ``step`` before ``reset`` or after every agent is done raises
``ValueError``, as in the parallel face, where PettingZoo raises ``AssertionError``
or only warns. A done agent is stepped with ``None``, as PettingZoo requires.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium.spaces
import jax
import jax.numpy as jnp
import numpy as np
import pettingzoo
from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from dilemmas.envs.core import MultiAgentEnv
from dilemmas.envs.registry import make as make_core
from dilemmas.envs.registry import registered
from dilemmas.envs.seeding import check_seed, key_from_seed


@functools.cache
def _compiled(env: MultiAgentEnv):
    """Jitted reset and step of ``env``, shared by every face over an equal env.

    ``step`` packs reward and the two flags into one float32 vector, so a step costs
    one compiled call and two device-to-host copies (three with a non-empty info).
    """

    def reset(key: jax.Array, params: Any):
        key, key_reset = jax.random.split(key)
        obs, state = env.reset(key_reset, params)
        return key, obs, state

    def step(key: jax.Array, state: Any, actions: jax.Array, params: Any):
        key, key_step = jax.random.split(key)
        ts = env.step(key_step, state, actions, params)
        scalars = jnp.concatenate(
            [ts.reward, jnp.stack([ts.terminated, ts.truncated])]
        ).astype(jnp.float32)
        return key, ts.state, ts.obs, scalars, ts.info

    return jax.jit(reset), jax.jit(step)


def check_action(action: Any, space: gymnasium.spaces.Discrete, agent: str) -> int:
    """``action`` as a Python ``int`` inside ``space``, or a ``ValueError`` naming
    ``agent``.

    Python ints, numpy integers and 0-d integer numpy or JAX arrays are integers;
    ``bool``, floats, strings, ``None`` and arrays with a shape are not. An integer of
    any size outside ``0 <= action < space.n`` is refused, never wrapped around.
    """
    value = check_seed(action, f"action of {agent!r}")
    if not 0 <= value < space.n:
        raise ValueError(
            f"action of {agent!r} is {value}, outside the action space {space} "
            f"(0 <= action < {space.n})"
        )
    return value


def agent_info(info: dict[str, Any], agent: int, num_agents: int) -> dict[str, Any]:
    """Agent ``agent``'s part of a core step's ``info`` (already on the host).

    An entry whose leading axis has length ``num_agents`` is per agent (the grid
    games' event counts, ``int32[N]``): the agent gets its own element, a 0-d entry
    as a Python scalar (``apples_eaten: 1``). Any other entry is shared and every
    agent gets all of it.
    """
    own = {}
    for name, value in info.items():
        value = np.asarray(value)
        if value.ndim and value.shape[0] == num_agents:
            value = value[agent]
        own[name] = value.item() if value.ndim == 0 else value
    return own


def check_scale(scale: Any, render_mode: str | None) -> int:
    """``scale`` as a positive ``int``, or a ``ValueError`` naming the problem.

    ``scale`` enlarges ``rgb_array`` frames (each pixel becomes a ``scale`` x
    ``scale`` block), so a ``scale`` other than 1 with any other ``render_mode`` is
    refused too.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer):
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale}")
    if scale != 1 and render_mode != "rgb_array":
        raise ValueError(
            f"scale={scale} applies only to render_mode='rgb_array', got "
            f"render_mode={render_mode!r}"
        )
    return int(scale)


def upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """``frame`` (``[H, W, 3]``) with every pixel a ``scale`` x ``scale`` block."""
    if scale == 1:
        return frame
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


class JaxParallelEnv(pettingzoo.ParallelEnv):
    """A ``ParallelEnv`` over a :class:`~dilemmas.envs.core.MultiAgentEnv`.

    Args:
      env: the JAX core env.
      params: its params (default: ``env.default_params``).
      render_mode: ``None``, ``"ansi"`` (``render()`` returns a string),
        ``"rgb_array"`` (an ``uint8[H, W, 3]`` frame, for games that draw one) or
        ``"human"`` (prints the ansi picture).
      max_cycles: truncate after this many steps (``None``: only the core's limit).
      name: the ``metadata["name"]`` (default: the core env's class name).
      scale: ``rgb_array`` frames are ``scale`` times the core's
        :meth:`~dilemmas.envs.core.MultiAgentEnv.render_rgb` in each direction
        (a positive int; default 1, the core's size).

    ``step`` returns in ``infos[agent]`` that agent's own part of the core's
    ``info`` (:func:`agent_info`): in the grid games its own event counts as Python
    ints, e.g. ``infos["player_1"]["apples_eaten"]``.
    """

    metadata = {
        "render_modes": ["ansi", "human"],
        "name": "dilemmas",
        "is_parallelizable": True,
        "render_fps": 1,
    }

    def __init__(
        self,
        env: MultiAgentEnv,
        params: Any = None,
        *,
        render_mode: str | None = None,
        max_cycles: int | None = None,
        name: str | None = None,
        scale: int = 1,
    ):
        render_modes = [*env.render_modes, "human"]
        if render_mode is not None and render_mode not in render_modes:
            raise ValueError(
                f"render_mode must be one of {render_modes} or None, "
                f"got {render_mode!r}"
            )
        self.scale = check_scale(scale, render_mode)
        if max_cycles is not None and (
            isinstance(max_cycles, bool)
            or not isinstance(max_cycles, int | np.integer)
            or max_cycles <= 0
        ):
            raise ValueError(f"max_cycles must be a positive int, got {max_cycles!r}")
        self.core = env
        self.params = env.default_params if params is None else params
        self.render_mode = render_mode
        self.max_cycles = None if max_cycles is None else int(max_cycles)
        self.metadata = {
            **self.metadata,
            "name": name or env.name,
            "render_modes": render_modes,
        }
        self.possible_agents = [f"player_{i}" for i in range(env.num_agents)]
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._build_spaces()
        self._reset_fn, self._step_fn = _compiled(env)
        self.agents: list[str] = []
        self._key = None
        self._state = None
        self._obs: np.ndarray | None = None
        self._num_steps = 0

    def _build_spaces(self) -> None:
        self._observation_spaces = {
            agent: self.core.observation_space() for agent in self.possible_agents
        }
        self._action_spaces = {
            agent: self.core.action_space() for agent in self.possible_agents
        }
        obs_space = self.core.observation_space()
        self.state_space = gymnasium.spaces.Box(
            np.tile(obs_space.low, self.core.num_agents),
            np.tile(obs_space.high, self.core.num_agents),
            dtype=obs_space.dtype,
        )

    def _agent_index(self, agent: str) -> int:
        try:
            return self._index[agent]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown agent {agent!r}; agents are {self.possible_agents}"
            ) from None

    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self._observation_spaces[self.possible_agents[self._agent_index(agent)]]

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        return self._action_spaces[self.possible_agents[self._agent_index(agent)]]

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` is any integer (``None``: OS entropy)."""
        del options
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        key, obs, state = self._reset_fn(key_from_seed(seed), self.params)
        self._key, self._state = key, state
        self._obs = np.asarray(obs)
        self._num_steps = 0
        self.agents = list(self.possible_agents)
        observations = {agent: self._obs[i] for i, agent in enumerate(self.agents)}
        return observations, {agent: {} for agent in self.agents}

    def _check_running(self) -> None:
        if self._state is None:
            raise ValueError("step() called before reset()")
        if not self.agents:
            raise ValueError("step() called after every agent is done; call reset()")

    def validate_action(self, agent: str, action: Any) -> int:
        """The action of the live ``agent`` as an ``int``; ``ValueError`` if bad.

        The env is not changed: the AEC face calls this as each action arrives.
        """
        self._check_running()
        if agent not in self._index:
            raise ValueError(f"unknown agent {agent!r}; live agents are {self.agents}")
        if agent not in self.agents:
            raise ValueError(f"agent {agent!r} is done and cannot act")
        return check_action(action, self._action_spaces[agent], agent)

    def _validated_actions(self, actions: dict) -> np.ndarray:
        self._check_running()
        if not isinstance(actions, dict):
            raise ValueError(
                f"actions must be a dict keyed by agent, got {type(actions).__name__}"
            )
        for agent in actions:
            if agent not in self._index:
                raise ValueError(
                    f"unknown agent {agent!r} in actions; live agents are {self.agents}"
                )
            if agent not in self.agents:
                raise ValueError(f"agent {agent!r} is done and cannot act")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"missing actions for agents {missing}")
        joint = np.zeros(len(self.possible_agents), np.int32)
        for agent, action in actions.items():
            joint[self._index[agent]] = check_action(
                action, self._action_spaces[agent], agent
            )
        return joint

    def step(self, actions: dict):
        joint = self._validated_actions(actions)
        key, state, obs, scalars, info = self._step_fn(
            self._key, self._state, joint, self.params
        )
        obs, scalars = np.asarray(obs), np.asarray(scalars)
        info = jax.device_get(info) if info else {}
        num_agents = len(self.possible_agents)
        self._key, self._state, self._obs = key, state, obs
        self._num_steps += 1
        terminated = bool(scalars[num_agents])
        truncated = bool(scalars[num_agents + 1]) or (
            self.max_cycles is not None and self._num_steps >= self.max_cycles
        )
        agents = self.agents
        result = (
            {agent: obs[self._index[agent]] for agent in agents},
            {agent: float(scalars[self._index[agent]]) for agent in agents},
            dict.fromkeys(agents, terminated),
            dict.fromkeys(agents, truncated),
            {
                agent: agent_info(info, self._index[agent], num_agents)
                for agent in agents
            },
        )
        if terminated or truncated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return result

    def render(self) -> str | np.ndarray | None:
        """``ansi``: a string; ``rgb_array``: ``uint8[H, W, 3]``; ``human``: prints."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode")
            return None
        if self._state is None:
            raise ValueError("render() called before reset()")
        if self.render_mode == "rgb_array":
            frame = self.core.render_rgb(self._state, self.params)
            return upscale(frame, self.scale)
        text = self.core.render_ansi(self._state, self.params)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def state(self) -> np.ndarray:
        """The global state: every agent's observation, concatenated."""
        if self._obs is None:
            raise ValueError("state() called before reset()")
        return self._obs.reshape(-1)

    def close(self) -> None:
        pass

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in (
            "_observation_spaces",
            "_action_spaces",
            "state_space",
            "_reset_fn",
            "_step_fn",
        ):
            state[name] = None
        if self._key is not None:
            state["_key"] = np.asarray(jax.random.key_data(self._key))
            state["_state"] = jax.device_get(self._state)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._key is not None:
            self._key = jax.random.wrap_key_data(self._key)
        self._build_spaces()
        self._reset_fn, self._step_fn = _compiled(self.core)


def parallel_env(
    env_id: str = "ipd-v0",
    *,
    render_mode: str | None = None,
    max_cycles: int | None = None,
    scale: int = 1,
    **static_kwargs: Any,
) -> JaxParallelEnv:
    """The PettingZoo ``ParallelEnv`` of a registered game (``scale``: see
    :class:`JaxParallelEnv`; ``static_kwargs`` go to the core's constructor)."""
    core, params = make_core(env_id, **static_kwargs)
    return JaxParallelEnv(
        core,
        params,
        render_mode=render_mode,
        max_cycles=max_cycles,
        name=env_id,
        scale=scale,
    )


class JaxAECEnv(parallel_to_aec_wrapper):
    """PettingZoo's AEC view of a :class:`JaxParallelEnv`, checking each action.

    ``step(action)`` checks the action of ``agent_selection`` before it is buffered:
    a bad one raises ``ValueError`` naming that agent and changes nothing, so the
    agent can simply act again. A done agent must be stepped with ``None``.
    """

    env: JaxParallelEnv

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            if action is not None:
                raise ValueError(
                    f"agent {agent!r} is done: its step takes None, got {action!r}"
                )
            super().step(None)
            return
        super().step(self.env.validate_action(agent, action))


class AECOrderEnforcingWrapper(OrderEnforcingWrapper):
    """PettingZoo's ``OrderEnforcingWrapper`` with the parallel face's errors.

    ``step`` before ``reset`` or after every agent is done raises ``ValueError``
    (PettingZoo: ``AssertionError``, or only a warning), and a bad seed is refused
    before anything changes.
    """

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None:
            check_seed(seed)
        super().reset(seed=seed, options=options)

    def step(self, action: Any) -> None:
        if not self._has_reset:
            raise ValueError("step() called before reset()")
        if not self.agents:
            raise ValueError("step() called after every agent is done; call reset()")
        super().step(action)

    def __str__(self) -> str:
        return str(self.env)


def env(env_id: str = "ipd-v0", **kwargs: Any) -> AECOrderEnforcingWrapper:
    """The PettingZoo AEC env of a registered game (see the module docstring)."""
    return AECOrderEnforcingWrapper(JaxAECEnv(parallel_env(env_id, **kwargs)))


def register_all() -> None:
    """Register every core id as ``dilemmas/<id>`` with PettingZoo (both APIs)."""
    for env_id in registered():
        for env_type, entry_point in (("parallel", "parallel_env"), ("aec", "env")):
            pettingzoo.register(
                env_type,
                f"dilemmas/{env_id}",
                entry_point=f"dilemmas.envs.pettingzoo:{entry_point}",
                kwargs={"env_id": env_id},
            )
