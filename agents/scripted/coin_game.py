"""Scripted reference policies for the Coin Game (:mod:`dilemmas.envs.coin_game`).

Each policy is a frozen dataclass holding the env (static) with a pure
``act(key, env_state, params, agent) -> int32`` that reads the full env state.

The deterministic policies are defined by a score over the env's actions, lowest
wins, ties broken by the lowest action id (right, left, down, up, stay); ``d`` is the
torus Manhattan distance and ``cell(a)`` the agent's cell after action ``a``:

* :class:`GreedyCoinTaker` (always defects): target = the nearest coin whatever its
  colour (a tie goes to the own-colour coin, then the lower coin index);
  ``score(a) = 10 * d(cell(a), target) + [a moves]``. So it walks a shortest torus
  path, preferring right/left over down/up, and stays on a coin under it.
* :class:`OwnCoinTaker` (always cooperates): never steps onto a cell holding only
  coins of the co-player's colour; walks a shortest path to a coin of its own colour
  when there is one, and otherwise stays out of the way, i.e. stays put when ``stay``
  exists (two coins) or else makes the first move (in action order) that avoids the
  co-player's coin. ``score(a) = 1000 * [cell(a) holds an other-colour coin and no
  own-colour coin] + 10 * d(cell(a), nearest own coin) (0 if none) + [a moves]``.
  With two coins both may lie on one cell; the cooperator then takes both (the
  alternative, waiting for the co-player, deadlocks two cooperators), so
  ``other_coins`` counts of two cooperators are not always zero there.
* :class:`RandomMover`: a uniformly random action.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dilemmas.agents.pytrees import policy_dataclass
from dilemmas.agents.scripted import make_policy
from dilemmas.envs.coin_game import MOVES, STAY, CoinGame, CoinGameParams, CoinGameState


def torus_distance(a: jax.Array, b: jax.Array, height: int, width: int) -> jax.Array:
    """Manhattan distance on a ``height`` x ``width`` torus, over the last axis."""
    size = jnp.array([height, width], jnp.int32)
    gap = jnp.mod(jnp.asarray(a, jnp.int32) - jnp.asarray(b, jnp.int32), size)
    return jnp.sum(jnp.minimum(gap, size - gap), axis=-1)


def _candidates(env: CoinGame, state: CoinGameState, agent) -> jax.Array:
    """``int32[num_actions, 2]``: the agent's cell after each action."""
    size = jnp.array([env.height, env.width], jnp.int32)
    return jnp.mod(state.agent_pos[agent] + MOVES[: env.num_actions], size)


def _moves(env: CoinGame) -> jax.Array:
    """``int32[num_actions]``: 1 for actions that move, 0 for stay."""
    return (jnp.arange(env.num_actions) != STAY).astype(jnp.int32)


@policy_dataclass
class GreedyCoinTaker:
    """Walks a shortest torus path to the nearest coin, whatever its colour."""

    env: CoinGame = struct.field(pytree_node=False)

    def act(
        self,
        key: jax.Array,
        env_state: CoinGameState,
        params: CoinGameParams,
        agent: int,
    ) -> jax.Array:
        """The greedy action of ``agent`` (see the module docstring)."""
        del key, params
        env = self.env
        pos = env_state.agent_pos[agent]
        not_own = (env_state.coin_colour != agent).astype(jnp.int32)
        coin_index = jnp.arange(env.num_coins, dtype=jnp.int32)
        rank = (
            torus_distance(pos, env_state.coin_pos, env.height, env.width) * 100
            + not_own * 10
            + coin_index
        )
        target = env_state.coin_pos[jnp.argmin(rank)]
        cells = _candidates(env, env_state, agent)
        score = 10 * torus_distance(cells, target, env.height, env.width) + _moves(env)
        return jnp.argmin(score).astype(jnp.int32)


@policy_dataclass
class OwnCoinTaker:
    """Takes only coins of its own colour and never steps onto the co-player's."""

    env: CoinGame = struct.field(pytree_node=False)

    def act(
        self,
        key: jax.Array,
        env_state: CoinGameState,
        params: CoinGameParams,
        agent: int,
    ) -> jax.Array:
        """The cooperative action of ``agent`` (see the module docstring)."""
        del key, params
        env = self.env
        cells = _candidates(env, env_state, agent)  # [A, 2]
        own = env_state.coin_colour == agent  # [C]
        on_coin = jnp.all(cells[:, None, :] == env_state.coin_pos[None], -1)  # [A, C]
        hits_other = jnp.any(on_coin & ~own[None], 1) & ~jnp.any(on_coin & own[None], 1)
        dist = torus_distance(
            cells[:, None, :], env_state.coin_pos[None], env.height, env.width
        )  # [A, C]
        to_own = jnp.min(jnp.where(own[None], dist, jnp.iinfo(jnp.int32).max), 1)
        to_own = jnp.where(jnp.any(own), to_own, 0)
        score = 1000 * hits_other.astype(jnp.int32) + 10 * to_own + _moves(env)
        return jnp.argmin(score).astype(jnp.int32)


@policy_dataclass
class RandomMover:
    """A uniformly random action."""

    env: CoinGame = struct.field(pytree_node=False)

    def act(
        self,
        key: jax.Array,
        env_state: CoinGameState,
        params: CoinGameParams,
        agent: int,
    ) -> jax.Array:
        """A uniformly random action (``agent`` and the state are ignored)."""
        del env_state, params, agent
        return jax.random.randint(key, (), 0, self.env.num_actions, jnp.int32)


#: The named policies, for ``co_player`` and the Gymnasium face.
POLICIES: dict[str, type] = {
    "greedy": GreedyCoinTaker,
    "own_coin": OwnCoinTaker,
    "random": RandomMover,
}


def co_player(name: str, env: CoinGame, **kwargs: object):
    """The named scripted policy for ``env`` (the Gymnasium face's catalogue hook)."""
    return make_policy(POLICIES, "Coin Game", name, env, kwargs)
