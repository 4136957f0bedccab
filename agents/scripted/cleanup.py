"""Scripted reference policies for :mod:`dilemmas.envs.cleanup`.

Two roles span the dilemma: a :class:`DedicatedCleaner` that only cleans the river
(it never enters the orchard, so it never eats) and a :class:`Harvester` that only
collects apples (the defector: it never cleans). A :class:`TurnTaker` is the
cooperator that also eats: it cleans on its turn, or whenever the river is dirty,
and harvests otherwise. They read the full env state, never zap, and are pure JAX::

    env = Cleanup(num_agents=3)
    team = (DedicatedCleaner(env), Harvester(env), Harvester(env))
    actions = joint_actions(team, key, state, params)  # int32[3]

Navigation is greedy over Manhattan distance (the generated maps have no inner
walls); an avatar blocked on both useful axes makes a random step into a free cell
(never into the orchard for the cleaner) to break deadlocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dilemmas.agents.pytrees import policy_dataclass
from dilemmas.agents.scripted import make_policy
from dilemmas.envs import _commons as rules
from dilemmas.envs import grid
from dilemmas.envs.cleanup import Cleanup, CleanupParams, CleanupState

joint_actions = rules.joint_actions
NOOP = rules.NOOP
FIRE_CLEAN = rules.FIRE_CLEAN


def _shift(mask: jax.Array, drow: int, dcol: int) -> jax.Array:
    """``out[r, c] = mask[r + drow, c + dcol]`` (False outside the grid)."""
    height, width = mask.shape
    padded = jnp.pad(mask, 1)
    return padded[1 + drow : 1 + drow + height, 1 + dcol : 1 + dcol + width]


@policy_dataclass
class DedicatedCleaner:
    """Cleans the river and does nothing else.

    Each step: fire the clean beam if it is ready and dirt lies within its reach
    (walls ignored); otherwise go to the nearest firing spot (a free cell outside
    the orchard with dirt right in front of it in some direction), turn to face
    the dirt and wait for the beam. Ties go to the first cell in row-major order.
    With no dirt left it waits where it is. It never steps into the orchard; from
    inside it (where a :class:`TurnTaker`'s turn can begin) it walks out.
    """

    env: Cleanup = struct.field(pytree_node=False)

    def act(
        self, key: jax.Array, state: CleanupState, params: CleanupParams, agent: int
    ) -> jax.Array:
        """The action of ``agent`` in ``state`` (``int32``)."""
        env = self.env
        walls = jnp.asarray(env.walls)
        orchard = jnp.asarray(env.orchard)
        pos, orientation = state.pos[agent], state.orientation[agent]
        blocked = rules.others_blocking(walls, state.pos, state.removed, agent)

        reach = rules.beam_reach(
            pos, orientation, params.clean_length, params.clean_radius, walls.shape
        )
        dirt_in_beam = jnp.any(reach & state.dirt)
        ready = state.clean_timer[agent] == 0

        # spots[d]: cells from which dirt is one step ahead when facing d.
        spots = jnp.stack(
            [
                _shift(state.dirt, int(drow), int(dcol))
                for drow, dcol in grid.DIRECTIONS.tolist()
            ]
        )
        spots = spots & ~(blocked | orchard)[None]
        # The nearest spot over all four directions (ties: row-major order, then
        # the lowest direction).
        spot, found = rules.nearest_cell(pos, spots.any(axis=0))
        facing = jnp.argmax(spots[:, spot[0], spot[1]]).astype(jnp.int32)
        at_spot = jnp.all(spot == pos)

        # Inside the orchard, any step is allowed on the way out.
        avoid = orchard & ~orchard[pos[0], pos[1]]
        go = rules.step_toward(key, pos, orientation, spot, blocked, avoid)
        action = jnp.where(at_spot, rules.turn_toward(orientation, facing), go)
        action = jnp.where(found, action, NOOP)
        action = jnp.where(dirt_in_beam, jnp.where(ready, FIRE_CLEAN, NOOP), action)
        return jnp.where(state.removed[agent] > 0, NOOP, action).astype(jnp.int32)


@policy_dataclass
class Harvester:
    """Collects apples and never cleans.

    Goes to the nearest apple (other than one that grew under it, which it can only
    eat by leaving and coming back); with no apple on the map it walks into the
    orchard and waits there.
    """

    env: Cleanup = struct.field(pytree_node=False)

    def act(
        self, key: jax.Array, state: CleanupState, params: CleanupParams, agent: int
    ) -> jax.Array:
        """The action of ``agent`` in ``state`` (``int32``)."""
        del params
        env = self.env
        pos, orientation = state.pos[agent], state.orientation[agent]
        blocked = rules.others_blocking(env.walls, state.pos, state.removed, agent)
        here = jnp.zeros((env.height, env.width), bool).at[pos[0], pos[1]].set(True)
        orchard = jnp.asarray(env.orchard)
        apples = state.apples & ~here
        any_apple = apples.any()
        action, _ = rules.go_to_nearest(
            key,
            pos,
            orientation,
            jnp.where(any_apple, apples, orchard),
            blocked,
            jnp.zeros_like(here),
        )
        idle = ~any_apple & orchard[pos[0], pos[1]]  # waits in the orchard
        action = jnp.where(idle, NOOP, action)
        return jnp.where(state.removed[agent] > 0, NOOP, action).astype(jnp.int32)


@policy_dataclass
class TurnTaker:
    """Takes turns at cleaning and harvests otherwise.

    Time is cut into shifts of ``shift`` steps; in shift s agent ``s mod N`` is on
    duty. On duty, or whenever the river is dirty enough to halve apple growth
    (dirt fraction at least half of ``threshold_depletion``: 0.2 by default), it
    acts as a :class:`DedicatedCleaner` (walking out of the orchard if it is in
    it); otherwise as a :class:`Harvester`.
    """

    env: Cleanup = struct.field(pytree_node=False)
    shift: int = struct.field(pytree_node=False, default=20)

    def act(
        self, key: jax.Array, state: CleanupState, params: CleanupParams, agent: int
    ) -> jax.Array:
        """The action of ``agent`` in ``state`` (``int32``)."""
        env = self.env
        on_duty = (state.t // self.shift) % env.num_agents == agent
        dirt_fraction = state.dirt.sum() / env.num_river_cells
        dirty = dirt_fraction >= params.threshold_depletion / 2
        clean = DedicatedCleaner(env).act(key, state, params, agent)
        harvest = Harvester(env).act(key, state, params, agent)
        return jnp.where(on_duty | dirty, clean, harvest).astype(jnp.int32)


#: The named policies, for :func:`co_player` and ``dilemmas play``.
POLICIES: dict[str, type] = {
    "dedicated_cleaner": DedicatedCleaner,
    "harvester": Harvester,
    "turn_taker": TurnTaker,
}


def co_player(name: str, env: Cleanup, **kwargs: object):
    """The named scripted policy for ``env`` (the catalogue hook)."""
    return make_policy(POLICIES, "Cleanup", name, env, kwargs)
