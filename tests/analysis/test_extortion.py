"""Extortion tests of spec matrix_games.md §5.6 against values worked out by hand.

ZD vectors are built here from the §5.2 formulas (never by the code under test), the
least-squares numbers for TFT, WSLS, AllD and GTFT are solved by hand from the 4 x 2
normal equations (written next to each test), and the behavioural slope is compared
with the §5.5 statement for gamma -> 1 and gamma = 0.96. Float64 throughout where
round-off matters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents.strategies import memory_one
from dilemmas.analysis.extortion import (
    behavioural_slope,
    coala_zd_fit,
    linear_relation_fit,
    payoff_gap,
    random_policy_zd_losses,
    surplus_ratio,
    surplus_share,
    zd_fit,
)
from dilemmas.envs.exact_ipd import average_rewards

# (R, S, T, P), typed from the spec §1 table.
RSTP = {
    "coala": (1.0, -1.0, 2.0, 0.0),
    "lola": (-1.0, -3.0, 0.0, -2.0),
    "axelrod": (3.0, 0.0, 5.0, 1.0),
}
TFT = (1.0, 0.0, 1.0, 0.0)
WSLS = (1.0, 0.0, 0.0, 1.0)
ALLD = (0.0, 0.0, 0.0, 0.0)
ALLC = (1.0, 1.0, 1.0, 1.0)


@pytest.fixture(autouse=True, scope="module")
def _x64():
    """Float64 for this module, then clear traces so none leaks into float32 code."""
    with jax.enable_x64(True):
        yield
    jax.clear_caches()


def zd_vector(
    chi: float, phi_fraction: float, payoffs: str
) -> tuple[np.ndarray, float]:
    """Press-Dyson extortion (p1, p2, p3, 0) of §5.2 and its phi."""
    r, s, t, p = RSTP[payoffs]
    phi = phi_fraction / ((p - s) + chi * (t - p))
    vector = np.array(
        [
            1.0 - phi * (chi - 1.0) * (r - p),
            1.0 - phi * ((p - s) + chi * (t - p)),
            phi * ((t - p) + chi * (p - s)),
            0.0,
        ]
    )
    return vector, phi


ZD_CASES = [
    pytest.param(chi, fraction, payoffs, id=f"{payoffs}-chi{chi}-phi{fraction}")
    for payoffs in RSTP
    for chi in (1.5, 3.0, 10.0)
    for fraction in (1.0, 0.5)
]


# --------------------------------------------------------------------------------------
# Test 1: least squares with the P baseline


@pytest.mark.parametrize(("chi", "fraction", "payoffs"), ZD_CASES)
def test_zd_fit_recovers_constructed_zd(chi, fraction, payoffs):
    p, phi = zd_vector(chi, fraction, payoffs)
    fit = zd_fit(p, payoffs)
    np.testing.assert_allclose(fit.chi, chi, rtol=1e-10)
    np.testing.assert_allclose(fit.phi, phi, rtol=1e-10)
    assert fit.residual < 1e-20
    assert bool(fit.is_extortionate)


def test_zd_fit_spec_examples():
    coala = zd_fit(np.array([5 / 7, 0.0, 5 / 7, 0.0]), "coala")  # chi 3, phi 1/7
    np.testing.assert_allclose([coala.chi, coala.phi], [3.0, 1 / 7], rtol=1e-12)
    press_dyson = zd_fit(np.array([11 / 13, 1 / 2, 7 / 26, 0.0]), "axelrod")
    np.testing.assert_allclose([press_dyson.chi, press_dyson.phi], [3.0, 1 / 26])
    assert bool(coala.is_extortionate) and bool(press_dyson.is_extortionate)


@pytest.mark.parametrize("payoffs", list(RSTP))
def test_tft_is_fair_not_extortion(payoffs):
    # p~ = (0, -1, 1, 0) = (S_X - S_Y) / (T - S): x = (1, -1) / (T - S).
    r, s, t, p = RSTP[payoffs]
    fit = zd_fit(np.array(TFT), payoffs)
    np.testing.assert_allclose(fit.chi, 1.0, rtol=1e-12)
    np.testing.assert_allclose(fit.coefficients, [1 / (t - s), -1 / (t - s)])
    assert fit.residual < 1e-20
    assert not bool(fit.is_extortionate)


@pytest.mark.parametrize(
    ("payoffs", "coefficients", "residual"),
    [
        # COALA: C^T C = [[6, -3], [-3, 6]], C^T p~ = (1, -2) -> x = (0, -1/3),
        # residual (1/3, -1/3, -1/3, 1), SSE = 4/3. LOLA = COALA - 2 has the same C.
        ("coala", (0.0, -1 / 3), 4 / 3),
        ("lola", (0.0, -1 / 3), 4 / 3),
        # Axelrod: C^T C = [[21, -4], [-4, 21]], C^T p~ = (1, -4) -> x = (1, -16)/85,
        # residual (30, -20, -20, 85)/85, SSE = 21/17 (chi_hat = 16, x1 > 0: only the
        # residual rejects WSLS).
        ("axelrod", (1 / 85, -16 / 85), 21 / 17),
    ],
)
def test_wsls_has_clearly_nonzero_residual(payoffs, coefficients, residual):
    fit = zd_fit(np.array(WSLS), payoffs)
    np.testing.assert_allclose(fit.coefficients, coefficients, atol=1e-12)
    np.testing.assert_allclose(fit.residual, residual, rtol=1e-12)
    assert not bool(fit.is_extortionate)


@pytest.mark.parametrize(
    ("payoffs", "coefficients", "residual"),
    [
        # p~ = (-1, -1, 0, 0) = -1/3 (S_X - P) - 2/3 (S_Y - P) exactly: ZD, x1 < 0.
        ("coala", (-1 / 3, -2 / 3), 0.0),
        ("lola", (-1 / 3, -2 / 3), 0.0),
        # Axelrod: C^T p~ = (-1, -6) -> x = (-45, -130)/425; SSE = 1/17, not ZD.
        ("axelrod", (-9 / 85, -26 / 85), 1 / 17),
    ],
)
def test_alld_has_negative_x1(payoffs, coefficients, residual):
    fit = zd_fit(np.array(ALLD), payoffs)
    np.testing.assert_allclose(fit.coefficients, coefficients, atol=1e-12)
    np.testing.assert_allclose(fit.residual, residual, atol=1e-12)
    assert fit.coefficients[0] < 0
    assert not bool(fit.is_extortionate)


@pytest.mark.parametrize("payoffs", ["coala", "lola"])
def test_gtft_missed_by_p_baseline_found_by_linear_relation(payoffs):
    gtft = np.array([1.0, 0.5, 1.0, 0.5])
    # P baseline: C^T p~ = (5/2, -2) -> x = (1/3, -1/6), residual (-1, 1, 1, 3)/6,
    # SSE = 1/3 (the fourth entry 1/2 cannot be matched: C's last row is 0).
    fit = zd_fit(gtft, payoffs)
    np.testing.assert_allclose(fit.coefficients, [1 / 3, -1 / 6], atol=1e-12)
    np.testing.assert_allclose(fit.residual, 1 / 3, rtol=1e-12)
    assert not bool(fit.is_extortionate)
    # Three columns: p~ = (1/2)(R - S_Y) exactly: phi_H = 1/2, s = 0, l = R.
    relation = linear_relation_fit(gtft, payoffs)
    r = RSTP[payoffs][0]
    np.testing.assert_allclose(
        [relation.phi_h, relation.s, relation.l], [0.5, 0.0, r], atol=1e-12
    )
    assert relation.residual < 1e-20
    assert bool(relation.is_generous) and bool(relation.is_equalizer)
    assert not bool(relation.is_extortionate)


def test_axelrod_gtft_is_not_an_exact_linear_relation():
    relation = linear_relation_fit(np.array([1.0, 1 / 3, 1.0, 1 / 3]), "axelrod")
    assert relation.residual > 1e-3
    assert not bool(relation.is_generous | relation.is_equalizer)


# --------------------------------------------------------------------------------------
# Test 2: linear-relation fit


@pytest.mark.parametrize(("chi", "fraction", "payoffs"), ZD_CASES)
def test_linear_relation_fit_of_extortion(chi, fraction, payoffs):
    p, phi = zd_vector(chi, fraction, payoffs)
    relation = linear_relation_fit(p, payoffs)
    np.testing.assert_allclose(
        [relation.phi_h, relation.s, relation.l, relation.chi],
        [chi * phi, 1 / chi, RSTP[payoffs][3], chi],
        rtol=1e-9,
        atol=1e-12,
    )
    assert bool(relation.is_extortionate)
    assert not bool(relation.is_generous)


def test_linear_relation_fit_of_zdgtft2():
    # Hilbe et al.'s form with phi_H = 1/4, s = 1/2, l = R = 3 in (3, 0, 5, 1):
    # (1 - 0, 1 - (1/4)(3/2 + 2), (1/4)(3 + 1), (1/4)(1/2)(2)) = (1, 1/8, 1, 1/4).
    relation = linear_relation_fit(np.array([1.0, 1 / 8, 1.0, 1 / 4]), "axelrod")
    np.testing.assert_allclose(
        [relation.phi_h, relation.s, relation.l], [0.25, 0.5, 3.0], rtol=1e-12
    )
    assert bool(relation.is_generous)
    assert not bool(relation.is_extortionate | relation.is_equalizer)


def test_linear_relation_fit_of_equalizer_and_generous_and_perturbed_ones():
    # COALA, s = 0, l = 1/2, phi_H = 1/4: p~ = (1/4)(l - S_Y) = (-1, -3, 3, 1)/8,
    # p = (7/8, 5/8, 3/8, 1/8), which pins the co-player's payoff at 1/2.
    equalizer = np.array([7 / 8, 5 / 8, 3 / 8, 1 / 8])
    relation = linear_relation_fit(equalizer, "coala")
    np.testing.assert_allclose(
        [relation.phi_h, relation.s, relation.l], [0.25, 0.0, 0.5], atol=1e-12
    )
    assert bool(relation.is_equalizer)
    assert not bool(relation.is_generous | relation.is_extortionate)
    # n = (-1, 1, 1, -1) is orthogonal to S_X, S_Y and 1 under COALA payoffs: the
    # coefficients stay, the residual becomes |0.1 n|^2 = 0.04, no longer exact.
    perturbed = linear_relation_fit(equalizer - 0.1 * np.array([-1, 1, 1, -1]))
    np.testing.assert_allclose(
        perturbed.coefficients, relation.coefficients, atol=1e-12
    )
    np.testing.assert_allclose(perturbed.residual, 0.04, rtol=1e-12)
    assert not bool(perturbed.is_equalizer)
    # Generous, COALA, phi_H = 1/4, s = 1/2, l = R = 1: (1, 1 - (1/4)(1 + 1),
    # (1/4)(2 + 1/2), (1/4)(1/2)(1)) = (1, 1/2, 5/8, 1/8); perturbed the same way.
    generous = np.array([1.0, 0.5, 5 / 8, 1 / 8])
    relation = linear_relation_fit(generous, "coala")
    np.testing.assert_allclose(
        [relation.phi_h, relation.s, relation.l], [0.25, 0.5, 1.0], rtol=1e-12
    )
    assert bool(relation.is_generous)
    perturbed = linear_relation_fit(generous + 0.1 * np.array([-1, 1, 1, -1]))
    np.testing.assert_allclose(perturbed.l, 1.0, rtol=1e-12)
    assert not bool(perturbed.is_generous)


def test_linear_relation_l_is_undefined_for_tft():
    relation = linear_relation_fit(np.array(TFT), "coala")
    np.testing.assert_allclose(relation.s, 1.0, rtol=1e-12)
    assert np.isnan(relation.l)
    assert not bool(relation.is_extortionate | relation.is_generous)


# --------------------------------------------------------------------------------------
# Test 3: behavioural slope


def _zd_policy(chi: float, payoffs: str, p0: float = 1.0) -> np.ndarray:
    return np.concatenate([[p0], zd_vector(chi, 1.0, payoffs)[0]])


@pytest.mark.parametrize(("chi", "payoffs"), [(3.0, "coala"), (2.0, "axelrod")])
def test_behavioural_slope_matches_chi_as_gamma_goes_to_one(chi, payoffs):
    fit = behavioural_slope(_zd_policy(chi, payoffs), payoffs, gamma=0.999)
    assert fit.own_rewards.shape == fit.co_player_rewards.shape == (256,)
    assert fit.opponents.shape == (256, 5)
    np.testing.assert_allclose(fit.chi, chi, rtol=0.01)
    assert fit.r_squared > 0.999


def test_behavioural_slope_falls_below_chi_at_gamma_096():
    # §5.5: at gamma = 0.96 the fitted slope is clearly below chi, the fit imperfect.
    fit = behavioural_slope(_zd_policy(3.0, "coala"), "coala", gamma=0.96)
    assert fit.chi < 2.7
    assert fit.r_squared < 0.95
    close = behavioural_slope(_zd_policy(3.0, "coala"), "coala", gamma=0.999)
    assert fit.chi < close.chi and fit.r_squared < close.r_squared


def test_behavioural_slope_of_tft_is_one():
    fit = behavioural_slope(np.array((1.0, *TFT)), "coala", gamma=0.999)
    np.testing.assert_allclose(fit.chi, 1.0, atol=0.01)


def test_behavioural_slope_accepts_a_callable_policy():
    policy = _zd_policy(3.0, "coala")
    calls = []

    exact = jax.jit(jax.vmap(lambda q: average_rewards(policy, q, "coala", 0.999)))

    def rewards_against(opponents):
        calls.append(opponents.shape)
        return exact(opponents)

    from_callable = behavioural_slope(rewards_against, "coala")
    from_vector = behavioural_slope(policy, "coala")
    assert calls == [(256, 5)]
    np.testing.assert_allclose(from_callable.chi, from_vector.chi, rtol=1e-12)
    np.testing.assert_allclose(from_callable.r_squared, from_vector.r_squared)
    with pytest.raises(ValueError, match=r"policy_or_p\(opponents\)"):
        behavioural_slope(lambda q: q[:, :3], "coala", num_opponents=8)


# --------------------------------------------------------------------------------------
# Test 4: the COALA-PG fit


@pytest.mark.parametrize(("chi", "fraction", "payoffs"), ZD_CASES)
def test_coala_zd_fit_recovers_constructed_zd(chi, fraction, payoffs):
    p, phi = zd_vector(chi, fraction, payoffs)
    fit = coala_zd_fit(np.concatenate([[0.3], p]), payoffs)  # p0 is ignored
    np.testing.assert_allclose([fit.chi, fit.phi], [chi, phi], rtol=1e-6)
    np.testing.assert_allclose(fit.p_zd, p, atol=1e-6)
    r, s, t, pun = RSTP[payoffs]
    np.testing.assert_allclose(fit.phi_coala, fit.phi * (pun - s))
    assert fit.loss < 1e-12


def test_coala_zd_fit_of_allc_by_hand():
    # COALA, u = 1/chi: p_ZD = (1, 1, 0, 0) + psi w(u), w = (-(1-u), -(u+2), 2u+1, 0).
    # For AllC the best psi leaves 1 - (2u+1)^2 / (6(u^2+u+1)) on the first three
    # entries, decreasing in u, so u = 1 (chi = 1), psi = 3/18: p_ZD = (1, 1/2,
    # 1/2, 0), loss = 1/2 + 1 (the last entry).
    fit = coala_zd_fit(np.array(ALLC), "coala")
    np.testing.assert_allclose([fit.chi, fit.phi, fit.loss], [1.0, 1 / 6, 1.5])
    np.testing.assert_allclose(fit.p_zd, [1.0, 0.5, 0.5, 0.0], atol=1e-12)


def test_coala_zd_fit_clips_phi_and_reaches_infinite_chi():
    # q = (0, 0, 1, 0), COALA: q~ = (-1, -1, 1, 0), and the projection on w(u) asks
    # for psi = (u+2) / (3(u^2+u+1)) > psi_max = 1/(u+2) whenever u < 1. At psi_max
    # the loss is (5u^2 + 2u + 2)/(u+2)^2, increasing in u: the best is u = 0
    # (chi = inf), psi = 1/2, p_ZD = (1/2, 0, 1/2, 0), loss 1/2 (unclipped: 1/3).
    fit = coala_zd_fit(np.array([0.0, 0.0, 1.0, 0.0]), "coala")
    assert np.isinf(fit.chi)
    np.testing.assert_allclose([fit.loss, fit.phi], [0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(fit.p_zd, [0.5, 0.0, 0.5, 0.0], atol=1e-12)


def test_coala_zd_fit_reports_the_coala_pg_scale():
    # (R, S, T, P) = (4, 0, 6, 2), so P - S = 2 (1 in every preset). COALA-PG
    # Eq. 18 general form with chi = 2, phi_C = 0.2: p1 = 1 - phi_C (chi-1)(R-P)/(P-S)
    # = 0.8, p2 = 1 - phi_C (1 + chi (T-P)/(P-S)) = 0, p3 = phi_C (chi + (T-P)/(P-S))
    # = 0.8, p4 = 0; Press-Dyson phi = phi_C / (P - S) = 0.1.
    game = (4.0, 0.0, 6.0, 2.0)
    fit = coala_zd_fit(np.array([0.8, 0.0, 0.8, 0.0]), game)
    np.testing.assert_allclose(
        [fit.chi, fit.phi, fit.phi_coala], [2.0, 0.1, 0.2], rtol=1e-6
    )
    np.testing.assert_allclose(zd_fit(np.array([0.8, 0.0, 0.8, 0.0]), game).phi, 0.1)


def test_coala_zd_fit_batches_over_leading_axes():
    p = jax.random.uniform(jax.random.key(1), (2, 3, 5), jnp.float64)
    fit = coala_zd_fit(p, "lola")
    assert fit.chi.shape == fit.loss.shape == (2, 3)
    assert fit.p_zd.shape == (2, 3, 4)
    assert bool(jnp.all(fit.chi >= 1.0))
    flat = coala_zd_fit(jnp.reshape(p, (6, 5)), "lola")
    np.testing.assert_allclose(flat.chi, jnp.ravel(fit.chi), rtol=1e-12)


def test_random_policies_lie_far_above_an_exact_zd():
    losses = random_policy_zd_losses(jax.random.key(0), 64, "coala")
    assert losses.shape == (64,)
    assert bool(jnp.all(losses > 1e-4))
    learned_like = zd_vector(3.0, 1.0, "coala")[0] + np.array([0.01, 0.0, -0.01, 0.0])
    assert coala_zd_fit(learned_like, "coala").loss < jnp.min(losses)


def test_float32_memory_one_vectors():
    jax.clear_caches()  # no float64 trace may serve the float32 calls below
    with jax.enable_x64(False):
        p = memory_one("zd_extort", chi=3.0, payoffs="coala")
        assert p.dtype == jnp.float32
        fit = zd_fit(p, "coala")
        assert fit.chi.dtype == jnp.float32
        np.testing.assert_allclose(fit.chi, 3.0, rtol=1e-5)
        assert bool(fit.is_extortionate)
        assert not bool(zd_fit(jnp.asarray(TFT, jnp.float32), "coala").is_extortionate)
    jax.clear_caches()


def test_fits_batch_and_drop_the_first_move():
    p4 = np.stack([zd_vector(2.0, 1.0, "coala")[0], np.array(TFT), np.array(WSLS)])
    p5 = np.concatenate([np.full((3, 1), 0.5), p4], axis=1)
    fit = zd_fit(p5, "coala")
    np.testing.assert_array_equal(fit.is_extortionate, [True, False, False])
    np.testing.assert_allclose(fit.chi[:2], [2.0, 1.0])
    np.testing.assert_allclose(zd_fit(p4, "coala").residual, fit.residual)
    jitted = jax.jit(lambda q: zd_fit(q, "coala").chi)(p5)
    np.testing.assert_allclose(jitted[:2], [2.0, 1.0])


# --------------------------------------------------------------------------------------
# Exploitation


def test_exploitation_measures_by_hand():
    # ZD chi = 3 against AllC, COALA (§5.4): s_X = 9/7, s_Y = 3/7.
    # (2, -1): the joint surplus T + S - 2P = 1 all goes to the first agent and
    # more (the co-player is below P). (0, 0) and (-1/2, 0): no positive surplus.
    rewards = np.array(
        [[9 / 7, 3 / 7], [1.0, 1.0], [2.0, -1.0], [0.0, 0.0], [-0.5, 0.0]]
    )
    np.testing.assert_allclose(payoff_gap(rewards), [6 / 7, 0.0, 3.0, 0.0, -0.5])
    share = surplus_share(rewards, "coala")
    np.testing.assert_allclose(share[:3], [3 / 4, 1 / 2, 2.0])
    assert np.all(np.isnan(share[3:]))
    np.testing.assert_allclose(surplus_ratio(rewards[:2], "coala"), [3.0, 1.0])
    # LOLA = COALA - 2: the same shares with the baseline P = -2.
    np.testing.assert_allclose(surplus_share(rewards[:2] - 2.0, "lola"), [3 / 4, 1 / 2])


def test_outcome_test_against_allc_in_the_exact_game():
    p = _zd_policy(3.0, "coala")
    exact = jax.jit(lambda a, b: average_rewards(a, b, "coala", 0.99999))
    rewards = exact(p, np.array((1.0, *ALLC)))
    np.testing.assert_allclose(surplus_ratio(rewards, "coala"), 3.0, rtol=1e-4)
    np.testing.assert_allclose(surplus_share(rewards, "coala"), 0.75, rtol=1e-4)


# --------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: zd_fit(np.ones(3), "coala"), r"p must have shape \[\.\.\., 4\]"),
        (lambda: zd_fit(np.array([1.0, 0.5, 2.0, 0.0])), "p must hold probabilities"),
        (lambda: zd_fit(np.array(TFT), "nonsense"), "unknown payoff preset"),
        (lambda: linear_relation_fit(np.ones((2, 6))), r"p must have shape"),
        (lambda: coala_zd_fit(np.ones(3)), r"p must have shape"),
        (lambda: coala_zd_fit(np.array(TFT), "stag_hunt"), "prisoner's dilemma"),
        (lambda: behavioural_slope(np.array(TFT)), r"policy_or_p must .* shape \(5,\)"),
        (
            lambda: behavioural_slope(np.array((1.0, *TFT)), num_opponents=1),
            "num_opponents",
        ),
        (lambda: behavioural_slope(np.array((1.0, *TFT)), gamma=1.0), "gamma"),
        (lambda: random_policy_zd_losses(jax.random.key(0), 0), "num_policies"),
        (lambda: payoff_gap(np.ones(3)), r"rewards must have shape \[\.\.\., 2\]"),
        (lambda: surplus_share(np.ones((2, 3))), "rewards must have shape"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
