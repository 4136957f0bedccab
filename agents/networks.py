"""Policy-value networks with explicit recurrent state: tabular, MLP, GRU and Hawk.

Every network is a ``flax.linen`` module with the same three entry points, so
training code can swap one for another:

* ``net.initial_state(batch_shape) -> carry``: the zero carry, built without
  parameters (it also works on the unbound module). Stateless networks return
  ``()``.
* ``net.apply(params, carry, obs, reset) -> (carry, PolicyOutput)``: ONE time step.
  ``obs`` is ``[..., obs_dim]``, ``reset`` a bool ``[...]``. Where ``reset`` is true
  the carry is zeroed *before* the step is processed, so a reset step gives exactly
  what the first step from ``initial_state`` gives, whatever the carry held.
* ``net.apply(params, carry, obs_seq, reset_seq, method="unroll")``: the same over a
  time-major sequence (``obs_seq`` ``[T, ..., obs_dim]``, ``reset_seq`` ``[T, ...]``),
  returning the final carry and a ``PolicyOutput`` with a leading ``T``. It equals
  stepping ``__call__`` T times, but runs in parallel over time where it can.

Nothing here decides *when* to reset; the caller does (COALA-PG §1.5). A naive agent
passes ``reset=True`` at the first step of every inner episode; a learning-aware
(meta) agent only at the first step of a meta-trajectory, so its whole state (for
Hawk both the RG-LRU state and the convolution's three-step window) runs across
inner-episode boundaries, where the environment's s0 observation marks the
boundary in its context.

=================  ==========================================  ===================
module             trunk                                       carry
=================  ==========================================  ===================
``TabularPolicy``  lookup by the one-hot observation's argmax  ``()``
``MLPPolicy``      Dense-tanh stack                            ``()``
``GRUPolicy``      linear embedding, GRU, Swish                ``[..., H]``
``HawkPolicy``     linear embedding, one Hawk residual block,  ``HawkState``
                   final RMSNorm (COALA-PG App. B.3)
=================  ==========================================  ===================

Every read-out (policy logits and value) starts at zero: the initial policy is
uniform and the initial value 0, as COALA-PG App. B.3 prescribes for Hawk. The
gradient reaching the trunk is therefore exactly zero at initialisation and becomes
non-zero once the read-outs have taken one step.

Hawk (De et al. 2024, "Griffin: mixing gated linear recurrences with local
attention for efficient language models", arXiv:2402.19427) follows the
google-deepmind/recurrentgemma JAX code in structure, names and initialisation, with
COALA-PG's sizes as defaults (embedding 32, LRU width 32, MLP width 32, 2 heads,
convolution width 4, c = 8; 8,003 parameters for 5 inputs and 2 actions). Two
deliberate differences from recurrentgemma:

* **Decay initialisation.** The RG-LRU decay at a fully open recurrence gate,
  ``a^c = sigmoid(Lambda)^c``, is drawn in [0.9, 0.999] as the Griffin paper and
  the COALA-PG spec state (with ``(a^c)^2`` uniform, the LRU "ring" of Orvieto et
  al. 2023). recurrentgemma's code draws ``a`` itself in that range, so its
  ``a^c`` starts in [0.43, 0.992]. ``Lambda`` is stored with the paper's sign
  (``a = sigmoid(Lambda)``), the opposite of recurrentgemma's ``a_param``.
* **Resets.** A reset only zeroes the state. recurrentgemma also drops the
  ``sqrt(1 - a_t^2)`` input normalisation on a segment's first token, which would
  make a reset step differ from a step from the zero initial state.

For the GRU A2C agent of the in-context co-player inference spec, ``GRUPolicy``
defaults to its configuration (linear embedding 32, hidden 128, Swish on the GRU
output). Several input modalities (observation, previous action, reward) go in
concatenated: one linear embedding of the concatenation equals the sum of
per-modality linear embeddings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.scipy.linalg

Carry = Any


class PolicyOutput(NamedTuple):
    """What a network returns per step (or with a leading ``T`` from ``unroll``)."""

    logits: jax.Array  # [..., num_actions] action logits
    value: jax.Array  # [...] state value


class HawkState(NamedTuple):
    """Recurrent state of one Hawk block."""

    conv: jax.Array  # [..., conv_width - 1, lru_width] last inputs of the Conv1D
    rg_lru: jax.Array  # [..., lru_width] RG-LRU hidden state


def action_distribution(logits: jax.Array) -> distrax.Categorical:
    """The categorical action distribution of ``logits`` ``[..., num_actions]``."""
    return distrax.Categorical(logits=logits)


def _readout(features: int, name: str) -> nn.Dense:
    """A zero-initialised linear read-out (uniform policy, zero value at init)."""
    return nn.Dense(
        features,
        kernel_init=nn.initializers.zeros_init(),
        bias_init=nn.initializers.zeros_init(),
        name=name,
    )


def _lecun_normal(scale: float = 1.0) -> nn.initializers.Initializer:
    """recurrentgemma's weight initialiser: N(0, scale / fan_in), not truncated."""
    return nn.initializers.variance_scaling(scale, "fan_in", "normal")


class _Stateless(nn.Module):
    """Shared plumbing of the memoryless networks: empty carry, pointwise unroll."""

    @nn.nowrap
    def initial_state(self, batch_shape: Sequence[int] = ()) -> Carry:
        del batch_shape
        return ()

    def __call__(
        self, carry: Carry, obs: jax.Array, reset: jax.Array
    ) -> tuple[Carry, PolicyOutput]:
        del reset  # nothing to reset
        return carry, self.forward(obs)

    def unroll(
        self, carry: Carry, obs_seq: jax.Array, reset_seq: jax.Array
    ) -> tuple[Carry, PolicyOutput]:
        del reset_seq
        return carry, self.forward(obs_seq)

    def forward(self, obs: jax.Array) -> PolicyOutput:
        """Outputs for ``obs`` ``[..., obs_dim]``, any leading axes (time included)."""
        raise NotImplementedError


class TabularPolicy(_Stateless):
    """Memory-one table: one row of logits and one value per observed state.

    The state is the argmax of the first ``num_states`` observation entries (the
    one-hot over s0, CC, CD, DC, DD of ``MatrixGame``; extra entries such as a
    reward are ignored). Parameters are the minimal softmax parametrisation:
    ``logits`` ``[num_states, num_actions - 1]`` with the last action's logit pinned
    at 0. With two actions (C = 0, D = 1) that is the 5-logit memory-one policy of
    COALA-PG §5.2, ``p(C | s) = sigmoid(logits[s, 0])``, in the order of
    ``dilemmas.envs.exact_ipd``'s policy vectors. ``value`` is ``[num_states]``.

    ``init_logit`` fills the table: 0 gives the uniform policy, ``log(0.01)`` the
    near-pure defection start of COALA-PG Fig. 9.
    """

    num_actions: int = 2
    num_states: int = 5
    init_logit: float = 0.0

    @nn.compact
    def forward(self, obs: jax.Array) -> PolicyOutput:
        def fill(key: jax.Array, shape: Sequence[int], dtype: Any) -> jax.Array:
            del key
            return jnp.full(shape, self.init_logit, dtype)

        table = self.param(
            "logits", fill, (self.num_states, self.num_actions - 1), jnp.float32
        )
        values = self.param(
            "value", nn.initializers.zeros_init(), (self.num_states,), jnp.float32
        )
        state = jnp.argmax(obs[..., : self.num_states], axis=-1)  # [...]
        free = table[state]  # [..., num_actions - 1]
        logits = jnp.concatenate([free, jnp.zeros_like(free[..., :1])], axis=-1)
        return PolicyOutput(logits=logits, value=values[state])


class MLPPolicy(_Stateless):
    """Feed-forward trunk (Dense + activation per hidden layer), two read-outs."""

    num_actions: int = 2
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable[[jax.Array], jax.Array] = nn.tanh

    @nn.compact
    def forward(self, obs: jax.Array) -> PolicyOutput:
        x = obs.astype(jnp.float32)
        for i, size in enumerate(self.hidden_sizes):
            x = self.activation(nn.Dense(size, name=f"hidden_{i}")(x))
        logits = _readout(self.num_actions, "policy_head")(x)
        value = _readout(1, "value_head")(x)[..., 0]
        return PolicyOutput(logits=logits, value=value)


def _stacked_orthogonal(
    key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32
) -> jax.Array:
    """``[H, 3H]``: one orthogonal ``[H, H]`` block per gate, as flax's GRUCell."""
    hidden = shape[0]
    keys = jax.random.split(key, shape[1] // hidden)
    blocks = [nn.initializers.orthogonal()(k, (hidden, hidden), dtype) for k in keys]
    return jnp.concatenate(blocks, axis=-1)


def _gru_cell(
    h: jax.Array, x_proj: jax.Array, w_h: jax.Array, b_hn: jax.Array
) -> jax.Array:
    """One GRU step (flax ``GRUCell`` equations), input projection precomputed.

    ``h`` ``[..., H]``; ``x_proj`` ``[..., 3H]`` = the input's (reset, update,
    candidate) pre-activations with their biases; ``w_h`` ``[H, 3H]``; ``b_hn``
    ``[H]`` the candidate's hidden bias (inside the reset gate).
    """
    xr, xz, xn = jnp.split(x_proj, 3, axis=-1)
    hr, hz, hn = jnp.split(h @ w_h, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * (hn + b_hn))
    return (1.0 - z) * n + z * h


class GRUPolicy(nn.Module):
    """Linear embedding, GRU, output activation, two read-outs.

    Defaults follow the in-context co-player inference spec's A2C agent (embedding
    32, hidden 128, Swish on the GRU output). ``embed_dim=None`` feeds the
    observation to the GRU directly. ``unroll`` computes the input projections of
    all steps at once and scans only the hidden-to-hidden recurrence.
    """

    num_actions: int = 2
    hidden_size: int = 128
    embed_dim: int | None = 32
    output_activation: Callable[[jax.Array], jax.Array] = nn.swish

    def setup(self) -> None:
        hidden = self.hidden_size
        self.embed = nn.Dense(self.embed_dim, name="embed") if self.embed_dim else None
        self.input_proj = nn.Dense(3 * hidden, name="input_proj")
        self.w_h = self.param(
            "recurrent_kernel", _stacked_orthogonal, (hidden, 3 * hidden)
        )
        self.b_hn = self.param(
            "recurrent_bias", nn.initializers.zeros_init(), (hidden,)
        )
        self.policy_head = _readout(self.num_actions, "policy_head")
        self.value_head = _readout(1, "value_head")

    @nn.nowrap
    def initial_state(self, batch_shape: Sequence[int] = ()) -> jax.Array:
        return jnp.zeros((*batch_shape, self.hidden_size), jnp.float32)

    def _project(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(jnp.float32)
        if self.embed is not None:
            x = self.embed(x)
        return self.input_proj(x)  # [..., 3H]

    def _heads(self, h: jax.Array) -> PolicyOutput:
        y = self.output_activation(h)
        return PolicyOutput(self.policy_head(y), self.value_head(y)[..., 0])

    def __call__(
        self, carry: jax.Array, obs: jax.Array, reset: jax.Array
    ) -> tuple[jax.Array, PolicyOutput]:
        h = jnp.where(jnp.asarray(reset)[..., None], 0.0, carry)  # [..., H]
        h = _gru_cell(h, self._project(obs), self.w_h, self.b_hn)
        return h, self._heads(h)

    def unroll(
        self, carry: jax.Array, obs_seq: jax.Array, reset_seq: jax.Array
    ) -> tuple[jax.Array, PolicyOutput]:
        x_proj = self._project(obs_seq)  # [T, ..., 3H]
        w_h, b_hn = self.w_h, self.b_hn

        def step(h, inputs):
            x_t, reset_t = inputs
            h = jnp.where(reset_t[..., None], 0.0, h)
            h = _gru_cell(h, x_t, w_h, b_hn)
            return h, h

        carry, h_seq = jax.lax.scan(step, carry, (x_proj, jnp.asarray(reset_seq)))
        return carry, self._heads(h_seq)


# ----------------------------------------------------------------------------------
# Hawk (Griffin's recurrent residual block), after google-deepmind/recurrentgemma.
# Pointwise layers accept [..., D] or [T, ..., D]; the two temporal layers (Conv1D
# and RGLRU) take a static `sequence` flag that picks the one-step recurrence or
# the parallel form over a leading time axis.
# ----------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """RMSNorm with a zero-initialised scale applied as ``(1 + scale)``."""

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.zeros_init(), (x.shape[-1],))
        var = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        return x * jax.lax.rsqrt(var + self.eps) * (1.0 + scale)


class BlockDiagonalLinear(nn.Module):
    """Linear map with ``num_blocks`` diagonal blocks (one per head), plus bias."""

    num_blocks: int
    w_init_variance_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        width = x.shape[-1]
        if width % self.num_blocks:
            raise ValueError(f"width {width} not divisible by {self.num_blocks}")
        block = width // self.num_blocks
        w = self.param(
            "w",
            _lecun_normal(self.w_init_variance_scale),
            (self.num_blocks, block, block),
        )
        b = self.param("b", nn.initializers.zeros_init(), (self.num_blocks, block))
        return block_diagonal_linear(x, w, b)


DENSE_BLOCK_DIAGONAL_MAX_WIDTH = 256
"""Widths up to this apply a block-diagonal weight as one dense matmul."""


def block_diagonal_linear(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """``x`` ``[..., H * B]`` times the block-diagonal matrix of ``w`` ``[H, B, B]``,
    plus ``b`` ``[H, B]``.

    Up to :data:`DENSE_BLOCK_DIAGONAL_MAX_WIDTH` the blocks are laid into one dense
    ``[H * B, H * B]`` matrix (zeros off the diagonal) and applied as a plain
    matmul: the per-head einsum costs ``H`` times fewer FLOPs but makes XLA on CPU
    transpose ``[..., H, B]`` activations in and out of a batched matmul, which at
    these widths takes longer than the extra FLOPs (``benchmarks/bench_training.py``
    measures both). Wider layers keep the per-head einsum.
    """
    heads, block, _ = w.shape
    width = heads * block
    if width <= DENSE_BLOCK_DIAGONAL_MAX_WIDTH:
        dense = jax.scipy.linalg.block_diag(*w)
        return x @ dense + b.reshape(width)
    xb = x.reshape(*x.shape[:-1], heads, block)  # [..., heads, block]
    y = jnp.einsum("...hi,hij->...hj", xb, w) + b
    return y.reshape(x.shape)


def conv1d_step(
    w: jax.Array, b: jax.Array, state: jax.Array, x: jax.Array, reset: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One step of the causal depthwise convolution.

    ``w`` ``[K, D]`` (``w[K - 1]`` weighs the current input), ``b`` ``[D]``,
    ``state`` ``[..., K - 1, D]`` the previous inputs (oldest first), ``x``
    ``[..., D]``, ``reset`` bool ``[...]`` (zeroes ``state`` first).
    Returns the new state and the output ``[..., D]``.
    """
    state = jnp.where(reset[..., None, None], 0.0, state)
    # The K taps written out as K - 1 multiply-adds: `jnp.sum(window * w, axis=-2)`
    # over a [..., K, D] window compiles to a reduce fusion that took 38 % of the
    # rollout time on CPU (benchmarks/bench_training.py keeps it as a reference).
    y = x * w[-1] + b
    for k in range(w.shape[0] - 1):
        y = y + state[..., k, :] * w[k]
    return jnp.concatenate([state[..., 1:, :], x[..., None, :]], axis=-2), y


def conv1d_sequence(
    w: jax.Array,
    b: jax.Array,
    state: jax.Array,
    x_seq: jax.Array,
    reset_seq: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """:func:`conv1d_step` over ``x_seq`` ``[T, ..., D]`` as K shifted products.

    Input ``x_{t-k}`` reaches output ``y_t`` only if no reset happened at steps
    ``t-k+1 .. t``; the returned state keeps the last ``K - 1`` inputs, zeroing
    those that precede a reset.
    """
    width = w.shape[0]
    steps = x_seq.shape[0]
    keep = jnp.logical_not(reset_seq).astype(x_seq.dtype)  # [T, ...]
    history = jnp.moveaxis(state, -2, 0)  # [K-1, ..., D]
    xp = jnp.concatenate([history, x_seq], axis=0)  # [T+K-1, ..., D]
    keep_p = jnp.concatenate(
        [jnp.ones((width - 1, *keep.shape[1:]), keep.dtype), keep], axis=0
    )  # [T+K-1, ...]

    y = jnp.zeros_like(x_seq) + b
    mask = jnp.ones_like(keep)  # [T, ...]: no reset in (t-k, t]
    for k in range(width):
        start = width - 1 - k
        y = y + xp[start : start + steps] * mask[..., None] * w[width - 1 - k]
        mask = mask * keep_p[start : start + steps]

    kept = []
    alive = jnp.ones_like(keep_p[0])  # no reset after this entry
    for j in range(steps + width - 2, steps - 1, -1):
        kept.append(xp[j] * alive[..., None])
        alive = alive * keep_p[j]
    new_state = jnp.stack(kept[::-1], axis=-2)  # [..., K-1, D]
    return new_state, y


def linear_recurrence_sequence(
    h0: jax.Array,
    a_seq: jax.Array,
    x_seq: jax.Array,
    reset_seq: jax.Array,
    method: str = "auto",
) -> tuple[jax.Array, jax.Array]:
    """``h_t = a_t * (h_{t-1} if not reset_t else 0) + x_t`` over a time axis.

    ``h0`` ``[..., D]``; ``a_seq`` and ``x_seq`` ``[T, ..., D]``; ``reset_seq``
    ``[T, ...]``. The reset is folded in as a zero multiplier. ``method``:
    ``"associative"`` takes ``jax.lax.associative_scan`` (``log T`` parallel
    levels, the form for accelerators), ``"sequential"`` a ``jax.lax.scan`` over
    time (``T`` steps of one multiply-add: fewer operations and no intermediate
    levels, faster on a CPU, where ``benchmarks/bench_training.py`` measured the
    meta update 1.2-1.4x faster at the paper's shapes); ``"auto"`` the sequential
    form on a CPU and the associative one elsewhere. Both give the same states to
    float rounding. Returns the last state and all states ``[T, ..., D]``.
    """
    if method == "auto":
        method = "sequential" if jax.default_backend() == "cpu" else "associative"
    a_seq = jnp.asarray(a_seq) * jnp.logical_not(reset_seq)[..., None]
    x_seq = jnp.asarray(x_seq)
    if method == "sequential":

        def step(h, inputs):
            a, x = inputs
            h = a * h + x
            return h, h

        return jax.lax.scan(step, h0, (a_seq, x_seq))
    if method != "associative":
        raise ValueError(
            f"method must be 'auto', 'sequential' or 'associative', got {method!r}"
        )
    x_seq = x_seq.at[0].add(a_seq[0] * h0)

    def combine(earlier, later):
        a_i, x_i = earlier
        a_j, x_j = later
        return a_j * a_i, a_j * x_i + x_j

    _, h_seq = jax.lax.associative_scan(combine, (a_seq, x_seq), axis=0)
    return h_seq[-1], h_seq


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _sqrt_bounded_grad(x: jax.Array, max_gradient: float) -> jax.Array:
    """``sqrt(x)`` whose derivative is capped at ``max_gradient`` (recurrentgemma)."""
    del max_gradient
    return jnp.sqrt(x)


def _sqrt_fwd(x: jax.Array, max_gradient: float) -> tuple[jax.Array, jax.Array]:
    del max_gradient
    return jnp.sqrt(x), x


def _sqrt_bwd(max_gradient: float, x: jax.Array, g: jax.Array) -> tuple[jax.Array]:
    x = jnp.maximum(x, 1.0 / (4.0 * max_gradient**2))
    return (g * 0.5 * jax.lax.rsqrt(x),)


_sqrt_bounded_grad.defvjp(_sqrt_fwd, _sqrt_bwd)


def rg_lru_lambda_init(
    min_decay: float = 0.9, max_decay: float = 0.999, c: float = 8.0
) -> nn.initializers.Initializer:
    """Initialiser of ``Lambda`` such that ``a^c = sigmoid(Lambda)^c`` lies in
    ``[min_decay, max_decay]``, with ``(a^c)^2`` uniform (area on the LRU ring)."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32):
        u = jax.random.uniform(key, shape, jnp.float32)
        decay = jnp.sqrt(u * (max_decay**2 - min_decay**2) + min_decay**2)  # a^c
        log_a = jnp.log(decay) / c  # log sigmoid(Lambda)
        return (log_a - jnp.log(-jnp.expm1(log_a))).astype(dtype)  # logit(a)

    return init


class RGLRU(nn.Module):
    """Real-Gated Linear Recurrent Unit (Griffin §2.4).

    ``r_t = sigmoid(W_a x_t + b_a)``, ``i_t = sigmoid(W_x x_t + b_x)`` (block-diagonal
    over heads), ``a_t = sigmoid(Lambda)^(c r_t)``,
    ``h_t = a_t h_{t-1} + sqrt(1 - a_t^2) (i_t x_t)``; the output is ``h_t``.
    """

    num_heads: int
    c: float = 8.0
    min_decay: float = 0.9
    max_decay: float = 0.999

    @nn.compact
    def __call__(
        self, h: jax.Array, x: jax.Array, reset: jax.Array, *, sequence: bool
    ) -> tuple[jax.Array, jax.Array]:
        """``h`` ``[..., D]``; ``x`` ``[..., D]`` or, with ``sequence``,
        ``[T, ..., D]`` (``reset`` matching without ``D``). Returns (state, output)."""
        lam = self.param(
            "lambda",
            rg_lru_lambda_init(self.min_decay, self.max_decay, self.c),
            (x.shape[-1],),
        )
        gate_x = jax.nn.sigmoid(
            BlockDiagonalLinear(self.num_heads, name="input_gate")(x)
        )
        gate_a = jax.nn.sigmoid(BlockDiagonalLinear(self.num_heads, name="a_gate")(x))
        log_a = self.c * gate_a * jax.nn.log_sigmoid(lam)
        a = jnp.exp(log_a)
        multiplier = _sqrt_bounded_grad(-jnp.expm1(2.0 * log_a), 1000.0)
        normed_x = x * gate_x * multiplier
        if sequence:
            return linear_recurrence_sequence(h, a, normed_x, reset)
        h = a * jnp.where(reset[..., None], 0.0, h) + normed_x
        return h, h


class Conv1D(nn.Module):
    """Causal depthwise temporal convolution of width ``temporal_width``."""

    temporal_width: int = 4
    w_init_variance_scale: float = 0.01

    @nn.compact
    def __call__(
        self, state: jax.Array, x: jax.Array, reset: jax.Array, *, sequence: bool
    ) -> tuple[jax.Array, jax.Array]:
        """``state`` ``[..., K-1, D]``; ``x`` ``[..., D]`` or ``[T, ..., D]``."""
        w = self.param(
            "w",
            _lecun_normal(self.w_init_variance_scale),
            (self.temporal_width, x.shape[-1]),
        )
        b = self.param("b", nn.initializers.zeros_init(), (x.shape[-1],))
        if sequence:
            return conv1d_sequence(w, b, state, x, reset)
        return conv1d_step(w, b, state, x, reset)


class RecurrentBlock(nn.Module):
    """Griffin's temporal-mixing block: ``Linear_out(GeLU(Linear_y x) *
    RGLRU(Conv1D(Linear_x x)))``."""

    width: int
    lru_width: int
    num_heads: int
    conv_width: int = 4
    c: float = 8.0
    min_decay: float = 0.9
    max_decay: float = 0.999
    final_w_init_variance_scale: float = 1.0

    @nn.compact
    def __call__(
        self, state: HawkState, x: jax.Array, reset: jax.Array, *, sequence: bool
    ) -> tuple[HawkState, jax.Array]:
        y = jax.nn.gelu(
            nn.Dense(self.lru_width, kernel_init=_lecun_normal(), name="linear_y")(x)
        )
        x = nn.Dense(self.lru_width, kernel_init=_lecun_normal(), name="linear_x")(x)
        conv_state, x = Conv1D(self.conv_width, name="conv_1d")(
            state.conv, x, reset, sequence=sequence
        )
        lru_state, x = RGLRU(
            self.num_heads, self.c, self.min_decay, self.max_decay, name="rg_lru"
        )(state.rg_lru, x, reset, sequence=sequence)
        out = nn.Dense(
            self.width,
            kernel_init=_lecun_normal(self.final_w_init_variance_scale),
            name="linear_out",
        )(x * y)
        return HawkState(conv=conv_state, rg_lru=lru_state), out


class MLPBlock(nn.Module):
    """Gated MLP: ``Linear_down(GeLU(W_gate x) * (W_up x))``."""

    width: int
    expanded_width: int
    final_w_init_variance_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w_up = self.param(
            "ffw_up_w",
            nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=1),
            (2, x.shape[-1], self.expanded_width),
        )
        b_up = self.param(
            "ffw_up_b", nn.initializers.zeros_init(), (2, self.expanded_width)
        )
        gate = jax.nn.gelu(x @ w_up[0] + b_up[0])
        up = x @ w_up[1] + b_up[1]
        return nn.Dense(
            self.width,
            kernel_init=_lecun_normal(self.final_w_init_variance_scale),
            name="ffw_down",
        )(gate * up)


class HawkPolicy(nn.Module):
    """COALA-PG's agent (App. B.3): embedding, one residual Hawk block, RMSNorm, and
    two zero-initialised linear read-outs for the policy logits and the value.

    Residual block (Griffin Fig. 2): ``x + RecurrentBlock(RMSNorm(x))``, then
    ``+ MLPBlock(RMSNorm(.))``. ``final_w_init_variance_scale`` is recurrentgemma's
    ``2 / num_layers`` with one layer.
    """

    num_actions: int = 2
    embed_dim: int = 32
    lru_width: int = 32
    mlp_width: int = 32
    num_heads: int = 2
    conv_width: int = 4
    c: float = 8.0
    min_decay: float = 0.9
    max_decay: float = 0.999

    def setup(self) -> None:
        final_scale = 2.0  # 2 / num_layers
        self.embed = nn.Dense(self.embed_dim, kernel_init=_lecun_normal(), name="embed")
        self.temporal_pre_norm = RMSNorm(name="temporal_pre_norm")
        self.recurrent_block = RecurrentBlock(
            width=self.embed_dim,
            lru_width=self.lru_width,
            num_heads=self.num_heads,
            conv_width=self.conv_width,
            c=self.c,
            min_decay=self.min_decay,
            max_decay=self.max_decay,
            final_w_init_variance_scale=final_scale,
            name="recurrent_block",
        )
        self.channel_pre_norm = RMSNorm(name="channel_pre_norm")
        self.mlp_block = MLPBlock(
            self.embed_dim, self.mlp_width, final_scale, name="mlp_block"
        )
        self.final_norm = RMSNorm(name="final_norm")
        self.policy_head = _readout(self.num_actions, "policy_head")
        self.value_head = _readout(1, "value_head")

    @nn.nowrap
    def initial_state(self, batch_shape: Sequence[int] = ()) -> HawkState:
        return HawkState(
            conv=jnp.zeros(
                (*batch_shape, self.conv_width - 1, self.lru_width), jnp.float32
            ),
            rg_lru=jnp.zeros((*batch_shape, self.lru_width), jnp.float32),
        )

    def _forward(
        self, carry: HawkState, obs: jax.Array, reset: jax.Array, sequence: bool
    ) -> tuple[HawkState, PolicyOutput]:
        x = self.embed(obs.astype(jnp.float32))  # [(T,) ..., E]
        reset = jnp.asarray(reset, bool)  # [(T,) ...]
        carry, mixed = self.recurrent_block(
            carry, self.temporal_pre_norm(x), reset, sequence=sequence
        )
        x = x + mixed
        x = x + self.mlp_block(self.channel_pre_norm(x))
        x = self.final_norm(x)
        return carry, PolicyOutput(self.policy_head(x), self.value_head(x)[..., 0])

    def __call__(
        self, carry: HawkState, obs: jax.Array, reset: jax.Array
    ) -> tuple[HawkState, PolicyOutput]:
        return self._forward(carry, obs, reset, sequence=False)

    def unroll(
        self, carry: HawkState, obs_seq: jax.Array, reset_seq: jax.Array
    ) -> tuple[HawkState, PolicyOutput]:
        return self._forward(carry, obs_seq, reset_seq, sequence=True)


def num_params(params: Any) -> int:
    """Number of scalar parameters in a pytree."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(params))
