"""Tests of the exact finite-horizon best response to a memory-one co-player.

Every expected number comes from outside the code under test: a brute-force
enumeration of all deterministic history-dependent agent policies, an expectimax
over full joint-action histories, a hand-derived closed form (derivations in the
comments) or an independent forward propagation written here.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.analysis.best_response import (
    BestResponse,
    best_response_gap,
    memory_one_best_response,
    memory_one_match,
)
from dilemmas.envs.exact_ipd import finite_horizon_returns

# Co-player vectors in the co-player's own perspective (first move; CC, CD, DC, DD),
# typed from spec matrix_games.md §6 rather than read from the package.
ALLC = (1.0, 1.0, 1.0, 1.0, 1.0)
ALLD = (0.0, 0.0, 0.0, 0.0, 0.0)
TFT = (1.0, 1.0, 0.0, 1.0, 0.0)
STFT = (0.0, 1.0, 0.0, 1.0, 0.0)
WSLS = (1.0, 1.0, 0.0, 0.0, 1.0)
ALTERNATOR = (1.0, 0.0, 0.0, 1.0, 1.0)

# payoffs[a_row, a_col, player], typed from the spec §1 table.
COALA = np.array([[[1, 1], [-1, 2]], [[2, -1], [0, 0]]], dtype=np.float64)
AXELROD = np.array([[[3, 3], [0, 5]], [[5, 0], [1, 1]]], dtype=np.float64)
STAG_HUNT = np.array([[[4, 4], [1, 3]], [[3, 1], [2, 2]]], dtype=np.float64)


def _random_co_players(seed: int, n: int) -> list[np.ndarray]:
    """Random vectors, some with entries rounded to 0 or 1 (deterministic parts)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = rng.uniform(size=5)
        if i % 2:
            mask = rng.uniform(size=5) < 0.4
            p[mask] = np.round(p[mask])
        out.append(p)
    return out


# --------------------------------------------------------------------------------------
# Independent references over full histories


def _co_cooperates(co: np.ndarray, history: tuple[tuple[int, int], ...]) -> float:
    """The co-player's cooperation probability, read in its OWN perspective."""
    if not history:
        return float(co[0])
    a, b = history[-1]  # (agent, co-player)
    return float(co[1 + 2 * b + a])


def _expectimax(co, table, horizon, discount=1.0, history=()):
    """Optimal value over full joint-action histories (no state compression)."""
    if len(history) == horizon:
        return 0.0
    p_c = _co_cooperates(co, history)
    best = -np.inf
    for a in (0, 1):
        total = 0.0
        for b, p_b in ((0, p_c), (1, 1.0 - p_c)):
            if p_b == 0.0:
                continue
            future = _expectimax(co, table, horizon, discount, (*history, (a, b)))
            total += p_b * (table[a, b, 0] + discount * future)
        best = max(best, total)
    return best


def _policy_return(co, table, horizon, choose, discount=1.0):
    """Expected return of a deterministic agent ``choose(t, history) -> action``.

    Enumerates every co-player action sequence with its probability.
    """
    total = 0.0
    for b_seq in itertools.product((0, 1), repeat=horizon):
        history: tuple[tuple[int, int], ...] = ()
        prob, ret = 1.0, 0.0
        for t, b in enumerate(b_seq):
            p_c = _co_cooperates(co, history)
            prob *= p_c if b == 0 else 1.0 - p_c
            a = choose(t, history)
            ret += discount**t * table[a, b, 0]
            history = (*history, (a, b))
        total += prob * ret
    return total


def _brute_force_max(co, table, horizon, discount=1.0):
    """Max return over ALL deterministic history-dependent agent policies.

    A deterministic agent's own past actions are fixed by the co-player's past
    actions, so every such policy is (return-equivalent to) a map from the
    co-player's action prefix ``(b_0, .., b_{t-1})`` to ``a_t``; there are
    ``2^(2^H - 1)`` of them and all are enumerated.
    """
    prefixes = [p for t in range(horizon) for p in itertools.product((0, 1), repeat=t)]
    best = -np.inf
    for bits in itertools.product((0, 1), repeat=len(prefixes)):
        table_of = dict(zip(prefixes, bits, strict=True))

        def choose(t, history, table_of=table_of):
            return table_of[tuple(b for _, b in history)]

        best = max(best, _policy_return(co, table, horizon, choose, discount))
    return best


def _markov_choose(policy: np.ndarray):
    """The DP's policy as ``choose(t, history)``, states computed here."""

    def choose(t, history):
        s = 0 if not history else 1 + 2 * history[-1][0] + history[-1][1]
        return int(policy[t, s])

    return choose


# --------------------------------------------------------------------------------------
# Brute force


@pytest.mark.parametrize("horizon", [1, 2, 3])
@pytest.mark.parametrize(
    "co",
    [ALLC, ALLD, TFT, STFT, WSLS, ALTERNATOR, *_random_co_players(0, 6)],
)
def test_value_equals_brute_force_over_all_history_policies(co, horizon):
    co = np.asarray(co)
    br = memory_one_best_response(jnp.asarray(co, jnp.float32), horizon)
    best = _brute_force_max(co, COALA, horizon)
    assert float(br.value) == pytest.approx(best, abs=1e-5)
    achieved = _policy_return(co, COALA, horizon, _markov_choose(np.asarray(br.policy)))
    assert achieved == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize(
    ("table", "name", "discount"),
    [(COALA, "coala", 0.8), (AXELROD, "axelrod", 1.0), (STAG_HUNT, "stag_hunt", 0.9)],
)
def test_value_equals_expectimax_other_payoffs_and_discounts(table, name, discount):
    horizon = 5
    for co in [TFT, WSLS, STFT, *_random_co_players(1, 4)]:
        co = np.asarray(co)
        br = memory_one_best_response(co, horizon, payoffs=name, discount=discount)
        best = _expectimax(co, table, horizon, discount)
        assert float(br.value) == pytest.approx(best, abs=1e-4)
        achieved = _policy_return(
            co, table, horizon, _markov_choose(np.asarray(br.policy)), discount
        )
        assert achieved == pytest.approx(best, abs=1e-4)


def test_table_payoffs_equal_named_payoffs():
    co = _random_co_players(2, 1)[0]
    by_name = memory_one_best_response(co, 7, payoffs="axelrod")
    by_table = memory_one_best_response(co, 7, payoffs=AXELROD)
    np.testing.assert_allclose(by_table.values, by_name.values, rtol=1e-6)


# --------------------------------------------------------------------------------------
# Closed forms (COALA: R, S, T, P = 1, -1, 2, 0; k = H - t rounds left)


def test_tft_full_value_table_and_path():
    # TFT cooperates in s0, CC, CD (agent view) and defects in DC, DD. From a
    # cooperative state: cooperate until the last round, then defect: k - 1 + 2.
    # From a punishing state: C now (S = -1) then k - 1 rounds worth k, i.e.
    # k - 1, or defect (P = 0) and stay punished; V = max(k - 1, 0).
    horizon = 100
    br = memory_one_best_response(jnp.asarray(TFT), horizon)
    assert float(br.value) == 101.0
    k = horizon - np.arange(horizon)
    punished = np.maximum(k - 1, 0)
    expected = np.stack([k + 1, k + 1, k + 1, punished, punished], axis=1)
    np.testing.assert_array_equal(br.values[:horizon], expected)
    np.testing.assert_array_equal(br.values[horizon], np.zeros(5))
    # Along the path s0, CC, CC, ...: C in every round but the last.
    path_states = np.r_[0, np.ones(horizon - 1, int)]
    path_actions = np.asarray(br.policy)[np.arange(horizon), path_states]
    np.testing.assert_array_equal(path_actions, np.r_[np.zeros(99, int), 1])


def test_allc_and_alld():
    br = memory_one_best_response(jnp.asarray(ALLC), 100)
    assert float(br.value) == 200.0  # T = 2 every round
    np.testing.assert_array_equal(br.policy, np.ones((100, 5)))
    np.testing.assert_array_equal(br.values[:, 1], 2.0 * (100 - np.arange(101)))
    br = memory_one_best_response(jnp.asarray(ALLD), 100)
    assert float(br.value) == 0.0  # P = 0 every round
    np.testing.assert_array_equal(br.policy, np.ones((100, 5)))
    np.testing.assert_array_equal(br.q[:, :, 0], -np.ones((100, 5)))  # S, then 0


def test_wsls_ties_go_to_cooperation():
    # WSLS cooperates in s0, CC, DD and defects in CD, DC (both perspectives).
    # A_k (cooperative state) = max(1 + A_{k-1}, 2 + B_{k-1}),
    # B_k (defecting state) = max(-1 + B_{k-1}, 0 + A_{k-1}), A_0 = B_0 = 0:
    # A_k = k + 1 for k >= 1; B_1 = 0, B_k = k for k >= 2. For k >= 3 both actions
    # in a cooperative state are worth k + 1 (exact tie): the policy must pick C.
    horizon = 100
    br = memory_one_best_response(jnp.asarray(WSLS), horizon)
    assert float(br.value) == 101.0
    k = horizon - np.arange(horizon)
    a_k = k + 1
    b_k = np.where(k >= 2, k, 0)
    expected = np.stack([a_k, a_k, b_k, b_k, a_k], axis=1)
    np.testing.assert_array_equal(br.values[:horizon], expected)
    tie = k >= 3
    np.testing.assert_array_equal(br.q[tie, 1, 0], br.q[tie, 1, 1])
    last_round = (k == 1).astype(int)[:, None]
    np.testing.assert_array_equal(
        np.asarray(br.policy)[:, [0, 1, 4]], np.repeat(last_round, 3, axis=1)
    )
    np.testing.assert_array_equal(np.asarray(br.policy)[:, [2, 3]], 1)


def test_iid_co_player_is_best_answered_by_defection():
    # Against (p; p, p, p, p) the future does not depend on the agent, and D
    # dominates C by 1 per round: V_t = k (pT + (1-p)P) = 2 p k.
    for p in (0.0, 0.3, 0.75, 1.0):
        br = memory_one_best_response(jnp.full((5,), p), 20)
        k = 20 - np.arange(21)
        np.testing.assert_allclose(
            br.values, np.outer(2 * p * k, np.ones(5)), atol=1e-5
        )
        np.testing.assert_array_equal(br.policy, 1)


def test_discount_and_other_payoffs():
    gamma, horizon = 0.9, 30
    br = memory_one_best_response(jnp.asarray(ALLC), horizon, discount=gamma)
    assert float(br.value) == pytest.approx(2 * (1 - gamma**horizon) / (1 - gamma))
    # Axelrod vs TFT: cooperate 99 rounds (R = 3), defect in the last (T = 5).
    br = memory_one_best_response(jnp.asarray(TFT), 100, payoffs="axelrod")
    assert float(br.value) == 3 * 99 + 5
    # LOLA = COALA - 2 per round.
    br = memory_one_best_response(jnp.asarray(TFT), 100, payoffs="lola")
    assert float(br.value) == 101 - 200


# --------------------------------------------------------------------------------------
# best_response_gap


def test_gap_is_zero_along_the_optimal_path():
    br = memory_one_best_response(jnp.asarray(TFT), 100)
    states = np.r_[0, np.ones(99, int)]
    coop = np.r_[np.ones(99), 0.0]
    np.testing.assert_array_equal(best_response_gap(br, states, coop), np.zeros(100))
    # For any co-player, playing the DP's action in any state has zero gap.
    br = memory_one_best_response(_random_co_players(3, 1)[0], 12)
    states = np.broadcast_to(np.arange(5)[:, None], (5, 12))
    coop = 1.0 - np.asarray(br.policy).T
    np.testing.assert_allclose(best_response_gap(br, states, coop), 0.0, atol=1e-6)


def test_gap_of_allc_against_allc_is_one_per_round():
    # With k rounds left: V = 2k, Q(C) = R + 2(k-1) = 2k - 1, so the gap is 1.
    br = memory_one_best_response(jnp.asarray(ALLC), 100)
    gap = best_response_gap(br, np.r_[0, np.ones(99, int)], np.ones(100))
    np.testing.assert_array_equal(gap, np.ones(100))


def _agent_state_distribution(agent, co, horizon):
    """P(s_t = s) of the agent's own-perspective state, propagated here."""
    co_in_agent_view = {0: co[0], 1: co[1], 2: co[3], 3: co[2], 4: co[4]}
    dist = np.zeros((horizon, 5))
    dist[0, 0] = 1.0
    for t in range(1, horizon):
        for s in range(5):
            for a in (0, 1):
                for b in (0, 1):
                    p_a = agent[s] if a == 0 else 1 - agent[s]
                    p_c = co_in_agent_view[s]
                    p_b = p_c if b == 0 else 1 - p_c
                    dist[t, 1 + 2 * a + b] += dist[t - 1, s] * p_a * p_b
    return dist, co_in_agent_view


@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_expected_gaps_telescope_to_regret_of_memory_one_agent(discount):
    rng = np.random.default_rng(4)
    horizon = 12
    for _ in range(3):
        agent, co = rng.uniform(size=5), rng.uniform(size=5)
        br = memory_one_best_response(co, horizon, discount=discount)
        dist, co_view = _agent_state_distribution(agent, co, horizon)
        states = np.broadcast_to(np.arange(5)[:, None], (5, horizon))
        gap = np.asarray(best_response_gap(br, states, agent[states]))  # [5, H]
        assert np.all(gap >= -1e-6)
        weights = discount ** np.arange(horizon)
        expected_gap = np.sum(weights * np.sum(dist.T * gap, axis=0))
        # The agent's expected discounted return, from the same distribution.
        reward = np.zeros(5)
        for s in range(5):
            for a, b in itertools.product((0, 1), repeat=2):
                p_a = agent[s] if a == 0 else 1 - agent[s]
                p_b = co_view[s] if b == 0 else 1 - co_view[s]
                reward[s] += p_a * p_b * COALA[a, b, 0]
        expected_return = np.sum(weights * (dist @ reward))
        assert expected_gap == pytest.approx(
            float(br.value) - expected_return, abs=1e-4
        )
        # memory_one_match and exact_ipd agree on that return.
        returns = finite_horizon_returns(agent, co, "coala", horizon, discount)
        assert float(returns[0]) == pytest.approx(expected_return, abs=1e-4)
        match = memory_one_match(agent, co, horizon)
        if discount == 1.0:
            assert float(match.rewards[:, 0].sum()) == pytest.approx(
                expected_return, abs=1e-4
            )


def test_expected_gaps_telescope_for_a_history_dependent_agent():
    # A stochastic agent whose cooperation probability depends on the full
    # history; enumerate every joint history of 3 rounds with its probability.
    horizon = 3
    rng = np.random.default_rng(5)
    co = rng.uniform(size=5)
    coop_of: dict = {}

    def agent(history):
        if history not in coop_of:
            coop_of[history] = rng.uniform()
        return coop_of[history]

    br = memory_one_best_response(co, horizon)
    histories = list(itertools.product(itertools.product((0, 1), repeat=2), repeat=3))
    probs, returns, states, coops = [], [], [], []
    for joint in histories:
        prob, ret, hist_states, hist_coop = 1.0, 0.0, [], []
        for t, (a, b) in enumerate(joint):
            history = joint[:t]
            p_a, p_c = agent(history), _co_cooperates(co, history)
            prob *= (p_a if a == 0 else 1 - p_a) * (p_c if b == 0 else 1 - p_c)
            ret += COALA[a, b, 0]
            hist_states.append(
                0 if t == 0 else 1 + 2 * joint[t - 1][0] + joint[t - 1][1]
            )
            hist_coop.append(p_a)
        probs.append(prob)
        returns.append(ret)
        states.append(hist_states)
        coops.append(hist_coop)
    probs = np.asarray(probs)
    gaps = np.asarray(best_response_gap(br, np.asarray(states), np.asarray(coops)))
    assert probs.sum() == pytest.approx(1.0)
    expected_gap = float(probs @ gaps.sum(axis=1))
    regret = float(br.value) - float(probs @ np.asarray(returns))
    assert regret > 0.05
    assert expected_gap == pytest.approx(regret, abs=1e-5)


def test_gap_is_positive_for_a_suboptimal_agent():
    # TFT against AllC cooperates throughout; the best response defects
    # throughout, so every round leaves a gap of 1 (see the AllC test).
    br = memory_one_best_response(jnp.asarray(ALLC), 10)
    gap = best_response_gap(br, np.r_[0, np.ones(9, int)], np.ones(10))
    assert np.all(np.asarray(gap) > 0)


# --------------------------------------------------------------------------------------
# memory_one_match


def test_match_closed_forms():
    # AllD vs TFT: round 0 is DC (T, S), then DD forever.
    match = memory_one_match(jnp.asarray(ALLD), jnp.asarray(TFT), 5)
    np.testing.assert_array_equal(match.rewards, [[2, -1]] + [[0, 0]] * 4)
    np.testing.assert_array_equal(match.cooperation, [[0, 1]] + [[0, 0]] * 4)
    # TFT vs STFT alternates (C,D), (D,C), ...
    match = memory_one_match(jnp.asarray(TFT), jnp.asarray(STFT), 4)
    np.testing.assert_array_equal(match.rewards, [[-1, 2], [2, -1]] * 2)
    # Independent players: coop probabilities p and q after round 0.
    match = memory_one_match(jnp.full((5,), 0.3), jnp.full((5,), 0.6), 3)
    np.testing.assert_allclose(match.cooperation, [[0.3, 0.6]] * 3, atol=1e-6)
    r_agent = 0.3 * 0.6 * 1 + 0.3 * 0.4 * -1 + 0.7 * 0.6 * 2
    r_co = 0.3 * 0.6 * 1 + 0.3 * 0.4 * 2 + 0.7 * 0.6 * -1
    np.testing.assert_allclose(match.rewards, [[r_agent, r_co]] * 3, atol=1e-6)


def test_match_against_independent_propagation():
    rng = np.random.default_rng(6)
    agent, co = rng.uniform(size=5), rng.uniform(size=5)
    dist, co_view = _agent_state_distribution(agent, co, 8)
    match = memory_one_match(agent, co, 8)
    coop_agent = dist @ agent
    coop_co = dist @ np.array([co_view[s] for s in range(5)])
    np.testing.assert_allclose(match.cooperation[:, 0], coop_agent, atol=1e-5)
    np.testing.assert_allclose(match.cooperation[:, 1], coop_co, atol=1e-5)


# --------------------------------------------------------------------------------------
# jit and vmap


def test_vmap_over_co_players_equals_a_loop():
    horizon = 20
    co_players = jax.random.uniform(jax.random.key(7), (64, 5))
    single = jax.jit(functools.partial(memory_one_best_response, horizon=horizon))
    batched = jax.jit(jax.vmap(lambda c: memory_one_best_response(c, horizon)))(
        co_players
    )
    assert isinstance(batched, BestResponse)
    assert batched.values.shape == (64, horizon + 1, 5)
    assert batched.q.shape == (64, horizon, 5, 2)
    assert batched.policy.shape == (64, horizon, 5)
    assert batched.policy.dtype == jnp.int32
    for i in range(64):
        one = single(co_players[i])
        for field in BestResponse._fields:
            np.testing.assert_allclose(
                getattr(batched, field)[i], getattr(one, field), rtol=1e-6, atol=1e-6
            )

    # The gap and the match vmap too.
    agents = jax.random.uniform(jax.random.key(8), (64, 5))
    states = jax.random.randint(jax.random.key(9), (64, horizon), 0, 5)
    coop = jax.random.uniform(jax.random.key(10), (64, horizon))
    gaps = jax.jit(jax.vmap(best_response_gap))(batched, states, coop)
    matches = jax.vmap(lambda a, c: memory_one_match(a, c, horizon))(agents, co_players)
    for i in (0, 17, 63):
        one = single(co_players[i])
        np.testing.assert_allclose(
            gaps[i], best_response_gap(one, states[i], coop[i]), atol=1e-4
        )
        match = memory_one_match(agents[i], co_players[i], horizon)
        np.testing.assert_allclose(matches.rewards[i], match.rewards, atol=1e-6)


# --------------------------------------------------------------------------------------
# Errors


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="horizon"):
        memory_one_best_response(TFT, 0)
    with pytest.raises(ValueError, match="horizon"):
        memory_one_best_response(TFT, 2.0)
    with pytest.raises(ValueError, match="horizon"):
        memory_one_best_response(TFT, True)
    with pytest.raises(ValueError, match="co_player"):
        memory_one_best_response(TFT[:4], 3)
    with pytest.raises(ValueError, match="co_player"):
        memory_one_best_response((1.0, 1.5, 0.0, 1.0, 0.0), 3)
    with pytest.raises(ValueError, match="discount"):
        memory_one_best_response(TFT, 3, discount=1.5)
    with pytest.raises(ValueError, match="payoff"):
        memory_one_best_response(TFT, 3, payoffs="nope")
    with pytest.raises(ValueError, match="agent"):
        memory_one_match((0.5,) * 6, TFT, 3)
    br = memory_one_best_response(TFT, 3)
    with pytest.raises(ValueError, match="states"):
        best_response_gap(br, np.zeros(4, int), np.ones(4))
    with pytest.raises(ValueError, match="same shape"):
        best_response_gap(br, np.zeros(3, int), np.ones(2))
    with pytest.raises(ValueError, match="states"):
        best_response_gap(br, np.array([0, 5, 1]), np.ones(3))
    with pytest.raises(ValueError, match="states"):
        best_response_gap(br, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="coop_prob"):
        best_response_gap(br, np.zeros(3, int), np.full(3, 2.0))
    batched = jax.vmap(lambda c: memory_one_best_response(c, 3))(jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="best_response"):
        best_response_gap(batched, np.zeros(3, int), np.ones(3))
