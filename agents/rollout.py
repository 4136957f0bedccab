"""One episode of fixed players in any core env, in one compiled ``lax.scan``.

A player is either a *strategy* (``init() -> state`` and ``act(key, state, obs) ->
(action, state)``: it reads its own observation, like the matrix-game strategies) or a
*scripted policy* (``act(key, env_state, params, agent) -> action``, no ``init``: it
reads the full env state, like the grid games' scripted policies).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dilemmas.envs.core import MultiAgentEnv


class Episode(NamedTuple):
    actions: jax.Array  # [T, A] int32
    rewards: jax.Array  # [T, A] float32
    info: dict[str, jax.Array]  # each [T, ...] as the env reports it
    done: jax.Array  # [T] bool: terminated or truncated at this step


def named_player(env: MultiAgentEnv, name: str, **kwargs: Any) -> Any:
    """A player from the env's catalogue (``env.co_players``) by name."""
    from dilemmas.envs.gymnasium import named_co_player

    return named_co_player(env, name, **kwargs)


def _reads_env_state(player: Any) -> bool:
    return not hasattr(player, "init")


@functools.partial(jax.jit, static_argnames=("env", "steps"))
def play_episode(
    key: jax.Array,
    players: Sequence[Any],
    params: Any,
    *,
    env: MultiAgentEnv,
    steps: int,
) -> Episode:
    """Reset ``env`` and play ``steps`` steps, player ``i`` acting as agent ``i``.

    ``step`` never resets, so ``steps`` should not exceed the episode length; the
    returned ``done`` flags say where the episode ended.
    """
    if len(players) != env.num_agents:
        raise ValueError(
            f"{env.name} has {env.num_agents} agents, got {len(players)} players"
        )
    key, key_reset = jax.random.split(key)
    obs, state = env.reset(key_reset, params)
    player_states = [
        jnp.zeros((), jnp.int32) if _reads_env_state(p) else p.init() for p in players
    ]

    def body(carry, key_t):
        state, obs, player_states = carry
        keys = jax.random.split(key_t, env.num_agents + 1)
        actions, new_states = [], []
        for i, player in enumerate(players):
            if _reads_env_state(player):
                action = player.act(keys[i], state, params, i)
                player_state = player_states[i]
            else:
                action, player_state = player.act(keys[i], player_states[i], obs[i])
            actions.append(jnp.asarray(action, jnp.int32))
            new_states.append(player_state)
        actions = jnp.stack(actions)
        ts = env.step(keys[-1], state, actions, params)
        out = (actions, ts.reward, ts.info, ts.terminated | ts.truncated)
        return (ts.state, ts.obs, new_states), out

    keys = jax.random.split(key, steps)
    _, (actions, rewards, info, done) = jax.lax.scan(
        body, (state, obs, player_states), keys
    )
    return Episode(actions=actions, rewards=rewards, info=info, done=done)
