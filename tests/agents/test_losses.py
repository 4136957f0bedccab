"""A2C and PPO losses and advantage normalisation against hand-computed numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents.losses import (
    CPU_CHUNK_SAMPLES,
    a2c_loss,
    chunked_value_and_grad,
    grad_chunks,
    normalize_advantages,
    ppo_loss,
)

# Four samples shared by the A2C cases.
LOG_PROBS = jnp.array([-0.5, -1.0, -2.0, -0.25])
ADVANTAGES = jnp.array([1.0, -2.0, 0.5, 4.0])
VALUES = jnp.array([0.5, 1.0, -1.0, 2.0])
TARGETS = jnp.array([1.0, 0.0, -1.0, 3.0])
ENTROPIES = jnp.array([0.6, 0.4, 0.2, 0.8])


def test_a2c_loss_hand_computed():
    # policy: -mean([-0.5, 2, -1, -1]) = 0.125
    # value: 0.5 * mean([0.25, 1, 0, 1]) = 0.28125; entropy: mean = 0.5
    # total: 0.125 + 0.5 * 0.28125 - 0.01 * 0.5 = 0.260625
    loss, metrics = a2c_loss(
        LOG_PROBS,
        ADVANTAGES,
        VALUES,
        TARGETS,
        ENTROPIES,
        value_coef=0.5,
        entropy_coef=0.01,
    )
    np.testing.assert_allclose(loss, 0.260625, rtol=1e-6)
    expected = {
        "total_loss": 0.260625,
        "policy_loss": 0.125,
        "value_loss": 0.28125,
        "entropy": 0.5,
    }
    assert set(metrics) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-6, err_msg=name)


def test_a2c_gradients():
    def loss(log_probs, advantages, values, targets, entropies):
        return a2c_loss(
            log_probs,
            advantages,
            values,
            targets,
            entropies,
            value_coef=0.5,
            entropy_coef=0.01,
        )[0]

    grads = jax.grad(loss, argnums=(0, 1, 2, 3, 4))(
        LOG_PROBS, ADVANTAGES, VALUES, TARGETS, ENTROPIES
    )
    d_logp, d_adv, d_values, d_targets, d_entropy = grads
    np.testing.assert_allclose(d_logp, [-0.25, 0.5, -0.125, -1.0], rtol=1e-6)
    # 0.5 * (v - G) / 4 for the value coefficient 0.5.
    np.testing.assert_allclose(d_values, [-0.0625, 0.125, 0.0, -0.125], rtol=1e-6)
    np.testing.assert_allclose(d_entropy, [-0.0025] * 4, rtol=1e-6)
    # Advantages and targets are constants.
    np.testing.assert_array_equal(d_adv, np.zeros(4))
    np.testing.assert_array_equal(d_targets, np.zeros(4))


# Ratios on both sides of 1 ± 0.2 with both advantage signs, plus one inside.
RATIOS = np.array([1.5, 1.5, 0.5, 0.5, 1.1])
PPO_ADVANTAGES = jnp.array([1.0, -1.0, 1.0, -1.0, 2.0])
OLD_LOG_PROBS = jnp.full(5, -1.0)
PPO_LOG_PROBS = OLD_LOG_PROBS + jnp.log(jnp.asarray(RATIOS, jnp.float32))


def _ppo(log_probs, advantages=PPO_ADVANTAGES, **kwargs):
    zeros = jnp.zeros(5)
    return ppo_loss(
        log_probs,
        OLD_LOG_PROBS,
        advantages,
        zeros,
        zeros,
        zeros,
        clip_eps=0.2,
        value_coef=0.5,
        entropy_coef=0.0,
        **kwargs,
    )


def test_ppo_clipped_surrogate_hand_computed():
    # min(ρA, clip(ρ)A): ρ=1.5, A=+1 -> 1.2 (clipped); ρ=1.5, A=-1 -> -1.5;
    # ρ=0.5, A=+1 -> 0.5; ρ=0.5, A=-1 -> -0.8 (clipped); ρ=1.1, A=2 -> 2.2.
    # policy loss = -(1.2 - 1.5 + 0.5 - 0.8 + 2.2) / 5 = -0.32.
    loss, metrics = _ppo(PPO_LOG_PROBS)
    np.testing.assert_allclose(loss, -0.32, rtol=1e-6)
    np.testing.assert_allclose(metrics["policy_loss"], -0.32, rtol=1e-6)
    np.testing.assert_allclose(metrics["clip_fraction"], 0.8, rtol=1e-6)
    # mean((ρ - 1) - log ρ) = (2 (0.5 - ln 1.5) + 2 (ln 2 - 0.5) + 0.1 - ln 1.1) / 5
    np.testing.assert_allclose(metrics["approx_kl"], 0.1160108, rtol=1e-5)


def test_ppo_gradient_vanishes_exactly_where_clipped():
    # d/dlogπ of -min(...)/5 is -ρA/5 where the unclipped term is the minimum:
    # [0, 1.5/5, -0.5/5, 0, -2.2/5].
    grad = jax.grad(lambda lp: _ppo(lp)[0])(PPO_LOG_PROBS)
    np.testing.assert_allclose(grad, [0.0, 0.3, -0.1, 0.0, -0.44], rtol=1e-5)


@pytest.mark.parametrize("ratio", [0.9, 1.0, 1.15])
def test_ppo_inside_the_clip_range_has_the_a2c_gradient_at_ratio_one(ratio):
    # Inside 1 ± ε nothing is clipped: the gradient is -ρA/N, which at ρ = 1 is the
    # A2C gradient -A/N.
    log_probs = OLD_LOG_PROBS + np.log(ratio)
    grad = jax.grad(lambda lp: _ppo(lp)[0])(log_probs)
    np.testing.assert_allclose(grad, -ratio * PPO_ADVANTAGES / 5, rtol=1e-5)
    assert float(_ppo(log_probs)[1]["clip_fraction"]) == 0.0
    if ratio == 1.0:
        a2c_grad = jax.grad(
            lambda lp: a2c_loss(
                lp,
                PPO_ADVANTAGES,
                jnp.zeros(5),
                jnp.zeros(5),
                jnp.zeros(5),
                value_coef=0.5,
                entropy_coef=0.0,
            )[0]
        )(log_probs)
        np.testing.assert_allclose(grad, a2c_grad, rtol=1e-6)


# Value clipping with ε_v = 0.2: (old, new, target).
OLD_VALUES = jnp.array([0.0, 0.0, 0.0, 1.0])
NEW_VALUES = jnp.array([0.5, 0.5, -0.1, 0.0])
VALUE_TARGETS = jnp.array([1.0, 0.0, 1.0, 0.0])


def _value_loss(values, value_clip_eps):
    zeros = jnp.zeros(4)
    return ppo_loss(
        zeros,
        zeros,
        zeros,
        values,
        VALUE_TARGETS,
        zeros,
        clip_eps=0.2,
        value_coef=1.0,
        entropy_coef=0.0,
        old_values=OLD_VALUES,
        value_clip_eps=value_clip_eps,
    )


def test_ppo_value_clipping_hand_computed():
    # unclipped (V - G)^2: [0.25, 0.25, 1.21, 0]
    # clipped V_old + clip(V - V_old, ±0.2) = [0.2, 0.2, -0.1, 0.8]:
    #   squared errors [0.64, 0.04, 1.21, 0.64]
    # max: [0.64, 0.25, 1.21, 0.64] -> 0.5 * 2.74 / 4 = 0.3425
    _, clipped = _value_loss(NEW_VALUES, 0.2)
    _, unclipped = _value_loss(NEW_VALUES, None)
    np.testing.assert_allclose(clipped["value_loss"], 0.3425, rtol=1e-6)
    np.testing.assert_allclose(unclipped["value_loss"], 0.21375, rtol=1e-6)
    # Gradient (V - G) / 4 where the unclipped error is the larger, 0 where the
    # clipped one is (samples 0 and 3).
    grad = jax.grad(lambda v: _value_loss(v, 0.2)[0])(NEW_VALUES)
    np.testing.assert_allclose(grad, [0.0, 0.125, -0.275, 0.0], rtol=1e-6)


def test_value_clipping_needs_old_values():
    zeros = jnp.zeros(3)
    with pytest.raises(ValueError, match="old_values"):
        ppo_loss(
            zeros,
            zeros,
            zeros,
            zeros,
            zeros,
            zeros,
            clip_eps=0.2,
            value_coef=0.5,
            entropy_coef=0.0,
            value_clip_eps=0.2,
        )


def test_losses_reject_mismatched_shapes():
    with pytest.raises(AssertionError):
        a2c_loss(
            jnp.zeros(3),
            jnp.zeros(4),
            jnp.zeros(3),
            jnp.zeros(3),
            jnp.zeros(3),
            value_coef=0.5,
            entropy_coef=0.0,
        )


def test_ppo_loss_jit_equals_eager():
    kwargs = {"clip_eps": 0.2, "value_coef": 0.5, "entropy_coef": 0.01}
    args = (
        PPO_LOG_PROBS,
        OLD_LOG_PROBS,
        PPO_ADVANTAGES,
        jnp.arange(5.0),
        jnp.ones(5),
        jnp.full(5, 0.3),
    )
    eager = ppo_loss(*args, old_values=jnp.zeros(5), value_clip_eps=0.2, **kwargs)
    jitted = jax.jit(
        lambda *a: ppo_loss(*a, old_values=jnp.zeros(5), value_clip_eps=0.2, **kwargs)
    )(*args)
    np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-6)
    for name in eager[1]:
        np.testing.assert_allclose(jitted[1][name], eager[1][name], rtol=1e-6)


def test_normalize_advantages_centres_by_default():
    np.testing.assert_allclose(
        normalize_advantages(jnp.array([1.0, 2.0, 3.0, 6.0])),
        [-2.0, -1.0, 0.0, 3.0],
        rtol=1e-6,
    )


def test_normalize_advantages_scales_on_request():
    # std of [1, 2, 3, 6] is sqrt(14 / 4) = 1.8708287.
    np.testing.assert_allclose(
        normalize_advantages(jnp.array([1.0, 2.0, 3.0, 6.0]), scale=True),
        [-1.0690450, -0.5345225, 0.0, 1.6035675],
        rtol=1e-6,
    )


def test_normalize_advantages_over_an_axis():
    np.testing.assert_allclose(
        normalize_advantages(jnp.array([[1.0, 3.0], [2.0, 6.0]]), axis=1),
        [[-1.0, 1.0], [-2.0, 2.0]],
        rtol=1e-6,
    )


def _linear_ppo_loss(params, x, actions, old_log_probs, advantages, targets):
    """PPO on a linear two-action policy and value, a mean over [S, L] samples."""
    logits = x @ params["pi"]
    values = x @ params["v"]
    log_probs = jax.nn.log_softmax(logits)
    entropies = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
    log_prob = jnp.take_along_axis(log_probs, actions[..., None], -1)[..., 0]
    return ppo_loss(
        log_prob,
        old_log_probs,
        advantages,
        values,
        targets,
        entropies,
        clip_eps=0.2,
        value_coef=0.5,
        entropy_coef=0.01,
    )


def _batch(sequences=12, steps=7, features=3):
    k = jax.random.split(jax.random.key(0), 6)
    params = {
        "pi": jax.random.normal(k[0], (features, 2)),
        "v": jax.random.normal(k[1], (features,)),
    }
    batch = (
        jax.random.normal(k[2], (sequences, steps, features)),
        jax.random.randint(k[3], (sequences, steps), 0, 2),
        jnp.full((sequences, steps), -0.6),
        jax.random.normal(k[4], (sequences, steps)),
        jax.random.normal(k[5], (sequences, steps)),
    )
    return params, batch


@pytest.mark.parametrize("chunks", [1, 2, 3, 12])
def test_chunked_value_and_grad_equals_the_whole_batch(chunks):
    params, batch = _batch()
    (loss, metrics), grads = jax.value_and_grad(_linear_ppo_loss, has_aux=True)(
        params, *batch
    )
    chunked = jax.jit(chunked_value_and_grad(_linear_ppo_loss, chunks))
    (loss_c, metrics_c), grads_c = chunked(params, *batch)
    np.testing.assert_allclose(loss_c, loss, rtol=1e-5)
    assert set(metrics_c) == set(metrics)
    for name in metrics:
        np.testing.assert_allclose(metrics_c[name], metrics[name], rtol=1e-5, atol=1e-7)
    for g, g_c in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_c), strict=True):
        np.testing.assert_allclose(g_c, g, rtol=1e-5, atol=1e-7)


def test_chunked_value_and_grad_rejects_chunks_that_do_not_divide():
    params, batch = _batch(sequences=12)
    with pytest.raises(ValueError, match=r"num_chunks = 5 must divide .*\(12\)"):
        chunked_value_and_grad(_linear_ppo_loss, 5)(params, *batch)


def test_grad_chunks_on_cpu(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert CPU_CHUNK_SAMPLES == 8192
    # The paper's IPD minibatch: 1024 sequences of 200 steps -> 32 chunks of 32.
    assert grad_chunks(1024, 200) == 32
    assert grad_chunks(40, 200) == 1  # 8,000 samples fit in one chunk
    assert grad_chunks(7, 5000) == 7  # a prime count: one sequence per chunk
    assert grad_chunks(3, 20000) == 3  # longer than a chunk: still one each
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert grad_chunks(1024, 200) == 1
