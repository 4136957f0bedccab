"""The environment contract shared by every game in :mod:`dilemmas.envs`.

A multi-agent environment is a class of pure methods over two frozen dataclasses,
``State`` and ``Params``:

* ``reset(key, params) -> (obs, state)``
* ``step(key, state, actions, params) -> Timestep(obs, state, reward, terminated,
  truncated, info)``

Agents are an array axis: ``actions`` is ``int32[num_agents]``, ``reward`` is
``float32[num_agents]`` and ``obs`` is ``[num_agents, *obs_shape]``. ``terminated``
(the game ended) and ``truncated`` (a time limit) are scalar bools and are kept
separate. ``step`` never resets: wrap the env in :class:`dilemmas.envs.AutoReset` for
that. Anything that fixes a shape is a constructor argument; every number (payoffs,
horizons, probabilities) lives in ``Params``, so a sweep over games is one ``vmap``
over params.

The core assumes valid inputs (actions inside the action space, a state produced by
this env) and does no checking on the hot path. For debugging, wrap the env in
:class:`dilemmas.envs.Checked` and run its ``step`` under ``jax.experimental.checkify``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

import gymnasium.spaces
import jax
import numpy as np

State = TypeVar("State")
Params = TypeVar("Params")


class Timestep(NamedTuple):
    """What :meth:`MultiAgentEnv.step` returns; unpacks as a 6-tuple."""

    obs: jax.Array  # [A, *obs_shape]
    state: Any  # the env's State after the step
    reward: jax.Array  # [A] float32
    terminated: jax.Array  # () bool: the game reached a natural end
    truncated: jax.Array  # () bool: a time limit was hit
    info: dict[str, jax.Array]


class LegendEntry(NamedTuple):
    """One kind of thing in a game's pictures (:meth:`MultiAgentEnv.render_legend`).

    ``ansi`` is how :meth:`~MultiAgentEnv.render_ansi` draws it (``None``: not drawn
    there); ``rgb`` the ``(r, g, b)`` colour :meth:`~MultiAgentEnv.render_rgb` paints
    it (``None``: not drawn there).
    """

    meaning: str
    ansi: str | None
    rgb: tuple[int, int, int] | None


class MultiAgentEnv(Generic[State, Params]):
    """Base class of every JAX core environment.

    Subclasses set ``num_agents`` and ``num_actions`` and implement
    :meth:`default_params`, :meth:`reset`, :meth:`step` and
    :meth:`observation_space`. All methods are pure and jit/vmap/scan-able; the
    instance holds only static configuration (shapes, flags).
    """

    num_agents: int
    num_actions: int
    #: Whether ``step`` uses its key: a deterministic game gives identical
    #: trajectories for identical actions whatever the key.
    stochastic: ClassVar[bool] = False
    #: Render modes the host-side hooks support (``"ansi"``: :meth:`render_ansi`,
    #: ``"rgb_array"``: :meth:`render_rgb`).
    render_modes: ClassVar[tuple[str, ...]] = ("ansi",)
    #: Key of the catalogue of named co-players for this game, used by the Gymnasium
    #: face: ``dilemmas.agents`` registers each catalogue under this key on import
    #: (:func:`dilemmas.envs.registry.register_co_players`); envs import nothing of
    #: the agents.
    co_players: ClassVar[str | None] = None
    #: The co-player the Gymnasium face uses when none is given.
    default_co_player: ClassVar[str | None] = None
    #: ``(player_0, every other player)``: the named players ``dilemmas play`` shows
    #: when none is given, chosen to show the game's dilemma (``None``: the default
    #: co-player everywhere).
    demo_players: ClassVar[tuple[str, str] | None] = None
    #: Names of the actions in index order, for printing (``dilemmas play -v``); an
    #: action without a name is printed as its number.
    action_names: ClassVar[tuple[str, ...]] = ()

    def static_config(self) -> tuple:
        """What fixes the env's compiled code: shapes and flags, not numbers.

        Envs with equal ``static_config`` are equal and hash alike, so jitted
        functions taking the env as a static argument compile once per config,
        not once per instance. The default is the instance's identity.
        """
        return (id(self),)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        return self.static_config() == other.static_config()

    def __hash__(self) -> int:
        return hash((type(self), self.static_config()))

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def default_params(self) -> Params:
        raise NotImplementedError

    def reset(self, key: jax.Array, params: Params) -> tuple[jax.Array, State]:
        raise NotImplementedError

    def step(
        self, key: jax.Array, state: State, actions: jax.Array, params: Params
    ) -> Timestep:
        raise NotImplementedError

    def observation_space(self) -> gymnasium.spaces.Space:
        """The space of one agent's observation (``obs[i]``)."""
        raise NotImplementedError

    def action_space(self) -> gymnasium.spaces.Discrete:
        """The space of one agent's action (``actions[i]``)."""
        return gymnasium.spaces.Discrete(self.num_actions)

    def render_ansi(self, state: State, params: Params) -> str:
        """A text picture of ``state`` (host-side, not jittable)."""
        del params
        return repr(state)

    def render_rgb(self, state: State, params: Params) -> np.ndarray:
        """An RGB picture of ``state``, ``uint8[H, W, 3]`` (host-side)."""
        raise NotImplementedError(f"{self.name} has no rgb_array rendering")

    def render_legend(self) -> tuple[LegendEntry, ...]:
        """What the symbols of :meth:`render_ansi` and the colours of
        :meth:`render_rgb` stand for (empty when the game does not say)."""
        return ()

    @property
    def unwrapped(self) -> MultiAgentEnv:
        return self
