"""Scripted reference policies for CleanUp-lite (:mod:`dilemmas.envs.cleanup_lite`).

Each policy is a ``flax.struct`` dataclass (field-less but for
``TurnTaker.shift``, a static field) with a pure
``act(key, env_state, params, agent) -> int32`` action (jit/vmap-able; ``agent`` may
be traced). They read the full env state; all but ``RandomAction`` ignore the key.

``AlwaysHarvest``, ``DedicatedCleaner`` and ``Zapper`` share one walking rule,
:func:`seek_column`: walk horizontally to a target column; once in it, walk
vertically towards the nearest target cell of it, ignoring the cell the agent stands
on (whatever lies there is harvested or cleaned in this very step, since movement is
the last phase), ties broken towards the top (the smaller row); with no target cell
left, walk to the middle row ``(height - 1) // 2`` and wait there with the no-op. A
frozen agent's action is ignored by the env; the policies return the no-op for it.

====================  ===============================================================
policy                behaviour
====================  ===============================================================
``AlwaysHarvest``     seeks the apples of the orchard (column 0); never enters the
                      river, so it cleans only when it starts there (in its first
                      step, before walking out), and never zaps (the defector)
``DedicatedCleaner``  seeks the dirt of the river (column ``width - 1``); never
                      leaves it once there, so it never harvests
``TurnTaker``         takes turns at cleaning: in shift s of ``shift`` steps (16)
                      agent ``s mod 2`` is on duty; on duty, or whenever the river
                      holds at least half of ``dirt_threshold`` dirt (2 of 3, apple
                      growth 1/3 or less), acts as ``DedicatedCleaner``, otherwise
                      as ``AlwaysHarvest`` (the cooperator that also eats)
``Zapper``            zaps whenever both agents are unfrozen and the co-player is in
                      zap range (``in_zap_range`` under the env's params), otherwise
                      acts as ``AlwaysHarvest``
``RandomAction``      a uniformly random action of the six (uses its key)
====================  ===============================================================

:func:`co_player` builds them by name (``always_harvest``, ``dedicated_cleaner``,
``turn_taker``, ``zapper``, ``random``): the catalogue hook of the Gymnasium face.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dilemmas.agents.pytrees import policy_dataclass
from dilemmas.agents.scripted import make_policy
from dilemmas.envs.cleanup_lite import (
    MOVE_DOWN,
    MOVE_LEFT,
    MOVE_RIGHT,
    MOVE_UP,
    NOOP,
    ZAP,
    CleanUpLite,
    CleanUpLiteParams,
    CleanUpLiteState,
    in_zap_range,
)


def seek_column(pos: jax.Array, column: int, targets: jax.Array) -> jax.Array:
    """The action walking from ``pos`` to the nearest target of ``column``.

    Args:
      pos: ``int32[2]``, the agent's (row, col).
      column: the column to reach.
      targets: ``bool[H]``, the target rows of that column.

    Returns:
      int32 action: right/left until in ``column``; then up/down towards the nearest
      target row other than the agent's own (ties towards the top), or towards the
      middle row ``(H - 1) // 2`` when there is none; no-op once there.
    """
    height = targets.shape[0]
    rows = jnp.arange(height, dtype=jnp.int32)
    candidates = targets & (rows != pos[0])
    distance = jnp.where(candidates, jnp.abs(rows - pos[0]), height + 1)
    goal = jnp.where(candidates.any(), jnp.argmin(distance), (height - 1) // 2)
    vertical = jnp.where(
        goal < pos[0], MOVE_UP, jnp.where(goal > pos[0], MOVE_DOWN, NOOP)
    )
    horizontal = jnp.where(pos[1] > column, MOVE_LEFT, MOVE_RIGHT)
    return jnp.where(pos[1] == column, vertical, horizontal).astype(jnp.int32)


def _frozen(env_state: CleanUpLiteState, agent: jax.Array) -> jax.Array:
    return env_state.freeze[agent] > 0


@policy_dataclass
class AlwaysHarvest:
    """Walks to the orchard (column 0) and harvests; never cleans on purpose."""

    def act(
        self,
        key: jax.Array,
        env_state: CleanUpLiteState,
        params: CleanUpLiteParams,
        agent: int | jax.Array,
    ) -> jax.Array:
        """Action of ``agent``: :func:`seek_column` towards the orchard's apples."""
        del key, params
        action = seek_column(env_state.agent_pos[agent], 0, env_state.apples[:, 0])
        return jnp.where(_frozen(env_state, agent), NOOP, action).astype(jnp.int32)


@policy_dataclass
class DedicatedCleaner:
    """Walks to the river (the last column) and cleans it; never harvests there."""

    def act(
        self,
        key: jax.Array,
        env_state: CleanUpLiteState,
        params: CleanUpLiteParams,
        agent: int | jax.Array,
    ) -> jax.Array:
        """Action of ``agent``: :func:`seek_column` towards the river's dirt."""
        del key, params
        river = env_state.dirt.shape[1] - 1
        action = seek_column(
            env_state.agent_pos[agent], river, env_state.dirt[:, river]
        )
        return jnp.where(_frozen(env_state, agent), NOOP, action).astype(jnp.int32)


@policy_dataclass
class TurnTaker:
    """Cleans on its turn or when the river is dirty; harvests otherwise."""

    shift: int = struct.field(pytree_node=False, default=16)

    def act(
        self,
        key: jax.Array,
        env_state: CleanUpLiteState,
        params: CleanUpLiteParams,
        agent: int | jax.Array,
    ) -> jax.Array:
        """:class:`DedicatedCleaner`'s action if ``agent`` is on duty (agent
        ``(t // shift) mod 2``) or the dirt count is at least
        ``dirt_threshold / 2``, else :class:`AlwaysHarvest`'s."""
        on_duty = (env_state.t // self.shift) % 2 == agent
        dirty = env_state.dirt.sum() >= params.dirt_threshold / 2
        clean = DedicatedCleaner().act(key, env_state, params, agent)
        harvest = AlwaysHarvest().act(key, env_state, params, agent)
        return jnp.where(on_duty | dirty, clean, harvest).astype(jnp.int32)


@policy_dataclass
class Zapper:
    """Harvests like :class:`AlwaysHarvest` and zaps the co-player in range."""

    def act(
        self,
        key: jax.Array,
        env_state: CleanUpLiteState,
        params: CleanUpLiteParams,
        agent: int | jax.Array,
    ) -> jax.Array:
        """Zap if both agents are unfrozen and the co-player is within zap range
        (measured on ``env_state``), else the :class:`AlwaysHarvest` action."""
        pos = env_state.agent_pos
        other = 1 - jnp.asarray(agent, jnp.int32)
        can_zap = (
            ~_frozen(env_state, agent)
            & ~_frozen(env_state, other)
            & in_zap_range(pos[agent], pos[other], params)
        )
        harvest = AlwaysHarvest().act(key, env_state, params, agent)
        return jnp.where(can_zap, ZAP, harvest).astype(jnp.int32)


@policy_dataclass
class RandomAction:
    """Plays a uniformly random action of the six."""

    def act(
        self,
        key: jax.Array,
        env_state: CleanUpLiteState,
        params: CleanUpLiteParams,
        agent: int | jax.Array,
    ) -> jax.Array:
        """A uniform action in ``[0, 6)`` (the state and ``agent`` are ignored)."""
        del env_state, params, agent
        return jax.random.randint(key, (), 0, 6, jnp.int32)


#: The named policies, for :func:`co_player` and the Gymnasium face.
POLICIES: dict[str, type] = {
    "always_harvest": AlwaysHarvest,
    "dedicated_cleaner": DedicatedCleaner,
    "turn_taker": TurnTaker,
    "zapper": Zapper,
    "random": RandomAction,
}


def co_player(name: str, env: CleanUpLite | None = None, **kwargs: object):
    """The named scripted policy (the Gymnasium face's catalogue hook)."""
    return make_policy(POLICIES, "CleanUp-lite", name, env, kwargs)
