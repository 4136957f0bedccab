"""Scripted reference policies for :mod:`dilemmas.envs.harvest`.

Two roles span the dilemma: a :class:`GreedyHarvester` that eats the nearest apple,
whatever it leaves behind (the defector: it takes the last apples of a patch, which
then never regrows), and a :class:`RestrainedHarvester` that never eats the apples
of a patch's core, so every patch keeps regrowing (the cooperator). They read the
full env state, never zap, and are pure JAX::

    env = Harvest(num_agents=4)
    team = (RestrainedHarvester(env),) * 3 + (GreedyHarvester(env),)
    actions = joint_actions(team, key, state, params)  # int32[4]

The core of a patch is its grass cells whose four neighbours are all grass (the
central plus of a diamond of radius 2: 5 of its 13 cells). With Melting Pot's
regrowth table and L2 radius 2, a diamond that keeps its core full regrows each of
its 8 other cells with probability 0.025 (the 4 cells diagonal to the centre, 3
core neighbours) or 0.005 (the 4 tips, 2 core neighbours): 0.12 apples a step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dilemmas.agents.pytrees import policy_dataclass
from dilemmas.agents.scripted import make_policy
from dilemmas.envs import _commons as rules
from dilemmas.envs.harvest import Harvest, HarvestParams, HarvestState

joint_actions = rules.joint_actions


def patch_cores(grass: np.ndarray) -> np.ndarray:
    """``bool[H, W]``: grass cells whose four neighbours are all grass."""
    padded = np.pad(np.asarray(grass, bool), 1)
    core = padded[1:-1, 1:-1].copy()
    for drow, dcol in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        core &= padded[
            1 + drow : padded.shape[0] - 1 + drow, 1 + dcol : padded.shape[1] - 1 + dcol
        ]
    return core


def _seek(
    env: Harvest,
    key: jax.Array,
    state: HarvestState,
    agent: int,
    allowed: jax.Array,
) -> jax.Array:
    """Step towards the nearest apple in ``allowed`` (NOOP if none or removed)."""
    pos, orientation = state.pos[agent], state.orientation[agent]
    blocked = rules.others_blocking(env.walls, state.pos, state.removed, agent)
    # An apple that grew under the avatar is eaten only by leaving and coming back.
    here = jnp.zeros((env.height, env.width), bool).at[pos[0], pos[1]].set(True)
    # Entering a cell eats its apple, so the way avoids the apples not allowed.
    action, _ = rules.go_to_nearest(
        key,
        pos,
        orientation,
        state.apples & allowed & ~here,
        blocked,
        state.apples & ~allowed,
    )
    return jnp.where(state.removed[agent] > 0, rules.NOOP, action).astype(jnp.int32)


@policy_dataclass
class GreedyHarvester:
    """Goes to the nearest apple and eats it; waits when there is none."""

    env: Harvest = struct.field(pytree_node=False)

    def act(
        self, key: jax.Array, state: HarvestState, params: HarvestParams, agent: int
    ) -> jax.Array:
        """The action of ``agent`` in ``state`` (``int32``)."""
        del params
        everywhere = jnp.ones((self.env.height, self.env.width), bool)
        return _seek(self.env, key, state, agent, everywhere)


@policy_dataclass
class RestrainedHarvester:
    """Goes to the nearest apple outside the patch cores; waits when there is none.

    Leaving every core (see :func:`patch_cores`) uneaten keeps each patch alive:
    its other cells always have apples within the regrowth radius.
    """

    env: Harvest = struct.field(pytree_node=False)

    def act(
        self, key: jax.Array, state: HarvestState, params: HarvestParams, agent: int
    ) -> jax.Array:
        """The action of ``agent`` in ``state`` (``int32``)."""
        del params
        allowed = jnp.asarray(~patch_cores(self.env.grass))
        return _seek(self.env, key, state, agent, allowed)


#: The named policies, for :func:`co_player` and ``dilemmas play``.
POLICIES: dict[str, type] = {
    "greedy": GreedyHarvester,
    "restrained": RestrainedHarvester,
}


def co_player(name: str, env: Harvest, **kwargs: object):
    """The named scripted policy for ``env`` (the catalogue hook)."""
    return make_policy(POLICIES, "Harvest", name, env, kwargs)
