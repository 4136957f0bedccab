"""``players_from_run``: a trained run's memory-one vectors as Axelrod players."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import axelrod as axl
import numpy as np
import pytest

from dilemmas.analysis.report import RunDirectoryError
from dilemmas.analysis.tournament import (
    axelrod_game,
    from_memory_one,
    players_from_run,
    run_tournament,
)

C, D = axl.Action.C, axl.Action.D
COALA = [[[1, 1], [-1, 2]], [[2, -1], [0, 0]]]
TFT = [1.0, 1.0, 0.0, 1.0, 0.0]
ZD3 = [1.0, 5 / 7, 0.0, 5 / 7, 0.0]


def make_run(path: Path, memory: dict | None, evaluation: bool = True) -> Path:
    """A finished run directory whose evaluation holds ``memory`` as memory_one."""
    path.mkdir(parents=True)
    config = {
        "format_version": 1,
        "kind": "shaping",
        "preset": "ipd-shaping-cpu",
        "config": {},
        "num_seeds": 2,
    }
    (path / "config.json").write_text(json.dumps(config))
    if evaluation:
        record = {"game": {"id": "ipd-v0", "payoffs": COALA}, "num_seeds": 2}
        if memory is not None:
            record["memory_one"] = memory
        (path / "evaluation.json").write_text(json.dumps(record))
    return path


def test_one_player_per_agent_and_seed(tmp_path):
    run = make_run(
        tmp_path / "my-run",
        {"meta_0": [TFT, ZD3], "naive": [[None, 1.0, 0.0, 1.0, None]]},
    )
    with pytest.warns(UserWarning, match=r"0\.5 by: my-run:naive\[seed 0\]"):
        players = players_from_run(run)
    assert [p.name for p in players] == [
        "my-run:meta_0[seed 0]",
        "my-run:meta_0[seed 1]",
        "my-run:naive[seed 0]",
    ]
    tft, zd, naive = players
    assert not axl.Classifiers["stochastic"](tft)
    assert axl.Classifiers["stochastic"](zd) and axl.Classifiers["stochastic"](naive)
    assert axl.Classifiers["memory_depth"](tft) == 1
    np.testing.assert_allclose(
        np.asarray(naive.policy.strategy.probs), [0.5, 1, 0, 1, 0.5]
    )


@pytest.mark.parametrize(
    "opponent",
    [axl.Defector, axl.Alternator, axl.SuspiciousTitForTat, axl.Random],
    ids=lambda cls: cls.__name__,
)
def test_stored_tft_plays_exactly_like_axelrods(tmp_path, opponent):
    (ours,) = players_from_run(make_run(tmp_path / "run", {"meta": [TFT]}))
    game = axelrod_game("coala")
    reference = axl.Match(
        (axl.TitForTat(), opponent()), turns=30, game=game, seed=5
    ).play()
    played = axl.Match((ours, opponent()), turns=30, game=game, seed=5).play()
    assert played == reference


def test_stored_probabilities_are_reproduced():
    """Against AllC the ZD vector is in CC or DC; it cooperates with p = 5/7."""
    player = from_memory_one(ZD3, "zd")
    match = axl.Match((player, axl.Cooperator()), turns=1500, seed=1)
    moves = [own for own, _ in match.play()]
    assert moves[0] == C
    after = np.array([m == C for m in moves[1:]])
    assert after.mean() == pytest.approx(5 / 7, abs=0.04)


def test_a_tiny_tournament_with_run_players(tmp_path):
    players = players_from_run(make_run(tmp_path / "run", {"meta": [TFT, ZD3]}))
    result = run_tournament(
        players, opponents=["Cooperator", "Defector"], turns=20, repetitions=1
    )
    assert set(result.players) == {"run:meta[seed 0]", "run:meta[seed 1]"}
    scores = {
        (row.player, row.opponent): row.score_per_turn for row in result.per_opponent
    }
    assert scores[("run:meta[seed 0]", "Cooperator")] == pytest.approx(1.0)
    # TFT against AllD: S once, then P (COALA: -1, then 0).
    assert scores[("run:meta[seed 0]", "Defector")] == pytest.approx(-1 / 20)


@pytest.mark.parametrize(
    ("memory", "evaluation", "message"),
    [
        (None, False, "has no evaluation.json"),
        (None, True, "has no memory_one record"),
        ({}, True, "has no memory_one record"),
        ({"meta": []}, True, "memory_one holds no vector"),
        ({"meta": [[1.0, 1.0, 0.0]]}, True, r"memory_one\['meta'\]\[0\] must be 5"),
        ({"meta": [[1.5, 1, 0, 1, 0]]}, True, r"in \[0, 1\] or null"),
    ],
)
def test_runs_without_usable_vectors_are_refused(tmp_path, memory, evaluation, message):
    run = make_run(tmp_path / "run", memory, evaluation)
    with pytest.raises(RunDirectoryError, match=message):
        players_from_run(run)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(RunDirectoryError, match="config.json is missing"):
        players_from_run(tmp_path)
    with pytest.raises(ValueError, match="5 probabilities"):
        from_memory_one([1.0, 2.0, 0.0, 1.0, 0.0], "bad")


def test_players_pickle_for_worker_processes(tmp_path):
    (player,) = players_from_run(make_run(tmp_path / "run", {"meta": [ZD3]}))
    clone = pickle.loads(pickle.dumps(player))
    assert clone.name == player.name
    first = axl.Match((player, axl.Cooperator()), turns=50, seed=3).play()
    second = axl.Match((clone, axl.Cooperator()), turns=50, seed=3).play()
    assert first == second
