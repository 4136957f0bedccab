"""PettingZoo face: any JAX core env as a ``pettingzoo.ParallelEnv`` (and AEC).

After ``import dilemmas.envs`` every registered game is available as::

    import pettingzoo
    env = pettingzoo.make("parallel", "dilemmas/ipd-v0", max_cycles=50)
    aec = pettingzoo.make("aec", "dilemmas/ipd-v0")

or directly as ``dilemmas.envs.pettingzoo.parallel_env("ipd-v0", payoffs="lola")``.

The adapter is thin: ``step`` validates the actions, calls the jitted core ``step`` once
and converts the result to numpy dicts keyed by ``player_0 ... player_{N-1}``. The
compiled step closes over the params and keeps the key, the core's state and every
output of the step (observations, rewards, flags, info) in one flat byte buffer, so a
step is one compiled call and one device-to-host transfer.
The trajectory is exactly the core's under this key schedule::

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
import math
import struct
from typing import Any, NamedTuple

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


class _Slot(NamedTuple):
    """Where one array lives in a :class:`_Packed` buffer."""

    offset: int
    nbytes: int
    dtype: np.dtype  # of the stored data (a key's key data)
    shape: tuple[int, ...]
    impl: Any  # the PRNG implementation of a key, else None

    def view(self, host: np.ndarray) -> np.ndarray:
        """This array in ``host`` (the buffer on the host), a view with no copy."""
        return np.ndarray(self.shape, self.dtype, host, self.offset)


class _Packed:
    """A layout of named pytrees of arrays in one flat ``uint8`` buffer.

    The faces' compiled calls return everything a step makes (key, state, outputs)
    as one such buffer, so a step costs one device-to-host transfer, and take the
    previous buffer back as their input. Every leaf is stored bit for bit (``bool``
    as one byte, a PRNG key as its key data) at an offset aligned to 8 bytes;
    :meth:`pack` and :meth:`unpack` run inside ``jit``, :meth:`read` and
    :meth:`write` on the host.

    Args:
      fields: ``{name: pytree}`` of arrays, tracers or ``jax.ShapeDtypeStruct``
        with concrete dtypes (a key's implementation is read from the array or
        tracer, so pass those for keys).
    """

    def __init__(self, fields: dict[str, Any]):
        self.names = tuple(fields)
        self.treedefs: dict[str, Any] = {}
        self.slots: dict[str, tuple[_Slot, ...]] = {}
        offset = 0
        for name, tree in fields.items():
            leaves, self.treedefs[name] = jax.tree.flatten(tree)
            slots = []
            for leaf in leaves:
                impl = None
                if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                    impl = jax.random.key_impl(leaf)
                    leaf = jax.eval_shape(jax.random.key_data, leaf)
                dtype = np.dtype(leaf.dtype)
                shape = tuple(leaf.shape)
                nbytes = dtype.itemsize * math.prod(shape)
                slots.append(_Slot(offset, nbytes, dtype, shape, impl))
                offset += -(-nbytes // 8) * 8
            self.slots[name] = tuple(slots)
        self.size = max(offset, 8)

    def same_layout(self, other: _Packed) -> bool:
        """Whether a buffer of ``other`` reads the same under this layout."""
        return (self.size, self.slots, self.treedefs) == (
            other.size,
            other.slots,
            other.treedefs,
        )

    def slot(self, name: str) -> _Slot:
        """The slot of field ``name``, which must be a single array."""
        (slot,) = self.slots[name]
        return slot

    def pack(self, fields: dict[str, Any]) -> jax.Array:
        """``uint8[size]`` holding ``fields`` (traced; shapes and dtypes checked)."""
        parts = []
        for name in self.names:
            leaves = self.treedefs[name].flatten_up_to(fields[name])
            for slot, leaf in zip(self.slots[name], leaves, strict=True):
                if slot.impl is not None:
                    leaf = jax.random.key_data(leaf)
                leaf = jnp.asarray(leaf)
                if leaf.shape != slot.shape or leaf.dtype != slot.dtype:
                    raise ValueError(
                        f"{name}: expected {slot.dtype}{list(slot.shape)}, got "
                        f"{leaf.dtype}{list(leaf.shape)}"
                    )
                if slot.nbytes == 0:
                    continue
                if leaf.dtype == jnp.bool_:
                    data = leaf.astype(jnp.uint8)
                else:
                    data = jax.lax.bitcast_convert_type(leaf, jnp.uint8)
                parts.append(data.reshape(-1))
                padding = -slot.nbytes % 8
                if padding:
                    parts.append(jnp.zeros((padding,), jnp.uint8))
        used = sum(part.shape[0] for part in parts)
        if used < self.size:
            parts.append(jnp.zeros((self.size - used,), jnp.uint8))
        return jnp.concatenate(parts)

    def unpack(self, buffer: jax.Array) -> dict[str, Any]:
        """The fields stored in ``buffer`` (traced)."""
        fields = {}
        for name in self.names:
            leaves = []
            for slot in self.slots[name]:
                if slot.nbytes == 0:
                    leaf = jnp.zeros(slot.shape, slot.dtype)
                else:
                    data = buffer[slot.offset : slot.offset + slot.nbytes]
                    if slot.dtype == np.bool_:
                        leaf = (data != 0).reshape(slot.shape)
                    elif slot.dtype.itemsize == 1:
                        leaf = jax.lax.bitcast_convert_type(data, slot.dtype)
                        leaf = leaf.reshape(slot.shape)
                    else:
                        data = data.reshape(*slot.shape, slot.dtype.itemsize)
                        leaf = jax.lax.bitcast_convert_type(data, slot.dtype)
                if slot.impl is not None:
                    leaf = jax.random.wrap_key_data(leaf, impl=slot.impl)
                leaves.append(leaf)
            fields[name] = jax.tree.unflatten(self.treedefs[name], leaves)
        return fields

    def read(self, host: np.ndarray, name: str) -> Any:
        """Field ``name`` of ``host`` (the buffer on the host) as JAX arrays."""
        leaves = []
        for slot in self.slots[name]:
            leaf = jnp.asarray(slot.view(host))
            if slot.impl is not None:
                leaf = jax.random.wrap_key_data(leaf, impl=slot.impl)
            leaves.append(leaf)
        return jax.tree.unflatten(self.treedefs[name], leaves)

    def write(self, host: np.ndarray, name: str, value: Any) -> None:
        """Store ``value`` as field ``name`` in ``host`` (a writable host buffer).

        ``ValueError`` if its structure, shapes or dtypes differ from the field's;
        ``host`` is changed only when every leaf fits.
        """
        try:
            leaves = self.treedefs[name].flatten_up_to(value)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{name} must have the structure {self.treedefs[name]}: {error}"
            ) from None
        data = []
        for slot, leaf in zip(self.slots[name], leaves, strict=True):
            if slot.impl is not None:
                leaf = jax.random.key_data(leaf)
            leaf = np.asarray(leaf)
            if leaf.shape != slot.shape or leaf.dtype != slot.dtype:
                raise ValueError(
                    f"{name}: expected {slot.dtype}{list(slot.shape)}, got "
                    f"{leaf.dtype}{list(leaf.shape)}"
                )
            data.append(np.ascontiguousarray(leaf).reshape(-1).view(np.uint8))
        for slot, bytes_ in zip(self.slots[name], data, strict=True):
            host[slot.offset : slot.offset + slot.nbytes] = bytes_


class _Params:
    """Params as a hashable value: equal when the trees, leaf types, dtypes, shapes
    and bytes are equal, so every face over equal params shares one compiled step
    that closes over them. Params whose bytes cannot be read (keys, say) are equal
    only to themselves."""

    def __init__(self, value: Any):
        self.value = value
        leaves, treedef = jax.tree.flatten(value)
        try:
            signature = tuple(
                (
                    type(leaf),
                    getattr(leaf, "weak_type", False),
                    host.dtype.str,
                    host.shape,
                    host.tobytes(),
                )
                for leaf, host in zip(
                    leaves, map(np.asarray, jax.device_get(leaves)), strict=True
                )
            )
            self._key: Any = (treedef, signature)
            self._hash = hash(self._key)
        except (TypeError, ValueError):
            self._key = ("id", id(value))
            self._hash = hash(self._key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Params):
            return NotImplemented
        return self._hash == other._hash and self._key == other._key


def _info_fields(info: dict[str, Any]) -> dict[str, Any]:
    """The core's ``info`` as :class:`_Packed` fields ``info:<name>``, in sorted
    order (the order of a compiled call's dict output)."""
    return {f"info:{name}": info[name] for name in sorted(info)}


class _InfoReader:
    """Each agent's part of the packed ``info`` (see :func:`agent_info`)."""

    def __init__(self, layout: _Packed, num_agents: int):
        self.entries = []
        for field in layout.names:
            if not field.startswith("info:"):
                continue
            slot = layout.slot(field)
            if slot.shape == (num_agents,):
                kind = "scalar"  # each agent's own 0-d element, as a Python scalar
            elif slot.shape and slot.shape[0] == num_agents:
                kind = "row"  # each agent's own row
            else:
                kind = "shared"  # all of it, for every agent
            self.entries.append((field.removeprefix("info:"), slot, kind))

    def one_agent(self, host: np.ndarray, agent: int) -> dict[str, Any]:
        own = {}
        for name, slot, kind in self.entries:
            value = slot.view(host)
            if kind == "scalar":
                own[name] = value[agent].item()
            elif kind == "row":
                own[name] = value[agent]
            else:
                own[name] = value.item() if value.ndim == 0 else value
        return own


# ``struct`` codes of the dtypes a step's scalars come in (standard sizes).
_STRUCT_CODES = {
    np.dtype(np.bool_): "?",
    np.dtype(np.int8): "b",
    np.dtype(np.uint8): "B",
    np.dtype(np.int16): "h",
    np.dtype(np.uint16): "H",
    np.dtype(np.int32): "i",
    np.dtype(np.uint32): "I",
    np.dtype(np.int64): "q",
    np.dtype(np.uint64): "Q",
    np.dtype(np.float32): "f",
    np.dtype(np.float64): "d",
}


class _StepReader:
    """A step's outputs, read from the host buffer into what the parallel face
    returns: every agent's observation (views), and the rewards, the two flags and
    the per-agent scalar infos as Python values from one ``struct`` unpack (each
    numpy view or ``tolist`` costs about a microsecond; the IPD's whole step costs
    a few dozen)."""

    def __init__(self, layout: _Packed, num_agents: int):
        self.num_agents = num_agents
        self.obs = layout.slot("obs")
        info = _InfoReader(layout, num_agents)
        # In the struct: reward (float32, cast in the compiled step), terminated,
        # truncated and every info entry with one scalar per agent; the rest of
        # the info is read as views.
        scalars = {name: layout.slot(name) for name in ("reward", "terminated")}
        scalars["truncated"] = layout.slot("truncated")
        scalar_info, self.other_info = [], []
        for name, slot, kind in info.entries:
            if kind == "scalar" and slot.dtype in _STRUCT_CODES:
                scalars[f"info:{name}"] = slot
                scalar_info.append(name)
            else:
                self.other_info.append((name, slot, kind))
        fmt, position, start = "=", 0, 0
        self.starts: dict[str, int] = {}  # where each field's values begin
        for name, slot in sorted(scalars.items(), key=lambda item: item[1].offset):
            count, code = math.prod(slot.shape), _STRUCT_CODES[slot.dtype]
            fmt += "x" * (slot.offset - position) + f"{count}{code}"
            position = slot.offset + slot.nbytes
            self.starts[name] = start
            start += count
        self.struct = struct.Struct(fmt)
        self.scalar_info_at = [
            (name, self.starts[f"info:{name}"]) for name in scalar_info
        ]

    def read(
        self, host: np.ndarray
    ) -> tuple[np.ndarray, tuple[float, ...], bool, bool, list[dict[str, Any]]]:
        """``(obs, rewards, terminated, truncated, infos)`` of the step in ``host``."""
        n = self.num_agents
        values = self.struct.unpack_from(host)
        obs = self.obs.view(host)
        starts = self.starts
        rewards = values[starts["reward"] : starts["reward"] + n]
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        for name, at in self.scalar_info_at:
            for own, element in zip(infos, values[at : at + n], strict=True):
                own[name] = element
        for name, slot, kind in self.other_info:
            value = slot.view(host)
            if kind == "scalar":
                for own, element in zip(infos, value.tolist(), strict=True):
                    own[name] = element
            elif kind == "row":
                for own, row in zip(infos, value, strict=True):
                    own[name] = row
            else:
                shared = value.item() if value.ndim == 0 else value
                for own in infos:
                    own[name] = shared
        terminated, truncated = (
            values[starts["terminated"]],
            values[starts["truncated"]],
        )
        return obs, rewards, terminated, truncated, infos


class _Compiled(NamedTuple):
    layout: _Packed
    reset: Any  # key -> buffer
    step: Any  # (buffer, int32[N] actions) -> buffer


@functools.cache
def _compiled(env: MultiAgentEnv, params: _Params) -> _Compiled:
    """The packed, jitted reset and step of ``env`` over ``params`` (closed over),
    shared by every face over an equal env and equal params.

    The buffer holds ``key``, ``state``, the step's outputs (``obs``, ``reward``,
    ``terminated``, ``truncated``) and its info (:func:`_info_fields`); after a
    reset the outputs but ``obs`` are zeros.
    """
    values = params.value

    def reset_fields(key: jax.Array) -> dict[str, Any]:
        key, key_reset = jax.random.split(key)
        obs, state = env.reset(key_reset, values)
        return {"key": key, "state": state, "obs": obs}

    def step_fields(key: jax.Array, state: Any, actions: jax.Array) -> dict[str, Any]:
        key, key_step = jax.random.split(key)
        ts = env.step(key_step, state, actions, values)
        return {
            "key": key,
            "state": ts.state,
            "obs": ts.obs,
            "reward": ts.reward.astype(jnp.float32),
            "terminated": ts.terminated,
            "truncated": ts.truncated,
            **_info_fields(ts.info),
        }

    layouts = []

    def trace(key: jax.Array) -> None:
        start = reset_fields(key)
        actions = jnp.zeros((env.num_agents,), jnp.int32)
        layouts.append(_Packed(step_fields(start["key"], start["state"], actions)))

    jax.eval_shape(trace, key_from_seed(0))
    (layout,) = layouts

    def reset(key: jax.Array) -> jax.Array:
        fields = reset_fields(key)
        for name in layout.names:
            if name not in fields:
                (slot,) = layout.slots[name]
                fields[name] = jnp.zeros(slot.shape, slot.dtype)
        return layout.pack(fields)

    def step(buffer: jax.Array, actions: jax.Array) -> jax.Array:
        fields = layout.unpack(buffer)
        return layout.pack(step_fields(fields["key"], fields["state"], actions))

    return _Compiled(layout, jax.jit(reset), jax.jit(step))


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
        self._params = env.default_params if params is None else params
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
        self._build_compiled()
        self.agents: list[str] = []
        # The episode: the packed buffer of the last reset or step (key, state,
        # outputs) on the device, and the same bytes on the host.
        self._buffer: jax.Array | None = None
        self._host: np.ndarray | None = None
        self._obs: np.ndarray | None = None
        self._num_steps = 0

    def _build_compiled(self) -> None:
        compiled = _compiled(self.core, _Params(self._params))
        self._layout = compiled.layout
        self._reset_fn, self._step_fn = compiled.reset, compiled.step
        layout = compiled.layout
        self._reader = _StepReader(layout, self.core.num_agents)
        self._num_actions = [
            self._action_spaces[agent].n for agent in self.possible_agents
        ]

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
            self._buffer = self._host = self._obs = None
            self.agents = []

    @property
    def _key(self) -> jax.Array | None:
        """The key the next step splits (read from the packed buffer)."""
        if self._host is None:
            return None
        return self._layout.read(self._host, "key")

    @property
    def _state(self) -> Any:
        """The core's state (read from the packed buffer; assignable)."""
        if self._host is None:
            return None
        return self._layout.read(self._host, "state")

    @_state.setter
    def _state(self, state: Any) -> None:
        if self._host is None:
            raise ValueError("the state can be set only after reset()")
        host = self._host.copy()
        self._layout.write(host, "state", state)
        self._buffer, self._host = jax.device_put(host), host

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
        buffer = self._reset_fn(key_from_seed(seed))
        host = np.asarray(buffer)
        self._buffer, self._host = buffer, host
        self._obs = self._reader.obs.view(host)
        self._num_steps = 0
        self.agents = list(self.possible_agents)
        observations = dict(zip(self.agents, self._obs, strict=True))
        return observations, {agent: {} for agent in self.agents}

    def _check_running(self) -> None:
        if self._buffer is None:
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
        # The common case first: a dict of every live agent's in-range Python int.
        agents, num_agents = self.agents, len(self.possible_agents)
        if type(actions) is dict and len(actions) == len(agents) == num_agents:
            joint = [actions.get(agent) for agent in agents]
            if all(
                type(action) is int and 0 <= action < n
                for action, n in zip(joint, self._num_actions, strict=True)
            ):
                return np.array(joint, np.int32)
        # Anything else, checked one by one (this raises the errors).
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
        buffer = self._step_fn(self._buffer, joint)
        host = np.asarray(buffer)  # the step's one device-to-host transfer
        self._buffer, self._host = buffer, host
        obs, rewards, terminated, truncated, infos = self._reader.read(host)
        self._obs = obs
        self._num_steps += 1
        if self.max_cycles is not None and self._num_steps >= self.max_cycles:
            truncated = True
        agents = self.agents
        result = (
            dict(zip(agents, obs, strict=True)),
            dict(zip(agents, rewards, strict=True)),
            dict.fromkeys(agents, terminated),
            dict.fromkeys(agents, truncated),
            dict(zip(agents, infos, strict=True)),
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
        state = self._state
        if state is None:
            raise ValueError("render() called before reset()")
        if self.render_mode == "rgb_array":
            frame = self.core.render_rgb(state, self.params)
            return upscale(frame, self.scale)
        text = self.core.render_ansi(state, self.params)
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

    _COMPILED = (
        "_observation_spaces",
        "_action_spaces",
        "state_space",
        "_layout",
        "_reset_fn",
        "_step_fn",
        "_reader",
        "_num_actions",
    )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in self._COMPILED:
            state[name] = None
        state["_buffer"] = state["_obs"] = None
        if self._host is not None:
            state["_host"] = self._host.copy()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build_spaces()
        self._build_compiled()
        if self._host is not None:
            self._buffer = jax.device_put(self._host)
            self._obs = self._reader.obs.view(self._host)


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
