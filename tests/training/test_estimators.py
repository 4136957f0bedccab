"""Estimators of specs/coala_pg.md §2-§3 against hand-worked numbers and closed forms.

Expected numbers come from hand calculation (written out next to each case), from
plain numpy loops or sums written here from the maths, or from exact enumeration of
a toy batched shaping problem; never from a second call of the code under test,
except where an identity between two functions is the point of the test.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.training.estimators import (
    batch_lambda_returns,
    batch_unaware_gae,
    coala_gae,
    mfos_gae,
    scale_coala_advantages,
    td_lambda_targets,
    temporal_differences,
)

FLAGS = ("average_future_episodes", "normalize_current_episode")
STATIC = ("inner_episode_length", *FLAGS)
GAES = {"coala": coala_gae, "batch_unaware": batch_unaware_gae, "mfos": mfos_gae}

# ---------------------------------------------------------------------------------
# Hand-worked case: B = 2, M = 2, T = 2 (L = 4), γ = λ = 1/2.
# values[:, t] is the value of the state after step t (spec §3.3); the last column
# is 0 because the meta-trajectory ends there. With γ = λ = 1/2 every update is
#   acc = r / n + 0.25 v + 0.25 acc,   g = mean_b(r + 0.25 v + 0.25 g).
# ---------------------------------------------------------------------------------
HAND_REWARDS = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, -2.0, 2.0, 0.0]])
HAND_VALUES = np.array([[2.0, 4.0, 2.0, 0.0], [4.0, 0.0, 2.0, 0.0]])
HAND_EXPECTED = {
    # Ordinary TD(λ) per row, G_4 = v_3 = 0. Row 0:
    #   t=3: 4;  t=2: 3 + 0.5 + 1 = 4.5;  t=1: 2 + 1 + 1.125 = 4.125;
    #   t=0: 1 + 0.5 + 1.03125 = 2.53125.
    # Row 1: t=3: 0;  t=2: 2 + 0.5 = 2.5;  t=1: -2 + 0.625 = -1.375;
    #   t=0: 0 + 1 - 0.34375 = 0.65625.
    (False, False): [[2.53125, 4.125, 4.5, 4.0], [0.65625, -1.375, 2.5, 0.0]],
    # n = 2. t=3 (episode end): acc <- g = 0, acc = r/2 = [2, 0], g = mean(4, 0) = 2.
    # t=2: acc = [1.5, 1] + [0.5, 0.5] + 0.25 [2, 0] = [2.5, 1.5];
    #      g = mean(3 + 0.5 + 0.5, 2 + 0.5 + 0.5) = 3.5.
    # t=1 (episode end): acc <- 3.5, acc = [1, -1] + [1, 0] + 0.875 = [2.875, -0.125];
    #      g = mean(2 + 1 + 0.875, -2 + 0 + 0.875) = 1.375.
    # t=0: acc = [0.5, 0] + [0.5, 1] + 0.25 [2.875, -0.125] = [1.71875, 0.96875].
    (True, True): [[1.71875, 2.875, 2.5, 2.0], [0.96875, -0.125, 1.5, 0.0]],
    # n = 1, same resets: t=3: [4, 0]; t=2: [3, 2] + [0.5, 0.5] + [1, 0] = [4.5, 2.5];
    # t=1: [2, -2] + [1, 0] + 0.875 = [3.875, -1.125];
    # t=0: [1, 0] + [0.5, 1] + 0.25 [3.875, -1.125] = [2.46875, 0.71875].
    (True, False): [[2.46875, 3.875, 4.5, 4.0], [0.71875, -1.125, 2.5, 0.0]],
    # No resets, n = 2: only the rewards are halved, the (1 - λ) v terms are not.
    # Row 0: t=3: 2; t=2: 1.5 + 0.5 + 0.5 = 2.5; t=1: 1 + 1 + 0.625 = 2.625;
    #   t=0: 0.5 + 0.5 + 0.65625 = 1.65625.
    # Row 1: t=3: 0; t=2: 1 + 0.5 = 1.5; t=1: -1 + 0.375 = -0.625;
    #   t=0: 0 + 1 - 0.15625 = 0.84375.
    (False, True): [[1.65625, 2.625, 2.5, 2.0], [0.84375, -0.625, 1.5, 0.0]],
}


@pytest.mark.parametrize(FLAGS, list(HAND_EXPECTED))
def test_batch_lambda_returns_hand_worked(
    average_future_episodes, normalize_current_episode
):
    returns = batch_lambda_returns(
        jnp.asarray(HAND_REWARDS),
        jnp.asarray(HAND_VALUES),
        discount=0.5,
        lambda_=0.5,
        inner_episode_length=2,
        average_future_episodes=average_future_episodes,
        normalize_current_episode=normalize_current_episode,
    )
    expected = HAND_EXPECTED[average_future_episodes, normalize_current_episode]
    np.testing.assert_allclose(returns, np.array(expected), rtol=1e-6)


def test_batch_lambda_returns_hand_worked_nonzero_bootstrap():
    # B = 2, one inner episode of T = 2, γ = λ = 1, bootstrap v_1 = [2, 4] (mean 3).
    # (True, True): t=1 (end): acc <- mean = 3, acc = r_1/2 + 3 = [3.5, 4.5];
    #   t=0: acc = r_0/2 + acc = [0.5 + 3.5, 1 + 4.5] = [4, 5.5].
    # (False, False): row 0: [1 + 1 + 2, 1 + 2] = [4, 3]; row 1: [9, 7].
    rewards = jnp.array([[1.0, 1.0], [2.0, 3.0]])
    values = jnp.array([[7.0, 2.0], [-5.0, 4.0]])  # v_0 is unused at λ = 1
    kwargs = {"discount": 1.0, "lambda_": 1.0, "inner_episode_length": 2}
    coala = batch_lambda_returns(
        rewards,
        values,
        average_future_episodes=True,
        normalize_current_episode=True,
        **kwargs,
    )
    plain = batch_lambda_returns(
        rewards,
        values,
        average_future_episodes=False,
        normalize_current_episode=False,
        **kwargs,
    )
    np.testing.assert_allclose(coala, [[4.0, 3.5], [5.5, 4.5]], rtol=1e-6)
    np.testing.assert_allclose(plain, [[4.0, 3.0], [9.0, 7.0]], rtol=1e-6)


# ---------------------------------------------------------------------------------
# Independent numpy references.
# ---------------------------------------------------------------------------------
def td_lambda_loop(r, v, gamma, lam):
    """λ-returns of one row (rlax ``lambda_returns``, v[t] bootstraps step t)."""
    out = np.zeros(len(r))
    acc = v[-1]
    for t in reversed(range(len(r))):
        acc = r[t] + gamma * ((1.0 - lam) * v[t] + lam * acc)
        out[t] = acc
    return out


def gae_loop(r, v_t, bootstrap, gamma, lam):
    """Ordinary GAE of one row with V(h_L) = bootstrap."""
    v_tp1 = np.append(v_t[1:], bootstrap)
    out = np.zeros(len(r))
    acc = 0.0
    for t in reversed(range(len(r))):
        acc = r[t] + gamma * v_tp1[t] - v_t[t] + gamma * lam * acc
        out[t] = acc
    return out


def algorithm1_sum_form(r, v, gamma, lam, ep_len, average, normalize):
    """Algorithm 1 unrolled into sums (spec §3.3), with λ-returns for the future.

    G^b_t = Σ_{k=t}^{e} (γλ)^{k-t} (r^b_k / n + γ(1-λ) v^b_k) + (γλ)^{e+1-t} tail,
    e = end of t's inner episode and tail = batch mean of the λ-returns at e+1
    (mean_b v_{L-1} after the last step) when averaging; otherwise e = L-1 and
    tail = v^b_{L-1}.
    """
    batch, length = r.shape
    n = batch if normalize else 1
    rows = np.stack([td_lambda_loop(r[b], v[b], gamma, lam) for b in range(batch)])
    mean_future = np.append(rows.mean(0), v[:, -1].mean())
    out = np.zeros_like(r)
    for b, t in itertools.product(range(batch), range(length)):
        e = (t // ep_len + 1) * ep_len - 1 if average else length - 1
        tail = mean_future[e + 1] if average else v[b, -1]
        ks = np.arange(t, e + 1)
        terms = r[b, ks] / n + gamma * (1.0 - lam) * v[b, ks]
        out[b, t] = np.sum((gamma * lam) ** (ks - t) * terms)
        out[b, t] += (gamma * lam) ** (e + 1 - t) * tail
    return out


def cur_and_fut(r, ep_len):
    """Eq. 3 ingredients: own reward-to-go in the episode, later-episode sums."""
    batch, length = r.shape
    cur = np.zeros_like(r)
    fut = np.zeros_like(r)
    for b, t in itertools.product(range(batch), range(length)):
        e = (t // ep_len + 1) * ep_len - 1
        cur[b, t] = r[b, t : e + 1].sum()
        fut[b, t] = r[:, e + 1 :].sum()  # summed over every trajectory b'
    return cur, fut


def next_episode_values(v_t, ep_len):
    """V̂(h^b_{T m_l + 1}): value at the first step of the next episode, 0 at the end."""
    batch, length = v_t.shape
    out = np.zeros_like(v_t)
    for t in range(length):
        e = (t // ep_len + 1) * ep_len - 1
        if e + 1 < length:
            out[:, t] = v_t[:, e + 1]
    return out


def random_case(seed, batch=3, episodes=3, ep_len=4):
    rng = np.random.default_rng(seed)
    shape = (batch, episodes * ep_len)
    return (
        rng.normal(size=shape),
        rng.normal(size=shape),
        rng.normal(size=batch),
        ep_len,
    )


SEEDS = [0, 1, 2]


@pytest.mark.parametrize("seed", SEEDS)
def test_false_false_is_td_lambda_per_row(seed):
    """§12.1.1: flags (False, False) reproduce TD(λ) per row to 1e-6."""
    rewards, values, _, ep_len = random_case(seed)
    gamma, lam = 0.9, 0.7
    with jax.enable_x64(True):
        returns = batch_lambda_returns(
            rewards,
            values,
            discount=gamma,
            lambda_=lam,
            inner_episode_length=ep_len,
            average_future_episodes=False,
            normalize_current_episode=False,
        )
    expected = np.stack(
        [td_lambda_loop(r, v, gamma, lam) for r, v in zip(rewards, values, strict=True)]
    )
    np.testing.assert_allclose(returns, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_true_true_at_gamma_lambda_one_is_eq3_weights(seed):
    """§12.1.2: (1/B) cur_b + (1/B) Σ_b' fut_b' with a zero terminal value."""
    rewards, values, _, ep_len = random_case(seed)
    values[:, -1] = 0.0  # the meta-trajectory ends: no bootstrap
    with jax.enable_x64(True):
        returns = batch_lambda_returns(
            rewards,
            values,
            discount=1.0,
            lambda_=1.0,
            inner_episode_length=ep_len,
            average_future_episodes=True,
            normalize_current_episode=True,
        )
    cur, fut = cur_and_fut(rewards, ep_len)
    batch = rewards.shape[0]
    np.testing.assert_allclose(returns, cur / batch + fut / batch, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(FLAGS, list(itertools.product([False, True], repeat=2)))
def test_matches_sum_form_for_any_flags(
    seed, average_future_episodes, normalize_current_episode
):
    rewards, values, _, ep_len = random_case(seed)
    gamma, lam = 0.95, 0.6
    with jax.enable_x64(True):
        returns = batch_lambda_returns(
            rewards,
            values,
            discount=gamma,
            lambda_=lam,
            inner_episode_length=ep_len,
            average_future_episodes=average_future_episodes,
            normalize_current_episode=normalize_current_episode,
        )
    expected = algorithm1_sum_form(
        rewards,
        values,
        gamma,
        lam,
        ep_len,
        average_future_episodes,
        normalize_current_episode,
    )
    np.testing.assert_allclose(returns, expected, rtol=0, atol=1e-6)


def test_gae_hand_worked():
    # B = 2, M = 2, T = 1, γ = λ = 1, V̂(h_t) = [[0.5, 1], [1.5, 2]], V̂ = 0 at the end.
    # δ = r + V̂_next - V̂: row 0: [1 + 1 - 0.5, 2 - 1] = [1.5, 1]; row 1: [3.5, 2].
    # COALA: t=1: δ/2 = [0.5, 1], g = 1.5; t=0: δ/2 + 1.5 = [2.25, 3.25]. Eqs. 13-14
    #   for b=0, l=0: 1/2 + (2 + 4)/2 - 0.5/2 - 2/2 = 2.25.
    # M-FOS: t=1: δ = [1, 2]; t=0: δ + 1.5 = [3, 5]. Batch-unaware: Σ_{k>=t} δ_k.
    rewards = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    values_t = jnp.array([[0.5, 1.0], [1.5, 2.0]])
    expected = {
        "coala": [[2.25, 0.5], [3.25, 1.0]],
        "mfos": [[3.0, 1.0], [5.0, 2.0]],
        "batch_unaware": [[2.5, 1.0], [5.5, 2.0]],
    }
    kwargs = {"discount": 1.0, "lambda_": 1.0, "inner_episode_length": 1}
    for name, fn in GAES.items():
        np.testing.assert_allclose(
            fn(rewards, values_t, **kwargs), expected[name], rtol=1e-6, err_msg=name
        )
    targets = td_lambda_targets(rewards, values_t, **kwargs)
    np.testing.assert_allclose(targets, [[3.0, 2.0], [7.0, 4.0]], rtol=1e-6)


def test_temporal_differences_use_bootstrap_value():
    # δ = r + γ V̂_next - V̂ with γ = 0.5: row 0: [1 + 1 - 4, 0 + 0.5 * 6 - 2] = [-2, 1].
    deltas = temporal_differences(
        jnp.array([[1.0, 0.0]]),
        jnp.array([[4.0, 2.0]]),
        discount=0.5,
        bootstrap_value=jnp.array([6.0]),
    )
    np.testing.assert_allclose(deltas, [[-2.0, 1.0]], rtol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_coala_gae_at_gamma_lambda_one_is_eqs_13_14(seed):
    """§12.1.3: cur/B + Σ fut/B - V̂^b_l/B - Σ_{b'≠b} V̂^{b'}_next / B."""
    rewards, values_t, _, ep_len = random_case(seed)
    with jax.enable_x64(True):
        advantages = coala_gae(
            rewards, values_t, discount=1.0, lambda_=1.0, inner_episode_length=ep_len
        )
    batch = rewards.shape[0]
    cur, fut = cur_and_fut(rewards, ep_len)
    v_next = next_episode_values(values_t, ep_len)
    others_next = v_next.sum(0, keepdims=True) - v_next
    expected = (cur + fut - values_t - others_next) / batch
    np.testing.assert_allclose(advantages, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_mfos_gae_at_gamma_lambda_one(seed):
    """Eq. 7 with baselines: cur_b + mean fut - V̂^b_l + V̂^b_next - mean V̂_next."""
    rewards, values_t, _, ep_len = random_case(seed)
    with jax.enable_x64(True):
        advantages = mfos_gae(
            rewards, values_t, discount=1.0, lambda_=1.0, inner_episode_length=ep_len
        )
    batch = rewards.shape[0]
    cur, fut = cur_and_fut(rewards, ep_len)
    v_next = next_episode_values(values_t, ep_len)
    expected = cur + fut / batch - values_t + v_next - v_next.mean(0, keepdims=True)
    np.testing.assert_allclose(advantages, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_gae_variants_for_any_gamma_lambda(seed):
    rewards, values_t, bootstrap, ep_len = random_case(seed)
    gamma, lam = 0.9, 0.8
    kwargs = {"discount": gamma, "lambda_": lam, "inner_episode_length": ep_len}
    with jax.enable_x64(True):
        got = {
            name: np.asarray(fn(rewards, values_t, bootstrap_value=bootstrap, **kwargs))
            for name, fn in GAES.items()
        }
        targets = np.asarray(
            td_lambda_targets(rewards, values_t, bootstrap_value=bootstrap, **kwargs)
        )
    plain = np.stack(
        [
            gae_loop(r, v, b, gamma, lam)
            for r, v, b in zip(rewards, values_t, bootstrap, strict=True)
        ]
    )
    deltas = rewards + gamma * np.concatenate([values_t[:, 1:], bootstrap[:, None]], 1)
    deltas -= values_t
    zeros = np.zeros_like(deltas)
    sum_form = functools.partial(
        algorithm1_sum_form, deltas, zeros, gamma * lam, 1.0, ep_len
    )
    np.testing.assert_allclose(got["batch_unaware"], plain, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["coala"], sum_form(True, True), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["mfos"], sum_form(True, False), rtol=0, atol=1e-6)
    # Identity: TD(λ) targets are batch-unaware GAE plus the values.
    np.testing.assert_allclose(targets - values_t, plain, rtol=0, atol=1e-6)


def test_inner_episode_boundaries_do_not_cut_bootstrapping():
    # One trajectory, M = 3 episodes of T = 1, a single reward of 1 at the very end,
    # zero values, γ = 0.5, λ = 1: advantages [0.25, 0.5, 1], not [0, 0, 1].
    rewards = jnp.array([[0.0, 0.0, 1.0]])
    kwargs = {"discount": 0.5, "lambda_": 1.0, "inner_episode_length": 1}
    for name, fn in GAES.items():
        np.testing.assert_allclose(
            fn(rewards, jnp.zeros_like(rewards), **kwargs),
            [[0.25, 0.5, 1.0]],
            rtol=1e-6,
            err_msg=name,
        )


@pytest.mark.parametrize(FLAGS, list(itertools.product([False, True], repeat=2)))
def test_batch_lambda_returns_jit_equals_eager(
    average_future_episodes, normalize_current_episode
):
    rewards, values, _, ep_len = random_case(7)
    rewards, values = (
        jnp.asarray(rewards, jnp.float32),
        jnp.asarray(values, jnp.float32),
    )
    kwargs = {
        "inner_episode_length": ep_len,
        "average_future_episodes": average_future_episodes,
        "normalize_current_episode": normalize_current_episode,
    }
    jitted = jax.jit(batch_lambda_returns, static_argnames=STATIC)
    discount, lam = jnp.float32(0.9), jnp.float32(0.5)  # traced under jit
    eager = batch_lambda_returns(
        rewards, values, discount=discount, lambda_=lam, **kwargs
    )
    np.testing.assert_allclose(
        jitted(rewards, values, discount=discount, lambda_=lam, **kwargs),
        eager,
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("name", sorted(GAES))
def test_gae_jit_equals_eager_and_vmaps_over_meta_batch(name):
    rng = np.random.default_rng(3)
    rewards = jnp.asarray(rng.normal(size=(5, 2, 6)), jnp.float32)  # [B̄, B, M*T]
    values_t = jnp.asarray(rng.normal(size=(5, 2, 6)), jnp.float32)
    fn = functools.partial(
        GAES[name], discount=0.99, lambda_=0.95, inner_episode_length=3
    )
    eager = jnp.stack([fn(r, v) for r, v in zip(rewards, values_t, strict=True)])
    np.testing.assert_allclose(
        jax.jit(jax.vmap(fn))(rewards, values_t), eager, rtol=1e-6, atol=1e-6
    )


def test_scale_coala_advantages_multiplies_by_batch_size():
    advantages = jnp.array([[0.5, -1.0], [0.25, 2.0], [1.0, 0.0]])
    np.testing.assert_allclose(
        scale_coala_advantages(advantages),
        [[1.5, -3.0], [0.75, 6.0], [3.0, 0.0]],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("rewards_shape", "values_shape", "ep_len", "match"),
    [
        ((6,), (6,), 2, "shape"),
        ((2, 6), (2, 5), 2, "differs"),
        ((2, 6), (2, 6), 4, "multiple"),
        ((2, 6), (2, 6), 0, "positive"),
        ((2, 0), (2, 0), 1, "non-empty"),
    ],
)
def test_bad_shapes_raise(rewards_shape, values_shape, ep_len, match):
    with pytest.raises(ValueError, match=match):
        batch_lambda_returns(
            jnp.zeros(rewards_shape),
            jnp.zeros(values_shape),
            discount=1.0,
            lambda_=1.0,
            inner_episode_length=ep_len,
            average_future_episodes=True,
            normalize_current_episode=True,
        )


def test_bad_discount_and_bootstrap_raise():
    rewards = jnp.zeros((2, 4))
    with pytest.raises(ValueError, match="discount"):
        coala_gae(
            rewards,
            rewards,
            discount=jnp.ones(4),
            lambda_=1.0,
            inner_episode_length=2,
        )
    with pytest.raises(ValueError, match="bootstrap_value"):
        coala_gae(
            rewards,
            rewards,
            discount=1.0,
            lambda_=1.0,
            inner_episode_length=2,
            bootstrap_value=jnp.zeros(3),
        )


# ---------------------------------------------------------------------------------
# §12.1.4-5: a toy batched shaping problem with an exactly computable gradient.
#
# T = 1, M = 2. Stage game: the IPD payoffs (R, S, T, P) = (1, -1, 2, 0) with R and T
# swapped, a stag hunt. In the IPD defection dominates, so a naive learner's expected
# REINFORCE step is the same whatever the ego plays and shaping is only a
# second-order (variance) effect; in the stag hunt it is first order. Joint outcomes
# are indexed CC, CD, DC, DD with the ego first; action 1 = cooperate.
#
# Naive learner: one logit ψ, cooperates with probability σ(ψ). After episode 1 it
# takes one SGD step of size η on its REINFORCE gradient over the B samples,
# ψ' = ψ + η mean_b (c^b - σ(ψ)) r_naive^b, then plays episode 2 with ψ'.
# Ego: logits φ = [φ_1, φ_2(CC), φ_2(CD), φ_2(DC), φ_2(DD)]: one for episode 1, and
# for episode 2 one per previous joint action of its own trajectory.
# ---------------------------------------------------------------------------------
R_EGO = jnp.array([2.0, -1.0, 1.0, 0.0])
R_NAIVE = jnp.array([2.0, 1.0, -1.0, 0.0])
NAIVE_COOPERATES = jnp.array([1.0, 0.0, 1.0, 0.0])
PSI0 = -1.0
ETA = 4.0
PHI = jnp.array([0.3, 0.5, -0.4, 0.2, -0.6])
NUM_META_EPISODES = 2**15
BATCH_SIZES = [1, 4, 16]


def joint_probs(p_ego, p_naive):
    """[..., 4] probabilities of CC, CD, DC, DD from cooperation probabilities."""
    return jnp.stack(
        [
            p_ego * p_naive,
            p_ego * (1 - p_naive),
            (1 - p_ego) * p_naive,
            (1 - p_ego) * (1 - p_naive),
        ],
        axis=-1,
    )


def naive_step_per_outcome():
    """[4] the naive learner's per-sample REINFORCE gradient for each outcome."""
    return (NAIVE_COOPERATES - jax.nn.sigmoid(PSI0)) * R_NAIVE


def episode_two_reward(phi_2, psi):
    """Expected ego reward in episode 2 given its logit there and the naive's ψ'."""
    return joint_probs(jax.nn.sigmoid(phi_2), jax.nn.sigmoid(psi)) @ R_EGO


@functools.cache
def outcome_counts(batch):
    """All count vectors n ∈ N^4 with Σ n = batch and their log multinomial factors."""
    rows = [
        (*c, batch - sum(c))
        for c in itertools.product(range(batch + 1), repeat=3)
        if sum(c) <= batch
    ]
    log_coef = [
        math.lgamma(batch + 1) - sum(math.lgamma(k + 1) for k in n) for n in rows
    ]
    return np.array(rows, np.float32), np.array(log_coef, np.float32)


def count_weights(p, batch):
    """Multinomial probabilities of every count vector of ``batch`` draws from p."""
    counts, log_coef = outcome_counts(batch)
    return counts, jnp.exp(log_coef + counts @ jnp.log(p))


def exact_objective(phi, batch):
    """J̄(φ) = E[(1/B) Σ_b (R^b_1 + R^b_2)] by enumerating the episode-1 counts.

    The naive update depends on the B samples only through the outcome counts n, so
    E[(1/B) Σ_b R^b_2] = Σ_n Mult(n) (1/B) Σ_j n_j R_2(φ_2(j), ψ'(n)).
    """
    p1 = joint_probs(jax.nn.sigmoid(phi[0]), jax.nn.sigmoid(PSI0))
    counts, weights = count_weights(p1, batch)
    psi1 = PSI0 + ETA * (counts @ naive_step_per_outcome()) / batch  # [K]
    e2 = episode_two_reward(phi[1:][None, :], psi1[:, None])  # [K, 4]
    return p1 @ R_EGO + jnp.sum(weights * jnp.sum(counts * e2, 1)) / batch


def brute_force_objective(phi, batch):
    """J̄(φ) by summing over all 4^B ordered joint outcomes of episode 1."""
    p1 = joint_probs(jax.nn.sigmoid(phi[0]), jax.nn.sigmoid(PSI0))
    outcomes = jnp.array(list(itertools.product(range(4), repeat=batch)))  # [4^B, B]
    probs = jnp.prod(p1[outcomes], axis=1)
    psi1 = PSI0 + ETA * jnp.mean(naive_step_per_outcome()[outcomes], axis=1)
    e2 = jnp.mean(episode_two_reward(phi[1 + outcomes], psi1[:, None]), axis=1)
    return p1 @ R_EGO + jnp.sum(probs * e2)


@functools.cache
@functools.partial(jax.jit, static_argnums=0)
def exact_gradient_parts(batch):
    """∇J̄, the current-episode part and trajectory 1's own-future part at PHI.

    current: the gradient with every action credited only its own current episode,
      [∂E[R_1]/∂φ_1, ∂E[R_2]/∂φ_2]; the rest of ∇J̄ is the future (shaping) part.
    own future: ∂E[R^1_2]/∂φ_1 through trajectory 1's own episode-1 action only
      (its own history and its 1/B share of the naive update), all that a
      batch-unaware estimator credits.
    """
    full = jax.grad(exact_objective)(PHI, batch)
    episode_one = jax.grad(
        lambda phi_1: joint_probs(jax.nn.sigmoid(phi_1), jax.nn.sigmoid(PSI0)) @ R_EGO
    )(PHI[0])
    current = full.at[0].set(episode_one)

    def own_episode_two(phi_own, phi_others):
        p_own = joint_probs(jax.nn.sigmoid(phi_own), jax.nn.sigmoid(PSI0))
        p_others = joint_probs(jax.nn.sigmoid(phi_others), jax.nn.sigmoid(PSI0))
        counts, weights = count_weights(p_others, batch - 1)  # [K, 4], [K]
        step = naive_step_per_outcome()
        psi1 = PSI0 + ETA * ((counts @ step)[:, None] + step[None, :]) / batch
        e2 = episode_two_reward(PHI[1:][None, :], psi1)  # [K, own outcome]
        return jnp.sum(weights[:, None] * p_own[None, :] * e2)

    own_future = jax.grad(own_episode_two)(PHI[0], PHI[0])
    return full, current, own_future


def sample_meta_episode(key, batch):
    """One meta-episode of B trajectories: rewards [B, 2], scores [B, 2, 5], j1 [B]."""
    k_ego1, k_naive1, k_ego2, k_naive2 = jax.random.split(key, 4)
    p_ego1 = jax.nn.sigmoid(PHI[0])
    ego1 = jax.random.bernoulli(k_ego1, p_ego1, (batch,)).astype(jnp.float32)
    naive1 = jax.random.bernoulli(k_naive1, jax.nn.sigmoid(PSI0), (batch,))
    j1 = (2 * (1 - ego1) + (1 - naive1)).astype(jnp.int32)
    psi1 = PSI0 + ETA * jnp.mean(naive_step_per_outcome()[j1])
    p_ego2 = jax.nn.sigmoid(PHI[1:][j1])
    ego2 = jax.random.bernoulli(k_ego2, p_ego2).astype(jnp.float32)
    naive2 = jax.random.bernoulli(k_naive2, jax.nn.sigmoid(psi1), (batch,))
    j2 = (2 * (1 - ego2) + (1 - naive2)).astype(jnp.int32)
    rewards = jnp.stack([R_EGO[j1], R_EGO[j2]], axis=1)
    # ∇_φ log σ-Bernoulli = (a - p) on the logit used.
    one_hot = jnp.eye(5)
    scores = jnp.stack(
        [
            (ego1 - p_ego1)[:, None] * one_hot[0],
            (ego2 - p_ego2)[:, None] * one_hot[1 + j1],
        ],
        axis=1,
    )
    return rewards, scores, j1


RULE_FLAGS = {
    "coala": (True, True),
    "mfos": (True, False),
    "batch_unaware": (False, False),
}


def returns_for(rule, rewards):
    average, normalize = RULE_FLAGS[rule]
    return batch_lambda_returns(
        rewards,
        jnp.zeros_like(rewards),
        discount=1.0,
        lambda_=1.0,
        inner_episode_length=1,
        average_future_episodes=average,
        normalize_current_episode=normalize,
    )


def score_function_estimates(key, batch):
    """Per-meta-episode gradient estimates, and their current/future split.

    COALA and M-FOS sum the score terms over b (Eqs. 5, 7); batch-unaware averages
    them (Eq. 6). COALA also enters as a mean-over-samples loss would see it, with
    advantages scaled by B (spec §4), and as COALA-GAE with an arbitrary value
    baseline that depends only on each trajectory's own history.
    """
    rewards, scores, j1 = sample_meta_episode(key, batch)

    def pg(weights):  # Σ_b Σ_l score^b_l · weight^b_l
        return jnp.einsum("bl,blk->k", weights, scores)

    out = {}
    for rule in RULE_FLAGS:
        full = returns_for(rule, rewards)
        # By linearity, the future part of step 1's return is the return of the
        # episode-2 rewards alone; everything else is current-episode credit.
        future = returns_for(rule, rewards.at[:, 0].set(0.0)).at[:, 1].set(0.0)
        outer = 1.0 / batch if rule == "batch_unaware" else 1.0
        out[rule] = outer * pg(full)
        out[rule + "_future"] = outer * pg(future)
        out[rule + "_current"] = outer * pg(full - future)
    values_t = jnp.stack(
        [jnp.full((batch,), 0.5), jnp.array([1.0, -0.5, 0.5, 0.0])[j1]], axis=1
    )
    advantages = coala_gae(
        rewards, values_t, discount=1.0, lambda_=1.0, inner_episode_length=1
    )
    out["coala_gae"] = pg(advantages)
    out["coala_scaled_mean"] = pg(scale_coala_advantages(advantages)) / batch
    return out


@functools.cache
def monte_carlo(batch):
    keys = jax.random.split(jax.random.key(batch), NUM_META_EPISODES)
    estimates = jax.jit(jax.vmap(lambda k: score_function_estimates(k, batch)))(keys)
    estimates = {name: np.asarray(x, np.float64) for name, x in estimates.items()}
    means = {name: x.mean(0) for name, x in estimates.items()}
    std_errs = {name: x.std(0) / math.sqrt(len(x)) for name, x in estimates.items()}
    return estimates, means, std_errs


def z_scores(batch, name, target):
    _, means, std_errs = monte_carlo(batch)
    return (means[name] - np.asarray(target)) / std_errs[name]


@pytest.mark.parametrize("batch", [2, 3])
def test_exact_objective_counts_match_brute_force(batch):
    phi = jnp.array([-0.2, 0.7, 0.1, -0.3, 0.4])
    by_counts, by_outcomes = (
        jax.jit(jax.value_and_grad(fn), static_argnums=1)(phi, batch)
        for fn in (exact_objective, brute_force_objective)
    )
    np.testing.assert_allclose(by_counts[0], by_outcomes[0], rtol=1e-5)
    np.testing.assert_allclose(by_counts[1], by_outcomes[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_coala_is_unbiased(batch):
    """§12.1.4: the mean COALA estimate matches the exact ∇J̄ within 4 s.e."""
    full, current, _ = exact_gradient_parts(batch)
    for name in ("coala", "coala_gae"):
        z = z_scores(batch, name, full)
        assert np.all(np.abs(z) < 4.0), (name, z)
    estimates, _, std_errs = monte_carlo(batch)
    # The future-episode part of ∂J̄/∂φ_1 is resolved to many s.e., so an
    # estimator that dropped or shrank it could not pass.
    assert abs(full[0] - current[0]) / std_errs["coala"][0] > 10.0
    # Scaling by B then averaging over samples is the sum over b of Eq. 5.
    np.testing.assert_allclose(
        estimates["coala_scaled_mean"], estimates["coala_gae"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("batch", [4, 16])
def test_mfos_and_batch_unaware_are_biased_as_predicted(batch):
    """Both miss ∇J̄ by many s.e.; each matches its own predicted expectation.

    M-FOS credits the current episode at weight 1 but sums over b:
      E = ∇J̄ + (B - 1) · current.
    Batch-unaware keeps only trajectory b's own future:
      E = current + own future on φ_1 (so it misses the other B - 1 shares of the
      shaping term), and equals ∇J̄ on the episode-2 logits, the last episode.
    """
    full, current, own_future = exact_gradient_parts(batch)
    predicted = {
        "mfos": full + (batch - 1) * current,
        "batch_unaware": current.at[0].add(own_future),
    }
    for rule, expected in predicted.items():
        assert np.max(np.abs(z_scores(batch, rule, full))) > 10.0, rule
        z = z_scores(batch, rule, expected)
        assert np.all(np.abs(z) < 4.0), (rule, z)


def test_rules_coincide_at_batch_size_one():
    """With B = 1 the 1/B factors are 1 and the batch mean is the own trajectory."""
    estimates, _, _ = monte_carlo(1)
    for rule in ("mfos", "batch_unaware"):
        np.testing.assert_allclose(estimates[rule], estimates["coala"], rtol=1e-6)


def test_gradient_balance():
    """§12.1.5: ‖E future PG‖ / ‖E current PG‖ is O(1) for COALA, ~1/B otherwise."""

    def ratio(batch, rule):
        _, means, _ = monte_carlo(batch)
        future = np.linalg.norm(means[rule + "_future"])
        return future / np.linalg.norm(means[rule + "_current"])

    coala = ratio(16, "coala") / ratio(4, "coala")
    assert 0.5 < coala < 2.0, coala
    for rule in ("mfos", "batch_unaware"):
        # 4x the batch size: the exact ratios fall by 3.7x (M-FOS) and 5.6x.
        shrink = ratio(16, rule) / ratio(4, rule)
        assert 1 / 10 < shrink < 1 / 2.5, (rule, shrink)
