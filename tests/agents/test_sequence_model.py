"""The PPI sequence model's losses against a hand computation (numpy).

The reference below writes the spec's model out in numpy for one two-round
trajectory: per-modality linear embeddings, the GRU equations, Swish, one linear
head per modality, and Eqs. 3-5 with ``o_t`` predicted from the state before it,
``r_t`` after ``o_t`` and ``a_t`` after ``r_t``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.agents.sequence_model import SequenceModel

OBS = np.array([[0, 3]])  # s0, then DC (own D, co-player C)
REWARDS = np.array([[0.0, 2.0]])  # r_0 = 0, r_1 = T = 2 for the DC round
ACTIONS = np.array([[1, 0]])  # D, then C


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _hand_losses(p, obs, rewards, actions, first=None):
    """The three losses of one trajectory, written out step by step; ``first`` is
    the embedding of a token fed before ``o_0`` (the Opponent-ID ``z``)."""
    H = p["gru_recurrent"]["w"].shape[0]

    def gru(h, e):
        x = e @ p["gru_input"]["w"] + p["gru_input"]["b"]
        hw = h @ p["gru_recurrent"]["w"]
        r = _sigmoid(x[:H] + hw[:H])
        z = _sigmoid(x[H : 2 * H] + hw[H : 2 * H])
        n = np.tanh(x[2 * H :] + r * (hw[2 * H :] + p["gru_recurrent"]["b"]))
        return (1 - z) * n + z * h

    def head(name, h):
        y = h / (1.0 + np.exp(-h))  # swish
        return y @ p[name]["w"] + p[name]["b"]

    def nll(logits, k):
        return -(logits[k] - np.log(np.sum(np.exp(logits))))

    h = np.zeros(H) if first is None else gru(np.zeros(H), first)
    lo, lr, la = [], [], []
    for o, r, a in zip(obs, rewards, actions, strict=True):
        lo.append(nll(head("obs_head", h), o))
        h = gru(h, p["obs_embed"]["w"][o] + p["obs_embed"]["b"])
        lr.append(0.5 * (r - head("reward_head", h)[0]) ** 2)
        h = gru(h, r * p["reward_embed"]["w"][0] + p["reward_embed"]["b"])
        la.append(nll(head("action_head", h), a))
        h = gru(h, p["action_embed"]["w"][a] + p["action_embed"]["b"])
    return np.mean(lo), np.mean(lr), np.mean(la)


def _hand_params(rng, model):
    """Every parameter set by hand (fixed draws, scale 0.7)."""
    template = model.init(jax.random.key(0))
    return jax.tree.map(
        lambda x: (0.7 * rng.standard_normal(x.shape)).astype(np.float32), template
    )


def test_losses_match_the_hand_computation_on_a_two_round_sequence():
    model = SequenceModel(hidden=3, embed=2)
    params = _hand_params(np.random.default_rng(7), model)
    got = model.losses(
        params, jnp.asarray(OBS), jnp.asarray(REWARDS), jnp.asarray(ACTIONS)
    )
    np_params = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    want = _hand_losses(np_params, OBS[0], REWARDS[0], ACTIONS[0])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)


def test_zero_parameters_predict_uniformly_and_a_zero_reward():
    model = SequenceModel(hidden=4, embed=3)
    params = jax.tree.map(jnp.zeros_like, model.init(jax.random.key(0)))
    got = model.losses(
        params, jnp.asarray(OBS), jnp.asarray(REWARDS), jnp.asarray(ACTIONS)
    )
    # -log(1/5), 0.5 * mean(0^2, 2^2) = 1, -log(1/2)
    np.testing.assert_allclose(np.asarray(got), [math.log(5), 1.0, math.log(2)])


def test_weights_pick_trajectories_and_z_is_a_first_token():
    model = SequenceModel(hidden=3, embed=2, z_dim=10)
    params = _hand_params(np.random.default_rng(3), model)
    obs = jnp.asarray(np.concatenate([OBS, [[0, 1]]]))
    rewards = jnp.asarray(np.concatenate([REWARDS, [[0.0, 1.0]]]))
    actions = jnp.asarray(np.concatenate([ACTIONS, [[0, 0]]]))
    z = jnp.asarray(np.random.default_rng(4).standard_normal((2, 10)), jnp.float32)
    first = model.losses(params, obs[:1], rewards[:1], actions[:1], z[:1])
    masked = model.losses(params, obs, rewards, actions, z, jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(np.asarray(masked), np.asarray(first), rtol=1e-6)
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    e_z = np.asarray(z[0], np.float64) @ p["z_embed"]["w"] + p["z_embed"]["b"]
    want = _hand_losses(p, OBS[0], REWARDS[0], ACTIONS[0], first=e_z)
    np.testing.assert_allclose(np.asarray(first), want, rtol=1e-5)
