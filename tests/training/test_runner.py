"""The run driver (``dilemmas.training.runner``): run directories, checkpoints,
resumption, non-finite stops.

Most tests drive a tiny fake experiment (three parameters per seed, a typed and a
raw PRNG key, metrics that can be made non-finite at a chosen iteration); one runs
a real analytic preset at tiny size. Run directories follow
``docs/run_directory.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import struct
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from dilemmas.training import runner
from dilemmas.training.analytic import PRESETS, make_train

# --------------------------------------------------------------------------------------
# A fake experiment


@dataclasses.dataclass(frozen=True)
class FakeConfig:
    iterations: int = 10
    num_seeds: int = 2
    seed: int = 0
    nan_loss_at: int = 0  # iteration whose loss is NaN for seed 1 (0: never)
    nan_state_at: int = 0  # iteration after which seed 1's params are NaN (0: never)

    def __post_init__(self):
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")

    def experiment(self) -> FakeExperiment:
        return FakeExperiment(self)


class FakeState(NamedTuple):
    params: jax.Array  # [S, 3]
    key: jax.Array  # [S] typed keys
    raw_key: jax.Array  # [S, 2] raw uint32 keys
    step: jax.Array  # [S] int32


class FakeExperiment:
    kind = "fake"
    loss_metrics = ("loss",)
    progress_metrics = ("loss", "reward")

    def __init__(self, config: FakeConfig):
        self.config = config
        self.iterations = config.iterations

    def init(self, key: jax.Array) -> FakeState:
        def one(k):
            k, k_params, k_raw = jax.random.split(k, 3)
            params = jax.random.normal(k_params, (3,))
            return FakeState(params, k, jax.random.key_data(k_raw), jnp.int32(0))

        return jax.vmap(one)(jax.random.split(key, self.config.num_seeds))

    def update(self, state: FakeState) -> tuple[FakeState, dict[str, jax.Array]]:
        cfg = self.config

        def one(s: FakeState, seed: jax.Array):
            key, k_noise = jax.random.split(s.key)
            raw_key, r_noise = jax.random.split(s.raw_key)
            step = s.step + 1
            params = (
                0.9 * s.params
                + 0.1 * jax.random.normal(k_noise, (3,))
                + 0.01 * jax.random.uniform(r_noise, (3,))
            )
            params = jnp.where(
                (step == cfg.nan_state_at) & (seed == 1), jnp.nan, params
            )
            loss = jnp.sum(s.params**2)
            loss = jnp.where((step == cfg.nan_loss_at) & (seed == 1), jnp.nan, loss)
            # agent 1's reward is undefined every fourth iteration (not a loss)
            reward = jnp.stack(
                [s.params[0], jnp.where(step % 4 == 0, jnp.nan, -s.params[0])]
            )
            return FakeState(params, key, raw_key, step), {
                "loss": loss,
                "reward": reward,
            }

        return jax.vmap(one)(state, jnp.arange(cfg.num_seeds))

    def params(self, state: FakeState) -> jax.Array:
        return state.params

    def summary(self, state: FakeState, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "loss": np.asarray(metrics["loss"]).tolist(),
            "norm": float(jnp.linalg.norm(state.params)),
        }

    def evaluate(self, state: FakeState) -> dict[str, Any]:
        probs = np.asarray(jax.nn.sigmoid(state.params[:, :1] + jnp.zeros(5)))
        return {
            "game": {
                "id": "fake",
                "actions": ["C", "D"],
                "payoffs": [[[1, 1], [-1, 2]], [[2, -1], [0, 0]]],
            },
            "num_seeds": self.config.num_seeds,
            "memory_one": {"meta_0": probs.tolist()},
        }


def _run(run_dir: Path, config: FakeConfig = FakeConfig(), **kwargs) -> dict:
    settings = {"log_every": 2, "checkpoint_every": 4, "progress": False}
    return runner.run(config.experiment(), run_dir, **{**settings, **kwargs})


def _lines(run_dir: Path) -> list[dict]:
    text = (run_dir / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _final_params(run_dir: Path, config: FakeConfig = FakeConfig()) -> np.ndarray:
    iteration, state = runner.load_checkpoint(run_dir, config.experiment())
    assert iteration == config.iterations
    return np.asarray(state.params)


def _tensorboard_steps(path: Path) -> dict[str, list[int]]:
    """Scalar steps per tag of one TensorBoard event file (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    data, pos, steps = path.read_bytes(), 0, {}
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
        for value in event.summary.value:
            steps.setdefault(value.tag, []).append(event.step)
    return steps


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted fake run (10 iterations, chunks of 2, checkpoints every 4)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    _run(run_dir)
    return run_dir


# --------------------------------------------------------------------------------------
# The run directory


def test_run_directory_follows_the_contract(reference, capsys):
    files = {p.relative_to(reference).as_posix() for p in reference.rglob("*")}
    assert {
        "config.json",
        "metrics.jsonl",
        "evaluation.json",
        "summary.json",
        "checkpoints",
        "checkpoints/latest.json",
        "checkpoints/iter_00000004.msgpack",
        "checkpoints/iter_00000008.msgpack",
        "checkpoints/iter_00000010.msgpack",
    } <= files
    assert not [f for f in files if f.endswith(".tmp")]
    events = list(reference.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0

    config = json.loads((reference / "config.json").read_text())
    assert config["format_version"] == runner.FORMAT_VERSION
    assert config["kind"] == "fake" and config["num_seeds"] == 2
    assert config["config"] == dataclasses.asdict(FakeConfig())
    assert config["run"] == {
        "log_every": 2,
        "checkpoint_every": 4,
        "keep_checkpoints": 3,
        "seed": 0,
    }
    assert {"dilemmas_version", "preset", "overrides", "created"} <= set(config)

    lines = _lines(reference)
    assert [line["iteration"] for line in lines] == list(range(1, 11))
    walls = [line["wall_time"] for line in lines]
    assert walls == sorted(walls)
    for line in lines:
        assert set(line) == {"iteration", "wall_time", "loss", "reward"}
        assert len(line["loss"]) == 2 and all(
            isinstance(x, float) for x in line["loss"]
        )
        assert np.shape(line["reward"]) == (2, 2)
    assert lines[3]["reward"][0][1] is None and lines[2]["reward"][0][1] is not None

    steps = _tensorboard_steps(events[0])
    assert steps["loss"] == list(range(1, 11)) and steps["reward"] == list(range(1, 11))

    latest = json.loads((reference / "checkpoints/latest.json").read_text())
    checkpoint = (reference / "checkpoints/iter_00000010.msgpack").read_bytes()
    metrics = (reference / "metrics.jsonl").read_bytes()
    assert latest == {
        "iteration": 10,
        "file": "iter_00000010.msgpack",
        "sha256": hashlib.sha256(checkpoint).hexdigest(),
        "size": len(checkpoint),
        "metrics_bytes": len(metrics),
        "metrics_sha256": hashlib.sha256(metrics).hexdigest(),
    }
    assert config["integrity"] == runner.config_integrity(config)
    evaluation = json.loads((reference / "evaluation.json").read_text())
    assert evaluation["num_seeds"] == 2 and "game" in evaluation
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["message"] == ""
    assert summary["iterations_completed"] == 10 and summary["wall_time"] > 0
    assert summary["headline"]["loss"] == pytest.approx(
        np.mean(summary["headline_per_seed"]["loss"])
    )
    assert isinstance(summary["headline"]["norm"], float)


def test_result_is_printed_with_spread_over_seeds(tmp_path, capsys):
    _run(tmp_path / "run", preset="fake-preset")
    out = capsys.readouterr().out
    assert "fake-preset: completed after 10 iterations" in out
    assert "loss" in out and "± " in out and "over 2 seeds" in out


def test_checkpoints_are_msgpack_not_pickle_and_only_the_newest_are_kept(tmp_path):
    run_dir = tmp_path / "run"
    _run(run_dir, log_every=1, checkpoint_every=2, keep_checkpoints=2)
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["iter_00000008.msgpack", "iter_00000010.msgpack", "latest.json"]
    data = (run_dir / "checkpoints/iter_00000010.msgpack").read_bytes()
    assert not data.startswith(b"\x80")  # a pickle stream starts with PROTO
    restored = serialization.msgpack_restore(data)
    assert set(restored) == {"params", "key", "raw_key", "step"}
    assert restored["key"].dtype == np.uint32 and restored["key"].shape == (2, 2)
    assert restored["step"].tolist() == [10, 10]


def test_state_bytes_round_trip_typed_and_raw_keys():
    state = FakeConfig().experiment().init(jax.random.key(3))
    state = state._replace(key=jax.random.split(jax.random.key(1, impl="rbg"), 2))
    back = runner.state_from_bytes(state, runner.state_to_bytes(state))
    assert jax.random.key_impl(back.key) == jax.random.key_impl(state.key)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(back), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    with pytest.raises(ValueError, match="not a checkpoint"):
        runner.state_from_bytes(state, b"garbage")
    wrong = runner.state_to_bytes(state._replace(params=jnp.zeros((2, 4))))
    with pytest.raises(ValueError, match="shape"):
        runner.state_from_bytes(state, wrong)


def test_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "file.json"
    runner.atomic_write(target, b"old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(runner.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        runner.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


# --------------------------------------------------------------------------------------
# Interruption and resumption


def _interrupt_at(monkeypatch, iteration: int, after_writing: bool) -> None:
    """Raise KeyboardInterrupt in the host loop once the chunk holding
    ``iteration`` is computed (before or after its metric lines are written)."""
    original = runner._Loop.write_metrics

    def write_metrics(self, writer, metrics, start, count, *args):
        if start < iteration <= start + count:
            if after_writing:
                original(self, writer, metrics, start, count, *args)
            raise KeyboardInterrupt
        return original(self, writer, metrics, start, count, *args)

    monkeypatch.setattr(runner._Loop, "write_metrics", write_metrics)


@pytest.mark.parametrize(("iteration", "after_writing"), [(3, True), (8, False)])
def test_resume_after_interrupt_is_bitwise_identical(
    reference, tmp_path, monkeypatch, iteration, after_writing
):
    run_dir = tmp_path / "run"
    _interrupt_at(monkeypatch, iteration, after_writing)
    with pytest.raises(KeyboardInterrupt):
        _run(run_dir)
    monkeypatch.undo()
    completed = (iteration - 1) // 2 * 2  # the last whole chunk before it
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["iterations_completed"] == completed
    assert "--resume" in summary["message"]
    assert runner.latest_checkpoint(run_dir)[0] == completed
    assert len(_lines(run_dir)) == completed

    resumed = runner.resume(
        run_dir, experiment=FakeConfig().experiment(), progress=False
    )
    assert resumed["status"] == "completed"
    final, expected = _final_params(run_dir), _final_params(reference)
    assert final.tobytes() == expected.tobytes()
    lines, reference_lines = _lines(run_dir), _lines(reference)
    assert [line["iteration"] for line in lines] == list(range(1, 11))
    for line, ref in zip(lines, reference_lines, strict=True):
        assert {**line, "wall_time": 0} == {**ref, "wall_time": 0}
    # TensorBoard: the resumed session writes the steps after the checkpoint
    resumed_events = max(run_dir.glob("events.out.tfevents.*"), key=lambda p: p.name)
    steps = _tensorboard_steps(resumed_events)["loss"]
    assert steps == list(range(completed + 1, 11))


def test_resume_cuts_metrics_back_to_the_checkpoint_and_drops_a_torn_line(
    reference, tmp_path, monkeypatch
):
    run_dir = tmp_path / "run"
    _interrupt_at(monkeypatch, 7, after_writing=True)
    with pytest.raises(KeyboardInterrupt):
        _run(run_dir)
    monkeypatch.undo()
    # What a SIGKILL could leave: no summary, lines past the checkpoint, a torn
    # last line and a stray temporary file.
    (run_dir / "summary.json").unlink()
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 7, "wall_time": 1.0, "loss": [1, 2]}\n{"iterat')
    (run_dir / "checkpoints" / ".iter_00000008.msgpack.x.tmp").write_bytes(b"torn")
    runner.resume(run_dir, experiment=FakeConfig().experiment(), progress=False)
    assert [line["iteration"] for line in _lines(run_dir)] == list(range(1, 11))
    assert not list(run_dir.rglob("*.tmp"))
    assert _final_params(run_dir).tobytes() == _final_params(reference).tobytes()


def test_resume_without_any_checkpoint_starts_over(reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _interrupt_at(monkeypatch, 1, after_writing=True)
    with pytest.raises(KeyboardInterrupt):
        _run(run_dir)
    monkeypatch.undo()
    assert runner.latest_checkpoint(run_dir) is None
    assert (run_dir / "metrics.jsonl").read_text() == ""
    runner.resume(run_dir, experiment=FakeConfig().experiment(), progress=False)
    assert _final_params(run_dir).tobytes() == _final_params(reference).tobytes()


def test_resume_after_the_last_checkpoint_only_evaluates(reference, tmp_path):
    """A run killed after its final checkpoint but before summary.json."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    (run_dir / "summary.json").unlink()
    (run_dir / "evaluation.json").unlink()
    summary = runner.resume(run_dir, experiment=FakeConfig().experiment())
    assert summary["status"] == "completed" and summary["iterations_completed"] == 10
    reference_summary = json.loads((reference / "summary.json").read_text())
    assert summary["headline"] == pytest.approx(reference_summary["headline"])
    assert (run_dir / "evaluation.json").read_text() == (
        reference / "evaluation.json"
    ).read_text()
    assert len(_lines(run_dir)) == 10


# --------------------------------------------------------------------------------------
# Non-finite values


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    config = FakeConfig(nan_loss_at=7)
    with pytest.raises(runner.NonFiniteLossError) as err:
        _run(run_dir, config)
    message = str(err.value)
    assert "non-finite loss (nan) at iteration 7, seed 1" in message
    assert "iter_00000004.msgpack (iteration 4)" in message
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["message"] == message
    assert summary["iterations_completed"] == 6
    assert err.value.summary == summary
    assert [line["iteration"] for line in _lines(run_dir)] == list(range(1, 7))
    assert runner.latest_checkpoint(run_dir)[0] == 4
    iteration, state = runner.load_checkpoint(run_dir, config.experiment())
    assert iteration == 4 and np.all(np.isfinite(state.params))
    assert not (run_dir / "evaluation.json").exists()


def test_non_finite_state_stops_before_it_is_checkpointed(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(
        runner.NonFiniteLossError, match="state after iteration 4, seed 1"
    ):
        _run(run_dir, FakeConfig(nan_state_at=4))
    assert runner.latest_checkpoint(run_dir) is None
    assert len(_lines(run_dir)) == 3


# --------------------------------------------------------------------------------------
# Refusals and bad input


def test_settings_are_validated_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="multiple of log_every = 3"):
        _run(tmp_path / "a", log_every=3, checkpoint_every=4)
    with pytest.raises(ValueError, match="log_every = 20 is more than"):
        _run(tmp_path / "b", log_every=20, checkpoint_every=20)
    with pytest.raises(ValueError, match="keep_checkpoints must be an int >= 1"):
        _run(tmp_path / "c", keep_checkpoints=0)
    assert not list(tmp_path.iterdir())
    defaults = runner.make_settings(2000)
    assert defaults.log_every == 20 and defaults.checkpoint_every == 200
    assert runner.make_settings(7, checkpoint_every=4).log_every == 1


def test_refuses_to_overwrite_a_non_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(runner.RunDirectoryError, match="non-empty directory.*--resume"):
        _run(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_refuses_to_resume_a_completed_run(reference):
    with pytest.raises(runner.RunDirectoryError, match="completed run"):
        runner.resume(reference, experiment=FakeConfig().experiment())


def test_resume_errors_are_clear(tmp_path, reference):
    with pytest.raises(runner.RunDirectoryError, match="no run directory at"):
        runner.resume(tmp_path / "missing")
    with pytest.raises(runner.RunDirectoryError, match="no config.json"):
        runner.resume(tmp_path)
    future = tmp_path / "future"
    future.mkdir()
    config = json.loads((reference / "config.json").read_text())
    (future / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(runner.RunDirectoryError, match=r"format_version 99.*reads"):
        runner.resume(future)
    (future / "config.json").write_text("{not json")
    with pytest.raises(runner.RunDirectoryError, match="not readable JSON"):
        runner.resume(future)
    (future / "config.json").write_text(json.dumps(config))
    with pytest.raises(runner.RunDirectoryError, match="not started from a preset"):
        runner.resume(future)
    with pytest.raises(runner.RunDirectoryError, match="does not match"):
        runner.resume(future, experiment=FakeConfig(iterations=12).experiment())


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _interrupt_at(monkeypatch, 6, after_writing=True)
    with pytest.raises(KeyboardInterrupt):
        _run(run_dir)
    monkeypatch.undo()
    (run_dir / "checkpoints/iter_00000004.msgpack").write_bytes(b"garbage")
    with pytest.raises(runner.RunDirectoryError, match="is corrupt: its sha256"):
        runner.resume(run_dir, experiment=FakeConfig().experiment())
    # a pointer of an older version (no sha256): restored unverified, still refused
    latest = run_dir / "checkpoints/latest.json"
    latest.write_text('{"iteration": 4, "file": "iter_00000004.msgpack"}')
    with (
        pytest.warns(RuntimeWarning, match="not verified"),
        pytest.raises(runner.RunDirectoryError, match="cannot restore"),
    ):
        runner.resume(run_dir, experiment=FakeConfig().experiment())
    latest.write_text('{"iteration": 8, "file": "iter_00000008.msgpack"}')
    with pytest.raises(runner.RunDirectoryError, match="names iter_00000008.msgpack, "):
        runner.resume(run_dir, experiment=FakeConfig().experiment())


def test_experiment_metrics_must_fit_the_contract(tmp_path):
    class Bad(FakeExperiment):
        loss_metrics = ("missing",)

    with pytest.raises(ValueError, match=r"loss_metrics \['missing'\]"):
        runner.run(Bad(FakeConfig()), tmp_path / "run", progress=False)


# --------------------------------------------------------------------------------------
# A real preset


def test_analytic_preset_run_matches_make_train_and_resumes_from_its_preset(
    tmp_path, monkeypatch
):
    config = PRESETS["analytic-mixed-pool"].replace(
        iterations=4, meta_batch=2, num_naive_steps=2, num_seeds=2, pool_size=2
    )
    run_dir = tmp_path / "run"
    _interrupt_at(monkeypatch, 3, after_writing=True)
    with pytest.raises(KeyboardInterrupt):
        runner.run(
            config.experiment(),
            run_dir,
            preset="analytic-mixed-pool",
            overrides={"iterations": 4},
            log_every=2,
            checkpoint_every=2,
            progress=False,
        )
    monkeypatch.undo()
    summary = runner.resume(run_dir, progress=False)  # rebuilt from config.json
    assert summary["status"] == "completed"
    assert set(summary["headline"]) >= {"reward_vs_naive", "reward_vs_meta"}

    _, state = runner.load_checkpoint(run_dir, config.experiment())
    keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
    direct = jax.jit(jax.vmap(make_train(config)))(keys)
    np.testing.assert_allclose(state.params, direct.params, rtol=1e-5, atol=1e-6)

    line = _lines(run_dir)[0]
    assert np.shape(line["reward_vs_naive"]) == (2, 2)
    assert {"reward_vs_meta", "cooperation_vs_meta", "naive_reward"} <= set(line)
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["game"]["payoffs"] == [[[1, 1], [-1, 2]], [[2, -1], [0, 0]]]
    rows = {(pair["row"], pair["col"]) for pair in evaluation["pairs"]}
    assert rows == {
        ("meta_0", "naive"),
        ("meta_1", "naive"),
        ("meta_0", "meta_1"),
        ("meta_1", "meta_0"),
    }
    for pair in evaluation["pairs"]:
        assert np.shape(pair["reward"]) == np.shape(pair["cooperation"]) == (2, 2)
    memory = evaluation["memory_one"]
    assert set(memory) == {
        "meta_0",
        "meta_1",
        "naive (end, vs meta_0)",
        "naive (end, vs meta_1)",
    }
    np.testing.assert_allclose(
        memory["meta_1"], jax.nn.sigmoid(state.params[:, 1]), rtol=1e-6
    )
    series = evaluation["profiles"]["series"]
    assert np.shape(series["meta reward"]) == (2, 3)  # seeds, naive steps 0..M


class SlowFirstChunk(FakeExperiment):
    """The fake experiment whose first iteration waits 0.5 s on the host."""

    def update(self, state: FakeState) -> tuple[FakeState, dict[str, jax.Array]]:
        import time

        def wait(step):
            if int(step[0]) == 0:
                time.sleep(0.5)
            return np.zeros((), np.float32)

        pause = jax.pure_callback(
            wait, jax.ShapeDtypeStruct((), jnp.float32), state.step
        )
        state = state._replace(params=state.params + pause)
        return super().update(state)


def test_the_bar_says_it_compiles_then_counts_the_rate_from_the_first_chunk(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(runner, "TICK_SECONDS", 0.05)
    experiment = SlowFirstChunk(FakeConfig(iterations=6))
    runner.run(experiment, tmp_path / "run", log_every=2, checkpoint_every=2)
    err = capsys.readouterr().err
    assert "compiling + first chunk" in err
    assert "the rate and ETA count from here" in err
    assert err.count("compiling + first chunk") >= 3  # refreshed while it waited
    _run(tmp_path / "quiet")  # no bar: nothing said
    assert "compiling" not in capsys.readouterr().err
