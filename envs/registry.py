"""A registry of JAX core environments: ``make(env_id, **static_kwargs)``.

Ids are versioned (``ipd-v0``); a change of dynamics means a new version. Each game
module registers its own ids on import, so there is no second list to drift.

It also holds the catalogues of named co-players. A core env names its catalogue in
``co_players`` (``"dilemmas.agents.strategies"`` for the matrix games); the catalogues
themselves live with the agents, and ``import dilemmas.agents`` registers them here
(:func:`register_co_players`), so ``dilemmas.envs`` imports nothing from the layers
above it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dilemmas.envs.core import MultiAgentEnv

_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*-v\d+$")


@dataclass(frozen=True)
class EnvSpec:
    """How to build one registered environment."""

    env_id: str
    factory: Callable[..., MultiAgentEnv]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, EnvSpec] = {}


def register(
    env_id: str,
    factory: Callable[..., MultiAgentEnv],
    *,
    kwargs: dict[str, Any] | None = None,
    description: str = "",
) -> None:
    """Register ``factory(**kwargs)`` under ``env_id`` (``name-vN``)."""
    if not _ID_PATTERN.match(env_id):
        raise ValueError(
            f"env id {env_id!r} must look like 'name-v0' (lowercase, versioned)"
        )
    if env_id in _REGISTRY:
        raise ValueError(f"env id {env_id!r} is already registered")
    _REGISTRY[env_id] = EnvSpec(env_id, factory, dict(kwargs or {}), description)


def spec(env_id: str) -> EnvSpec:
    """The spec of ``env_id``.

    Raises:
      ValueError: unknown id; the message names close registered ids
        (:func:`did_you_mean`) and lists them all.
    """
    try:
        return _REGISTRY[env_id]
    except KeyError:
        raise ValueError(
            f"unknown env id {env_id!r}{did_you_mean(env_id)}; registered ids: "
            f"{registered()}"
        ) from None


def did_you_mean(env_id: str) -> str:
    """``" (did you mean ipd-v0?)"``: the registered ids close to ``env_id``
    (``difflib``, case ignored, so ``ipd`` and ``IPD-v0`` find ``ipd-v0``), or
    ``""`` when none is."""
    close = difflib.get_close_matches(str(env_id).lower(), registered(), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def make(env_id: str, **static_kwargs: Any) -> tuple[MultiAgentEnv, Any]:
    """Build a registered env; returns ``(env, default_params)``.

    ``static_kwargs`` override the registered constructor arguments.
    """
    env_spec = spec(env_id)
    env = env_spec.factory(**{**env_spec.kwargs, **static_kwargs})
    return env, env.default_params


def registered() -> list[str]:
    """All registered ids, sorted."""
    return sorted(_REGISTRY)


_CO_PLAYERS: dict[str, Callable[..., Any]] = {}


def register_co_players(catalogue: str, factory: Callable[..., Any]) -> None:
    """Register ``factory(name, env, **kwargs)`` as the catalogue ``catalogue``.

    ``catalogue`` is the name core envs give in ``co_players``; registering it again
    replaces the factory (a reloaded module registers itself anew).
    """
    if not isinstance(catalogue, str) or not callable(factory):
        raise ValueError(
            "register_co_players takes a catalogue name and a callable, got "
            f"{catalogue!r} and {factory!r}"
        )
    _CO_PLAYERS[catalogue] = factory


def co_player_catalogue(catalogue: str) -> Callable[..., Any]:
    """The factory registered as ``catalogue``; ``ValueError`` if none is."""
    try:
        return _CO_PLAYERS[catalogue]
    except KeyError:
        raise ValueError(
            f"no catalogue of co-players {catalogue!r} is registered: import "
            "dilemmas.agents (which registers the catalogues), register one with "
            "dilemmas.envs.registry.register_co_players, or pass a co-player object; "
            f"registered: {sorted(_CO_PLAYERS)}"
        ) from None
