"""Gymnasium face: one agent of any game, the other players fixed policies.

After ``import dilemmas.envs``::

    import gymnasium
    env = gymnasium.make("dilemmas/IPD-v0", co_player="tft")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(0)  # cooperate

Every registered game has an id: the core id in CamelCase (``dilemmas/IPD-v0``,
``dilemmas/StagHunt-v0``, ``dilemmas/CoinGame-v0``, ``dilemmas/CleanupLite-v0``,
``dilemmas/Cleanup-v0``, ``dilemmas/Harvest-v0``, ...; :func:`gymnasium_id`).

The learner plays ``player_{agent}`` (``agent=0`` by default) and every other player
is a co-player. ``co_player`` is one co-player for all of them, or a list of one per
other player in the order of their index (``N - 1`` entries: four in Cleanup and
Harvest, whose 5 players are all scripted but the learner's). Each co-player is a
name from the core env's catalogue of co-players (``env.co_players``:
:mod:`dilemmas.agents.strategies` for the matrix games,
``dilemmas.agents.scripted.<game>`` for the grid games; keyword arguments in
``co_player_kwargs``), ``None`` for the game's ``default_co_player``, a strategy
object with the pure ``init() -> state`` / ``act(key, state, obs) -> (action,
state)`` interface (each player it plays keeps its own state), or a scripted policy
with ``act(key, env_state, params, agent) -> action`` (no ``init``), written with
``jax.numpy``. The co-players act inside the same jitted call as the core ``step``,
so a step is one compiled call; one that is not a pytree of arrays (an instance of
a plain Python class) is static data there, compiled once per object. With one
co-player its key is the step's co-player key, with several that key split in
``N - 1``.

``info`` after a step holds the learner's own part of the core's step ``info`` (the
grid games' event counts as Python ints: ``apples_eaten``, ``cells_cleaned``,
``zaps_fired``, ``zaps_received``, ``own_coins``, ``other_coins``, ...; see
:func:`dilemmas.envs.pettingzoo.agent_info`), and the co-players' moves: in a
two-player game ``info["co_player_action"]`` (an int), with more players
``info["co_player_actions"]``, a dict ``{"player_j": action}``.

The registration's ``max_episode_steps`` is the game's default episode length, so
``env.spec.max_episode_steps`` is the length of an episode and ``gymnasium.make``
adds Gymnasium's ``TimeLimit`` with it. To play longer episodes than the default,
pass the same length to both: ``gymnasium.make("dilemmas/IPD-v0", max_steps=500,
max_episode_steps=500)`` (``max_steps`` alone would be cut at the default by the
``TimeLimit``).

``render_mode="rgb_array"`` (where the core draws a frame) returns the core's
picture, 16 pixels a cell; ``scale=k`` makes each pixel a ``k`` x ``k`` block.

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
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dilemmas.envs.core import MultiAgentEnv
from dilemmas.envs.pettingzoo import (
    _Compiled,
    _info_fields,
    _InfoReader,
    _Packed,
    _Params,
    check_action,
    check_scale,
    upscale,
)
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


@struct.dataclass
class _Static:
    """A co-player that is not a pytree of arrays (a plain Python object), passed
    to the jitted calls as static data: compiled once per object."""

    policy: Any = struct.field(pytree_node=False)


def _traceable(co_player: Any) -> Any:
    """``co_player`` itself if it is a pytree of arrays and numbers (the strategies,
    scripted policies and trained policies), else wrapped in :class:`_Static`."""
    leaves = jax.tree.leaves(co_player)
    if all(
        isinstance(leaf, jax.Array | np.ndarray | np.generic | int | float | bool)
        for leaf in leaves
    ):
        return co_player
    try:
        hash(co_player)
    except TypeError:
        raise ValueError(
            "a co_player must be a pytree of arrays (a flax struct dataclass, say) "
            f"or hashable, to be compiled; got the unhashable {co_player!r}"
        ) from None
    return _Static(co_player)


def _unwrap(co_player: Any) -> Any:
    return co_player.policy if isinstance(co_player, _Static) else co_player


def _others(num_agents: int, agent: int) -> tuple[int, ...]:
    """The co-players' indices, in order."""
    return tuple(i for i in range(num_agents) if i != agent)


def _reset_fields(
    env: MultiAgentEnv,
    co_players: tuple[Any, ...],
    key: jax.Array,
    params: Any,
) -> dict[str, Any]:
    key, key_reset = jax.random.split(key)
    obs, state = env.reset(key_reset, params)
    co_states = tuple(
        jnp.zeros((), jnp.int32) if _reads_env_state(co) else co.init()
        for co in map(_unwrap, co_players)
    )
    return {"key": key, "state": state, "co_state": co_states, "obs": obs}


def _step_fields(
    env: MultiAgentEnv,
    agent: int,
    co_players: tuple[Any, ...],
    key: jax.Array,
    state: Any,
    co_states: tuple[Any, ...],
    obs: jax.Array,
    action: jax.Array,
    params: Any,
) -> dict[str, Any]:
    key, key_co, key_step = jax.random.split(key, 3)
    others = _others(env.num_agents, agent)
    keys = [key_co] if len(others) == 1 else list(jax.random.split(key_co, len(others)))
    actions = jnp.zeros((env.num_agents,), jnp.int32).at[agent].set(action)
    new_states = []
    for co, other, co_key, co_state in zip(
        map(_unwrap, co_players), others, keys, co_states, strict=True
    ):
        if _reads_env_state(co):
            co_action = co.act(co_key, state, params, other)
        else:
            co_action, co_state = co.act(co_key, co_state, obs[other])
        new_states.append(co_state)
        actions = actions.at[other].set(co_action)
    ts = env.step(key_step, state, actions, params)
    return {
        "key": key,
        "state": ts.state,
        "co_state": tuple(new_states),
        "obs": ts.obs,
        "reward": ts.reward,
        "terminated": ts.terminated,
        "truncated": ts.truncated,
        **_info_fields(ts.info),
        "co_actions": actions[jnp.array(others)],
    }


def _signature(co_players: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """The co-players' tree structure and leaf types: what a compiled step is
    specialised to (their leaves' values are arguments of each call)."""
    leaves, treedef = jax.tree.flatten(co_players)
    return treedef, tuple(jax.typeof(leaf) for leaf in leaves)


@functools.cache
def _compiled(
    env: MultiAgentEnv, agent: int, params: _Params, signature: tuple[Any, Any]
) -> _Compiled:
    """The packed, jitted ``reset(co_players, key)`` and ``step(co_players, buffer,
    action)`` of the learner ``agent``, closing over ``params``; shared by every
    env over an equal core, agent and params and co-players of one signature.

    The buffer holds the key, the core's state, the co-players' states, every
    agent's observation, the step's outputs, its info and the co-players' actions;
    after a reset the outputs are zeros.
    """
    values = params.value
    treedef, types = signature
    abstract = jax.tree.unflatten(
        treedef,
        [jax.ShapeDtypeStruct(t.shape, t.dtype, weak_type=t.weak_type) for t in types],
    )
    layouts = []

    def trace(co_players: tuple[Any, ...], key: jax.Array) -> None:
        start = _reset_fields(env, co_players, key, values)
        fields = _step_fields(
            env,
            agent,
            co_players,
            start["key"],
            start["state"],
            start["co_state"],
            start["obs"],
            jnp.int32(0),
            values,
        )
        layouts.append(_Packed(fields))

    jax.eval_shape(trace, abstract, key_from_seed(0))
    (layout,) = layouts

    def reset(co_players: tuple[Any, ...], key: jax.Array) -> jax.Array:
        fields = _reset_fields(env, co_players, key, values)
        # A co-player's init() may type its state loosely (a Python 0, say): it is
        # stored as the state act() returns.
        co_treedef = layout.treedefs["co_state"]
        try:
            co_leaves = co_treedef.flatten_up_to(fields["co_state"])
        except (TypeError, ValueError) as error:
            raise ValueError(
                "a co-player's init() must return a state of the structure its "
                f"act() returns: {error}"
            ) from None
        fields["co_state"] = jax.tree.unflatten(
            co_treedef,
            [
                leaf if slot.impl is not None else jnp.asarray(leaf).astype(slot.dtype)
                for leaf, slot in zip(co_leaves, layout.slots["co_state"], strict=True)
            ],
        )
        for name in layout.names:
            if name not in fields:
                slot = layout.slot(name)
                fields[name] = jnp.zeros(slot.shape, slot.dtype)
        return layout.pack(fields)

    def step(
        co_players: tuple[Any, ...], buffer: jax.Array, action: jax.Array
    ) -> jax.Array:
        f = layout.unpack(buffer)
        return layout.pack(
            _step_fields(
                env,
                agent,
                co_players,
                f["key"],
                f["state"],
                f["co_state"],
                f["obs"],
                action,
                values,
            )
        )

    return _Compiled(layout, jax.jit(reset), jax.jit(step))


def named_co_player(env: MultiAgentEnv, name: str, **kwargs: Any) -> Any:
    """A co-player from the catalogue the core env names in ``co_players``.

    The catalogue is looked up in :mod:`dilemmas.envs.registry`, where
    ``import dilemmas.agents`` registers each ``co_player(name, env, **kwargs)``.
    """
    catalogue = env.unwrapped.co_players
    if catalogue is None:
        raise ValueError(f"{env.name} has no catalogue of named co-players")
    return co_player_catalogue(catalogue)(name, env, **kwargs)


def _resolve_co_players(
    env: MultiAgentEnv, co_player: Any, kwargs: dict | None, others: tuple[int, ...]
) -> tuple[Any, ...]:
    """One co-player object per index in ``others`` (see the module docstring)."""
    if isinstance(co_player, list | tuple):
        if len(co_player) != len(others):
            raise ValueError(
                f"a list of co-players needs one per other player: {env.name} has "
                f"{env.num_agents} players, so {len(others)} co-players (for "
                f"{[f'player_{i}' for i in others]}), got {len(co_player)}"
            )
        entries = [(f"co_player[{i}]", entry) for i, entry in enumerate(co_player)]
    else:
        entries = [("co_player", co_player)] * len(others)
    named = {}
    resolved = []
    for label, entry in entries:
        if entry is None:
            entry = env.unwrapped.default_co_player
            if entry is None:
                raise ValueError(f"{env.name} needs an explicit {label}")
        if isinstance(entry, str):
            if entry not in named:  # one object per name: each keeps its own state
                named[entry] = named_co_player(env, entry, **(kwargs or {}))
            entry = named[entry]
        if not callable(getattr(entry, "act", None)):
            raise ValueError(
                f"{label} must be a name, a strategy with init() and "
                "act(key, state, obs), or a scripted policy with "
                f"act(key, env_state, params, agent); got {entry!r}"
            )
        resolved.append(entry)
    if kwargs and not named:
        raise ValueError("co_player_kwargs only apply to a named co_player")
    return tuple(resolved)


class SingleAgentEnv(gymnasium.Env):
    """A core env seen by one agent, every other player a fixed co-player.

    Args:
      env_id: a registered core id (used when ``env`` is not given).
      co_player: one co-player for every other player, or a list of ``N - 1``, one
        per other player in index order; each a name, strategy or scripted policy,
        or ``None`` for the game's ``default_co_player`` (see the module docstring).
      co_player_kwargs: keyword arguments for the named co-players.
      agent: which player the learner controls (``0 <= agent < N``).
      env: a core env instance instead of ``env_id``; ``params`` its params.
      render_mode: ``None``, ``"ansi"`` or (where the core draws) ``"rgb_array"``.
      scale: ``rgb_array`` frames are ``scale`` times the core's in each direction
        (a positive int; default 1, the core's size).
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
        scale: int = 1,
        **static_kwargs: Any,
    ):
        if env is None:
            env, default_params = make_core(env_id, **static_kwargs)
        else:
            default_params = env.default_params
        if (
            isinstance(agent, bool)
            or not isinstance(agent, int | np.integer)
            or not 0 <= agent < env.num_agents
        ):
            raise ValueError(
                f"agent must be an int in 0..{env.num_agents - 1} ({env.name} has "
                f"{env.num_agents} players), got {agent!r}"
            )
        agent = int(agent)
        if render_mode is not None and render_mode not in env.render_modes:
            raise ValueError(
                f"render_mode must be one of {list(env.render_modes)} or None, "
                f"got {render_mode!r}"
            )
        scale = check_scale(scale, render_mode)
        others = _others(env.num_agents, agent)
        co_players = _resolve_co_players(env, co_player, co_player_kwargs, others)
        self.core = env
        self._params = default_params if params is None else params
        #: The co-player objects, one per index in :attr:`co_player_agents`.
        self.co_players = co_players
        #: The co-players' indices, in order.
        self.co_player_agents = others
        self.co_player = co_players[0] if len(co_players) == 1 else co_players
        self._traceable = tuple(map(_traceable, co_players))
        self.agent = agent
        self.render_mode = render_mode
        self.scale = scale
        self.metadata = {**self.metadata, "render_modes": list(env.render_modes)}
        self.observation_space = env.observation_space()
        self.action_space = env.action_space()
        self._build_compiled()
        # The episode: the packed buffer of the last reset or step (key, states,
        # observations, outputs) on the device, and the same bytes on the host.
        self._buffer: jax.Array | None = None
        self._host: np.ndarray | None = None
        self._done = False

    def _build_compiled(self) -> None:
        compiled = _compiled(
            self.core, self.agent, _Params(self._params), _signature(self._traceable)
        )
        layout = self._layout = compiled.layout
        self._reset_fn, self._step_fn = compiled.reset, compiled.step
        self._obs_slot = layout.slot("obs")
        self._reward_slot = layout.slot("reward")
        self._terminated_slot = layout.slot("terminated")
        self._truncated_slot = layout.slot("truncated")
        self._co_actions_slot = layout.slot("co_actions")
        self._info_reader = _InfoReader(layout, self.core.num_agents)

    @property
    def params(self) -> Any:
        """The core's params; the compiled step closes over them, so setting new
        params recompiles (once per distinct value) and, if the packed layout
        changes with them, ends the episode (``reset`` is needed)."""
        return self._params

    @params.setter
    def params(self, params: Any) -> None:
        layout = self._layout
        self._params = params
        self._build_compiled()
        if self._buffer is not None and not self._layout.same_layout(layout):
            self._buffer = self._host = None

    def _read(self, name: str) -> Any:
        return None if self._host is None else self._layout.read(self._host, name)

    @property
    def _key(self) -> jax.Array | None:
        """The key the next step splits (read from the packed buffer)."""
        return self._read("key")

    @property
    def _state(self) -> Any:
        """The core's state (read from the packed buffer; assignable)."""
        return self._read("state")

    @_state.setter
    def _state(self, state: Any) -> None:
        if self._host is None:
            raise ValueError("the state can be set only after reset()")
        host = self._host.copy()
        self._layout.write(host, "state", state)
        self._buffer, self._host = jax.device_put(host), host

    @property
    def _co_state(self) -> Any:
        """The co-players' states (read from the packed buffer)."""
        return self._read("co_state")

    @property
    def _obs_all(self) -> Any:
        """Every agent's last observation (read from the packed buffer)."""
        return self._read("obs")

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
        buffer = self._reset_fn(self._traceable, key)
        host = np.asarray(buffer)
        self._buffer, self._host = buffer, host
        self._done = False
        return self._obs_slot.view(host)[self.agent], {}

    def step(self, action: Any):
        if self._buffer is None:
            raise ValueError("step() called before reset()")
        if self._done:
            raise ValueError("step() called after the episode ended; call reset()")
        if type(action) is not int or not 0 <= action < self.action_space.n:
            action = check_action(action, self.action_space, f"player_{self.agent}")
        buffer = self._step_fn(self._traceable, self._buffer, np.int32(action))
        host = np.asarray(buffer)  # the step's one device-to-host transfer
        self._buffer, self._host = buffer, host
        terminated = bool(self._terminated_slot.view(host))
        truncated = bool(self._truncated_slot.view(host))
        self._done = terminated or truncated
        info = self._info_reader.one_agent(host, self.agent)
        co_actions = self._co_actions_slot.view(host).tolist()
        if len(self.co_player_agents) == 1:
            info["co_player_action"] = co_actions[0]
        else:
            info["co_player_actions"] = {
                f"player_{other}": move
                for other, move in zip(self.co_player_agents, co_actions, strict=True)
            }
        reward = self._reward_slot.view(host)[self.agent]
        return (
            self._obs_slot.view(host)[self.agent],
            float(reward),
            terminated,
            truncated,
            info,
        )

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode")
            return None
        state = self._state
        if state is None:
            raise ValueError("render() called before reset()")
        if self.render_mode == "rgb_array":
            frame = self.core.render_rgb(state, self.params)
            return upscale(frame, self.scale)
        return self.core.render_ansi(state, self.params)


def register_all() -> None:
    """Register every core id with Gymnasium (``dilemmas/CamelCase-vN``), with the
    game's default episode length as ``max_episode_steps``."""
    for env_id in registered():
        gym_id = gymnasium_id(env_id)
        if gym_id in gymnasium.registry:
            continue
        params = make_core(env_id)[1]
        max_steps = getattr(params, "max_steps", None)
        gymnasium.register(
            gym_id,
            entry_point="dilemmas.agents:SingleAgentEnv",
            max_episode_steps=None if max_steps is None else int(max_steps),
            kwargs={"env_id": env_id},
        )
