"""Policy networks: one interface, explicit resets, and Hawk as COALA-PG App. B.3.

Every network is checked for: ``unroll`` == stepping ``__call__``; reset semantics
(a reset equals a fresh start, per batch element; without a reset the past matters);
zero read-outs at init; jit and vmap; trunk gradients after one optax step; causality.
Hawk's temporal layers are also checked against direct loops over the Griffin
equations, and its decay initialisation and size against the spec.

Compilation dominates the run time on CPU, so test-side data and arithmetic are
numpy, and every jitted function is compiled once per network and shape.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dilemmas.agents import networks
from dilemmas.agents.networks import (
    RGLRU,
    GRUPolicy,
    HawkPolicy,
    MLPPolicy,
    PolicyOutput,
    TabularPolicy,
    action_distribution,
    block_diagonal_linear,
    conv1d_sequence,
    conv1d_step,
    num_params,
)

T, B, NUM_STATES = 12, 3, 5
OBS_DIM = NUM_STATES + 1  # one-hot state plus a reward entry, as MatrixGame offers
NETWORKS = {
    "tabular": TabularPolicy(num_actions=2),
    "mlp": MLPPolicy(num_actions=2, hidden_sizes=(16, 16)),
    "gru": GRUPolicy(num_actions=2, hidden_size=16, embed_dim=8),
    "hawk": HawkPolicy(num_actions=2),
}
STATEFUL = {"gru", "hawk"}
TOL = {"rtol": 1e-5, "atol": 1e-5}
NO_RESET = np.zeros((T, B), bool)


def _obs(seed: int, shape: tuple[int, ...] = (T, B)) -> np.ndarray:
    """Random IPD-like observations ``[*shape, OBS_DIM]``: one-hot state, reward."""
    rng = np.random.default_rng(seed)
    one_hot = np.eye(NUM_STATES, dtype=np.float32)[rng.integers(0, NUM_STATES, shape)]
    reward = rng.normal(size=(*shape, 1)).astype(np.float32)
    return np.concatenate([one_hot, reward], axis=-1)


@functools.cache
def _init_fn(name: str):
    net = NETWORKS[name]
    carry = net.initial_state((B,))
    obs, reset = jnp.zeros((B, OBS_DIM)), jnp.zeros(B, bool)
    return jax.jit(lambda key: net.init(key, carry, obs, reset))


@functools.cache
def _params(name: str, seed: int = 0):
    return _init_fn(name)(jax.random.key(seed))


@functools.cache
def _perturbed(name: str, seed: int = 7):
    """Parameters with every leaf moved, so the read-outs are non-zero."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: np.asarray(p) + 0.3 * rng.normal(size=p.shape).astype(np.float32),
        _params(name),
    )


@functools.cache
def _runners(name: str):
    """Jitted (stepwise, unroll) runners over a time-major sequence."""
    net = NETWORKS[name]

    @jax.jit
    def stepwise(params, carry, obs_seq, reset_seq):
        def body(c, inputs):
            return net.apply(params, c, *inputs)

        return jax.lax.scan(body, carry, (obs_seq, reset_seq))

    @jax.jit
    def unroll(params, carry, obs_seq, reset_seq):
        return net.apply(params, carry, obs_seq, reset_seq, method="unroll")

    return stepwise, unroll


def _assert_tree_close(a, b, **tol) -> None:
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


def _at(tree, index):
    return jax.tree.map(lambda x: np.asarray(x)[index], tree)


@pytest.mark.parametrize("name", NETWORKS)
def test_unroll_equals_stepping(name):
    stepwise, unroll = _runners(name)
    params = _perturbed(name)
    # Start from a non-zero carry, left by a prefix, to test how it is folded in.
    carry0, _ = unroll(params, NETWORKS[name].initial_state((B,)), _obs(1), NO_RESET)
    obs = _obs(2)
    reset = np.random.default_rng(3).random((T, B)) < 0.25
    reset[T - 1] = True

    carry_s, out_s = stepwise(params, carry0, obs, reset)
    carry_u, out_u = unroll(params, carry0, obs, reset)

    assert out_u.logits.shape == (T, B, 2) and out_u.value.shape == (T, B)
    _assert_tree_close(out_s, out_u, **TOL)
    _assert_tree_close(carry_s, carry_u, **TOL)
    leaves = jax.tree.leaves(carry_u)
    assert len(leaves) == (2 if name == "hawk" else name == "gru")
    assert all(np.abs(leaf).max() > 0 for leaf in leaves)


@pytest.mark.parametrize("name", NETWORKS)
def test_reset_is_a_fresh_start_and_no_reset_remembers(name):
    _, unroll = _runners(name)
    params = _perturbed(name)
    carry0 = NETWORKS[name].initial_state((B,))
    t0 = 4
    obs_a = _obs(4)
    obs_b = obs_a.copy()
    obs_b[:t0] = _obs(5, (t0, B))  # same suffix, another prefix
    reset = NO_RESET.copy()
    reset[t0, 0] = True  # batch element 0 only

    _, out_a = unroll(params, carry0, obs_a, reset)
    _, out_b = unroll(params, carry0, obs_b, reset)
    # The suffix from the initial state (padded to length T; by causality the padding
    # does not touch the first T - t0 outputs).
    fresh_obs = np.concatenate([obs_a[t0:], obs_a[:t0]])
    fresh = _at(unroll(params, carry0, fresh_obs, NO_RESET)[1], slice(0, T - t0))

    # Element 0 was reset at t0: from then on it ignores its past.
    for out in (out_a, out_b):
        _assert_tree_close(
            _at(out, (slice(t0, None), 0)), _at(fresh, (slice(None), 0)), **TOL
        )
    # Element 1 was not reset: a recurrent net remembers the prefix at every later
    # step (for Hawk also beyond the convolution's reach, through the RG-LRU).
    logits_a, logits_b = np.asarray(out_a.logits), np.asarray(out_b.logits)
    gap = np.abs(logits_a[t0:, 1] - logits_b[t0:, 1]).max(-1)  # [T - t0]
    if name in STATEFUL:
        assert np.all(gap > 1e-4), gap
    else:
        assert gap.max() == 0.0


@pytest.mark.parametrize("name", NETWORKS)
def test_zero_readouts_give_uniform_policy_and_zero_value(name):
    stepwise, unroll = _runners(name)
    carry0 = NETWORKS[name].initial_state((B,))
    obs = _obs(6)
    for params in (_params(name, 0), _params(name, 1)):
        for _, out in (
            stepwise(params, carry0, obs, NO_RESET),
            unroll(params, carry0, obs, NO_RESET),
        ):
            np.testing.assert_array_equal(out.logits, 0.0)
            np.testing.assert_array_equal(out.value, 0.0)
    np.testing.assert_array_equal(action_distribution(out.logits).probs, 0.5)


@pytest.mark.parametrize("name", NETWORKS)
def test_jit_and_vmap_over_a_population(name):
    stepwise, _ = _runners(name)
    population = [_perturbed(name, seed) for seed in (7, 8, 9)]
    stacked = jax.tree.map(lambda *p: np.stack(p), *population)
    rng = np.random.default_rng(10)
    carries = jax.tree.map(  # a random carry per member
        lambda x: rng.normal(size=(3, *x.shape)).astype(np.float32),
        NETWORKS[name].initial_state((B,)),
    )
    obs = np.stack([_obs(seed) for seed in (11, 12, 13)])
    resets = rng.random((3, T, B)) < 0.2

    carry_v, out_v = jax.jit(jax.vmap(stepwise))(stacked, carries, obs, resets)
    for i, params in enumerate(population):
        member = stepwise(params, _at(carries, i), obs[i], resets[i])
        _assert_tree_close(_at((carry_v, out_v), i), member, **TOL)


@pytest.mark.parametrize("name", NETWORKS)
def test_trunk_gradients_after_one_optax_step(name):
    net = NETWORKS[name]
    rng = np.random.default_rng(14)
    obs = _obs(15)
    reset = NO_RESET.copy()
    reset[0] = True
    actions = rng.integers(0, 2, (T, B))
    returns = rng.normal(size=(T, B)).astype(np.float32)
    optimiser = optax.adam(1e-2)

    def loss(params):
        _, out = net.apply(params, net.initial_state((B,)), obs, reset, method="unroll")
        log_prob = action_distribution(out.logits).log_prob(actions)
        advantage = returns - jax.lax.stop_gradient(out.value)
        value_loss = 0.5 * ((out.value - returns) ** 2).mean()
        return -(log_prob * advantage).mean() + value_loss

    @jax.jit
    def grads_before_and_after_one_step(params):
        grads = jax.grad(loss)(params)
        updates, _ = optimiser.update(grads, optimiser.init(params), params)
        return grads, jax.grad(loss)(optax.apply_updates(params, updates))

    def norms(grads):
        flat = jax.tree_util.tree_flatten_with_path(grads)[0]
        return {jax.tree_util.keystr(k): float(np.linalg.norm(g)) for k, g in flat}

    before, after = map(norms, grads_before_and_after_one_step(_params(name)))
    trunk = {k for k in before if "head" not in k and name != "tabular"}
    assert name == "tabular" or len(trunk) >= 4
    assert all(v > 0 for k, v in before.items() if k not in trunk)
    # Zero read-outs pass no gradient to the trunk at init ...
    assert all(before[k] == 0.0 for k in trunk)
    # ... but after one step every parameter, trunk included, gets a finite one.
    assert after.keys() == before.keys()
    assert all(np.isfinite(v) and v > 0 for v in after.values()), after


@pytest.mark.parametrize("name", NETWORKS)
def test_outputs_are_causal(name):
    _, unroll = _runners(name)
    params = _perturbed(name)
    carry0 = NETWORKS[name].initial_state((B,))
    t = 7
    obs = _obs(16)
    changed = obs.copy()
    changed[t, :, :NUM_STATES] = np.roll(obs[t, :, :NUM_STATES], 1, axis=-1)
    changed[t, :, NUM_STATES:] += 1.0  # another state and reward at step t only
    _, out = unroll(params, carry0, obs, NO_RESET)
    _, out_changed = unroll(params, carry0, changed, NO_RESET)
    before = slice(0, t)
    _assert_tree_close(_at(out, before), _at(out_changed, before), rtol=0, atol=1e-6)
    assert np.abs(out.logits[t] - out_changed.logits[t]).max() > 1e-3


@functools.cache
def _rg_lru_apply():
    return jax.jit(functools.partial(RGLRU(num_heads=2).apply, sequence=True))


def _rg_lru_params(params):
    return {"params": params["params"]["recurrent_block"]["rg_lru"]}


def test_rg_lru_decay_initialisation():
    lams = np.stack(
        [
            _params("hawk", s)["params"]["recurrent_block"]["rg_lru"]["lambda"]
            for s in range(3)
        ]
    )
    decay = (1 / (1 + np.exp(-lams.astype(np.float64)))) ** 8  # a^c, gate fully open
    assert decay.shape == (3, 32)
    assert decay.min() >= 0.9 - 1e-6 and decay.max() <= 0.999 + 1e-6
    assert decay.min() < 0.93 and decay.max() > 0.99  # spread over the range

    # Through the layer: with zero input both gates sit at sigmoid(0) = 1/2, so a
    # step multiplies the state by a_t = (a^c)^(1/2): the Griffin recurrence, c = 8.
    x = np.zeros((1, 1, 32), np.float32)
    h_last, _ = _rg_lru_apply()(
        _rg_lru_params(_params("hawk")),
        np.ones((1, 32), np.float32),
        x,
        np.zeros((1, 1), bool),
    )
    np.testing.assert_allclose(np.asarray(h_last[0]) ** 2, decay[0], rtol=1e-5)


def test_rg_lru_matches_a_direct_loop_over_the_griffin_equations():
    params = _rg_lru_params(_perturbed("hawk"))
    rng = np.random.default_rng(17)
    x = rng.normal(size=(T, 2, 32)).astype(np.float32)
    h0 = rng.normal(size=(2, 32)).astype(np.float32)
    reset = np.zeros((T, 2), bool)
    reset[3, 0] = reset[6, 1] = True
    h_last, h_seq = _rg_lru_apply()(params, h0, x, reset)

    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params["params"])

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    def gate(v, layer):  # block-diagonal over 2 heads of 16
        y = np.einsum("bhi,hij->bhj", v.reshape(2, 2, 16), layer["w"]) + layer["b"]
        return sigmoid(y.reshape(v.shape))

    h = h0.astype(np.float64)
    expected = []
    for t in range(T):
        x_t = x[t].astype(np.float64)
        r_t, i_t = gate(x_t, p["a_gate"]), gate(x_t, p["input_gate"])
        a_t = sigmoid(p["lambda"]) ** (8 * r_t)
        h = np.where(reset[t][:, None], 0.0, h)
        h = a_t * h + np.sqrt(1 - a_t**2) * (i_t * x_t)
        expected.append(h)
    np.testing.assert_allclose(h_seq, np.stack(expected), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_last, expected[-1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("heads,block", [(4, 8), (2, 160)])
def test_block_diagonal_linear_matches_per_head_products(heads, block):
    # Width 32 takes the dense path, width 320 the per-head einsum; both must equal
    # each head's own x_h @ w_h + b_h computed one head at a time.
    rng = np.random.default_rng(3)
    w = rng.normal(size=(heads, block, block)).astype(np.float32)
    b = rng.normal(size=(heads, block)).astype(np.float32)
    x = rng.normal(size=(5, 3, heads * block)).astype(np.float32)
    expected = np.concatenate(
        [x[..., h * block : (h + 1) * block] @ w[h] + b[h] for h in range(heads)],
        axis=-1,
    )
    y = jax.jit(block_diagonal_linear)(x, w, b)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_conv1d_matches_a_direct_loop_and_keeps_three_inputs():
    width, kernel = 3, 4
    rng = np.random.default_rng(18)
    w = rng.normal(size=(kernel, width)).astype(np.float32)
    b = rng.normal(size=width).astype(np.float32)
    state = rng.normal(size=(2, kernel - 1, width)).astype(np.float32)
    x = rng.normal(size=(T, 2, width)).astype(np.float32)
    reset = np.zeros((T, 2), bool)
    reset[2, 0] = reset[T - 2, 1] = True

    # Reference: y_t = b + sum_k w[K-1-k] x_{t-k} over the inputs since the last
    # reset, the initial state counting as inputs -3, -2, -1.
    expected = np.zeros((T, 2, width))
    for e in range(2):
        history = [*state[e], *x[:, e]]
        start = 0
        for t in range(T):
            here = t + kernel - 1  # index of x_t in `history`
            if reset[t, e]:
                start = here
            expected[t, e] = b + sum(
                w[kernel - 1 - k] * history[here - k]
                for k in range(kernel)
                if here - k >= start
            )

    @jax.jit
    def both(state, x, reset):
        def body(s, inputs):
            return conv1d_step(w, b, s, *inputs)

        return conv1d_sequence(w, b, state, x, reset), jax.lax.scan(
            body, state, (x, reset)
        )

    (new_state, y), (stepped_state, y_stepped) = both(state, x, reset)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_stepped, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_state, stepped_state, rtol=1e-6)
    # Element 0 holds its last three inputs; element 1 was reset at the second-last
    # step, so the input before that reset is zeroed.
    np.testing.assert_array_equal(new_state[0], x[-3:, 0])
    np.testing.assert_array_equal(new_state[1], [np.zeros(width), *x[-2:, 1]])


def test_hawk_parameter_count_matches_the_spec_estimate():
    net = HawkPolicy(num_actions=2)
    shapes = jax.eval_shape(
        net.init,
        jax.random.key(0),
        net.initial_state(),
        jnp.zeros(NUM_STATES),
        jnp.array(False),
    )
    n = num_params(shapes)
    print(f"HawkPolicy parameters (obs_dim 5, 2 actions): {n}")
    assert 7_000 <= n <= 9_000  # spec §6: "about 8k for the IPD"
    assert net.initial_state((4,)).conv.shape == (4, 3, 32)
    assert net.initial_state((4,)).rg_lru.shape == (4, 32)


def test_tabular_reads_the_logit_of_the_observed_state():
    net = TabularPolicy(num_actions=2)
    table = np.arange(1.0, 6.0, dtype=np.float32)[:, None]  # cooperation logits
    params = {"params": {"logits": table, "value": 10.0 * np.arange(5.0)}}
    # The reward entry (7.0) exceeds the one-hot and must not be read as a state.
    obs = np.concatenate([np.eye(5), np.full((5, 1), 7.0)], axis=-1)
    _, out = net.apply(params, (), obs, np.zeros(5, bool))
    assert isinstance(out, PolicyOutput)
    np.testing.assert_array_equal(out.logits, np.stack([table[:, 0], np.zeros(5)], 1))
    np.testing.assert_array_equal(out.value, 10.0 * np.arange(5.0))
    # p(C | s) = sigmoid(logit_s): the exact IPD's parametrisation.
    np.testing.assert_allclose(
        action_distribution(out.logits).probs[:, 0],
        1 / (1 + np.exp(-table[:, 0])),
        rtol=1e-6,
    )

    defect = TabularPolicy(num_actions=2, init_logit=float(np.log(0.01)))
    d_params = defect.init(jax.random.key(0), (), obs, np.zeros(5, bool))
    _, d_out = defect.apply(d_params, (), obs, np.zeros(5, bool))
    np.testing.assert_allclose(
        action_distribution(d_out.logits).probs[:, 0], 0.01 / 1.01, rtol=1e-5
    )


def test_action_distribution_is_categorical_over_the_last_axis():
    logits = np.log([[1.0, 3.0], [4.0, 1.0]])
    dist = action_distribution(logits)
    np.testing.assert_allclose(dist.probs, [[0.25, 0.75], [0.8, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(
        dist.log_prob(np.array([1, 0])), np.log([0.75, 0.8]), rtol=1e-6
    )
    assert dist.sample(seed=jax.random.key(0)).shape == (2,)


def _previous_conv1d_step(w, b, state, x, reset):
    # conv1d_step before its taps were written out: the reference it must match.
    state = jnp.where(reset[..., None, None], 0.0, state)
    window = jnp.concatenate([state, x[..., None, :]], axis=-2)
    return window[..., 1:, :], jnp.sum(window * w, axis=-2) + b


def _previous_block_diagonal_linear(x, w, b):
    # block_diagonal_linear before the dense path: a per-head einsum.
    heads, block, _ = w.shape
    xb = x.reshape(*x.shape[:-1], heads, block)
    return (jnp.einsum("...hi,hij->...hj", xb, w) + b).reshape(x.shape)


def test_hawk_equals_its_previous_conv_and_gate_kernels(monkeypatch):
    # The acting path (stepped) and the training path (unrolled, with gradients)
    # of Hawk give the same numbers with the previous kernels as with the current.
    net = HawkPolicy(num_actions=2)
    rng = np.random.default_rng(5)
    obs = jnp.asarray(rng.normal(size=(T, B, OBS_DIM)), jnp.float32)
    reset = jnp.asarray(rng.random((T, B)) < 0.2).at[0].set(True)
    carry = net.initial_state((B,))
    params = net.init(jax.random.key(0), carry, obs[0], reset[0])

    def loss(params):
        _, out = net.apply(params, carry, obs, reset, method="unroll")
        return jnp.sum(out.logits[..., 0] * out.value)

    def stepped(params):
        def body(c, inputs):
            c, out = net.apply(params, c, *inputs)
            return c, (out.logits, out.value)

        return jax.lax.scan(body, carry, (obs, reset))

    def run():
        jax.clear_caches()
        return jax.jit(jax.value_and_grad(loss))(params), jax.jit(stepped)(params)

    current = run()
    monkeypatch.setattr(networks, "conv1d_step", _previous_conv1d_step)
    monkeypatch.setattr(
        networks, "block_diagonal_linear", _previous_block_diagonal_linear
    )
    previous = run()
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        current,
        previous,
    )


@pytest.mark.parametrize("method", ["sequential", "associative", "auto"])
def test_linear_recurrence_matches_a_loop(method):
    steps, batch, width = 9, 3, 4
    k = jax.random.split(jax.random.key(3), 3)
    h0 = np.asarray(jax.random.normal(k[0], (batch, width)))
    a = np.asarray(jax.random.uniform(k[1], (steps, batch, width)))
    x = np.asarray(jax.random.normal(k[2], (steps, batch, width)))
    reset = np.zeros((steps, batch), bool)
    reset[[0, 4], 0] = True
    reset[6, 2] = True
    expected, h = [], h0.astype(np.float64)
    for t in range(steps):
        h = a[t] * np.where(reset[t][:, None], 0.0, h) + x[t]
        expected.append(h)
    last, states = networks.linear_recurrence_sequence(h0, a, x, reset, method)
    np.testing.assert_allclose(states, np.stack(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(last, expected[-1], rtol=1e-5, atol=1e-6)


def test_linear_recurrence_rejects_an_unknown_method():
    x = jnp.zeros((2, 1, 1))
    with pytest.raises(ValueError, match="method must be 'auto', 'sequential'"):
        networks.linear_recurrence_sequence(x[0], x, x, jnp.zeros((2, 1), bool), "fft")
