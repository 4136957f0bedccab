"""Naive learners: agents that treat their co-players as part of the environment.

COALA-PG's naive co-player (App. B.4, Table 8; spec ``coala_pg.md`` §1.6) is A2C
*without value bootstrapping*: at the end of every inner episode it takes one
gradient step on the batch of ``B`` episodes it just played, with Monte-Carlo
returns (``λ_td = λ_gae = 1``), centred advantages, reward rescaling and its own
optimiser state, and its recurrent state is reset at the start of every episode.
:class:`A2CLearner` is that rule for any network of :mod:`dilemmas.agents.networks`;
the shaping loop (:mod:`dilemmas.training.shaping`) runs it in the scan carry of
every meta-episode, and an independent-learner population (the in-context
co-player inference setting) can run it as is.

The exact-gradient naive learner of the analytic IPD (tabular logits ascending
their exact value) is :func:`dilemmas.training.analytic.naive_step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dilemmas.agents import losses


def discounted_returns(rewards: jax.Array, gamma: float) -> jax.Array:
    """Monte-Carlo returns of time-major ``[T, ...]`` rewards; the episode ends at T.

    ``G_t = r_t + gamma G_{t+1}``, ``G_T = 0``.
    """

    def step(acc, r_t):
        acc = r_t + gamma * acc
        return acc, acc

    _, returns = jax.lax.scan(step, jnp.zeros_like(rewards[0]), rewards, reverse=True)
    return returns


def first_step_resets(length: int, batch: int) -> jax.Array:
    """``[length, batch]`` reset flags, true only at the first step."""
    return jnp.zeros((length, batch), bool).at[0].set(True)


@dataclass(frozen=True)
class A2CLearner:
    """The naive learner's update rule, closed over its network and settings.

    Attributes:
      net: a policy-value network with the ``initial_state`` / ``unroll`` interface
        of :mod:`dilemmas.agents.networks`.
      optimiser: its optimiser (the paper: Adam 0.005, eps 1e-5, after clipping the
        global gradient norm at 1).
      reward_scale: reward multiplier for returns and values (the paper: 0.05).
      gamma: discount of the Monte-Carlo returns (the paper: 0.99).
      value_coef, entropy_coef: loss weights (the paper: 0.5 and 0).
      normalize_advantages: centre the advantages over the batch (the paper: yes).
    """

    net: nn.Module
    optimiser: optax.GradientTransformation
    reward_scale: float = 0.05
    gamma: float = 0.99
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    normalize_advantages: bool = True

    def loss(
        self, params: Any, obs: jax.Array, actions: jax.Array, rewards: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """A2C loss on ``B`` whole episodes, time-major: ``obs`` ``[T, B, ...]``,
        ``actions`` and ``rewards`` ``[T, B]``; the state is reset at step 0."""
        T, B = actions.shape  # noqa: N806 (the paper's symbols)
        returns = discounted_returns(rewards * self.reward_scale, self.gamma)
        _, out = self.net.apply(
            params,
            self.net.initial_state((B,)),
            obs,
            first_step_resets(T, B),
            method="unroll",
        )
        advantages = returns - out.value
        if self.normalize_advantages:
            advantages = losses.normalize_advantages(advantages)
        dist = distrax.Categorical(logits=out.logits)
        return losses.a2c_loss(
            dist.log_prob(actions),
            advantages,
            out.value,
            returns,
            dist.entropy(),
            value_coef=self.value_coef,
            entropy_coef=self.entropy_coef,
        )

    def update(
        self,
        params: Any,
        opt_state: Any,
        obs: jax.Array,
        actions: jax.Array,
        rewards: jax.Array,
    ) -> tuple[Any, Any, dict[str, jax.Array]]:
        """One A2C step on the ``B`` episodes just played (arrays as :meth:`loss`).

        Returns the new parameters, optimiser state and the loss metrics.
        """
        grads, metrics = jax.grad(self.loss, has_aux=True)(
            params, obs, actions, rewards
        )
        updates, opt_state = self.optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics
