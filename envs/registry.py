"""A registry of JAX core environments: ``make(env_id, **static_kwargs)``.

Ids are versioned (``ipd-v0``); a change of dynamics means a new version. Each game
module registers its own ids on import, so there is no second list to drift.
"""

from __future__ import annotations

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
    try:
        return _REGISTRY[env_id]
    except KeyError:
        raise ValueError(
            f"unknown env id {env_id!r}; registered ids: {registered()}"
        ) from None


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
