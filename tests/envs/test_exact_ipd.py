"""Tests of the exact iterated 2x2 game against closed forms from specs/matrix_games.md.

Every expected number is computed here from (R, S, T, P), a hand-typed payoff table
or a Monte-Carlo run of the sampled core, never by a second call of the code under
test (the constant-shift and symmetry identities compare two calls on purpose).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.envs.exact_ipd import (
    average_rewards,
    average_rewards_from_logits,
    finite_horizon_returns,
    initial_distribution,
    transition_matrix,
    values,
    visitation,
)
from dilemmas.envs.matrix_games import MatrixGame

# Own-perspective memory-one vectors (p0; p_CC, p_CD, p_DC, p_DD), spec §6.
ALLC = (1.0, 1.0, 1.0, 1.0, 1.0)
ALLD = (0.0, 0.0, 0.0, 0.0, 0.0)
TFT = (1.0, 1.0, 0.0, 1.0, 0.0)
STFT = (0.0, 1.0, 0.0, 1.0, 0.0)
WSLS = (1.0, 1.0, 0.0, 0.0, 1.0)
GRIM = (1.0, 1.0, 0.0, 0.0, 0.0)  # Grim without noise, spec §6
ALTERNATOR = (1.0, 0.0, 0.0, 1.0, 1.0)


def gtft(g: float) -> tuple[float, ...]:
    return (1.0, 1.0, g, 1.0, g)


# (R, S, T, P), typed from the spec §1 table rather than read from the package.
RSTP = {
    "coala": (1.0, -1.0, 2.0, 0.0),
    "lola": (-1.0, -3.0, 0.0, -2.0),
    "axelrod": (3.0, 0.0, 5.0, 1.0),
}
# Every form `payoffs=` accepts: preset names, a raw 4-vector and a raw table.
PD_PAYOFFS = [
    pytest.param("coala", RSTP["coala"], id="coala"),
    pytest.param("lola", RSTP["lola"], id="lola"),
    pytest.param("axelrod", RSTP["axelrod"], id="axelrod"),
    pytest.param((2.0, 0.0, 3.0, 1.0), (2.0, 0.0, 3.0, 1.0), id="rstp-vector"),
    pytest.param(
        [[[5.0, 5.0], [0.0, 10.0]], [[10.0, 0.0], [1.0, 1.0]]],
        (5.0, 0.0, 10.0, 1.0),
        id="table",
    ),
]
# Hand-typed tables (CC, CD, DC, DD as (row, col) pairs), spec §1.
TABLES = {
    "coala": [[(1, 1), (-1, 2)], [(2, -1), (0, 0)]],
    "axelrod": [[(3, 3), (0, 5)], [(5, 0), (1, 1)]],
    "stag_hunt": [[(4, 4), (1, 3)], [(3, 1), (2, 2)]],
    "chicken": [[(0, 0), (-1, 1)], [(1, -1), (-2, -2)]],
    "battle_of_the_sexes": [[(3, 2), (0, 0)], [(0, 0), (2, 3)]],
    "matching_pennies": [[(1, -1), (-1, 1)], [(-1, 1), (1, -1)]],
}
GAMMAS = [0.0, 0.5, 0.96]
ATOL = 1e-4  # float32 solves at gamma <= 0.96 with payoffs up to 10


def random_policies(seed: int, n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.05, 0.95, size=5).astype(np.float32) for _ in range(n)]


def expected_payoff(table, x: float, y: float) -> np.ndarray:
    """Expected one-shot payoffs when row cooperates w.p. x and column w.p. y."""
    t = np.asarray(table, dtype=np.float64)
    px, py = (x, 1.0 - x), (y, 1.0 - y)
    return sum(px[a] * py[b] * t[a][b] for a in range(2) for b in range(2))


# --- spec §4.4: closed forms for deterministic pairings -------------------------------

# (name, row, col, closed_form(R, S, T, P, gamma) -> (v_row, v_col))
PAIRINGS = [
    ("AllC-AllC", ALLC, ALLC, lambda r, s, t, p, gm: (r, r)),
    ("TFT-TFT", TFT, TFT, lambda r, s, t, p, gm: (r, r)),
    ("WSLS-WSLS", WSLS, WSLS, lambda r, s, t, p, gm: (r, r)),
    ("WSLS-TFT", WSLS, TFT, lambda r, s, t, p, gm: (r, r)),
    ("Grim-TFT", GRIM, TFT, lambda r, s, t, p, gm: (r, r)),
    ("AllD-AllD", ALLD, ALLD, lambda r, s, t, p, gm: (p, p)),
    ("AllC-AllD", ALLC, ALLD, lambda r, s, t, p, gm: (s, t)),
    (
        "TFT-AllD",
        TFT,
        ALLD,
        lambda r, s, t, p, gm: ((1 - gm) * s + gm * p, (1 - gm) * t + gm * p),
    ),
    (
        "Grim-AllD",
        GRIM,
        ALLD,
        lambda r, s, t, p, gm: ((1 - gm) * s + gm * p, (1 - gm) * t + gm * p),
    ),
    (
        "WSLS-AllD",
        WSLS,
        ALLD,
        lambda r, s, t, p, gm: ((s + gm * p) / (1 + gm), (t + gm * p) / (1 + gm)),
    ),
    (
        "TFT-STFT",
        TFT,
        STFT,
        lambda r, s, t, p, gm: ((s + gm * t) / (1 + gm), (t + gm * s) / (1 + gm)),
    ),
    # s0 comes first in the vector: defect once, then cooperate forever.
    (
        "DefectFirst-AllC",
        (0.0, 1.0, 1.0, 1.0, 1.0),
        ALLC,
        lambda r, s, t, p, gm: ((1 - gm) * t + gm * r, (1 - gm) * s + gm * r),
    ),
]


@pytest.mark.parametrize("swap", [False, True], ids=["as-listed", "swapped"])
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize(("payoffs", "rstp"), PD_PAYOFFS)
@pytest.mark.parametrize(
    ("row", "col", "closed_form"),
    [pytest.param(*pairing[1:], id=pairing[0]) for pairing in PAIRINGS],
)
def test_deterministic_pairings_match_closed_forms(
    row, col, closed_form, payoffs, rstp, gamma, swap
):
    expected = np.array(closed_form(*rstp, gamma))
    if swap:  # the same match with the players' seats exchanged
        row, col, expected = col, row, expected[::-1]
    v = average_rewards(jnp.array(row), jnp.array(col), payoffs, gamma)
    np.testing.assert_allclose(v, expected, atol=ATOL)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("convention", sorted(RSTP))
@pytest.mark.parametrize("g_kind", ["nowak-sigmund", "fixed-0.25"])
def test_gtft_vs_alld(convention, gamma, g_kind):
    r, s, t, p = RSTP[convention]
    # Nowak & Sigmund's generosity (spec §6): 1/2 for COALA and LOLA, 1/3 for Axelrod.
    g = (
        min(1 - (t - r) / (r - s), (r - p) / (t - p))
        if g_kind == "nowak-sigmund"
        else 0.25
    )
    expected = (
        (1 - gamma) * s + gamma * (g * s + (1 - g) * p),
        (1 - gamma) * t + gamma * (g * t + (1 - g) * p),
    )
    v = average_rewards(jnp.array(gtft(g)), jnp.array(ALLD), convention, gamma)
    np.testing.assert_allclose(v, expected, atol=ATOL)


@pytest.mark.parametrize("gamma", [0.5, 0.96])
@pytest.mark.parametrize("convention", sorted(RSTP))
def test_values_are_unnormalised(convention, gamma):
    r, s, t, p = RSTP[convention]
    v_coop = values(jnp.array(ALLC), jnp.array(ALLC), convention, gamma)
    np.testing.assert_allclose(v_coop, [r / (1 - gamma)] * 2, rtol=1e-5)
    v_tft = values(jnp.array(TFT), jnp.array(ALLD), convention, gamma)
    expected = (s + gamma * p / (1 - gamma), t + gamma * p / (1 - gamma))
    np.testing.assert_allclose(v_tft, expected, rtol=1e-5, atol=1e-4)


# --- spec §5.4: ZD extortion against an unconditional cooperator ----------------------


def zd_extortion(rstp, chi: float, phi_fraction: float, p0: float) -> np.ndarray:
    """Spec §5.2 extortionate ZD vector (p0; p1, p2, p3, 0), phi a fraction of max."""
    r, s, t, p = rstp
    phi = phi_fraction / ((p - s) + chi * (t - p))
    return np.array(
        [
            p0,
            1 - phi * (chi - 1) * (r - p),
            1 - phi * ((p - s) + chi * (t - p)),
            phi * ((t - p) + chi * (p - s)),
            0.0,
        ]
    )


@pytest.mark.parametrize("gamma", [0.5, 0.96])
@pytest.mark.parametrize("p0", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("phi_fraction", [1.0, 0.5])
@pytest.mark.parametrize("chi", [1.0, 3.0, 10.0])
@pytest.mark.parametrize("convention", sorted(RSTP))
def test_zd_extortion_vs_allc(convention, chi, phi_fraction, p0, gamma):
    r, s, t, p = RSTP[convention]
    zd = zd_extortion(RSTP[convention], chi, phi_fraction, p0)
    f = ((t - p) + chi * (p - s)) / ((t - r) + chi * (r - s))
    s_x, s_y = t - (t - r) * f, s + (r - s) * f
    lam = zd[1] - zd[3]
    transient = (1 - gamma) / (1 - gamma * lam) * (p0 - f)
    expected = (s_x + transient * (r - t), s_y + transient * (r - s))
    v = average_rewards(
        jnp.asarray(zd, jnp.float32), jnp.array(ALLC), convention, gamma
    )
    np.testing.assert_allclose(v, expected, atol=ATOL)


# --- structure: visitation, transitions, perspective --------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.96, 0.99])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_visitation_is_a_distribution(seed, gamma):
    p1, p2 = random_policies(seed)
    d = visitation(p1, p2, gamma)
    assert d.shape == (4,)
    assert np.all(np.asarray(d) >= 0)
    np.testing.assert_allclose(d.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(transition_matrix(p1, p2).sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(initial_distribution(p1, p2).sum(), 1.0, atol=1e-6)


def test_initial_distribution_order():
    p1 = jnp.array([0.3, 0.5, 0.5, 0.5, 0.5])
    p2 = jnp.array([0.6, 0.5, 0.5, 0.5, 0.5])
    # (CC, CD, DC, DD), player 1's move first
    np.testing.assert_allclose(
        initial_distribution(p1, p2), [0.18, 0.12, 0.42, 0.28], atol=1e-6
    )


def test_transition_matrix_pins_perspective_swap():
    # Player 1 plays TFT: global q1 = (1, 0, 1, 0). Player 2 cooperates only after
    # its own CD, which is the global state DC: global q2 = (0, 0, 1, 0).
    p2 = jnp.array([1.0, 0.0, 1.0, 0.0, 0.0])
    expected = np.array(
        [
            [0.0, 1.0, 0.0, 0.0],  # CC: player 1 C, player 2 D -> CD
            [0.0, 0.0, 0.0, 1.0],  # CD: D, D -> DD
            [1.0, 0.0, 0.0, 0.0],  # DC: C, C -> CC
            [0.0, 0.0, 0.0, 1.0],  # DD: D, D -> DD
        ]
    )
    np.testing.assert_array_equal(transition_matrix(jnp.array(TFT), p2), expected)


def test_player_2_tft_in_global_order():
    # Against AllC the next state is CC with probability q2 = (1, 1, 0, 0) (global).
    transitions = transition_matrix(jnp.array(ALLC), jnp.array(TFT))
    np.testing.assert_array_equal(transitions[:, 0], [1.0, 1.0, 0.0, 0.0])


@pytest.mark.parametrize("gamma", [0.5, 0.96])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constant_shift_between_coala_and_lola(seed, gamma):
    p1, p2 = random_policies(seed)
    shift = 2.0 / (1.0 - gamma)
    np.testing.assert_allclose(
        values(p1, p2, "coala", gamma),
        values(p1, p2, "lola", gamma) + shift,
        rtol=1e-5,
        atol=1e-4,
    )


@pytest.mark.parametrize("game", sorted(TABLES))
@pytest.mark.parametrize("seed", [0, 1])
def test_swapping_players_swaps_values(game, seed):
    p1, p2 = random_policies(seed)
    table = np.asarray(TABLES[game], dtype=np.float32)
    # The same game seen with the seats exchanged: new[a, b, i] = old[b, a, 1 - i].
    swapped = np.transpose(table, (1, 0, 2))[..., ::-1]
    v = average_rewards(p1, p2, table, 0.9)
    v_swapped = average_rewards(p2, p1, swapped, 0.9)
    np.testing.assert_allclose(v_swapped[::-1], v, atol=1e-5)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("game", sorted(TABLES))
def test_iid_players_closed_form(game, gamma):
    a, b, c, d = 0.3, 0.8, 0.9, 0.25
    p1 = jnp.array([a, b, b, b, b])
    p2 = jnp.array([c, d, d, d, d])
    table = TABLES[game]
    # After the first move the players are i.i.d. coins with probabilities b and d.
    expected = (1 - gamma) * expected_payoff(table, a, c) + gamma * expected_payoff(
        table, b, d
    )
    np.testing.assert_allclose(
        average_rewards(p1, p2, game, gamma), expected, atol=ATOL
    )


@pytest.mark.parametrize(
    ("game", "row", "col", "closed_form"),
    [
        pytest.param(
            "stag_hunt",
            TFT,
            ALLD,
            lambda gm: ((1 - gm) * 1 + gm * 2, (1 - gm) * 3 + gm * 2),
            id="stag_hunt-TFT-AllD",
        ),
        pytest.param(
            "chicken",
            TFT,
            ALLD,
            lambda gm: ((1 - gm) * -1 + gm * -2, (1 - gm) * 1 + gm * -2),
            id="chicken-TFT-AllD",
        ),
        pytest.param(
            "battle_of_the_sexes",
            ALLD,
            TFT,
            lambda gm: (2 * gm, 3 * gm),  # DC = (0, 0), then DD = (2, 3) forever
            id="bos-AllD-TFT",
        ),
        pytest.param(
            "battle_of_the_sexes",
            WSLS,
            WSLS,
            lambda gm: (3.0, 2.0),
            id="bos-WSLS-WSLS",
        ),
        pytest.param(
            "matching_pennies",
            ALLC,
            ALTERNATOR,
            # CC, CD, CC, CD, ...: (+1, -1) alternating with (-1, +1)
            lambda gm: ((1 - gm) / (1 + gm), -(1 - gm) / (1 + gm)),
            id="pennies-AllC-Alternator",
        ),
    ],
)
@pytest.mark.parametrize("gamma", [0.5, 0.96])
def test_non_pd_games(game, row, col, closed_form, gamma):
    v = average_rewards(jnp.array(row), jnp.array(col), game, gamma)
    np.testing.assert_allclose(v, closed_form(gamma), atol=ATOL)


# --- finite horizon ------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 10, 150])
@pytest.mark.parametrize("convention", sorted(RSTP))
def test_finite_horizon_tft_vs_alld_mean_per_step(convention, horizon):
    r, s, t, p = RSTP[convention]
    total = finite_horizon_returns(
        jnp.array(TFT), jnp.array(ALLD), convention, horizon=horizon
    )
    expected = ((s + (horizon - 1) * p) / horizon, (t + (horizon - 1) * p) / horizon)
    np.testing.assert_allclose(total / horizon, expected, atol=1e-5)


@pytest.mark.parametrize("horizon", [1, 5, 6])
@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_finite_horizon_discounted_wsls_vs_alld(gamma, horizon):
    r, s, t, p = RSTP["axelrod"]
    # WSLS against AllD plays CD, DD, CD, DD, ...
    rewards = [(s, t) if k % 2 == 0 else (p, p) for k in range(horizon)]
    expected = sum(gamma**k * np.array(rk) for k, rk in enumerate(rewards))
    total = finite_horizon_returns(
        jnp.array(WSLS), jnp.array(ALLD), "axelrod", horizon=horizon, gamma=gamma
    )
    np.testing.assert_allclose(total, expected, atol=1e-4)


# --- gradients, jit and vmap ---------------------------------------------------------


def test_grad_matches_finite_differences_in_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(7)
        theta1, theta2 = rng.normal(size=(2, 5))
        gamma = 0.999

        def v(t1, t2):
            return average_rewards_from_logits(t1, t2, "axelrod", gamma)

        jac1, jac2 = jax.jacrev(v, argnums=(0, 1))(jnp.array(theta1), jnp.array(theta2))
        assert jac1.dtype == jnp.float64
        eps = 1e-6
        for theta, jac, which in ((theta1, jac1, 0), (theta2, jac2, 1)):
            for k in range(5):
                step = np.zeros(5)
                step[k] = eps
                args_plus = [theta1, theta2]
                args_minus = [theta1, theta2]
                args_plus[which] = theta + step
                args_minus[which] = theta - step
                fd = (np.asarray(v(*args_plus)) - np.asarray(v(*args_minus))) / (
                    2 * eps
                )
                np.testing.assert_allclose(jac[:, k], fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("gamma", [0.5, 0.96])
def test_grad_iid_closed_form(gamma):
    r, s, t, p = RSTP["axelrod"]
    a, b, c, d = 0.3, 0.8, 0.9, 0.25
    p1 = jnp.array([a, b, b, b, b])
    p2 = jnp.array([c, d, d, d, d])
    grad1 = jax.grad(lambda q: average_rewards(q, p2, "axelrod", gamma)[0])(p1)
    grad2 = jax.grad(lambda q: average_rewards(p1, q, "axelrod", gamma)[0])(p2)
    # v_1 = (1 - gamma) m(a, c) + gamma m(b, d), m the expected one-shot payoff.
    np.testing.assert_allclose(
        grad1[0], (1 - gamma) * (c * (r - t) + (1 - c) * (s - p)), atol=1e-4
    )
    np.testing.assert_allclose(
        grad1[1:].sum(), gamma * (d * (r - t) + (1 - d) * (s - p)), atol=1e-4
    )
    np.testing.assert_allclose(
        grad2[0], (1 - gamma) * (a * (r - s) + (1 - a) * (t - p)), atol=1e-4
    )
    np.testing.assert_allclose(
        grad2[1:].sum(), gamma * (b * (r - s) + (1 - b) * (t - p)), atol=1e-4
    )


def test_jit_vmap_over_traced_gamma():
    r, s, t, p = RSTP["coala"]
    gammas = jnp.array([0.0, 0.3, 0.9, 0.99])
    fn = jax.jit(
        jax.vmap(lambda g: average_rewards(jnp.array(TFT), jnp.array(ALLD), "coala", g))
    )
    expected = np.stack(
        [(1 - gammas) * s + gammas * p, (1 - gammas) * t + gammas * p], 1
    )
    np.testing.assert_allclose(fn(gammas), expected, atol=ATOL)


def test_vmap_over_policies_and_payoffs():
    rstps = jnp.array([RSTP[name] for name in sorted(RSTP)])
    allc = jnp.broadcast_to(jnp.array(ALLC), (3, 5))
    alld = jnp.broadcast_to(jnp.array(ALLD), (3, 5))
    v = jax.jit(jax.vmap(lambda a, b, pay: average_rewards(a, b, pay, 0.9)))(
        allc, alld, rstps
    )
    # AllC vs AllD: (S, T) per step under each convention
    np.testing.assert_allclose(v, rstps[:, [1, 2]], atol=ATOL)


def test_logits_saturate_to_deterministic_strategies():
    r, s, t, p = RSTP["coala"]
    theta_tft = 30.0 * (2 * jnp.array(TFT) - 1)
    theta_alld = -30.0 * jnp.ones(5)
    v = average_rewards_from_logits(theta_tft, theta_alld, "coala", 0.96)
    np.testing.assert_allclose(v, (0.04 * s + 0.96 * p, 0.04 * t + 0.96 * p), atol=ATOL)


# --- Monte Carlo against the sampled core ---------------------------------------------

NUM_EPISODES = 4096


def sampled_returns(p1, p2, payoffs, horizon: int, gamma: float, seed: int):
    """Per-episode (discounted) returns ``[NUM_EPISODES, 2]`` of MatrixGame play."""
    env = MatrixGame(payoffs=payoffs, max_steps=horizon)
    params = env.default_params
    policies = jnp.stack([jnp.asarray(p1), jnp.asarray(p2)])  # [2, 5]

    def episode(key):
        key_reset, key_play = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def play(carry, key_t):
            obs, state, discount = carry
            key_act, key_step = jax.random.split(key_t)
            coop = policies[jnp.arange(2), jnp.argmax(obs, axis=-1)]
            actions = (jax.random.uniform(key_act, (2,)) >= coop).astype(jnp.int32)
            ts = env.step(key_step, state, actions, params)
            return (ts.obs, ts.state, discount * gamma), discount * ts.reward

        init = (obs, state, jnp.ones((), jnp.float32))
        _, rewards = jax.lax.scan(play, init, jax.random.split(key_play, horizon))
        return rewards.sum(axis=0)

    keys = jax.random.split(jax.random.key(seed), NUM_EPISODES)
    return np.asarray(jax.jit(jax.vmap(episode))(keys), dtype=np.float64)


def assert_within_standard_errors(samples: np.ndarray, exact, k: float = 4.0):
    mean = samples.mean(axis=0)
    stderr = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    assert np.all(stderr > 0)
    assert np.all(np.abs(mean - np.asarray(exact)) <= k * stderr), (mean, exact, stderr)


@pytest.mark.parametrize("payoffs", ["axelrod", "stag_hunt"])
def test_monte_carlo_finite_horizon_undiscounted(payoffs):
    p1, p2 = random_policies(11)
    samples = sampled_returns(p1, p2, payoffs, horizon=20, gamma=1.0, seed=0)
    exact = finite_horizon_returns(p1, p2, payoffs, horizon=20)
    assert_within_standard_errors(samples, exact)


def test_monte_carlo_discounted_long_episode():
    p1, p2 = random_policies(12)
    samples = sampled_returns(p1, p2, "coala", horizon=200, gamma=0.9, seed=1)
    # 0.9**200 is about 7e-10: the truncated tail is far below the sampling error.
    assert_within_standard_errors(samples, values(p1, p2, "coala", 0.9))


# --- bad inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4,), (2, 5), ()])
def test_bad_policy_shape(shape):
    bad = jnp.full(shape, 0.5)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        average_rewards(bad, jnp.array(ALLC))
    with pytest.raises(ValueError, match="p2"):
        values(jnp.array(ALLC), bad)
    with pytest.raises(ValueError, match="theta1"):
        average_rewards_from_logits(bad, jnp.zeros(5))


@pytest.mark.parametrize("gamma", [1.0, -0.1, 1.5, float("nan")])
@pytest.mark.parametrize("fn", [average_rewards, values])
def test_bad_gamma_infinite_horizon(fn, gamma):
    with pytest.raises(ValueError, match="gamma"):
        fn(jnp.array(TFT), jnp.array(ALLD), "coala", gamma)


def test_bad_gamma_visitation():
    with pytest.raises(ValueError, match="gamma"):
        visitation(jnp.array(TFT), jnp.array(ALLD), 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": 1.5}, "gamma"),
        ({"gamma": -0.5}, "gamma"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": 2.5}, "horizon"),
    ],
)
def test_bad_finite_horizon_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        finite_horizon_returns(jnp.array(TFT), jnp.array(ALLD), "coala", **kwargs)


@pytest.mark.parametrize("fn", [average_rewards, values, finite_horizon_returns])
def test_unknown_preset(fn):
    with pytest.raises(ValueError, match="unknown payoff preset"):
        fn(jnp.array(TFT), jnp.array(ALLD), "prisoners_dilemma")
