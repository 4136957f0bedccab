"""The Axelrod adapter against ``axelrod.Match``, and small tournaments."""

import math
import pickle

import axelrod as axl
import numpy as np
import pytest

from dilemmas.agents import strategies
from dilemmas.analysis import tournament
from dilemmas.analysis.tournament import (
    AxelrodPlayer,
    axelrod_game,
    format_report,
    from_strategy,
    observation,
    resolve_opponents,
    run_tournament,
)

C, D = axl.Action.C, axl.Action.D

#: Our deterministic catalogue strategies and Axelrod's versions of them.
COUNTERPARTS = {
    "allc": axl.Cooperator,
    "alld": axl.Defector,
    "tft": axl.TitForTat,
    "stft": axl.SuspiciousTitForTat,
    "wsls": axl.WinStayLoseShift,
    "grim": axl.Grudger,
    "tf2t": axl.TitFor2Tats,
    "alternator": axl.Alternator,
}

#: Axelrod opponents: the counterparts, strategies reading the game or the match
#: length (Adaptive, Tideman and Chieruzzi, Graaskamp and Katzen, BackStabber), a
#: long-memory one (Forgetful Fool Me Once) and a seeded stochastic one (Random).
OPPONENTS = (
    *COUNTERPARTS.values(),
    axl.Adaptive,
    axl.FirstByTidemanAndChieruzzi,
    axl.SecondByGraaskampKatzen,
    axl.BackStabber,
    axl.ForgetfulFoolMeOnce,
    axl.Random,
)


def _match(players, payoffs, turns=40, seed=3):
    match = axl.Match(players, turns=turns, game=axelrod_game(payoffs), seed=seed)
    return match.play(), match.final_score_per_turn()


class _CountingPolicy:
    """Defects on odd calls; records calls and resets."""

    def __init__(self, seed):
        self.seeds = [seed]
        self.calls = 0

    def __call__(self, obs):
        self.calls += 1
        return self.calls % 2

    def reset(self, seed=None):
        self.seeds.append(seed)
        self.calls = 0


class _BadPolicy(_CountingPolicy):
    """Answers 2, which is no action."""

    def __call__(self, obs):
        return 2


def test_game_is_built_from_our_payoffs():
    game = axelrod_game("coala")  # (R, S, T, P) = (1, -1, 2, 0)
    assert game.score((C, C)) == (1, 1)
    assert game.score((C, D)) == (-1, 2)
    assert game.score((D, C)) == (2, -1)
    assert game.score((D, D)) == (0, 0)
    assert tuple(game.RPST()) == (1, 0, -1, 2)  # Axelrod's accessor order
    assert axelrod_game("axelrod") == axl.Game()
    assert axelrod_game((4, 1, 3, 2)).score((C, D)) == (1, 3)
    with pytest.raises(ValueError, match="symmetric"):
        axelrod_game("battle_of_the_sexes")


def test_observation_is_first_person():
    start = observation([], [])
    np.testing.assert_array_equal(start, [1, 0, 0, 0, 0])
    assert start.dtype == np.float32
    # Own move first: (own C, other D) is CD, index 2; the other side sees DC.
    np.testing.assert_array_equal(observation([D, C], [C, D]), [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(observation([C, D], [D, C]), [0, 0, 0, 1, 0])
    with_reward = observation([C], [D], game=axelrod_game("coala"))
    np.testing.assert_array_equal(with_reward, [0, 0, 1, 0, 0, -1])
    np.testing.assert_array_equal(observation([], [], axl.Game()), [1, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="lengths"):
        observation([C], [])


@pytest.mark.parametrize("payoffs", ["coala", "axelrod"])
@pytest.mark.parametrize("name", list(COUNTERPARTS))
def test_adapter_reproduces_axelrod_match(name, payoffs):
    """Our strategy, wrapped, plays exactly as Axelrod's own version, on both
    sides of the match, against every opponent (its counterpart included)."""
    theirs = COUNTERPARTS[name]
    for opponent in OPPONENTS:
        ours_first = _match((from_strategy(name), opponent()), payoffs)
        theirs_first = _match((theirs(), opponent()), payoffs)
        assert ours_first == theirs_first, (name, opponent.name)
        ours_second = _match((opponent(), from_strategy(name)), payoffs)
        theirs_second = _match((opponent(), theirs()), payoffs)
        assert ours_second == theirs_second, (name, opponent.name)


def test_adapter_matches_our_jax_rollout():
    """Two wrapped strategies in ``axl.Match`` play as in our JAX env."""
    names = list(COUNTERPARTS)
    for row, col in zip(names, names[3:] + names[:3], strict=True):
        actions, _ = _match((from_strategy(row), from_strategy(col)), "coala", 12)
        expected = strategies.play(row, col, steps=12)
        assert [(a.value, b.value) for a, b in actions] == expected, (row, col)


def test_scores_per_turn_are_our_payoffs():
    actions, scores = _match((from_strategy("alld"), axl.Cooperator()), "coala")
    assert set(actions) == {(D, C)}
    assert scores == (2.0, -1.0)  # (T, S) under COALA
    _, scores = _match((from_strategy("tft"), axl.Defector()), "axelrod", turns=10)
    assert scores == pytest.approx((0.9 * 1 + 0.1 * 0, 0.9 * 1 + 0.1 * 5))


@pytest.mark.parametrize(
    ("name", "kwargs", "stochastic", "depth"),
    [
        ("allc", {}, False, 0),
        ("alld", {}, False, 0),
        ("tft", {}, False, 1),
        ("stft", {}, False, 1),
        ("wsls", {}, False, 1),
        ("alternator", {}, False, 1),
        ("grim", {}, False, math.inf),
        ("tf2t", {}, False, 2),
        ("gtft", {}, True, 1),
        ("zd_extort", {"chi": 3}, True, 1),
        ("random", {}, True, 0),
        ("random_memory_one", {"seed": 1}, True, 1),
    ],
)
def test_classifier_is_honest(name, kwargs, stochastic, depth):
    player = from_strategy(name, **kwargs)
    assert player.classifier["stochastic"] is stochastic
    assert player.classifier["memory_depth"] == depth
    assert axl.Classifiers["stochastic"](player) is stochastic
    if name in COUNTERPARTS:
        assert depth == axl.Classifiers["memory_depth"](COUNTERPARTS[name]())


def test_clone_and_reset():
    player = from_strategy("grim", label="our grim")
    _match((player, axl.Alternator()), "coala", turns=5)
    clone = player.clone()
    assert isinstance(clone, AxelrodPlayer)
    assert repr(clone) == str(clone) == clone.name == "our grim"
    assert clone.classifier == player.classifier
    assert len(clone.history) == 0 and len(player.history) == 5
    assert clone.policy is not player.policy
    assert clone.match_attributes == player.match_attributes
    expected = _match((axl.Grudger(), axl.Alternator()), "coala")
    assert _match((clone, axl.Alternator()), "coala") == expected

    policy = _CountingPolicy(seed=0)
    counted = AxelrodPlayer(lambda seed: policy, name="counted", stochastic=False)
    counted.update_history(C, D)
    counted.reset()
    assert len(counted.history) == 0
    assert policy.seeds == [0, None]  # restarted, not reseeded
    counted.set_seed(7)
    assert policy.seeds == [0, None, 7]


def test_reward_in_the_observation_comes_from_the_game():
    observed = []

    class Recorder(_CountingPolicy):
        def __call__(self, obs):
            observed.append(obs.copy())
            return 0

    player = AxelrodPlayer(Recorder, name="recorder", include_reward=True)
    assert player.classifier["makes_use_of"] == {"game"}
    _match((player, axl.Alternator()), "coala", turns=3)
    np.testing.assert_array_equal(
        observed, [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 0, -1]]
    )


def test_strategy_is_idempotent_within_a_turn():
    policy = _CountingPolicy(seed=0)
    player = AxelrodPlayer(lambda seed: policy, name="counted", stochastic=False)
    opponent = axl.Cooperator()
    assert player.strategy(opponent) == D
    assert player.strategy(opponent) == D  # asked again: no second policy step
    assert policy.calls == 1
    player.update_history(D, C)
    opponent.update_history(C, D)
    assert player.strategy(opponent) == C
    assert policy.calls == 2


def test_policy_must_answer_zero_or_one():
    player = AxelrodPlayer(_BadPolicy, name="bad")
    with pytest.raises(ValueError, match="expected 0"):
        player.strategy(axl.Cooperator())


def test_seeding_of_stochastic_players():
    def trace(seed, player=None):
        player = player or from_strategy("random")
        return _match((player, axl.TitForTat()), "coala", turns=60, seed=seed)[0]

    assert trace(1) == trace(1)
    assert trace(1) != trace(2)
    player = from_strategy("random")
    first = trace(1, player)
    assert trace(1, player) == first  # the match reseeds at its start
    start = observation([], [])
    player.set_seed(5)
    moves = [player.policy(start) for _ in range(30)]
    assert 0 < sum(moves) < 30
    clone = player.clone()
    clone.set_seed(5)
    assert [clone.policy(start) for _ in range(30)] == moves


def test_pickle_rebuilds_the_policy():
    player = from_strategy("wsls")
    copy = pickle.loads(pickle.dumps(player))
    assert copy.name == player.name and copy.policy is not player.policy
    expected = _match((axl.WinStayLoseShift(), axl.Random()), "coala")
    assert _match((copy, axl.Random()), "coala") == expected


def test_small_tournament():
    opponents = ["Cooperator", "Defector", "Tit For Tat", axl.Grudger, axl.Random()]
    kwargs = dict(
        opponents=opponents, turns=10, repetitions=2, seed=0, round_robin=True
    )
    result = run_tournament(["alld", "tft", "random"], **kwargs)
    assert isinstance(result.results, axl.ResultSet)
    assert result.players == ("dilemmas alld", "dilemmas tft", "dilemmas random")
    assert result.opponents == (
        "Cooperator",
        "Defector",
        "Tit For Tat",
        "Grudger",
        "Random: 0.5",
    )
    rows = {(row.player, row.opponent): row for row in result.per_opponent}
    assert len(rows) == 3 * 7  # everybody but itself, in a round robin
    assert rows["dilemmas alld", "Cooperator"].score_per_turn == 2.0  # T
    assert rows["dilemmas alld", "Cooperator"].opponent_score_per_turn == -1.0  # S
    assert rows["dilemmas alld", "Cooperator"].opponent_cooperation_rate == 1.0
    assert rows["dilemmas alld", "Defector"].score_per_turn == 0.0  # P
    assert rows["dilemmas tft", "Tit For Tat"].score_per_turn == 1.0  # R
    assert rows["dilemmas tft", "Defector"].cooperation_rate == 0.1

    ranked = result.results.ranked_names
    for standing in result.standings:
        assert standing.out_of == 8
        assert ranked[standing.rank - 1] == standing.player
    assert [s.rank for s in result.standings] == sorted(
        s.rank for s in result.standings
    )
    alld = result.standings[[s.player for s in result.standings].index("dilemmas alld")]
    assert alld.cooperation_rate == 0.0
    mean_vs_all = np.mean(
        [row.score_per_turn for row in rows.values() if row.player == "dilemmas alld"]
    )
    assert alld.score_per_turn == pytest.approx(mean_vs_all)

    report = format_report(result)
    assert "seed: 0" in report
    assert "coala (R, S, T, P) = (1, -1, 2, 0)" in report
    assert (
        "| dilemmas alld | Cooperator | 2.0000 | -1.0000 | 0.0000 | 1.0000 |" in report
    )

    again = run_tournament(["alld", "tft", "random"], **kwargs)
    assert again.per_opponent == result.per_opponent  # fixed seed, same numbers
    other_seed = run_tournament(["alld", "tft", "random"], **{**kwargs, "seed": 1})
    assert other_seed.per_opponent != result.per_opponent


def test_head_to_head_tournament_and_match_length():
    kwargs = dict(opponents=["BackStabber", "Cooperator"], turns=10, repetitions=1)
    result = run_tournament(["allc", "alld"], payoffs="axelrod", **kwargs)
    assert {row.opponent for row in result.per_opponent} == {
        "BackStabber: (D, D)",
        "Cooperator",
    }
    assert [s.out_of for s in result.standings] == [2, 2]
    assert [s.player for s in result.standings] == ["dilemmas alld", "dilemmas allc"]
    rows = {(row.player, row.opponent): row for row in result.per_opponent}
    # BackStabber defects in the last two rounds when it knows the length ...
    known = rows["dilemmas allc", "BackStabber: (D, D)"].score_per_turn
    assert known == pytest.approx((8 * 3 + 2 * 0) / 10)
    # ... and never against AllC when it does not.
    hidden = run_tournament(["allc"], payoffs="axelrod", known_length=False, **kwargs)
    assert hidden.per_opponent[0].opponent == "BackStabber: (D, D)"
    assert hidden.per_opponent[0].score_per_turn == 3.0
    assert "length hidden" in format_report(hidden)
    # Geometric lengths (capped at `turns`) are unknown to the players too.
    geometric = run_tournament(
        ["allc"], payoffs="axelrod", prob_end=0.2, **{**kwargs, "repetitions": 4}
    )
    assert geometric.per_opponent[0].score_per_turn == 3.0
    lengths = {rep[0][1] for rep in geometric.results.match_lengths}
    assert len(lengths) > 1 and max(lengths) <= 10
    assert "prob_end = 0.2" in format_report(geometric)


def test_game_adaptive_strategies_follow_the_payoffs():
    (gtft,), _ = resolve_opponents(["GTFT"], payoffs="coala")
    assert gtft.p == 0.5  # axl.GTFT() alone would keep 1/3 from the default game
    (gtft,), _ = resolve_opponents([axl.GTFT], payoffs="axelrod")
    assert gtft.p == pytest.approx(1 / 3)
    ours = tournament._our_player("gtft", "axelrod")
    assert float(ours.policy.strategy.probs[2]) == pytest.approx(1 / 3)
    assert ours.name == "dilemmas gtft"


def test_default_opponents_leave_out_games_they_cannot_play():
    players, excluded = resolve_opponents(None, payoffs="coala")
    names = [player.name for player in players]
    # ZD players with a baseline hard-coded for (3, 0, 5, 1) reject COALA payoffs.
    assert {"ZD-GEN-2", "ZD-SET-2"} <= set(excluded)
    assert "ZD-GEN-2" not in names and "Tit For Tat" in names
    assert not set(names) & set(excluded)
    assert 150 < len(names) < len(axl.all_strategies)
    for key, wanted in tournament.DEFAULT_FILTERSET.items():
        assert all(axl.Classifiers[key](player) == wanted for player in players)
    assert "EvolvedAttention" not in names  # long run time
    assert "Darwin" not in names  # manipulates state
    with pytest.raises(ValueError, match="cannot play the game"):
        resolve_opponents(["ZDGen2"], payoffs="coala")
    (zd_gen,), _ = resolve_opponents(["ZDGen2"], payoffs="axelrod")
    assert zd_gen.name == "ZD-GEN-2"


def test_filters_agree_with_axelrod():
    # NTitsForMTats, PSOGamblerMem1 and Winner12 change memory depth on construction.
    classes = [
        axl.TitForTat,
        axl.Random,
        axl.Grudger,
        axl.Adaptive,
        axl.NTitsForMTats,
        axl.PSOGamblerMem1,
        axl.Winner12,
        axl.ZDGTFT2,
        axl.BackStabber,
    ]
    filtersets = [
        {"memory_depth": 1},
        {"stochastic": True},
        {"min_memory_depth": 2, "stochastic": False},
        {"max_memory_depth": 3},
        {"makes_use_of": ["game"]},
        {"makes_use_of": ["length"], "stochastic": None},
    ]
    for filterset in filtersets:
        expected = axl.filtered_strategies(filterset, strategies=classes)
        assert 0 < len(expected) < len(classes), filterset
        got = [cls for cls in classes if tournament._passes(cls(), filterset)]
        assert got == expected, filterset


def test_bad_names_list_alternatives():
    with pytest.raises(ValueError, match="known strategies.*'tft'"):
        from_strategy("tit_for_tat")
    with pytest.raises(ValueError, match="did you mean TitForTat"):
        run_tournament(["tft"], opponents=["TitForTatt"])
    with pytest.raises(ValueError, match="known strategies: .*WinStayLoseShift"):
        resolve_opponents(["no such strategy"])
    with pytest.raises(ValueError, match="known strategies.*'wsls'"):
        run_tournament(["pavlov"], opponents=["Cooperator"])
    with pytest.raises(ValueError, match="unique"):
        run_tournament(
            [from_strategy("tft", label="Cooperator")], opponents=["Cooperator"]
        )
    with pytest.raises(ValueError, match="known keys: .*'min_memory_depth'"):
        resolve_opponents({"no_such_classifier": 1})
    with pytest.raises(ValueError, match="turns"):
        run_tournament(["tft"], opponents=["Cooperator"], turns=0)


def test_report_escapes_table_cells():
    player = from_strategy("tft", label="tft | ours")
    result = run_tournament([player], opponents=["Defector"], turns=3, repetitions=1)
    assert "| tft \\| ours | Defector | -0.3333 | 0.6667 |" in format_report(result)
