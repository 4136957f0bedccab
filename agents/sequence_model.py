"""The autoregressive sequence model of Predictive Policy Improvement (PPI).

Spec ``coplayer_inference.md`` §3.1-§3.2 (Weis et al. 2026, App. A.3.1). One GRU
reads the agent's own stream, three tokens per round in the order
``(o_t, r_t, a_t)``: ``tau = (o_0, r_0, a_0, o_1, r_1, a_1, ...)`` where ``r_t`` is the
reward of the previous round's joint action (``r_0 = 0``, §9). The same model is
the world model (it predicts the co-player's responses through the next
observation and reward) and the policy prior / self-model (it predicts the agent's
own next action).

**Tokens.** A token is one modality's value, embedded by that modality's own
linear layer into a shared ``embed``-d space (32 in the paper), and the embedding is
one GRU input: 3 GRU steps per round.

* observation ``o``: an index into the ``num_obs`` categories (5 in the IPD: s0,
  CC, CD, DC, DD), embedded as ``W_obs[o] + b_obs`` (the linear map of its one-hot);
* reward ``r``: a scalar, embedded as ``r * w_rew + b_rew``;
* action ``a``: an index into ``num_actions``, embedded as ``W_act[a] + b_act``;
* with the Opponent-ID ablation (§1.4, §9) a first token ``z`` (``z_dim``
  numbers) through its own linear embedding, before ``o_0``.

**Outputs.** Swish on the GRU state, then one linear head per modality applied to
every state: categorical logits over observations, the mean of a fixed-variance
(unit) Gaussian over the reward, categorical logits over actions. The head of a
modality is read at the state *before* that modality's token: ``o_t`` is predicted
from the state after ``x_{<=t-1}`` (after ``a_{t-1}``, or after ``z`` / from the
zero state at ``t = 0``), ``r_t`` from the state after ``o_t``, ``a_t`` from the
state after ``r_t``.

**Losses** (Eqs. 2-5), means over the ``N`` trajectories and ``T`` rounds:
``L_obs = -mean log p(o_t | ...)``, ``L_action = -mean log p(a_t | ...)`` and
``L_reward = mean 0.5 (r_t - mu_t)^2``: the unit-variance Gaussian's negative log
likelihood without its constant ``0.5 log 2 pi`` (the spec's "MSE"). The total is
``lambda_obs L_obs + lambda_action L_action + lambda_reward L_reward``.

The GRU equations are :func:`dilemmas.agents.networks._gru_cell` (flax's
``GRUCell``), with the recurrent kernel initialised like
:class:`~dilemmas.agents.networks.GRUPolicy`'s; parameters are a plain dict of
arrays (pytree, msgpack-serialisable).

Rollout interface (used by :mod:`dilemmas.agents.ppi`): ``initial_state``,
``feed_z``, ``feed_obs``, ``feed_reward``, ``feed_action`` (one token each, any
batch shape) and ``predict`` (the three heads at a state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dilemmas.agents.networks import _gru_cell, _stacked_orthogonal

Params = dict[str, Any]


class Prediction(NamedTuple):
    """The model's next-token predictions at a state (leading batch axes)."""

    obs_logits: jax.Array  # [..., num_obs]
    reward_mean: jax.Array  # [...]
    action_logits: jax.Array  # [..., num_actions]


class TokenLosses(NamedTuple):
    """The three next-token losses (scalars, means over trajectories and rounds)."""

    obs: jax.Array
    reward: jax.Array
    action: jax.Array


def _dense(key: jax.Array, fan_in: int, fan_out: int) -> dict[str, jax.Array]:
    """A linear layer initialised like ``flax.linen.Dense`` (LeCun normal, zero
    bias)."""
    kernel = nn.initializers.lecun_normal()(key, (fan_in, fan_out), jnp.float32)
    return {"w": kernel, "b": jnp.zeros((fan_out,), jnp.float32)}


@dataclass(frozen=True)
class SequenceModel:
    """The PPI sequence model's shapes and pure functions.

    Attributes:
      num_obs: observation categories (5 in the IPD).
      num_actions: actions (2 in the IPD).
      hidden: GRU hidden size (128 in the paper).
      embed: size of the shared token embedding space (32 in the paper).
      z_dim: size of the Opponent-ID vector; 0 without the ablation's ``z`` token.
    """

    num_obs: int = 5
    num_actions: int = 2
    hidden: int = 128
    embed: int = 32
    z_dim: int = 0

    # ---- parameters and state ------------------------------------------------------

    def init(self, key: jax.Array) -> Params:
        """Fresh parameters (a dict of float32 arrays)."""
        keys = jax.random.split(key, 8)
        H, E = self.hidden, self.embed
        params: Params = {
            "obs_embed": _dense(keys[0], self.num_obs, E),
            "reward_embed": _dense(keys[1], 1, E),
            "action_embed": _dense(keys[2], self.num_actions, E),
            "gru_input": _dense(keys[3], E, 3 * H),
            "gru_recurrent": {
                "w": _stacked_orthogonal(keys[4], (H, 3 * H)),
                "b": jnp.zeros((H,), jnp.float32),
            },
            "obs_head": _dense(keys[5], H, self.num_obs),
            "reward_head": _dense(keys[6], H, 1),
            "action_head": _dense(keys[7], H, self.num_actions),
        }
        if self.z_dim:
            params["z_embed"] = _dense(jax.random.fold_in(key, 1), self.z_dim, E)
        return params

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> jax.Array:
        """The zero GRU state ``[*batch_shape, hidden]``."""
        return jnp.zeros((*batch_shape, self.hidden), jnp.float32)

    # ---- tokens --------------------------------------------------------------------

    def embed_obs(self, params: Params, obs: jax.Array) -> jax.Array:
        """``[...]`` observation indices -> ``[..., embed]``."""
        layer = params["obs_embed"]
        return layer["w"][obs] + layer["b"]

    def embed_reward(self, params: Params, reward: jax.Array) -> jax.Array:
        """``[...]`` rewards -> ``[..., embed]``."""
        layer = params["reward_embed"]
        return reward.astype(jnp.float32)[..., None] * layer["w"][0] + layer["b"]

    def embed_action(self, params: Params, action: jax.Array) -> jax.Array:
        """``[...]`` action indices -> ``[..., embed]``."""
        layer = params["action_embed"]
        return layer["w"][action] + layer["b"]

    def embed_z(self, params: Params, z: jax.Array) -> jax.Array:
        """``[..., z_dim]`` Opponent-ID vectors -> ``[..., embed]``."""
        if not self.z_dim:
            raise ValueError("embed_z needs a model with z_dim > 0")
        layer = params["z_embed"]
        return z.astype(jnp.float32) @ layer["w"] + layer["b"]

    def step(self, params: Params, h: jax.Array, embedding: jax.Array) -> jax.Array:
        """One GRU step on one token's embedding."""
        x = embedding @ params["gru_input"]["w"] + params["gru_input"]["b"]
        rec = params["gru_recurrent"]
        return _gru_cell(h, x, rec["w"], rec["b"])

    def feed_obs(self, params: Params, h: jax.Array, obs: jax.Array) -> jax.Array:
        return self.step(params, h, self.embed_obs(params, obs))

    def feed_reward(self, params: Params, h: jax.Array, reward: jax.Array) -> jax.Array:
        return self.step(params, h, self.embed_reward(params, reward))

    def feed_action(self, params: Params, h: jax.Array, action: jax.Array) -> jax.Array:
        return self.step(params, h, self.embed_action(params, action))

    def feed_z(self, params: Params, h: jax.Array, z: jax.Array) -> jax.Array:
        return self.step(params, h, self.embed_z(params, z))

    def predict(self, params: Params, h: jax.Array) -> Prediction:
        """The three heads at the state ``h`` (Swish on the GRU output first)."""
        y = nn.swish(h)

        def head(name):
            return y @ params[name]["w"] + params[name]["b"]

        return Prediction(
            head("obs_head"), head("reward_head")[..., 0], head("action_head")
        )

    # ---- whole trajectories --------------------------------------------------------

    def token_embeddings(
        self,
        params: Params,
        obs: jax.Array,
        rewards: jax.Array,
        actions: jax.Array,
        z: jax.Array | None = None,
    ) -> jax.Array:
        """The token stream of ``B`` trajectories, time-major ``[L, B, embed]``.

        Args:
          params: model parameters.
          obs: ``[B, T]`` observation indices ``o_t``.
          rewards: ``[B, T]`` rewards ``r_t`` (``r_0 = 0``: the previous round's).
          actions: ``[B, T]`` own actions ``a_t``.
          z: ``[B, z_dim]`` Opponent-ID vectors (models with ``z_dim > 0``).

        Returns:
          ``L = 3T`` (plus 1 with ``z``) embeddings in the order ``[z,] o_0, r_0,
          a_0, o_1, ...``.
        """
        B, T = obs.shape
        tokens = jnp.stack(
            [
                self.embed_obs(params, obs),
                self.embed_reward(params, rewards),
                self.embed_action(params, actions),
            ],
            axis=2,
        )  # [B, T, 3, E]
        tokens = jnp.swapaxes(tokens.reshape(B, 3 * T, -1), 0, 1)
        if self.z_dim:
            if z is None:
                raise ValueError("a model with z_dim > 0 needs the z vectors")
            tokens = jnp.concatenate([self.embed_z(params, z)[None], tokens])
        return tokens

    def states_before_tokens(self, params: Params, tokens: jax.Array) -> jax.Array:
        """``[L, B, H]``: the GRU state from which each token is predicted (the zero
        state for the first, the state after token ``k - 1`` for token ``k``)."""
        h0 = self.initial_state(tokens.shape[1:2])
        x = tokens @ params["gru_input"]["w"] + params["gru_input"]["b"]
        rec = params["gru_recurrent"]

        def body(h, x_t):
            return _gru_cell(h, x_t, rec["w"], rec["b"]), h

        _, before = jax.lax.scan(body, h0, x)
        return before

    def teacher_forced(
        self,
        params: Params,
        obs: jax.Array,
        rewards: jax.Array,
        actions: jax.Array,
        z: jax.Array | None = None,
    ) -> Prediction:
        """Each round's next-token predictions on recorded trajectories.

        Args:
          params, obs, rewards, actions, z: as in :meth:`token_embeddings`.

        Returns:
          :class:`Prediction` with ``obs_logits`` ``[B, T, num_obs]`` (of ``o_t``
          from ``x_{<t}``), ``reward_mean`` ``[B, T]`` (of ``r_t`` after ``o_t``)
          and ``action_logits`` ``[B, T, num_actions]`` (the prior ``p(a_t |
          x_{<=t})`` after ``o_t`` and ``r_t``).
        """
        B, T = obs.shape
        before = self.states_before_tokens(
            params, self.token_embeddings(params, obs, rewards, actions, z)
        )
        before = jnp.swapaxes(before[-3 * T :], 0, 1).reshape(B, T, 3, -1)
        return Prediction(
            self.predict(params, before[:, :, 0]).obs_logits,
            self.predict(params, before[:, :, 1]).reward_mean,
            self.predict(params, before[:, :, 2]).action_logits,
        )

    def losses(
        self,
        params: Params,
        obs: jax.Array,
        rewards: jax.Array,
        actions: jax.Array,
        z: jax.Array | None = None,
        weights: jax.Array | None = None,
    ) -> TokenLosses:
        """The next-token losses of Eqs. 3-5 on ``B`` trajectories of ``T`` rounds.

        Args:
          params: model parameters.
          obs, rewards, actions, z: as in :meth:`token_embeddings`.
          weights: ``[B]`` trajectory weights (e.g. 0 for padding); the losses are
            weighted means over trajectories of the per-trajectory means over
            rounds. ``None`` weighs every trajectory 1.

        Returns:
          :class:`TokenLosses` (``obs``, ``reward``, ``action``).
        """
        B, T = obs.shape
        pred_obs, pred_reward, pred_action = self.teacher_forced(
            params, obs, rewards, actions, z
        )

        def nll(logits, index):
            logp = jax.nn.log_softmax(logits)
            return -jnp.take_along_axis(logp, index[..., None], axis=-1)[..., 0]

        per_round = (
            nll(pred_obs, obs),
            0.5 * jnp.square(rewards.astype(jnp.float32) - pred_reward),
            nll(pred_action, actions),
        )
        w = jnp.ones((B,), jnp.float32) if weights is None else weights
        w = w.astype(jnp.float32)
        total = jnp.maximum(jnp.sum(w), 1e-12)
        means = [jnp.sum(w * jnp.mean(x, axis=1)) / total for x in per_round]
        return TokenLosses(*means)
