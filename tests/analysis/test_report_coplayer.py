"""Reports of co-player inference runs (``kind: "coplayer"``) on hand-made runs.

The run directories follow ``docs/run_directory.md``; every value is set here, so
the numbers in the report can be traced back to the inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_report import ZD3, assert_png, headings, make_run, table_rows

from dilemmas.analysis import plots
from dilemmas.analysis.report import SECTIONS, write_report
from dilemmas.analysis.report_coplayer import (
    _pairing_lines,
    pairing_metrics,
    selected_rounds,
)
from dilemmas.analysis.report_runs import Group

COALA = [[[1, 1], [-1, 2]], [[2, -1], [0, 0]]]
ITERATIONS = 4
SEEDS = 2
LEARNERS = 2
ROUNDS = 12
TFT = [1.0, 1.0, 0.0, 1.0, 0.0]
CO_PLAYERS = ("learner_1", "random_tabular", "allc", "alld", "tft", "frozen_0")


def learner_reward(iteration: int, seed: int, learner: int) -> float:
    """``reward_vs_learner``: at iteration 4 the mean over seeds and learners is 1.0."""
    return 0.1 * iteration + 0.2 * learner + seed


def make_coplayer_run(
    path: Path,
    *,
    preset: str = "ipd-coplayer-a2c",
    evaluation: bool = True,
    memory_one: bool = True,
    losses: bool = True,
    gap_offset: float = 0.0,
    per_learner_values: bool = False,
    kind: str = "coplayer",
) -> Path:
    """A coplayer run: 2 learners, 2 seeds, 4 iterations, 12-round episodes.

    ``memory_one=False`` and ``losses=False`` leave those records out (fewer
    figure panels and no ZD fits: a faster report). ``per_learner_values`` stores
    the best-response value per learner, with the learners' returns.
    """
    path.mkdir(parents=True)
    config = {
        "format_version": 1,
        "dilemmas_version": "0.1.0",
        "kind": kind,
        "preset": preset,
        "overrides": {},
        "config": {"iterations": ITERATIONS, "pool": "2 learners + fixed"},
        "run": {"log_every": 1, "checkpoint_every": 100, "keep_checkpoints": 3},
        "num_seeds": SEEDS,
        "created": "2026-11-23T10:00:00+00:00",
    }
    (path / "config.json").write_text(json.dumps(config))

    def per_learner(value) -> list[list[float]]:
        return [[value(s, i) for i in range(LEARNERS)] for s in range(SEEDS)]

    records = []
    for it in range(1, ITERATIONS + 1):
        record = {
            "iteration": it,
            "wall_time": 2.0 * it,
            "reward_vs_learner": per_learner(
                lambda s, i, it=it: learner_reward(it, s, i)
            ),
            "cooperation_vs_learner": per_learner(lambda s, i: 0.5),
            # No fixed co-player drawn in the last iteration: its last value is at 3.
            "reward_vs_fixed": per_learner(lambda s, i, it=it: 0.1 * it)
            if it < ITERATIONS
            else [None] * SEEDS,
            "fixed_reward": per_learner(lambda s, i, it=it: -0.1 * it),
            "cooperation_vs_fixed": per_learner(lambda s, i: 0.25),
            "fixed_cooperation": per_learner(lambda s, i: 0.75),
        }
        if losses:
            record |= {
                "total_loss": per_learner(lambda s, i, it=it: 5.0 - it),
                "policy_loss": per_learner(lambda s, i: 0.1),
                "value_loss": per_learner(lambda s, i: 0.2),
                "entropy": per_learner(lambda s, i: 0.6),
            }
        records.append(json.dumps(record))
    (path / "metrics.jsonl").write_text("\n".join(records) + "\n")
    if evaluation:
        rounds = np.arange(1, ROUNDS + 1)
        pairs = [
            {
                "row": "learner_0",
                "col": col,
                "reward": [[1.0 - 0.1 * k, 0.5 + 0.1 * k]] * SEEDS,
                "cooperation": [[0.6, 0.4]] * SEEDS,
            }
            for k, col in enumerate(CO_PLAYERS)
        ]
        learner_vs_learner = {
            "learner reward": [[1.0] * ROUNDS for _ in range(SEEDS)],
            "co-player reward": [[1.0] * ROUNDS for _ in range(SEEDS)],
            # Seed 0 has no value in round 1.
            "learner cooperation": [[None] + [0.9] * (ROUNDS - 1), [0.5] * ROUNDS],
            "co-player cooperation": [[0.9] * ROUNDS for _ in range(SEEDS)],
        }
        record = {
            "game": {"id": "ipd-v0", "actions": ["C", "D"], "payoffs": COALA},
            "num_seeds": SEEDS,
            "pairs": pairs,
            "memory_one": {
                "learner_0 (vs learner_1)": [TFT] * SEEDS,
                # Seed 1 never saw CD against random co-players.
                "learner_0 (vs random_tabular)": [
                    [0.5, 0.6, 0.3, 0.4, 0.2],
                    [0.5, 0.6, None, 0.4, 0.2],
                ],
                "learner_0 (vs frozen_0)": [ZD3] * SEEDS,
            },
            "within_episode": {
                "x": "round",
                "panels": {
                    "learner_0 vs allc": {
                        # round t, seed s: t / 10 + s (mean over seeds t / 10 + 0.5).
                        "learner reward": [
                            (rounds / 10 + s).tolist() for s in range(SEEDS)
                        ],
                        "co-player reward": [[-1.0] * ROUNDS for _ in range(SEEDS)],
                        "learner cooperation": [
                            (1 - rounds / ROUNDS).tolist() for _ in range(SEEDS)
                        ],
                        "co-player cooperation": [[1.0] * ROUNDS] * SEEDS,
                        **(
                            {
                                "learner prediction": [[0.5] + [0.9] * (ROUNDS - 1)]
                                * SEEDS
                            }
                            if kind == "ppi"
                            else {}
                        ),
                    },
                    "learner_0 vs learner_1": learner_vs_learner,
                },
            },
            "best_response_gap": {
                "x": "round",
                "co_player": "random_tabular",
                "series": {
                    # round t, seed s: 1 / t + 0.1 s (+ offset).
                    learner: [
                        (1 / rounds + 0.1 * s + gap_offset).tolist()
                        for s in range(SEEDS)
                    ]
                    for learner in ("learner_0", "learner_1")
                },
                "total": {"learner_0": [3.0, 4.0], "learner_1": [2.0, None]},
                "best_response_value": [10.0, 12.0],
            },
        }
        if not memory_one:
            del record["memory_one"]
        if per_learner_values:
            record["best_response_gap"] |= {
                "best_response_value": {"learner_0": [1.5, 1.7], "learner_1": [1.6]},
                "learner_return": {"learner_0": [1.0, 1.2]},
            }
        (path / "evaluation.json").write_text(json.dumps(record))
        (path / "summary.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "message": "",
                    "iterations_completed": ITERATIONS,
                    "wall_time": 9.0,
                    "headline": {"reward_vs_fixed": 0.3},
                }
            )
        )
    return path


def section(text: str, name: str) -> str:
    """The Markdown of section ``name`` (up to the next level-2 heading)."""
    return text.split(f"\n## {name}\n")[1].split("\n## ")[0]


def header_of(text: str, first: str) -> list[str]:
    """The header cells of the first table whose header starts with ``first``."""
    return next(
        [c.strip() for c in line.strip().strip("|").split(" | ")]
        for line in text.splitlines()
        if line.startswith(f"| {first} |")
    )


@pytest.fixture(scope="module")
def coplayer_report(tmp_path_factory) -> Path:
    return write_report(make_coplayer_run(tmp_path_factory.mktemp("cp") / "cp-run"))


def test_coplayer_run_has_the_new_sections_and_figures(coplayer_report):
    text = coplayer_report.read_text()
    assert headings(text) == [
        s for s in SECTIONS if s not in ("Grid panels", "Verdict")
    ]
    figures = coplayer_report.parent / "figures"
    for name in (
        "learning_curves",
        "pairing_curves",
        "payoff_space",
        "conditional_cooperation",
        "within_episode",
        "best_response_gap",
    ):
        assert_png(figures / f"{name}.png")
        assert f"(figures/{name}.png)" in text
    assert not (figures / "profiles.png").exists()
    assert "No within-meta-episode profiles (evaluation.json has no 'profiles')." in (
        text
    )
    page = (coplayer_report.parent / "report.html").read_text()
    assert "<h2>Within-episode curves</h2>" in page
    assert page.count("<img ") == 6


def test_pairing_table_and_learner_names(coplayer_report):
    text = coplayer_report.read_text()
    pairing = section(text, "Training curves per pairing")
    (ll,) = table_rows(pairing, "learner vs learner")
    # Iteration 4: 0.4 + 0.2 i + s averaged over i, s = 1.0; cooperation 0.5.
    assert ll[1:] == ["2", "1", "n/a", "0.5", "n/a"]
    (lf,) = table_rows(pairing, "learner vs fixed co-players")
    # reward_vs_fixed is null at iteration 4: its last defined value, 0.3.
    assert lf[1:] == ["2", "0.3", "-0.4", "0.25", "0.75"]
    # The final-values table of the learning curves names the learners.
    learner_1 = [
        row
        for row in table_rows(section(text, "Learning curves"), "reward_vs_learner")
        if row[1] == "learner_1"
    ]
    # 0.4 + 0.2 + seed: mean 1.1, range 0.6 to 1.6.
    assert learner_1[0][2:5] == ["4", "1.1", "0.6 to 1.6"]


def test_within_episode_table_reads_the_selected_rounds(coplayer_report):
    part = section(coplayer_report.read_text(), "Within-episode curves")
    header = header_of(part, "pairing")
    assert header[3:] == [f"round {r}" for r in (1, 2, 3, 5, 10, 12)]
    rows = {row[1]: row for row in table_rows(part, "learner_0 vs allc")}
    assert rows["learner reward"][2:] == ["2", "0.6", "0.7", "0.8", "1", "1.5", "1.7"]
    assert rows["co-player reward"][3:] == ["-1"] * 6
    assert rows["learner cooperation"][-1] == "0"
    vs_learner = {row[1]: row for row in table_rows(part, "learner_0 vs learner_1")}
    # Round 1: seed 0 is null, so only seed 1's 0.5; later rounds (0.9 + 0.5) / 2.
    assert vs_learner["learner cooperation"][3:5] == ["0.5", "0.7"]


def test_best_response_gap_section(coplayer_report):
    part = section(coplayer_report.read_text(), "Best-response gap")
    assert "`V*_t(s_t) - E_{a ~ pi} Q*_t(s_t, a)`" in part
    assert "its gap shrinks with the round" in part
    (first,) = table_rows(part, "learner_0")
    # Totals 3 and 4; round 1: 1 + 0.1 s -> 1.05; round 12: 1/12 + 0.05.
    assert first[1:] == ["2", "3.5", "3 to 4", "1.05", f"{1 / 12 + 0.05:.4g}"]
    (second,) = table_rows(part, "learner_1")
    assert second[2:4] == ["2", "2 to 2"]  # the null total is skipped
    assert "random_tabular co-players (mean over 2 seeds): 11." in part
    assert "learner return per step" not in part


def test_zd_fit_judges_the_exploiter_entry(coplayer_report):
    part = section(coplayer_report.read_text(), "Extortion")
    header = header_of(part, "agent")
    rows = table_rows(part, "learner_0 (vs frozen_0)")
    assert len(rows) == SEEDS
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        assert float(cells["chi"]) == pytest.approx(3.0, abs=1e-3)
        assert float(cells["residual"]) < 1e-6
        assert cells["ZD extortioner"] == "yes"
    random_rows = table_rows(part, "learner_0 (vs random_tabular)")
    assert "not fitted: CD missing" in random_rows[1]
    assert "An entry `X (vs Y)` is X's play against co-player Y" in part
    payoff = section(coplayer_report.read_text(), "Payoff space")
    (frozen,) = table_rows(payoff, "learner_0 vs frozen_0")
    assert frozen[1:4] == ["2", "0.5", "1"]


def test_groups_compare_the_coplayer_metrics(tmp_path):
    fast = {"memory_one": False, "losses": False}
    make_coplayer_run(tmp_path / "a2c", **fast)
    make_coplayer_run(
        tmp_path / "ppi",
        preset="ipd-coplayer-ppi",
        gap_offset=1.0,
        per_learner_values=True,
        kind="ppi",
        **fast,
    )
    make_run(tmp_path / "shaping", evaluation=False)
    text = write_report(tmp_path).read_text()
    comparison = section(text, "Comparison")
    for name in (
        "reward_vs_learner",
        "cooperation_vs_learner",
        "reward_vs_fixed",
        "fixed_reward",
        "cooperation_vs_fixed",
        "fixed_cooperation",
    ):
        groups = {row[1] for row in table_rows(comparison, name)}
        assert groups == {"ipd-coplayer-a2c", "ipd-coplayer-ppi"}, name
    assert not table_rows(comparison, "reward_vs_naive")  # only the shaping group
    fixed = {row[1]: row for row in table_rows(comparison, "fixed_cooperation")}
    assert fixed["ipd-coplayer-ppi"][2:] == ["2", "0.75", "0.75 to 0.75"]
    figures = tmp_path / "report" / "figures"
    assert_png(figures / "best_response_gap_comparison.png")
    assert_png(figures / "01-ipd-coplayer-a2c_within_episode.png")
    # The PPI group stores values and returns per learner.
    gaps = section(text, "Best-response gap").split("### ipd-coplayer-ppi")[1]
    assert header_of(gaps, "learner")[-2:] == [
        "best-response value per step",
        "learner return per step",
    ]
    assert table_rows(gaps, "learner_0")[0][-2:] == ["1.6", "1.1"]
    assert table_rows(gaps, "learner_1")[0][-2:] == ["1.6", "n/a"]
    assert "the number of rounds times (best-response value - learner return)" in gaps
    # A2C and PPI side by side: the PPI group's within-episode curves hold its world
    # model's prediction of the co-player, which its caption names.
    within = section(text, "Within-episode curves")
    a2c, ppi = within.split("### ipd-coplayer-ppi")
    assert "world-model probability" in ppi and "world-model probability" not in a2c
    assert table_rows(ppi, "learner_0 vs allc")[-1][1] == "learner prediction"
    assert_png(figures / "02-ipd-coplayer-ppi_within_episode.png")
    # The shaping group has none of the co-player data and says so.
    assert "No pairing metrics logged for this group." in text
    assert "No within-episode curves for this group." in text
    assert "No best-response gap for this group." in text


def test_coplayer_run_without_evaluation_says_so(tmp_path):
    run = make_coplayer_run(tmp_path / "running", evaluation=False)
    text = write_report(run).read_text()
    assert headings(text) == [
        s for s in SECTIONS if s not in ("Grid panels", "Verdict")
    ]
    no_evaluation = "no run has an evaluation.json (it is written when a run ends)."
    assert f"No within-episode curves: {no_evaluation}" in text
    assert f"No best-response gap: {no_evaluation}" in text
    assert_png(run / "report" / "figures" / "pairing_curves.png")


def test_selected_rounds():
    assert selected_rounds(100) == [1, 2, 3, 5, 10, 20, 50, 100]
    assert selected_rounds(50) == [1, 2, 3, 5, 10, 20, 50]
    assert selected_rounds(4) == [1, 2, 3, 4]
    assert selected_rounds(0) == []


def test_line_panels_styles_and_checks(tmp_path):
    x = np.arange(1, 4)
    fig = plots.line_panels(
        {
            "a: reward": {
                "learner": plots.Line(x, np.ones((3, 2)), 2, "--"),
                "plain": (x, np.zeros((3, 1))),
            }
        },
        tmp_path / "p.png",
        title="t",
        xlabel="round",
    )
    solid, dashed = fig.axes[0].get_lines()[1], fig.axes[0].get_lines()[0]
    assert dashed.get_linestyle() == "--" and dashed.get_color() == "C2"
    assert solid.get_linestyle() == "-" and solid.get_color() == "C1"
    assert fig.axes[0].get_ylabel() == "reward per step"
    assert_png(tmp_path / "p.png")
    with pytest.raises(ValueError, match="a of b"):
        plots.line_panels({"a": {"b": (x, np.ones((2, 2)))}}, title="t")
    with pytest.raises(ValueError, match="at least one panel"):
        plots.line_panels({}, title="t")


def test_many_learners_are_averaged_in_the_pairing_curves():
    iterations = np.arange(1, 4)
    # 5 learners: learner i gets reward i, so the mean over learners is 2.
    reward = np.broadcast_to(np.arange(5.0), (3, 2, 5)).copy()
    few = reward[:, :, :2]
    group = Group("g", [], iterations, {"reward_vs_fixed": reward}, ["a", "b"])
    sides = pairing_metrics(group)["fixed"]["reward"]
    assert list(sides) == ["learner"]  # no fixed_reward logged
    many = _pairing_lines(group, {**sides, "co-player": -reward})
    assert list(many) == [
        "learners (mean over learners)",
        "co-players (mean over learners)",
    ]
    np.testing.assert_allclose(many["learners (mean over learners)"].values, 2.0)
    assert many["co-players (mean over learners)"].linestyle == "--"
    per_learner = _pairing_lines(group, {"learner": few, "co-player": -few})
    assert list(per_learner) == [
        "learner_0",
        "learner_1",
        "co-player of learner_0",
        "co-player of learner_1",
    ]
    assert per_learner["co-player of learner_1"].color == 1
    np.testing.assert_allclose(per_learner["co-player of learner_1"].values, -1.0)


def test_null_series_are_left_out(tmp_path):
    run = make_coplayer_run(tmp_path / "run", memory_one=False, losses=False)
    evaluation = json.loads((run / "evaluation.json").read_text())
    panels = evaluation["within_episode"]["panels"]
    panels["learner_0 vs allc"]["co-player reward"] = None
    panels["learner_0 vs tft"] = {"learner reward": None}
    evaluation["best_response_gap"]["series"]["learner_1"] = None
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    text = write_report(run).read_text()
    part = section(text, "Within-episode curves")
    assert [row[1] for row in table_rows(part, "learner_0 vs allc")] == [
        "learner reward",
        "learner cooperation",
        "co-player cooperation",
    ]
    assert not table_rows(part, "learner_0 vs tft")
    (learner_1,) = table_rows(section(text, "Best-response gap"), "learner_1")
    assert learner_1[1:] == ["2", "2", "2 to 2", "n/a", "n/a"]
