"""benchmarks/bench_accelerator.py: the JSON it writes, and its wall-clock budget."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_accelerator  # noqa: E402

SECTIONS = ("env", "training", "run")


def _positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def _load(path: Path) -> dict:
    result = json.loads(path.read_text())
    for key in ("device", "quick", "settings", "skipped", "total_wall_seconds"):
        assert key in result
    for key in ("platform", "device_kind", "devices", "jax", "description"):
        assert result["device"][key]
    assert _positive(result["total_wall_seconds"])
    return result


def _check_ran(result: dict) -> None:
    for row in result["env"]:
        assert row["skipped"] is False
        for key in ("compile_seconds", "seconds_per_call", "steps_per_second"):
            assert _positive(row[key]), (row["name"], key)
    for row in result["training"]:
        assert row["skipped"] is False
        assert row["shapes"]
        for key in ("compile_seconds", "seconds_per_iteration"):
            assert _positive(row[key]), (row["name"], key)
        if row["env_steps_per_iteration"] is not None:
            assert _positive(row["env_steps_per_second"])
    for row in result["run"]:
        assert row["skipped"] is False
        assert row["status"] == "completed"
        assert row["iterations_completed"] == row["iterations"]
        assert _positive(row["wall_seconds"])
        assert row["headline"]
        assert all(math.isfinite(v) for v in row["headline"].values())


def test_spent_budget_skips_every_item(tmp_path):
    out = tmp_path / "skipped.json"
    bench_accelerator.main(["--quick", "--budget-s", "0", "--out", str(out)])
    result = _load(out)
    expected = len(bench_accelerator.ENV_IDS) + len(bench_accelerator.TRAINING_PRESETS)
    assert len(result["skipped"]) == expected + 1
    for section in SECTIONS:
        assert result[section]
        for row in result[section]:
            assert row["skipped"] is True
            assert "budget spent" in row["reason"]
            assert "steps_per_second" not in row
    assert result["total_wall_seconds"] < 30


def test_budget_runs_items_until_spent():
    clock = iter([0.0, 5.0, 12.0]).__next__
    budget = bench_accelerator.Budget(10.0, clock=clock)
    assert budget.skip_reason() is None
    reason = budget.skip_reason()
    assert reason is not None and "12.0 s elapsed" in reason


def test_quick_env_and_analytic_figures(tmp_path):
    out = tmp_path / "small.json"
    bench_accelerator.main(
        [
            "--quick",
            "--sections",
            "env",
            "training",
            "--envs",
            "ipd-v0",
            "--presets",
            "analytic-shaping",
            "--out",
            str(out),
        ]
    )
    result = _load(out)
    assert [row["name"] for row in result["env"]] == ["ipd-v0"]
    assert [row["name"] for row in result["training"]] == ["analytic-shaping"]
    assert result["run"] == [] and result["skipped"] == []
    assert result["env"][0]["batch"] == 64
    _check_ran(result)


@pytest.mark.slow
def test_quick_run_has_every_section(tmp_path):
    out = tmp_path / "quick.json"
    bench_accelerator.main(["--quick", "--out", str(out)])
    result = _load(out)
    assert result["skipped"] == []
    assert [r["name"] for r in result["env"]] == list(bench_accelerator.ENV_IDS)
    assert [r["name"] for r in result["training"]] == list(
        bench_accelerator.TRAINING_PRESETS
    )
    assert [r["name"] for r in result["run"]] == [bench_accelerator.RUN_PRESET]
    _check_ran(result)
    shaping = {r["name"]: r for r in result["training"]}["ipd-shaping"]
    assert _positive(shaping["env_steps_per_second"])
