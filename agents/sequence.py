"""What a sequence-model agent reads at each step of its own stream.

The in-context co-player inference agents (spec ``coplayer_inference.md`` §1.2,
§2, §9) see their whole history through a recurrent network. At round ``t`` the
A2C agent's input is its observation and, as options, its previous own action and
previous reward; with the Opponent-ID ablation (§1.4) a conditioning vector ``z``
comes first, as an extra token, before the first observation. Every modality goes
through a linear embedding into a shared space: the concatenation of the
modalities through one linear layer equals the sum of per-modality linear
embeddings, so :class:`dilemmas.agents.networks.GRUPolicy`'s input layer is
exactly the spec's per-modality embedding.

Layout of one input vector (``[..., dim]``), in order: the flattened observation,
the previous own action one-hot (``num_actions``; zeros before the first round),
the previous reward (1), ``z`` (:data:`Z_DIM`). Modalities that are switched off
are absent. The ``z`` token holds zeros everywhere but ``z``; a round's input
holds zeros in the ``z`` slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

#: Size of the Opponent-ID vector: log p and log(1 - p) for 5 memory-one states.
Z_DIM = 10


@dataclass(frozen=True)
class SequenceInputs:
    """Which modalities an agent reads, and their sizes.

    Attributes:
      obs_shape: shape of one observation.
      num_actions: actions of the game.
      prev_action: include the previous own action (one-hot).
      prev_reward: include the previous reward.
      opponent_id: reserve the ``z`` slot and start episodes with a ``z`` token.
    """

    obs_shape: tuple[int, ...]
    num_actions: int
    prev_action: bool = False
    prev_reward: bool = False
    opponent_id: bool = False

    @property
    def obs_dim(self) -> int:
        return math.prod(self.obs_shape)

    @property
    def dim(self) -> int:
        """Length of one input vector."""
        return (
            self.obs_dim
            + self.num_actions * self.prev_action
            + int(self.prev_reward)
            + Z_DIM * self.opponent_id
        )

    def step(
        self, obs: jax.Array, prev_action: jax.Array, prev_reward: jax.Array
    ) -> jax.Array:
        """The input of one round: ``obs`` ``[*batch, *obs_shape]``, ``prev_action``
        ``[*batch]`` int (-1 before the first round), ``prev_reward`` ``[*batch]``;
        returns ``[*batch, dim]``."""
        batch = prev_action.shape
        parts = [jnp.reshape(obs, (*batch, self.obs_dim)).astype(jnp.float32)]
        if self.prev_action:
            parts.append(jax.nn.one_hot(prev_action, self.num_actions))
        if self.prev_reward:
            parts.append(prev_reward.astype(jnp.float32)[..., None])
        if self.opponent_id:
            parts.append(jnp.zeros((*batch, Z_DIM), jnp.float32))
        return jnp.concatenate(parts, axis=-1)

    def z_token(self, z: jax.Array) -> jax.Array:
        """The Opponent-ID token of ``z`` ``[*batch, Z_DIM]``: ``[*batch, dim]``."""
        if not self.opponent_id:
            raise ValueError("z_token needs opponent_id=True")
        batch = z.shape[:-1]
        rest = jnp.zeros((*batch, self.dim - Z_DIM), jnp.float32)
        return jnp.concatenate([rest, z.astype(jnp.float32)], axis=-1)
