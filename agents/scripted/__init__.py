"""Scripted reference policies for the grid games, one module per game.

Each game module lists its policies by name in ``POLICIES`` and exposes
``co_player(name, env)``, the catalogue hook the Gymnasium face and
``dilemmas play`` use (see ``MultiAgentEnv.co_players``).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def make_policy(
    policies: dict[str, type], game: str, name: str, env: Any, kwargs: dict
) -> Any:
    """The policy ``name`` of ``policies``, bound to ``env`` when it holds one."""
    if name not in policies:
        raise ValueError(f"unknown {game} policy {name!r}; known: {list(policies)}")
    if kwargs:
        raise ValueError(f"{game} policies take no options, got {sorted(kwargs)}")
    policy = policies[name]
    if any(field.name == "env" for field in dataclasses.fields(policy)):
        if env is None:
            raise ValueError(f"the {game} policy {name!r} needs the env")
        return policy(env=env.unwrapped)
    return policy()
