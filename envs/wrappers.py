"""Env-agnostic wrappers over any :class:`~dilemmas.envs.core.MultiAgentEnv`.

Each wrapper holds its own dataclass state (the inner env's state plus its fields),
passes unknown attributes through to the inner env and never talks to other wrappers
through ``info`` keys.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.experimental import checkify

from dilemmas.envs.core import MultiAgentEnv, Timestep


def _select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """``pred ? on_true : on_false`` leaf by leaf (vmap-friendly, no branching)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class Wrapper(MultiAgentEnv):
    """Base wrapper: forwards everything to ``env``."""

    def __init__(self, env: MultiAgentEnv):
        self.env = env

    def static_config(self) -> tuple:
        return (self.env,)

    def __getattr__(self, name: str) -> Any:
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def num_agents(self) -> int:
        return self.env.num_agents

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    @property
    def stochastic(self) -> bool:
        return self.env.stochastic

    @property
    def default_params(self) -> Any:
        return self.env.default_params

    def reset(self, key, params):
        return self.env.reset(key, params)

    def step(self, key, state, actions, params) -> Timestep:
        return self.env.step(key, state, actions, params)

    def observation_space(self):
        return self.env.observation_space()

    def action_space(self):
        return self.env.action_space()

    @property
    def render_modes(self) -> tuple[str, ...]:
        return self.env.render_modes

    def render_ansi(self, state, params) -> str:
        return self.env.render_ansi(state, params)

    def render_rgb(self, state, params):
        return self.env.render_rgb(state, params)

    @property
    def unwrapped(self) -> MultiAgentEnv:
        return self.env.unwrapped


class AutoReset(Wrapper):
    """Resets the env, with a fresh key, when an episode ends.

    The returned timestep keeps the true ``reward``, ``terminated`` and ``truncated``
    of the final step; ``obs`` and ``state`` are those of the new episode, and the
    final observation is in ``info["final_obs"]``. ``reset`` is called, never a cached
    first state, so stochastic resets stay stochastic.
    """

    def step(self, key, state, actions, params) -> Timestep:
        key_step, key_reset = jax.random.split(key)
        ts = self.env.step(key_step, state, actions, params)
        done = ts.terminated | ts.truncated
        reset_obs, reset_state = self.env.reset(key_reset, params)
        return ts._replace(
            obs=jnp.where(done, reset_obs, ts.obs),
            state=_select(done, reset_state, ts.state),
            info={**ts.info, "final_obs": ts.obs},
        )


@struct.dataclass
class MetaEpisodeState:
    env_state: Any
    inner_episode: jax.Array  # () int32, index of the current inner episode


class MetaEpisodes(Wrapper):
    """Plays ``num_inner_episodes`` inner episodes back to back as one meta-episode.

    At an inner-episode boundary the inner env is reset with a fresh key (so the next
    observation is the start observation again) and ``info["inner_done"]`` is true;
    ``info["final_obs"]`` holds the inner episode's last observation and
    ``info["inner_episode"]`` the index of the episode the step belonged to. The
    returned ``terminated``/``truncated`` refer to the **meta**-episode only: they
    are set on the last step of the last inner episode (an inner episode that
    *terminates* early ends the meta-episode as terminated too only on the last one).
    A naive co-player updates at each ``inner_done``; a learning-aware agent sees one
    meta-episode.
    """

    def __init__(self, env: MultiAgentEnv, num_inner_episodes: int):
        super().__init__(env)
        if isinstance(num_inner_episodes, bool) or not isinstance(
            num_inner_episodes, int
        ):
            raise ValueError(
                f"num_inner_episodes must be a positive int, got {num_inner_episodes!r}"
            )
        if num_inner_episodes <= 0:
            raise ValueError(
                f"num_inner_episodes must be positive, got {num_inner_episodes}"
            )
        self.num_inner_episodes = num_inner_episodes

    def static_config(self) -> tuple:
        return (self.env, self.num_inner_episodes)

    def reset(self, key, params):
        obs, env_state = self.env.reset(key, params)
        return obs, MetaEpisodeState(env_state, jnp.zeros((), jnp.int32))

    def step(self, key, state: MetaEpisodeState, actions, params) -> Timestep:
        key_step, key_reset = jax.random.split(key)
        ts = self.env.step(key_step, state.env_state, actions, params)
        inner_done = ts.terminated | ts.truncated
        last_inner = state.inner_episode + 1 >= self.num_inner_episodes
        reset_obs, reset_state = self.env.reset(key_reset, params)
        start_next = inner_done & ~last_inner
        next_state = MetaEpisodeState(
            env_state=_select(start_next, reset_state, ts.state),
            inner_episode=state.inner_episode + inner_done.astype(jnp.int32),
        )
        return Timestep(
            obs=jnp.where(start_next, reset_obs, ts.obs),
            state=next_state,
            reward=ts.reward,
            terminated=ts.terminated & last_inner,
            truncated=ts.truncated & last_inner,
            info={
                **ts.info,
                "inner_done": inner_done,
                "inner_episode": state.inner_episode,
                "final_obs": ts.obs,
            },
        )

    def render_ansi(self, state: MetaEpisodeState, params) -> str:
        inner = self.env.render_ansi(state.env_state, params)
        return f"inner episode {int(state.inner_episode)}: {inner}"

    def render_rgb(self, state: MetaEpisodeState, params):
        return self.env.render_rgb(state.env_state, params)


class Checked(Wrapper):
    """Validates actions inside ``step`` with ``jax.experimental.checkify``.

    The core envs assume valid input; use this wrapper while debugging::

        step = jax.jit(checkify.checkify(Checked(env).step))
        err, ts = step(key, state, actions, params)
        err.throw()  # ValueError-like JaxRuntimeError naming the bad action
    """

    def step(self, key, state, actions, params) -> Timestep:
        actions = jnp.asarray(actions)
        if actions.shape != (self.num_agents,):
            raise ValueError(
                f"actions must have shape ({self.num_agents},), got {actions.shape}"
            )
        if not jnp.issubdtype(actions.dtype, jnp.integer):
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        for agent in range(self.num_agents):
            checkify.check(
                (actions[agent] >= 0) & (actions[agent] < self.num_actions),
                f"action of agent {agent} is {{a}}, outside [0, {self.num_actions})",
                a=actions[agent],
            )
        return self.env.step(key, state, actions, params)
