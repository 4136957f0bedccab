"""``write_report`` / ``load_run`` on tiny synthetic run directories.

The run directories are written here by hand, following ``docs/run_directory.md``
(the contract with the training side), with known values, so that the numbers in
the report can be traced back to the inputs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from dilemmas.agents.strategies import memory_one
from dilemmas.analysis.report import (
    INCOMPLETE,
    SECTIONS,
    RunDirectoryError,
    group_runs,
    load_run,
    write_report,
)
from dilemmas.analysis.verdict import shaping_verdict

COALA = [[[1, 1], [-1, 2]], [[2, -1], [0, 0]]]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ITERATIONS = 6
M = 5
#: chi = 3 extortion under COALA payoffs, from the catalogue: (1; 5/7, 0, 5/7, 0).
ZD3 = [float(x) for x in memory_one("zd_extort", chi=3.0, payoffs="coala")]
TFT = [1.0, 1.0, 0.0, 1.0, 0.0]
#: The sections of a shaping run's report (matrix game; grid games add Grid panels
#: before Notes): the co-player sections do not appear.
SHAPING_SECTIONS = [
    "Runs",
    "Verdict",
    "Learning curves",
    "Payoff space",
    "Conditional cooperation",
    "Within-meta-episode profiles",
    "Extortion",
    "Notes",
]


def total_loss(iteration: int, seed: int) -> float:
    """Known values of the ``total_loss`` metric: final mean 4.25 at 2 seeds."""
    return 10.0 - iteration + 0.5 * seed


def make_run(
    path: Path,
    *,
    seeds: int = 2,
    seed: int = 0,
    lr: float = 0.1,
    grid: bool = False,
    lines: int = ITERATIONS,
    summary: bool = True,
    evaluation: bool = True,
    torn: bool = False,
    format_version: int = 1,
    shift: float = 0.0,
) -> Path:
    """A run directory of ``lines`` metrics records and ``seeds`` seeds; ``shift`` is
    added to ``total_loss`` (the other metrics do not depend on the seeds)."""
    path.mkdir(parents=True)
    preset = "cleanup-lite-shaping" if grid else "ipd-shaping-cpu"
    config = {
        "format_version": format_version,
        "dilemmas_version": "0.1.0",
        "kind": "shaping",
        "preset": preset,
        "overrides": {},
        "config": {"iterations": ITERATIONS, "lr": lr, "seed": seed, "pool": 2},
        "run": {"log_every": 1, "checkpoint_every": 100, "keep_checkpoints": 3},
        "num_seeds": seeds,
        "created": "2026-11-23T10:00:00+00:00",
    }
    (path / "config.json").write_text(json.dumps(config))
    records = []
    for it in range(1, lines + 1):
        record = {
            "iteration": it,
            "wall_time": 0.5 * it,
            "total_loss": [total_loss(it, s) + shift for s in range(seeds)],
            "reward_vs_naive": [[0.1 * it + s, 0.2 * it + s] for s in range(seeds)],
            "naive_reward": [[0.3] for _ in range(seeds)],
            # Undefined on odd iterations (no meta co-player drawn).
            "reward_vs_meta": [
                None if it % 2 else [1.0, 1.0 + s] for s in range(seeds)
            ],
        }
        if grid:
            record |= {
                "cleaning_time": [[0.1, 0.3] for _ in range(seeds)],
                "zaps_received": [[0.5 * s, 1.0] for s in range(seeds)],
                "pollution": [3.0 - 0.1 * it for _ in range(seeds)],
                "apples": [1.0 + 0.1 * it for _ in range(seeds)],
            }
        records.append(json.dumps(record))
    text = "\n".join(records) + "\n"
    if torn:
        text += '{"iteration": ' + str(lines + 1) + ', "wall_time": 9.'
    (path / "metrics.jsonl").write_text(text)
    if evaluation:
        if grid:
            game = {"id": "cleanup_lite-v0", "actions": ["up", "down", "zap"]}
            extra = {
                "grid": {
                    "x": "episode",
                    "series": {
                        "meta cleaning": [[0.1] * M for _ in range(seeds)],
                        "naive cleaning": [[0.3] * M for _ in range(seeds)],
                        "pollution level": [[2.0] * M for _ in range(seeds)],
                    },
                }
            }
        else:
            game = {"id": "ipd-v0", "actions": ["C", "D"], "payoffs": COALA}
            extra = {
                "memory_one": {
                    "meta_0": [ZD3 for _ in range(seeds)],
                    # Seed 1 never saw CD: no ZD fit for that vector.
                    "meta_1": [TFT] + [[1.0, 1.0, None, 1.0, 0.0]] * (seeds - 1),
                },
                "profiles": {
                    "x": "inner episode",
                    "series": {
                        "meta reward": [
                            [1.0 + 0.1 * m + s for m in range(M)] for s in range(seeds)
                        ],
                        "naive reward": [[0.4] * M for _ in range(seeds)],
                        "meta cooperation": [[0.7] * M for _ in range(seeds)],
                        "naive cooperation": [[0.9] * M for _ in range(seeds)],
                    },
                },
            }
        record = {
            "game": game,
            "num_seeds": seeds,
            "pairs": [
                {
                    "row": "meta_0",
                    "col": "naive",
                    "reward": [[1.25, 0.5]] * seeds,
                    "cooperation": [[0.7, 0.9]] * seeds,
                },
                {
                    "row": "meta_1",
                    "col": "naive",
                    "reward": [[0.8, 0.8]] * seeds,
                    "cooperation": [[0.9, 0.9]] * seeds,
                },
            ],
            **extra,
        }
        if not grid:
            # The always-defector against the same naive learners: the first seed's
            # meta_0 (1.25) beats it by more than (R - P) / 10, the others' do not.
            alld = [[0.6, -0.3]] + [[1.3, -0.65]] * (seeds - 1)
            record["pairs"].append({"row": "alld", "col": "naive", "reward": alld})
        (path / "evaluation.json").write_text(json.dumps(record))
    if summary:
        (path / "summary.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "message": "",
                    "iterations_completed": lines,
                    "wall_time": 42.0,
                    "headline": {"reward_vs_naive": 1.123456},
                }
            )
        )
    return path


def assert_png(path: Path) -> None:
    assert path.is_file(), f"missing figure {path}"
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def headings(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, flags=re.MULTILINE)


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """Cells of the Markdown table rows whose first cell is ``first_cell``."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cells[0] == first_cell:
                rows.append(cells)
    return rows


@pytest.fixture(scope="module")
def ipd_report(tmp_path_factory) -> Path:
    run = make_run(tmp_path_factory.mktemp("ipd") / "ipd-run")
    return write_report([run])


@pytest.fixture(scope="module")
def grid_report(tmp_path_factory) -> Path:
    run = make_run(tmp_path_factory.mktemp("grid") / "grid-run", grid=True, seeds=3)
    return write_report(run)


def test_single_run_writes_every_figure_and_section(ipd_report):
    assert ipd_report.parent.name == "report" and ipd_report.name == "report.md"
    assert ipd_report.parent.parent.name == "ipd-run"
    figures = ipd_report.parent / "figures"
    for name in (
        "learning_curves",
        "payoff_space",
        "conditional_cooperation",
        "profiles",
    ):
        assert_png(figures / f"{name}.png")
    text = ipd_report.read_text()
    assert headings(text) == SHAPING_SECTIONS
    assert set(SHAPING_SECTIONS) < set(SECTIONS)
    for name in ("learning_curves", "payoff_space", "profiles"):
        assert f"(figures/{name}.png)" in text
    page = (ipd_report.parent / "report.html").read_text()
    assert page.count("<img ") == 4
    assert "<h2>Extortion</h2>" in page


def test_the_verdict_is_the_one_dilemmas_train_prints(ipd_report):
    # Hand check of the made-up run: meta_0 earns 1.25 and its naive learners 0.5 in
    # both seeds; an always-defector 0.6 in seed 0 and 1.3 in seed 1.
    text = ipd_report.read_text()
    section = text.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    assert "shapes the naive learners in 1 of 2 seeds" in section
    assert "median +1.250 vs +0.950" in section
    assert "extorts them in 0 of 2 seeds" in section  # they earn 0.5 > P = 0
    evaluation = json.loads((ipd_report.parent.parent / "evaluation.json").read_text())
    for line in shaping_verdict(evaluation).lines():
        assert f"- {line}" in section


def test_report_numbers_come_from_the_inputs(ipd_report):
    text = ipd_report.read_text()
    # Runs table: status, iterations, seeds, wall time and headline.
    (run_row,) = table_rows(text, "[ipd-run](..)")
    assert run_row[3:8] == ["completed", "6", "2", "42.0 s", "reward_vs_naive = 1.123"]
    # total_loss at iteration 6: seeds 4.0 and 4.5.
    (loss,) = table_rows(text, "total_loss")
    assert loss[1:5] == ["", "6", "4.25", "4 to 4.5"]
    # reward_vs_naive of meta_1 (the agents axis of a shaping run) at iteration 6:
    # 1.2 + seed.
    agent_1 = [row for row in table_rows(text, "reward_vs_naive") if row[1] == "meta_1"]
    assert agent_1[0][3] == "1.7"
    # reward_vs_meta is null on odd iterations: its last defined value is at 6.
    assert table_rows(text, "reward_vs_meta")[0][2] == "6"
    assert "reward_vs_meta is undefined (null or not logged) in 12 of 24" in text
    # Payoff-space table: the stored pair rewards.
    (pair,) = table_rows(text, "meta_0 vs naive")
    assert pair[1:6] == ["2", "1.25", "0.5", "0.7", "0.9"]


def test_zd_fit_recovers_chi_3_and_skips_vectors_with_missing_states(ipd_report):
    text = ipd_report.read_text()
    header = next(
        [c.strip() for c in line.strip().strip("|").split(" | ")]
        for line in text.splitlines()
        if line.startswith("| agent | seed |")
    )
    zd_rows = table_rows(text, "meta_0")
    assert len(zd_rows) == 2
    for row in zd_rows:
        cells = dict(zip(header, row, strict=True))
        assert float(cells["chi"]) == pytest.approx(3.0, abs=1e-3)
        assert float(cells["phi"]) == pytest.approx(1 / 7, abs=1e-3)
        assert float(cells["residual"]) < 1e-6
        assert cells["ZD extortioner"] == "yes"
        assert float(cells["COALA chi"]) == pytest.approx(3.0, rel=1e-2)
        assert float(cells["COALA loss"]) < 1e-6
    tft, missing = table_rows(text, "meta_1")
    assert dict(zip(header, tft, strict=True))["chi"] == "1"
    assert "not fitted: CD missing" in missing
    assert "never visited CD; its ZD fit is skipped" in text
    assert "States never visited" not in text  # the seed mean still covers CD


def test_grid_run_adds_the_grid_panels(grid_report):
    figures = grid_report.parent / "figures"
    for name in ("learning_curves", "payoff_space", "grid_panels", "grid_episodes"):
        assert_png(figures / f"{name}.png")
    assert not (figures / "conditional_cooperation.png").exists()
    text = grid_report.read_text()
    # No Verdict: a grid game has no 2x2 payoff table to test against.
    sections = [name for name in SHAPING_SECTIONS[:-1] if name != "Verdict"]
    assert headings(text) == [*sections, "Grid panels", "Notes"]
    assert "No memory-one vectors (evaluation.json has no 'memory_one')." in text
    assert "No within-meta-episode profiles" in text
    assert "no 2x2 payoff table in evaluation.json" in text
    # pollution at iteration 6: 3 - 0.6, same in all 3 seeds.
    (pollution,) = table_rows(text, "pollution")
    assert pollution[2:5] == ["6", "2.4", "2.4 to 2.4"]


def test_folder_groups_seeds_and_separates_configs(tmp_path):
    folder = tmp_path / "sweep"
    make_run(folder / "lr0.1-seed0", seed=0)
    make_run(folder / "lr0.1-seed1", seed=1, seeds=3)
    make_run(folder / "nested" / "lr0.5", lr=0.5)
    groups = group_runs(
        [load_run(p.parent) for p in sorted(folder.rglob("config.json"), key=str)]
    )
    by_size = sorted(groups, key=lambda g: len(g.runs))
    assert [len(g.runs) for g in by_size] == [1, 2]
    pooled = by_size[1]
    assert pooled.num_seeds == 5
    assert pooled.metrics["total_loss"].shape == (ITERATIONS, 5)
    assert pooled.metrics["reward_vs_naive"].shape == (ITERATIONS, 5, 2)
    np.testing.assert_allclose(
        pooled.metrics["total_loss"][-1], [4.0, 4.5, 4.0, 4.5, 5.0]
    )
    assert "lr=0.1" in pooled.label and "lr=0.5" in by_size[0].label

    report = write_report(folder)
    assert report == folder / "report" / "report.md"
    text = report.read_text()
    assert "3 run(s) in 2 group(s)" in text
    assert (
        len(
            re.findall(
                r"^### ipd-shaping-cpu \[lr=0\.1\] \(5 seeds\)$",
                text,
                flags=re.MULTILINE,
            )
        )
        == 6  # Verdict, Learning curves, Payoff space, Cond. coop., Profiles, Extortion
    )
    pngs = sorted(p.name for p in (report.parent / "figures").glob("*.png"))
    assert "comparison.png" in pngs
    pngs.remove("comparison.png")
    assert len(pngs) == 8 and all(p.startswith(("01-", "02-")) for p in pngs)
    for png in [*pngs, "comparison.png"]:
        assert_png(report.parent / "figures" / png)
    # The comparison overlays outcome metrics (not losses) across the two groups.
    assert "## Comparison" in text
    rows = table_rows(text, "reward_vs_naive")
    lr05 = [row for row in rows if "lr=0.5" in row[1]]
    # lr 0.5 run, 2 seeds: agents (0.1 it + s, 0.2 it + s) average 0.15 it + s; the
    # last 10% of 6 iterations is iteration 6: 0.9 and 1.9 -> mean 1.4.
    assert lr05 and lr05[0][2:] == ["2", "1.4", "0.9 to 1.9"]
    assert not table_rows(text.split("## Comparison")[1].split("##")[0], "total_loss")


def test_repeated_runs_are_counted_once(tmp_path):
    # Two pairs of runs that are the same seed of the same config: a and its copy
    # (made later: another creation time and checksum), b run twice. c claims
    # another seed, but every final metric equals a's. d is a's config and seed
    # stopped earlier (killed): pooled, with a note.
    folder = tmp_path / "runs"
    make_run(folder / "a", seed=0, seeds=1)
    copy = make_run(folder / "a-copy", seed=0, seeds=1)
    config = json.loads((copy / "config.json").read_text())
    config |= {"created": "2026-11-24T09:00:00+00:00", "integrity": {"sha256": "0"}}
    (copy / "config.json").write_text(json.dumps(config))
    make_run(folder / "b", seed=1, seeds=1, shift=0.25)
    make_run(folder / "b-again", seed=1, seeds=1, shift=0.25)
    make_run(folder / "c", seed=7, seeds=1)
    make_run(folder / "d", seed=0, seeds=1, lines=4, shift=0.5)

    names = ["a", "a-copy", "b", "b-again", "c", "d"]
    (group,) = group_runs([load_run(folder / name) for name in names])
    assert [run.name for run in group.runs] == ["a", "b", "d"]
    assert [(r.run.name, r.original.name) for r in group.repeats] == [
        ("a-copy", "a"),
        ("b-again", "b"),
        ("c", "a"),
    ]
    assert group.num_seeds == 3
    np.testing.assert_allclose(group.metrics["total_loss"][-1], [4.0, 4.25, np.nan])

    echoed = []
    text = write_report(folder, echo=echoed.append).read_text()
    assert "mean over 3 seeds" in text
    assert "6 run(s) in 1 group(s)" in text and "2 run(s)" not in text
    assert "3 run(s) repeating another run" in text
    (copy_row,) = table_rows(text, "[a-copy](../a-copy)")
    assert copy_row[5] == "1 (repeat of a: not pooled)"
    notes = text.split("## Notes")[1]
    for note in (
        "a-copy repeats a (identical config.json, seed included, both at iteration 6)",
        "b-again repeats b (identical config.json, seed included, both at iteration 6)",
        "c repeats a (identical final metrics of every seed, both at iteration 6)",
    ):
        assert note in notes
        assert sum(note in line for line in echoed) == 1
    assert len(echoed) == 3 and "d repeats" not in text
    # The final-values table averages a and b only: 4.0 and 4.25.
    (loss,) = table_rows(text, "total_loss")
    assert loss[3:5] == ["4.125", "4 to 4.25"]


def test_killed_run_is_analysed_up_to_its_last_complete_line(tmp_path):
    run_dir = make_run(
        tmp_path / "killed", lines=4, summary=False, evaluation=False, torn=True
    )
    run = load_run(run_dir)
    assert run.status == INCOMPLETE
    assert run.iterations.tolist() == [1, 2, 3, 4]
    assert run.evaluation is None and run.summary is None
    text = write_report(run_dir, tmp_path / "out").read_text()
    assert "incomplete (no summary.json: still running or killed)" in text
    assert "analysed up to iteration 4 of 6 planned" in text
    assert "metrics.jsonl ends in an incomplete line (line 5" in text
    assert "it is ignored, so the run is analysed up to iteration 4" in text
    assert "| 4 / 6 |" in text
    assert "No evaluated agent pairs" in text
    assert_png(tmp_path / "out" / "figures" / "learning_curves.png")


def test_resumed_run_keeps_the_later_records(tmp_path):
    run_dir = make_run(tmp_path / "resumed", lines=3)
    with open(run_dir / "metrics.jsonl", "a") as file:
        file.write('{"iteration": 2, "total_loss": [7.0, 7.0]}\n')
        file.write('{"iteration": 3, "wall_time": 1.5, "total_loss": [6.0, 6.0]}\n')
    run = load_run(run_dir)
    assert run.iterations.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(run.metrics["total_loss"][:, 0], [9.0, 7.0, 6.0])
    assert np.isnan(run.wall_time[1])
    assert any("logged more than once" in note for note in run.notes)


def test_null_entries_become_nan(tmp_path):
    run = load_run(make_run(tmp_path / "run"))
    values = run.metrics["reward_vs_meta"]
    assert values.shape == (ITERATIONS, 2, 2)
    assert np.all(np.isnan(values[0::2])) and not np.any(np.isnan(values[1::2]))
    assert run.metrics["naive_reward"].shape == (ITERATIONS, 2, 1)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.mkdir(), r"is not a run directory: config\.json is missing"),
        (
            lambda p: make_run(p, format_version=99),
            r"format_version 99 .*reads format_version 1 only",
        ),
        (
            lambda p: (
                (p / "metrics.jsonl").write_text("")
                if make_run(p, evaluation=False, summary=False)
                else None
            ),
            r"nothing to analyse: metrics\.jsonl holds no complete record",
        ),
        (
            lambda p: (
                (p / "metrics.jsonl").unlink()
                if make_run(p, evaluation=False)
                else None
            ),
            r"nothing to analyse: metrics\.jsonl is missing",
        ),
    ],
    ids=["no-config", "future-version", "empty-metrics", "no-metrics"],
)
def test_bad_run_directories_are_refused_clearly(tmp_path, setup, message):
    run_dir = tmp_path / "run"
    setup(run_dir)
    with pytest.raises(RunDirectoryError, match=message):
        load_run(run_dir)
    if (run_dir / "config.json").exists():
        with pytest.raises(RunDirectoryError, match=message):
            write_report(run_dir)


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(RunDirectoryError, match="no subfolder holds one"):
        write_report(tmp_path)
    with pytest.raises(RunDirectoryError, match="is not a directory"):
        write_report(tmp_path / "nowhere")


def test_evaluation_without_metrics_still_reports(tmp_path):
    run_dir = make_run(tmp_path / "run")
    (run_dir / "metrics.jsonl").unlink()
    text = write_report(run_dir).read_text()
    assert "metrics.jsonl is missing: no learning curves, only the evaluation" in text
    assert "No metrics logged (metrics.jsonl missing or empty)." in text
    assert_png(run_dir / "report" / "figures" / "payoff_space.png")


def test_unreadable_run_in_a_folder_is_skipped_with_a_note(tmp_path):
    make_run(tmp_path / "good")
    make_run(tmp_path / "future", format_version=2)
    text = write_report(tmp_path).read_text()
    assert "1 run(s) in 1 group(s)" in text
    assert "skipped: " in text and "format_version 2" in text


def test_malformed_record_names_the_line(tmp_path):
    run_dir = make_run(tmp_path / "run", lines=2)
    with open(run_dir / "metrics.jsonl", "a") as file:
        file.write('{"iteration": 3, "total_loss": 1.0}\n')
    with pytest.raises(RunDirectoryError, match=r"line 3: metric 'total_loss' must be"):
        load_run(run_dir)


def test_stopped_run_reports_its_status_and_message(tmp_path):
    run_dir = make_run(tmp_path / "run", lines=4)
    summary = {
        "status": "stopped",
        "message": "non-finite total_loss at iteration 5",
        "iterations_completed": 4,
        "wall_time": 3.0,
        "headline": {},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    run = load_run(run_dir)
    assert run.status == "stopped" and run.seconds == 3.0
    assert run.last_iteration == 4 and run.planned_iterations == ITERATIONS
    assert (
        "the run ended with status 'stopped': non-finite total_loss at iteration 5"
        in run.notes
    )


def test_agents_without_usable_vectors_do_not_break_the_report(tmp_path):
    run_dir = make_run(tmp_path / "run")
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    evaluation["memory_one"] = {"never seen": [[None] * 5, [None] * 5], "empty": []}
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation))
    text = write_report(run_dir).read_text()
    assert "States never visited: never seen: s0, CC, CD, DC, DD; empty: s0" in text
    assert "not fitted: CC, CD, DC, DD missing" in text
    assert_png(run_dir / "report" / "figures" / "conditional_cooperation.png")


def test_agents_of_a_pool_of_several_estimators_are_named_with_their_estimator(
    tmp_path,
):
    run = make_run(tmp_path / "h3-run")
    config = json.loads((run / "config.json").read_text())
    config["config"]["pool_estimators"] = "coala,mfos"
    (run / "config.json").write_text(json.dumps(config))
    text = write_report([run]).read_text()
    labels = [row[1] for row in table_rows(text, "reward_vs_naive")]
    assert labels == ["meta_0 (coala)", "meta_1 (mfos)"]


def test_a_folder_skips_sweep_program_folders(tmp_path):
    """``dilemmas sweep`` writes the points' own run directories under ``runs/`` and
    one run directory of kind "sweep" per compiled program: only the points are
    runs to analyse."""
    from dilemmas.analysis.report_runs import find_runs

    point = make_run(tmp_path / "sweep" / "runs" / "0-lr=0.1")
    program = make_run(tmp_path / "sweep" / "programs" / "0")
    config = json.loads((program / "config.json").read_text())
    config["kind"] = "sweep"
    (program / "config.json").write_text(json.dumps(config))
    assert find_runs(tmp_path / "sweep") == [point]


def test_a_run_named_with_set_name_is_labelled_by_that_name(tmp_path):
    from dilemmas.analysis.report_runs import load_run

    run = make_run(tmp_path / "named")
    config = json.loads((run / "config.json").read_text())
    config["overrides"] = {"name": "my-cleanup-run", "lr": 0.1}
    (run / "config.json").write_text(json.dumps(config))
    assert load_run(run).preset == "my-cleanup-run"
    assert load_run(make_run(tmp_path / "plain")).preset == "ipd-shaping-cpu"
