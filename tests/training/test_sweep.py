"""``dilemmas sweep`` (``dilemmas.training.sweep``): a grid batched into programs,
one run directory per point.

A tiny analytic sweep: ``eta_meta`` and ``gamma`` (floats used only inside JAX)
are vmapped, ``num_naive_steps`` (an int: loop lengths) splits the grid into two
programs; every point's run directory holds what a separate ``dilemmas train`` of
that point gives, to float32 rounding.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from dilemmas.analysis.report_runs import find_runs, group_runs, load_run
from dilemmas.training import runner, sweep
from dilemmas.training.configs import replace_values
from dilemmas.training.presets import get_preset

PRESET = "analytic-shaping"
SET = ["meta_batch=4", "iterations=4"]
GRID = ["eta_meta=0.01,0.05", "num_naive_steps=2,3", "gamma=0.9,0.95"]


@pytest.fixture
def no_compilation(monkeypatch):
    """Fail if the sweep traces or builds an experiment (its plan, a program)."""

    def refuse(*args, **kwargs):
        raise AssertionError("traced before validating the grid")

    monkeypatch.setattr(sweep, "_traceable", refuse)
    monkeypatch.setattr(sweep.SweepExperiment, "__init__", refuse)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["eta_metaa=0.1,0.2"], "eta_metaa"),
        (["eta_meta=0.1,fast"], "cannot set eta_meta='fast'"),
        (["gamma=0.9,1.5"], "gamma must be a number in"),
        (["seed=0,1"], "not a swept field"),
        (["gamma"], "expected KEY=VALUE"),
        (["gamma=0.9,0.9"], "lists a value twice"),
        (["gamma=0.9", "gamma=0.95"], "given twice"),
    ],
)
def test_a_wrong_key_or_value_fails_before_anything_is_compiled(
    tmp_path, no_compilation, grid, message
):
    with pytest.raises(ValueError, match=message):
        sweep.run_sweep(PRESET, grid, tmp_path / "sweep", overrides=SET)
    assert not (tmp_path / "sweep").exists()


def test_the_plan_vmaps_floats_and_groups_by_the_other_fields():
    base = replace_values(get_preset(PRESET), {"meta_batch": 4, "iterations": 4})
    grid = sweep.parse_grid(base, GRID)
    the_plan = sweep.plan(base, grid, seeds=2)
    assert the_plan.vmapped == ("eta_meta", "gamma")
    assert the_plan.static == {"num_naive_steps": "not a float field"}
    assert len(the_plan.points) == 8
    for group in the_plan.groups:
        steps = {the_plan.points[i]["num_naive_steps"] for i in group}
        assert len(group) == 4 and len(steps) == 1
    # a float the experiment turns into a Python value is static
    pool = replace_values(base, {"pool_size": 2})
    mixed = sweep.plan(pool, sweep.parse_grid(pool, ["p_naive=0.5,1"]))
    assert mixed.vmapped == ()
    assert mixed.static == {"p_naive": "the experiment needs its value in Python"}
    assert len(mixed.groups) == 2


@pytest.mark.slow
def test_every_point_matches_its_own_run(tmp_path, capsys):
    """(40 s on a loaded 2-core machine: two programs, a separate run.)"""
    from dilemmas.training import cli

    out = tmp_path / "sweep"
    args = ["sweep", PRESET, "--out", str(out), "--seeds", "2", "--log-every", "2"]
    args += [f"--grid={g}" for g in GRID] + [f"--set={s}" for s in SET]
    assert cli.main([*args, "--no-progress"]) == 0
    record = json.loads((out / sweep.SWEEP_FILE).read_text())
    assert record["vmapped"] == ["eta_meta", "gamma"]
    assert len(record["programs"]) == 2
    runs = find_runs(out / sweep.RUNS_DIR)
    assert len(runs) == 8
    # dilemmas analyze: one group per point (each its own config)
    assert len(group_runs([load_run(r) for r in runs])) == 8
    base = get_preset(PRESET)
    for run_dir in runs[7:]:  # the last point of the second program
        config = json.loads((run_dir / "config.json").read_text())
        assert config["preset"] == PRESET
        point = replace_values(base, config["overrides"])
        separate = tmp_path / f"separate-{run_dir.name}"
        runner.run(
            point.experiment(), separate, preset=PRESET, log_every=2, progress=False
        )
        for name in ("metrics.jsonl",):
            mine = [json.loads(x) for x in (run_dir / name).read_text().splitlines()]
            theirs = [json.loads(x) for x in (separate / name).read_text().splitlines()]
            assert len(mine) == len(theirs) == 4
            for a, b in zip(mine, theirs, strict=True):
                for key in set(a) - {"wall_time"}:
                    np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=1e-6)
        _, mine = runner.load_checkpoint(run_dir, point.experiment())
        _, theirs = runner.load_checkpoint(separate, point.experiment())
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs), strict=True):
            if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
        for name in ("evaluation.json", "summary.json"):
            assert (run_dir / name).is_file()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert (
            summary["headline"].keys()
            == json.loads((separate / "summary.json").read_text())["headline"].keys()
        )
    assert "8 run directories" in capsys.readouterr().out
