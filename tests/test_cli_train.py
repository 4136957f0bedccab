"""``dilemmas train``, ``presets``, ``analyze`` and run directories in ``tournament``.

Exit codes: 0 done, 1 stopped on a non-finite loss, 2 bad input (before anything is
compiled), 130 interrupted. A tiny counting experiment is added to the preset
registry for the fast cases; the kill-and-resume test runs a real analytic preset
in a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.training import presets as presets_module
from dilemmas.training import runner
from dilemmas.training.analytic import PRESETS as ANALYTIC_PRESETS
from dilemmas.training.cli import main


@dataclasses.dataclass(frozen=True)
class CountConfig:
    """A counter per seed whose loss turns NaN at iteration ``nan_at`` (0: never)."""

    iterations: int = 6
    num_seeds: int = 2
    seed: int = 0
    nan_at: int = 0

    def __post_init__(self):
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")

    def experiment(self) -> CountExperiment:
        return CountExperiment(self)


class CountExperiment:
    kind = "count"
    loss_metrics = ("loss",)
    progress_metrics = ("loss",)

    def __init__(self, config: CountConfig):
        self.config = config
        self.iterations = config.iterations

    def init(self, key: jax.Array) -> dict[str, jax.Array]:
        keys = jax.random.split(key, self.config.num_seeds)
        return {"x": jnp.zeros(self.config.num_seeds), "key": keys}

    def update(self, state):
        x = state["x"] + 1.0
        loss = jnp.where(x == self.config.nan_at, jnp.nan, x)
        return {"x": x, "key": state["key"]}, {"loss": loss}

    def params(self, state) -> jax.Array:
        return state["x"]

    def summary(self, state, metrics) -> dict[str, Any]:
        return {"loss": np.asarray(metrics["loss"]).tolist()}

    def evaluate(self, state) -> dict[str, Any]:
        return {"game": {"id": "count"}, "num_seeds": self.config.num_seeds}


@pytest.fixture
def count_preset(monkeypatch):
    """Add the ``count`` preset to the registry."""
    original = presets_module.presets
    monkeypatch.setattr(
        presets_module, "presets", lambda: {**original(), "count": CountConfig()}
    )


@pytest.fixture
def no_compilation(monkeypatch):
    """Fail if the run driver gets as far as building a compiled chunk."""

    def refuse(*args, **kwargs):
        raise AssertionError("a chunk was compiled")

    monkeypatch.setattr(runner, "_chunk_fn", refuse)


def test_presets_lists_every_preset_with_a_description(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ANALYTIC_PRESETS:
        assert re.search(rf"^{name} +exact IPD", out, re.MULTILINE)
    assert "ipd-shaping" in out


def test_train_writes_a_run_directory_under_runs(
    count_preset, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "count", "--set", "iterations=4", "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"count-\d{8}-\d{6}", run_dir.name)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "count" and config["overrides"] == {"iterations": 4}
    assert config["config"]["iterations"] == 4
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iterations_completed"] == 4
    assert "count: completed after 4 iterations" in capsys.readouterr().out

    # a completed run is neither resumed nor overwritten
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "completed run" in capsys.readouterr().err
    assert main(["train", "count", "--run-dir", str(run_dir)]) == 2
    assert "non-empty directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("iteration=5", "unknown config key 'iteration' (did you mean iterations?)"),
        ("iterations=abc", "cannot set iterations='abc': expected int"),
        ("iterations=0", "iterations must be an int >= 1"),
        ("p_naive=0.5", "pool_size >= 2"),
        ("iterations", "expected key=value"),
    ],
)
def test_bad_overrides_fail_before_compilation(
    override, expected, tmp_path, no_compilation, capsys
):
    argv = ["train", "analytic-shaping", "--set", override]
    assert main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dilemmas train: error:") and expected in err
    assert not (tmp_path / "run").exists()


def test_unknown_env_id_suggests_the_registered_one(tmp_path, no_compilation, capsys):
    argv = ["train", "ipd-shaping-cpu", "--set", "env_id=ipd"]
    assert main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
    assert "unknown env_id 'ipd' (did you mean ipd-v0?)" in capsys.readouterr().err


def test_bad_run_settings_fail_before_compilation(tmp_path, no_compilation, capsys):
    argv = ["train", "analytic-shaping", "--set", "iterations=8"]
    argv += ["--log-every", "3", "--checkpoint-every", "4"]
    assert main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
    assert "multiple of log_every = 3" in capsys.readouterr().err


def test_unknown_preset_lists_the_presets(capsys):
    assert main(["train", "analytic-shapng"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'analytic-shapng' (did you mean analytic-shaping" in err
    assert all(name in err for name in ANALYTIC_PRESETS)


def test_train_without_a_preset_runs_the_quickstart(capsys):
    # A bad key stops it before anything compiles, with the default named.
    assert main(["train", "--set", "nope=1"]) == 2
    err = capsys.readouterr().err
    assert "running 'quickstart'" in err
    assert "nope" in err


def test_non_finite_loss_exits_1_with_the_message(count_preset, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "count", "--set", "nan_at=5", "--run-dir", str(run_dir)]
    assert main([*argv, "--log-every", "2", "--checkpoint-every", "2"]) == 1
    err = capsys.readouterr().err
    assert "stopped: non-finite loss (nan) at iteration 5, seed 0" in err
    assert "iter_00000004.msgpack (iteration 4)" in err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "stopped"
    assert runner.latest_checkpoint(run_dir)[0] == 4


def test_a_completed_run_trains_longer_with_more_iterations(
    count_preset, tmp_path, capsys
):
    def run(run_dir, *extra):
        settings = ["--log-every", "2", "--checkpoint-every", "2", "--no-progress"]
        argv = ["train", "count", "--run-dir", str(run_dir), *settings, *extra]
        assert main(argv) == 0

    def lines(run_dir):
        text = (run_dir / "metrics.jsonl").read_text()
        return [{**json.loads(line), "wall_time": 0} for line in text.splitlines()]

    straight, extended = tmp_path / "straight", tmp_path / "extended"
    run(straight, "--set", "iterations=9")
    run(extended, "--set", "iterations=5")  # ends between two chunk boundaries
    first = {
        name: (extended / name).read_text()
        for name in ("summary.json", "evaluation.json")
    }
    capsys.readouterr()

    # not longer: refused, and nothing is touched
    assert main(["train", "--resume", str(extended), "--set", "iterations=5"]) == 2
    assert "--set iterations=N (N > 5)" in capsys.readouterr().err
    assert (extended / "summary.json").read_text() == first["summary.json"]

    argv = ["train", "--resume", str(extended), "--set", "iterations=9"]
    assert main([*argv, "--no-progress"]) == 0
    summary = json.loads((extended / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iterations_completed"] == 9
    # the same metrics as a run of 9 iterations from the start
    assert lines(extended) == lines(straight)
    assert (extended / "evaluation.json").read_text() == (
        straight / "evaluation.json"
    ).read_text()
    # the shorter run's end products are kept
    archived = extended / "completed_00000005"
    for name, text in first.items():
        assert (archived / name).read_text() == text
    config = json.loads((extended / "config.json").read_text())
    (entry,) = config["resumed_with_overrides"]
    assert entry["iteration"] == 5 and entry["set"] == {"iterations": 9}
    # back on log_every's boundaries after the extension: checkpoints at 6, 8, 9
    latest = json.loads((extended / "checkpoints" / "latest.json").read_text())
    assert latest["iteration"] == 9
    names = sorted(p.name for p in (extended / "checkpoints").glob("*.msgpack"))
    assert names == [f"iter_{i:08d}.msgpack" for i in (6, 8, 9)]


def test_interrupt_exits_130_and_resume_finishes(
    count_preset, tmp_path, monkeypatch, capsys
):
    run_dir = tmp_path / "run"
    original = runner._Loop.checkpoint

    def checkpoint_then_interrupt(self, iteration, state):
        original(self, iteration, state)
        if iteration == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner._Loop, "checkpoint", checkpoint_then_interrupt)
    argv = ["train", "count", "--run-dir", str(run_dir), "--log-every", "1"]
    assert main([*argv, "--checkpoint-every", "2", "--no-progress"]) == 130
    assert f"dilemmas train --resume {run_dir}" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(
        presets_module, "presets", lambda: {"count": CountConfig()}
    )  # the registry as the resumed session sees it
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["iterations_completed"] == 2
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == list(range(1, 7))


def test_resume_errors(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "no run directory at" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 2}))
    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "format_version 2" in err and "reads format_version 1" in err
    assert main(["train", "count", "--resume", str(tmp_path), "--set", "a=1"]) == 2
    assert "drop PRESET" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--run-dir", "x"]) == 2
    assert "drop --run-dir" in capsys.readouterr().err


def test_killed_subprocess_resumes_to_the_same_parameters(tmp_path, capsys):
    """SIGKILL a real `dilemmas train` after its first checkpoint, then resume."""
    settings = ["--set", "iterations=150", "--set", "meta_batch=2"]
    settings += ["--set", "num_naive_steps=2", "--set", "num_seeds=2"]
    settings += ["--log-every", "1", "--checkpoint-every", "1", "--no-progress"]
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "dilemmas.training.cli", "train", "analytic-shaping"]
        + [*settings, "--run-dir", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while not (killed / "checkpoints" / "latest.json").exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()
    assert not (killed / "summary.json").exists()
    killed_at = runner.latest_checkpoint(killed)[0]
    assert 1 <= killed_at < 150

    assert main(["train", "--resume", str(killed), "--no-progress"]) == 0
    reference = tmp_path / "reference"
    assert (
        main(["train", "analytic-shaping", *settings, "--run-dir", str(reference)]) == 0
    )
    experiment = runner.experiment_from_run(runner.read_config(killed))
    params = [
        np.asarray(experiment.params(runner.load_checkpoint(d, experiment)[1]))
        for d in (killed, reference)
    ]
    assert params[0].tobytes() == params[1].tobytes()
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == list(range(1, 151))


def test_analyze_calls_the_report(monkeypatch, tmp_path, capsys):
    from dilemmas.analysis import report

    calls = []

    def write_report(paths, out_dir=None, *, echo=None):
        calls.append((list(paths), out_dir))
        if "bad" in str(paths[0]):
            raise report.RunDirectoryError(f"{paths[0]} has no config.json")
        echo("b repeats a (...): counted once")
        return Path(out_dir or "r") / "report.md"

    monkeypatch.setattr(report, "write_report", write_report)
    assert main(["analyze", "a", "b", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "dilemmas analyze: b repeats a (...): counted once",
        str(tmp_path / "report.md"),
    ]
    assert calls[0] == (["a", "b"], str(tmp_path))
    assert main(["analyze", "bad"]) == 2
    assert "dilemmas analyze: error: bad has no config.json" in capsys.readouterr().err


def test_tournament_takes_run_directories(monkeypatch, tmp_path, capsys):
    # A stand-in for dilemmas.analysis.tournament (importing Axelrod takes seconds).
    seen = {}
    tournament = types.ModuleType("dilemmas.analysis.tournament")
    tournament.players_from_run = lambda path: [f"p:{path}"]
    tournament.players_from_policies = lambda path: [f"net:{path}"]
    tournament.run_tournament = lambda players, **kwargs: seen.update(players=players)
    tournament.format_report = lambda result: "report\n"
    monkeypatch.setitem(sys.modules, "dilemmas.analysis.tournament", tournament)
    assert main(["tournament", "tft", str(tmp_path), "wsls"]) == 0
    assert seen["players"] == ["tft", f"p:{tmp_path}", "wsls"]
    captured = capsys.readouterr()
    assert captured.out == "report\n"
    assert "has no policies/" in captured.err
    # A run that wrote its policies plays the networks, not the probes.
    (tmp_path / "policies").mkdir()
    assert main(["tournament", str(tmp_path)]) == 0
    assert seen["players"] == [f"net:{tmp_path}"]
    assert "has no policies/" not in capsys.readouterr().err


@pytest.mark.slow
def test_the_quickstart_verdict_holds_scaled_down_and_fails_for_mfos(tmp_path, capsys):
    """The README's first command at 80 of its 150 iterations (8 seeds, 3-5 minutes
    on 2 cores each): the learning-aware agent (COALA-PG) shapes its naive learners
    (earns more from them than an always-defector earns from the same learners) in
    most seeds, and `dilemmas train` prints the verdict of analysis.verdict. The
    same run with M-FOS's estimator shapes in no seed: it learns to always defect
    (measured: 0 of 8 seeds, median 0.624 against the always-defector's 0.626)."""
    from dilemmas.analysis.verdict import shaping_verdict

    def verdict(*overrides):
        run_dir = tmp_path / f"quickstart-{len(overrides)}"
        argv = ["train", "--set", "iterations=80", "--run-dir", str(run_dir)]
        for override in overrides:
            argv += ["--set", override]
        assert main([*argv, "--no-progress"]) == 0
        out = capsys.readouterr().out
        found = shaping_verdict(json.loads((run_dir / "evaluation.json").read_text()))
        for line in found.lines():
            assert line in out
        return found

    coala = verdict()
    assert coala.num_seeds == 8
    assert coala.shapes.sum() >= 4, coala
    assert (coala.naive_reward < 0.0).all(), coala
    mfos = verdict("estimator=mfos")
    assert not mfos.shapes.any(), mfos
