"""Policy-gradient losses shared by every estimator (A2C and PPO; spec §3.4).

The losses see only per-sample arrays of one common shape (``[B, L]``, ``[N]`` or
anything else): log-probabilities and entropies from the policy, values from the
critic, advantages and value targets from ``dilemmas.training.estimators``. They
know neither the network nor the estimator, so COALA-PG, M-FOS and the
batch-unaware ablation train through the same code and differ only in their
advantages. Every loss is a plain mean over all samples, which is why vs-naive
COALA advantages are multiplied by ``B`` first
(``estimators.scale_coala_advantages``; spec §4).

Advantages, value targets and the old (behaviour) log-probabilities and values are
treated as constants: gradients are stopped through them, as in rlax.

Because every loss is a mean, its gradient over a batch is the mean of the gradients
over equal chunks of it: :func:`chunked_value_and_grad` takes them one chunk after
another inside one compiled loop. On a CPU that keeps each chunk's activations in
cache (the update of a sequence model over ``[S, L]`` samples is memory-bound), and
:func:`grad_chunks` picks the number of chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp

__all__ = [
    "CPU_CHUNK_SAMPLES",
    "a2c_loss",
    "chunked_value_and_grad",
    "grad_chunks",
    "normalize_advantages",
    "ppo_loss",
]

Metrics = dict[str, jax.Array]


def normalize_advantages(
    advantages: jax.Array,
    *,
    scale: bool = False,
    axis: int | tuple[int, ...] | None = None,
    eps: float = 1e-8,
) -> jax.Array:
    """Centre advantages, and optionally scale them to unit standard deviation.

    The paper's "advantage normalisation" is *centering*: subtracting the mean over
    the batched trajectories (App. B; spec §3.4). In mixed pools, call this
    separately on the vs-naive and the vs-meta advantages. ``scale=True`` also
    divides by ``std + eps``, the usual PPO normalisation.

    Args:
      advantages: advantages of any shape.
      scale: also divide by the standard deviation.
      axis: axes to take the statistics over; ``None`` for all.
      eps: added to the standard deviation before dividing.

    Returns:
      Normalised advantages, same shape.
    """
    advantages = jnp.asarray(advantages)
    centred = advantages - jnp.mean(advantages, axis=axis, keepdims=True)
    if not scale:
        return centred
    return centred / (jnp.std(advantages, axis=axis, keepdims=True) + eps)


def _value_loss(
    values: jax.Array,
    targets: jax.Array,
    old_values: jax.Array | None,
    value_clip_eps: float | None,
) -> jax.Array:
    """``½ mean (V - target)²``, optionally the PPO2 clipped form.

    Clipped: ``½ mean max((V - G)², (V_old + clip(V - V_old, ±ε) - G)²)``.
    """
    targets = jax.lax.stop_gradient(targets)
    squared = jnp.square(values - targets)
    if value_clip_eps is not None:
        if old_values is None:
            raise ValueError("value clipping needs old_values")
        old_values = jax.lax.stop_gradient(old_values)
        clipped = old_values + jnp.clip(
            values - old_values, -value_clip_eps, value_clip_eps
        )
        squared = jnp.maximum(squared, jnp.square(clipped - targets))
    return 0.5 * jnp.mean(squared)


def _total(
    policy_loss: jax.Array,
    value_loss: jax.Array,
    entropies: jax.Array,
    value_coef: float,
    entropy_coef: float,
) -> tuple[jax.Array, Metrics]:
    """``policy + c_v value - c_H entropy`` and the metrics every loss reports."""
    entropy = jnp.mean(entropies)
    total = policy_loss + value_coef * value_loss - entropy_coef * entropy
    metrics = {
        "total_loss": total,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
    }
    return total, metrics


def a2c_loss(
    log_probs: jax.Array,
    advantages: jax.Array,
    values: jax.Array,
    targets: jax.Array,
    entropies: jax.Array,
    *,
    value_coef: float,
    entropy_coef: float,
) -> tuple[jax.Array, Metrics]:
    """Advantage actor-critic loss (Mnih et al. 2016).

    ``L = -mean(A · log π(a|h)) + c_v · ½ mean((V(h) - G)²) - c_H · mean(H[π(·|h)])``,
    whose negative gradient is the score-function estimator with the given
    advantages.

    Args:
      log_probs: ``log π(a_t | h_t)`` of the actions taken.
      advantages: advantages (constants).
      values: critic outputs ``V̂(h_t)``.
      targets: value targets, e.g. TD(λ) returns (constants).
      entropies: policy entropies at ``h_t``.
      value_coef: ``c_v``.
      entropy_coef: ``c_H``.

    Returns:
      The scalar loss and a dict of scalar metrics (``total_loss``,
      ``policy_loss``, ``value_loss``, ``entropy``).
    """
    chex.assert_equal_shape([log_probs, advantages, values, targets, entropies])
    policy_loss = -jnp.mean(jax.lax.stop_gradient(advantages) * log_probs)
    value_loss = _value_loss(values, targets, None, None)
    return _total(policy_loss, value_loss, entropies, value_coef, entropy_coef)


def ppo_loss(
    log_probs: jax.Array,
    old_log_probs: jax.Array,
    advantages: jax.Array,
    values: jax.Array,
    targets: jax.Array,
    entropies: jax.Array,
    *,
    clip_eps: float,
    value_coef: float,
    entropy_coef: float,
    old_values: jax.Array | None = None,
    value_clip_eps: float | None = None,
) -> tuple[jax.Array, Metrics]:
    """Clipped-surrogate PPO loss (Schulman et al. 2017), optional value clipping.

    With ``ρ = exp(log π - log π_old)``,
    ``L_π = -mean(min(ρ A, clip(ρ, 1 - ε, 1 + ε) A))``; the value loss is
    ``½ mean((V - G)²)``, or with ``value_clip_eps`` the PPO2 form
    ``½ mean(max((V - G)², (V_old + clip(V - V_old, ±ε_v) - G)²))``; the total is
    ``L_π + c_v L_V - c_H mean(H)``. The IPD runs of the paper clip values
    (Table 4; pass ``value_clip_eps=clip_eps`` for the usual choice).

    Args:
      log_probs: ``log π(a_t | h_t)`` under the current parameters.
      old_log_probs: the same under the behaviour parameters (constants).
      advantages: advantages (constants).
      values: critic outputs under the current parameters.
      targets: value targets (constants).
      entropies: policy entropies under the current parameters.
      clip_eps: ratio clipping ``ε``.
      value_coef: ``c_v``.
      entropy_coef: ``c_H``.
      old_values: behaviour-time values; needed only with ``value_clip_eps``.
      value_clip_eps: value clipping range ``ε_v``; ``None`` for no clipping.

    Returns:
      The scalar loss and a dict of scalar metrics: those of :func:`a2c_loss` plus
      ``approx_kl`` (``mean((ρ - 1) - log ρ)``, an estimate of KL(π_old ‖ π)) and
      ``clip_fraction`` (the share of samples with ``|ρ - 1| > ε``).
    """
    chex.assert_equal_shape(
        [log_probs, old_log_probs, advantages, values, targets, entropies]
    )
    if old_values is not None:
        chex.assert_equal_shape([values, old_values])
    advantages = jax.lax.stop_gradient(advantages)
    log_ratio = log_probs - jax.lax.stop_gradient(old_log_probs)
    ratio = jnp.exp(log_ratio)
    clipped_ratio = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    policy_loss = -jnp.mean(jnp.minimum(ratio * advantages, clipped_ratio * advantages))
    value_loss = _value_loss(values, targets, old_values, value_clip_eps)
    total, metrics = _total(
        policy_loss, value_loss, entropies, value_coef, entropy_coef
    )
    metrics["approx_kl"] = jnp.mean((ratio - 1.0) - log_ratio)
    metrics["clip_fraction"] = jnp.mean(jnp.abs(ratio - 1.0) > clip_eps)
    return total, metrics


CPU_CHUNK_SAMPLES = 8192
"""On a CPU, a gradient chunk holds at most about this many samples (sequences times
steps). At the paper's IPD shapes (minibatches of 1024 sequences of 200 steps) the
meta gradient took 1.36 s in one piece, 0.63 s in chunks of 12,800 samples and 0.55
s in chunks of 6,400 or 3,200 (2-core AMD EPYC, loaded)."""


def grad_chunks(num_sequences: int, samples_per_sequence: int) -> int:
    """How many equal chunks :func:`chunked_value_and_grad` should split
    ``num_sequences`` into: 1 on accelerators (which want the whole batch at once);
    on a CPU the fewest chunks, dividing ``num_sequences``, of at most
    :data:`CPU_CHUNK_SAMPLES` samples each (or one sequence per chunk)."""
    if jax.default_backend() != "cpu":
        return 1
    for chunks in range(1, num_sequences + 1):
        if num_sequences % chunks == 0 and (
            num_sequences // chunks * samples_per_sequence <= CPU_CHUNK_SAMPLES
        ):
            return chunks
    return num_sequences


def chunked_value_and_grad(
    loss_fn: Callable[..., tuple[jax.Array, Any]], num_chunks: int
) -> Callable[..., tuple[tuple[jax.Array, Any], Any]]:
    """``jax.value_and_grad(loss_fn, has_aux=True)`` over ``num_chunks`` chunks.

    ``loss_fn(params, *batch)`` must return a loss that is a mean over the leading
    axis of every array in ``batch`` (as every loss of this module is), and aux
    values that are means too (metrics such as ``entropy`` or ``clip_fraction``).
    The batch is split into ``num_chunks`` equal chunks along that axis; the loss,
    the aux values and the gradients are averaged over the chunks, which equals
    the whole batch's to float rounding. ``num_chunks = 1`` is plain
    ``value_and_grad``.

    Raises:
      ValueError: ``num_chunks`` does not divide the leading axis.
    """
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
    if num_chunks == 1:
        return value_and_grad

    def chunked(params: Any, *batch: Any) -> tuple[tuple[jax.Array, Any], Any]:
        size = jax.tree.leaves(batch)[0].shape[0]
        if size % num_chunks:
            raise ValueError(
                f"num_chunks = {num_chunks} must divide the batch's leading axis "
                f"({size})"
            )
        chunks = jax.tree.map(
            lambda x: x.reshape(num_chunks, size // num_chunks, *x.shape[1:]), batch
        )

        def add_chunk(total, chunk):
            out = value_and_grad(params, *chunk)
            return jax.tree.map(jnp.add, total, out), None

        first = jax.tree.map(lambda x: x[0], chunks)
        zeros = jax.tree.map(
            lambda s: jnp.zeros(s.shape, s.dtype),
            jax.eval_shape(value_and_grad, params, *first),
        )
        total, _ = jax.lax.scan(add_chunk, zeros, chunks)
        return jax.tree.map(lambda x: x / num_chunks, total)

    return chunked
