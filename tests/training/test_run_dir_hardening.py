"""Run directories under stress (issue 14): one writer, integrity, corrupt files,
SIGTERM, any-integer seeds, and validation before anything is compiled.

A tiny fake experiment (three parameters per seed) is registered as the preset
``tiny`` so that ``dilemmas train`` and ``--resume`` rebuild it from
``config.json``. The corruption fuzzing (:func:`fuzz`) resumes up to the point
where training would start (``_Loop.drive`` is replaced by a recorder), so each of
its cases takes milliseconds; CI runs a sample of it, and
``pytest -m slow tests/training/test_run_dir_hardening.py -s`` runs all of it and
prints the figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.training import presets as presets_module
from dilemmas.training import runner
from dilemmas.training.cli import main
from dilemmas.training.configs import check_ints, check_seeds


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    iterations: int = 10
    num_seeds: int = 2
    seed: int = 0

    def __post_init__(self):
        check_seeds(self)
        check_ints(self, {"iterations": 1, "num_seeds": (1, 64)})

    def experiment(self) -> TinyExperiment:
        return TinyExperiment(self)


class TinyExperiment:
    kind = "tiny"
    loss_metrics = ("loss",)
    progress_metrics = ("loss",)

    def __init__(self, config: TinyConfig):
        self.config = config
        self.iterations = config.iterations

    def init(self, key: jax.Array) -> dict[str, jax.Array]:
        keys = jax.random.split(key, self.config.num_seeds)
        params = jax.vmap(lambda k: jax.random.normal(k, (3,)))(keys)
        return {"params": params, "key": keys}

    def update(self, state):
        def one(params, key):
            key, noise = jax.random.split(key)
            params = 0.9 * params + 0.1 * jax.random.normal(noise, (3,))
            return params, key, jnp.sum(params**2)

        params, keys, loss = jax.vmap(one)(state["params"], state["key"])
        return {"params": params, "key": keys}, {"loss": loss}

    def params(self, state) -> jax.Array:
        return state["params"]

    def summary(self, state, metrics) -> dict[str, Any]:
        return {"loss": np.asarray(metrics["loss"]).tolist()}

    def evaluate(self, state) -> dict[str, Any]:
        return {"game": {"id": "tiny"}, "num_seeds": self.config.num_seeds}


@pytest.fixture
def tiny_preset(monkeypatch):
    original = presets_module.presets
    monkeypatch.setattr(
        presets_module, "presets", lambda: {**original(), "tiny": TinyConfig()}
    )


def _interrupted_run(run_dir: Path, at: int = 7, **kwargs) -> None:
    """A ``tiny`` run interrupted in the chunk holding iteration ``at`` (chunks of
    2, checkpoints every 4): checkpointed at the chunk before it."""
    original = runner._Loop.write_metrics

    def write_metrics(self, writer, metrics, start, count, *args):
        original(self, writer, metrics, start, count, *args)
        if start < at <= start + count:
            raise KeyboardInterrupt

    runner._Loop.write_metrics = write_metrics
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(
                TinyConfig(**kwargs).experiment(),
                run_dir,
                preset="tiny",
                log_every=2,
                checkpoint_every=4,
                progress=False,
            )
    finally:
        runner._Loop.write_metrics = original


def _final_params(run_dir: Path) -> bytes:
    _, state = runner.load_checkpoint(run_dir, TinyConfig().experiment())
    return np.asarray(state["params"]).tobytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted tiny run."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    runner.run(
        TinyConfig().experiment(),
        run_dir,
        preset="tiny",
        log_every=2,
        checkpoint_every=4,
        progress=False,
    )
    return run_dir


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A tiny run interrupted after iteration 6 (checkpoints 4 and 6)."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    _interrupted_run(run_dir)
    return run_dir


@pytest.fixture
def copy(interrupted, tmp_path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(interrupted, run_dir)
    return run_dir


def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    """Edit a JSON file in place (``edit`` mutates the record)."""
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def _keep_only(*keys: str) -> Callable[[dict], None]:
    def edit(record: dict) -> None:
        for key in set(record) - set(keys):
            del record[key]

    return edit


# --------------------------------------------------------------------------------------
# 1. One writer per run directory


def test_a_second_lock_is_refused_and_names_the_holder(tmp_path):
    refused = pytest.raises(runner.RunDirectoryError, match=f"pid {os.getpid()}")
    with (
        runner.lock_run_directory(tmp_path),
        refused,
        runner.lock_run_directory(tmp_path),
    ):
        pass
    with runner.lock_run_directory(tmp_path):  # released
        pass


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process holding the run directory's lock (plain flock, as any
    version of dilemmas takes it)."""
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(run_dir / runner.LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, str(os.getpid()).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_exits_2_naming_the_holders_pid(
    tiny_preset, copy, tmp_path, capsys
):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    holders = [_hold_lock(copy), _hold_lock(fresh)]
    try:
        metrics = (copy / "metrics.jsonl").read_bytes()
        assert main(["train", "--resume", str(copy), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"in use by another dilemmas process (pid {holders[0].pid}" in err
        assert (copy / "metrics.jsonl").read_bytes() == metrics
        argv = ["train", "tiny", "--run-dir", str(fresh), "--no-progress"]
        assert main(argv) == 2
        assert f"(pid {holders[1].pid}" in capsys.readouterr().err
        assert [p.name for p in fresh.iterdir()] == [runner.LOCK_FILE]
    finally:
        for holder in holders:
            holder.send_signal(signal.SIGKILL)  # the kernel drops the lock
            holder.wait()
            holder.stdout.close()
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 0
    assert main(["train", "tiny", "--run-dir", str(fresh), "--no-progress"]) == 0


# --------------------------------------------------------------------------------------
# 2. Integrity


def test_flipped_checkpoint_bytes_are_refused(copy):
    path = copy / "checkpoints/iter_00000006.msgpack"
    data = bytearray(path.read_bytes())
    data[-80:-16] = bytes(b ^ 0x01 for b in data[-80:-16])  # 64 float bytes
    path.write_bytes(bytes(data))
    with pytest.raises(runner.RunDirectoryError, match="corrupt: its sha256"):
        runner.resume(copy, progress=False, experiment=TinyConfig().experiment())


def test_a_pointer_without_checksums_still_resumes(tiny_preset, copy, reference):
    """Run directories of older versions: latest.json without sha256 or metrics
    records, config.json without integrity."""
    _edit_json(
        copy / "checkpoints/latest.json",
        _keep_only("iteration", "file"),
    )
    _edit_json(copy / "config.json", lambda r: r.pop("integrity"))
    with pytest.warns(RuntimeWarning, match="not verified"):
        runner.resume(copy, progress=False)
    assert _final_params(copy) == _final_params(reference)


@pytest.mark.parametrize(
    ("pointer", "match"),
    [
        ({"file": "../config.json"}, "'file' must be the name of a checkpoint"),
        ({"file": "sub/iter_00000006.msgpack"}, "'file' must be the name"),
        ({"file": "/tmp/iter_00000006.msgpack"}, "'file' must be the name"),
        ({"iteration": 4}, "names iter_00000006.msgpack but says iteration 4"),
        ({"iteration": "6"}, "'iteration' must be an int >= 1"),
        ({"sha256": "00"}, "'sha256' must be a sha256 hex digest"),
    ],
)
def test_latest_json_only_names_a_consistent_file_inside_checkpoints(
    copy, pointer, match
):
    _edit_json(copy / "checkpoints/latest.json", lambda r: r.update(pointer))
    with pytest.raises(runner.RunDirectoryError, match=match):
        runner.resume(copy, progress=False, experiment=TinyConfig().experiment())


def test_an_edited_config_is_refused_naming_the_fields(tiny_preset, copy, capsys):
    def edit(record):
        record["config"]["iterations"] = 12
        record["run"]["keep_checkpoints"] = 5

    _edit_json(copy / "config.json", edit)
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "was changed after the run wrote it" in err
    assert "config.iterations, run.keep_checkpoints" in err
    assert "--set key=value" in err


def test_edited_metric_lines_before_the_checkpoint_are_refused(copy):
    path = copy / "metrics.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"iteration": 3', b'"iteration": 3 '))
    with pytest.raises(runner.RunDirectoryError, match="metrics.jsonl does not match"):
        runner.resume(copy, progress=False, experiment=TinyConfig().experiment())


def test_resume_with_set_changes_a_field_on_purpose_and_records_it(
    tiny_preset, copy, capsys
):
    argv = ["train", "--resume", str(copy), "--no-progress"]
    assert main([*argv, "--set", "seed=3"]) == 2
    assert "seed of a run cannot change" in capsys.readouterr().err
    assert main([*argv, "--set", "iterations=12"]) == 0
    config = json.loads((copy / "config.json").read_text())
    assert config["config"]["iterations"] == 12
    (entry,) = config["resumed_with_overrides"]
    assert entry["iteration"] == 6
    assert entry["set"] == {"iterations": 12}
    assert entry["previous"] == {"iterations": 10}
    assert config["integrity"] == runner.config_integrity(config)
    assert config["overrides"] == {}  # the values the run was created with
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == list(range(1, 13))
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["iterations_completed"] == 12


# --------------------------------------------------------------------------------------
# 3. Corrupt metadata: clear errors (exit 2), never a traceback


def _set_line(index: int, **changes) -> Callable[[Path], None]:
    def corrupt(run_dir: Path) -> None:
        path = run_dir / "metrics.jsonl"
        lines = path.read_text().splitlines()
        lines[index] = json.dumps({**json.loads(lines[index]), **changes})
        path.write_text("\n".join(lines) + "\n")

    return corrupt


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda run_dir: (run_dir / name).write_bytes(data)


def _legacy(run_dir: Path) -> None:
    """Drop the records older versions did not write."""
    _edit_json(
        run_dir / "checkpoints/latest.json",
        _keep_only("iteration", "file"),
    )
    _edit_json(run_dir / "config.json", lambda r: r.pop("integrity"))


CLEAR_ERRORS = {
    "metrics iteration as a string": (_set_line(2, iteration="3"), "metrics.jsonl"),
    "summary holding []": (_write("summary.json", b"[]"), "summary.json"),
    "summary status unknown": (
        _write("summary.json", b'{"status": 5, "iterations_completed": 6}'),
        "not a run summary",
    ),
    "latest.json garbage": (_write("checkpoints/latest.json", b"\x00\xff"), "latest"),
    "latest.json []": (_write("checkpoints/latest.json", b"[]"), "latest.json"),
    "latest.json truncated": (
        _write("checkpoints/latest.json", b'{"iteration": 6, "fi'),
        "latest.json is not readable JSON",
    ),
    "config.json non-UTF-8": (_write("config.json", b"{\xff\xfe}"), "config.json"),
    "config.json truncated": (_write("config.json", b'{"format_'), "config.json"),
    "config.json NaN": (_write("config.json", b'{"format_version": NaN}'), "NaN"),
    "config.json nested deeply": (_write("config.json", b"[" * 100_000), "deeply"),
    "metrics.jsonl missing": (
        lambda d: (d / "metrics.jsonl").unlink(),
        "metrics.jsonl is missing",
    ),
    "checkpoints emptied": (
        lambda d: shutil.rmtree(d / "checkpoints"),
        "there is no checkpoint",
    ),
}


@pytest.mark.parametrize(("legacy"), [False, True], ids=["current", "legacy"])
@pytest.mark.parametrize("name", sorted(CLEAR_ERRORS))
def test_corrupt_metadata_exits_2_with_a_clear_message(
    tiny_preset, copy, capsys, name, legacy
):
    corrupt, expected = CLEAR_ERRORS[name]
    if legacy:
        _legacy(copy)
    corrupt(copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main(["train", "--resume", str(copy), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dilemmas train: error:") and expected in err


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda r: r.update(run=[]), "'run' must be an object"),
        (lambda r: r.update(kind=3), "'kind' must be a string"),
        (lambda r: r.update(config=[1]), "'config' must be an object"),
        (lambda r: r["config"].update(iterations="5"), "invalid stored TinyConfig"),
        (lambda r: r["run"].update(seed=1.5), "seed must be an integer"),
        (lambda r: r.pop("config"), "has no 'config' entry"),
        (lambda r: r.update(format_version=True), "format_version True"),
    ],
)
def test_legacy_config_entries_of_wrong_types_are_clear_errors(
    tiny_preset, copy, edit, match
):
    _legacy(copy)
    _edit_json(copy / "config.json", edit)
    with pytest.raises(runner.RunDirectoryError, match=match):
        runner.resume(copy, progress=False)


# --------------------------------------------------------------------------------------
# 4. SIGTERM


def test_sigterm_is_handled_like_ctrl_c(tmp_path, monkeypatch, reference):
    """In process: SIGTERM during the chunk of iterations 7 and 8; the run stops
    at the end of that chunk."""
    original = runner._Loop.write_metrics

    def write_metrics(self, writer, metrics, start, count, *args):
        original(self, writer, metrics, start, count, *args)
        if start < 7 <= start + count:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(runner._Loop, "write_metrics", write_metrics)
    run_dir = tmp_path / "run"
    with pytest.raises(runner.Terminated):
        runner.run(
            TinyConfig().experiment(),
            run_dir,
            preset="tiny",
            log_every=2,
            checkpoint_every=4,
            progress=False,
        )
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["message"].startswith("interrupted by SIGTERM after iteration 8")
    assert runner.latest_checkpoint(run_dir)[0] == 8
    monkeypatch.undo()
    runner.resume(run_dir, experiment=TinyConfig().experiment(), progress=False)
    assert _final_params(run_dir) == _final_params(reference)


_SUBPROCESS = """
import runpy, sys
from dilemmas.training import presets
from dilemmas.training.cli import main
from dilemmas.training.configs import check_ints, check_seeds

tiny = runpy.run_path(sys.argv[1])["TinyConfig"]
presets.presets = lambda: {"tiny": tiny(iterations=10**6)}
sys.exit(main(["train", "tiny", "--run-dir", sys.argv[2], "--no-progress",
               "--log-every", "1", "--checkpoint-every", "50"]))
"""


def test_sigterm_to_dilemmas_train_exits_143_after_checkpointing(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", _SUBPROCESS, __file__, str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    try:
        # two lines: the first chunk is complete (chunks are one iteration)
        while _line_count(run_dir / "metrics.jsonl") < 2:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "no metrics within 120 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 128 + signal.SIGTERM
        assert "interrupted (SIGTERM)" in process.stderr.read()
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["message"].startswith("interrupted by SIGTERM after iteration")
    done = summary["iterations_completed"]
    assert done >= 1 and runner.latest_checkpoint(run_dir)[0] == done
    assert _line_count(run_dir / "metrics.jsonl") == done


def _line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------------------
# 5. Seeds


def test_any_integer_seed_gets_its_own_key_and_round_trips(tiny_preset, tmp_path):
    finals = {}
    for seed in (0, 2**32, 2**70, -1):
        run_dir = tmp_path / f"seed{seed}"
        argv = ["train", "tiny", "--set", f"seed={seed}", "--set", "iterations=2"]
        assert main([*argv, "--run-dir", str(run_dir), "--no-progress"]) == 0
        config = json.loads((run_dir / "config.json").read_text())
        assert config["config"]["seed"] == seed and config["run"]["seed"] == seed
        _, state = runner.load_checkpoint(run_dir, TinyConfig(seed=seed).experiment())
        finals[seed] = np.asarray(state["params"]).tobytes()
    assert len(set(finals.values())) == 4  # 2**32 no longer aliases 0
    # small seeds keep jax.random.key(seed): recorded results stay bit-identical
    experiment = TinyConfig(iterations=2).experiment()
    state = experiment.init(jax.random.key(0))
    chunk = runner._chunk_fn(experiment, 1)  # the run's chunks: one iteration
    for _ in range(2):
        state, _, _ = chunk(state)
    assert np.asarray(state["params"]).tobytes() == finals[0]


@pytest.mark.parametrize("name", ["analytic", "shaping"])
def test_configs_take_any_integer_seed_and_refuse_others(name):
    from dilemmas.training.analytic import AnalyticConfig
    from dilemmas.training.shaping import ShapingConfig

    cls = {"analytic": AnalyticConfig, "shaping": ShapingConfig}[name]
    for seed in (2**70, -5, np.int64(7)):
        assert cls(seed=seed).seed == seed
    for seed in (True, 1.0, "1"):
        with pytest.raises(ValueError, match="seed must be an integer"):
            cls(seed=seed)


def test_run_settings_take_big_seeds_and_refuse_floats():
    assert runner.RunSettings(1, 1, seed=2**70).seed == 2**70
    with pytest.raises(ValueError, match="seed must be an integer"):
        runner.RunSettings(1, 1, seed=2.0)


# --------------------------------------------------------------------------------------
# 6. Validation before anything is compiled or created


@pytest.fixture
def nothing_runs(monkeypatch):
    """16 GiB of memory, and a failure if a run gets as far as initialising."""

    def refuse(*args, **kwargs):
        raise AssertionError("the run got as far as building its initial state")

    memory = (16 * 2**30, "test")
    monkeypatch.setattr(runner, "available_memory", lambda: memory, raising=False)
    monkeypatch.setattr(runner, "key_from_seed", refuse, raising=False)
    monkeypatch.setattr(runner.jax.random, "key", refuse)  # what older code used
    monkeypatch.setattr(runner, "_chunk_fn", refuse)


@pytest.mark.parametrize(
    ("preset", "override", "expected"),
    [
        ("analytic-shaping", "iterations=10**20", "iterations must be an int >= 1"),
        ("analytic-shaping", "meta_batch=10**9", "* meta_batch (the unrolled"),
        ("analytic-shaping", "num_seeds=10**6", "num_seeds * pool_size"),
        ("analytic-shaping", "num_naive_steps=10**9", "(num_naive_steps + 1)"),
        ("analytic-shaping", "pool_size=10**6", "pool_size**2"),
        ("analytic-shaping", "eta_meta=inf", "eta_meta must be a finite number > 0"),
        ("analytic-shaping", "init_scale=inf", "init_scale must be a finite number"),
        ("analytic-shaping", "zd_chi=nan", "zd_chi must be a finite number"),
        ("analytic-shaping", "eta_naive=1e400", "eta_naive must be a finite number"),
        ("quickstart", "hidden=10**7", "hidden**2"),
        ("quickstart", "meta_batch=10**9", "* meta_batch"),
        ("quickstart", "num_seeds=10**6", "num_seeds * pool_size"),
        ("quickstart", "eval_meta_batch=10**9", "eval_meta_batch (evaluation"),
        ("quickstart", "iterations=2**31", "int32 range"),
    ],
)
def test_huge_or_non_finite_values_fail_before_anything_is_created(
    preset, override, expected, tmp_path, nothing_runs, capsys
):
    key, _, value = override.partition("=")
    if "**" in value:
        base, power = value.split("**")
        value = str(int(base) ** int(power))
    run_dir = tmp_path / "sub" / "run"
    argv = ["train", preset, "--set", f"{key}={value}", "--run-dir", str(run_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dilemmas train: error:") and expected in err
    assert not (tmp_path / "sub").exists()


def test_every_preset_fits_its_machine():
    """CPU presets (``-cpu``, ``quickstart``) within 8 GiB of host memory; the
    paper-scale presets, for accelerators, within one 40 GiB GPU (the CleanUp-lite
    pure-shaping presets' lower bound is 9.4 GiB: 1.05e8 steps per iteration)."""
    from dilemmas.training.configs import memory_estimate

    for name, config in presets_module.presets().items():
        cpu = name.endswith("-cpu") or "-cpu-" in name or name == "quickstart"
        limit = 8 * 2**30 if cpu else 40 * 2**30
        assert sum(memory_estimate(config).values()) < limit, name


class _FakeDevice:
    platform = "gpu"

    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        return self.stats


def test_available_memory_sums_the_accelerators_limits(monkeypatch):
    devices = [_FakeDevice({"bytes_limit": 80 * 2**30})] * 2
    monkeypatch.setattr(runner.jax, "local_devices", lambda: devices)
    assert runner.available_memory() == (160 * 2**30, "memory of 2 gpu device(s)")
    devices = [_FakeDevice(None)]  # a backend without statistics: unknown
    assert runner.available_memory() is None


def test_available_memory_is_the_hosts_on_cpu():
    found = runner.available_memory()
    if jax.default_backend() == "cpu":
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        assert found == (pages, "host memory")
    else:
        assert found is None or found[0] > 0


# --------------------------------------------------------------------------------------
# 7. Corruption fuzzing


class _RecordedError(Exception):
    """Raised instead of training: what the resumed run would have started from."""

    def __init__(self, record: tuple):
        super().__init__("recorded")
        self.record = record


def _record_drive(self, state, start, wall_offset, metrics=b""):
    raise _RecordedError(
        (
            start,
            runner.state_to_bytes(state),
            wall_offset,
            metrics,
            self.settings,
            json.dumps(runner.config_to_json(self.experiment.config)),
        )
    )


def _resume_outcome(run_dir: Path) -> tuple[str, Any]:
    """``("error", message)``, ``("accepted", record)`` or ``("traceback", repr)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            runner.resume(run_dir, progress=False)
    except _RecordedError as recorded:
        return "accepted", recorded.record
    except runner.RunDirectoryError as err:
        return "error", str(err)
    except Exception as err:  # what the CLI would show as a traceback
        return "traceback", f"{type(err).__name__}: {err}"
    return "traceback", "resume() returned without training"


def _flip(name: str, offset: float, width: int, mask: int):
    def corrupt(run_dir: Path) -> None:
        path = run_dir / name
        data = bytearray(path.read_bytes())
        at = min(int(offset * len(data)), max(len(data) - width, 0))
        for i in range(at, min(at + width, len(data))):
            data[i] ^= mask
        path.write_bytes(bytes(data))

    return corrupt


def _truncate(name: str, fraction: float):
    def corrupt(run_dir: Path) -> None:
        path = run_dir / name
        data = path.read_bytes()
        path.write_bytes(data[: int(fraction * len(data))])

    return corrupt


def _json_edit(name: str, path: tuple, value: Any):
    """Set (``value`` not ``...``) or delete (``...``) an entry of a JSON file, or of
    a line of metrics.jsonl (``path[0]`` is then the line index)."""
    missing = object()

    def set_in(record, keys):
        for key in keys[:-1]:
            record = record[key]
        if value is ...:
            record.pop(keys[-1], missing)
        else:
            record[keys[-1]] = value

    def corrupt(run_dir: Path) -> None:
        file = run_dir / name
        if name == "metrics.jsonl":
            lines = file.read_text().splitlines()
            record = json.loads(lines[path[0]])
            set_in(record, path[1:])
            lines[path[0]] = json.dumps(record)
            file.write_text("\n".join(lines) + "\n")
        else:
            record = json.loads(file.read_text())
            set_in(record, path)
            file.write_text(json.dumps(record, indent=2))

    return corrupt


_BAD_VALUES = (None, "5", -1, 0, 2**70, 1.5, [], {}, True, "../x", 1e308)
_FILES = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoints/latest.json",
    "checkpoints/iter_00000006.msgpack",
    "checkpoints/iter_00000004.msgpack",
)


def corruptions(run_dir: Path) -> Iterator[tuple[str, Callable[[Path], None]]]:
    """Every corruption of the fuzz, by name, for the interrupted tiny run."""
    rng = random.Random(14)
    for name in _FILES:
        size = (run_dir / name).stat().st_size
        for _ in range(24):
            offset = rng.random()
            yield f"{name}: flip byte at {offset:.3f}", _flip(name, offset, 1, 0xFF)
            yield f"{name}: bit 0 at {offset:.3f}", _flip(name, offset, 1, 0x01)
        for offset in (0.0, 0.3, 0.7):
            yield f"{name}: flip 64 bytes at {offset}", _flip(name, offset, 64, 0x5A)
        for fraction in (0.0, 1 / max(size, 1), 0.5, 1 - 1 / max(size, 1)):
            yield f"{name}: truncate to {fraction:.3f}", _truncate(name, fraction)
        for label, data in (
            ("random bytes", bytes(rng.randrange(256) for _ in range(size))),
            ("non-UTF-8", b"\xff\xfe\xfd" * 10),
            ("[]", b"[]"),
            ("{}", b"{}"),
            ("null", b"null"),
            ("number", b"6"),
            ("deep nesting", b"[" * 50_000),
            ("NaN", b'{"a": NaN}'),
            ("huge float", b'{"a": 1e999}'),
        ):
            yield f"{name}: replaced by {label}", _write(name, data)
        yield f"{name}: appended garbage", _append(name, b"\x00garbage\xff")
        yield f"{name}: deleted", lambda d, n=name: (d / n).unlink()
        yield f"{name}: a directory", _directory(name)
    for keys in _json_paths(run_dir / "config.json"):
        for label, corrupt in _entry_edits("config.json", keys):
            yield label, corrupt
    for keys in _json_paths(run_dir / "checkpoints/latest.json"):
        for label, corrupt in _entry_edits("checkpoints/latest.json", keys):
            yield label, corrupt
    for keys in _json_paths(run_dir / "summary.json"):
        for label, corrupt in _entry_edits("summary.json", keys):
            yield label, corrupt
    first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    for line in (0, 3, 5):
        for key in first:
            for label, corrupt in _entry_edits("metrics.jsonl", (line, key)):
                yield label, corrupt
        yield (
            f"metrics.jsonl: line {line} deleted",
            _lines(lambda ls, i=line: ls.pop(i)),
        )
        yield (
            f"metrics.jsonl: line {line} duplicated",
            _lines(lambda ls, i=line: ls.insert(i, ls[i])),
        )
    yield "metrics.jsonl: lines 1 and 2 swapped", _lines(_swap)
    yield (
        "metrics.jsonl: extra lines after the checkpoint",
        _append(
            "metrics.jsonl", b'{"iteration": 7, "wall_time": 1.0, "loss": [1, 2]}\n{"it'
        ),
    )
    yield (
        "checkpoints: iter_6 replaced by iter_4",
        _copy_file(
            "checkpoints/iter_00000004.msgpack", "checkpoints/iter_00000006.msgpack"
        ),
    )
    yield "checkpoints: removed", lambda d: shutil.rmtree(d / "checkpoints")
    yield (
        "checkpoints: old checkpoint removed",
        lambda d: (d / "checkpoints/iter_00000004.msgpack").unlink(),
    )
    for event in run_dir.glob("events.out.tfevents.*"):
        yield "events: deleted", lambda d, n=event.name: (d / n).unlink()
    yield ".lock: garbage", _write(runner.LOCK_FILE, b"\xff" * 40)


def _append(name: str, data: bytes):
    def corrupt(run_dir: Path) -> None:
        with open(run_dir / name, "ab") as f:
            f.write(data)

    return corrupt


def _directory(name: str):
    def corrupt(run_dir: Path) -> None:
        (run_dir / name).unlink()
        (run_dir / name).mkdir()

    return corrupt


def _copy_file(source: str, target: str):
    return lambda d: shutil.copyfile(d / source, d / target)


def _lines(edit: Callable[[list], Any]):
    def corrupt(run_dir: Path) -> None:
        path = run_dir / "metrics.jsonl"
        lines = path.read_text().splitlines()
        edit(lines)
        path.write_text("\n".join(lines) + "\n")

    return corrupt


def _swap(lines: list) -> None:
    lines[1], lines[2] = lines[2], lines[1]


def _json_paths(path: Path) -> list[tuple]:
    """Keys of a JSON object, one level into nested objects."""
    record = json.loads(path.read_text())
    paths = []
    for key, value in record.items():
        paths.append((key,))
        if isinstance(value, dict) and key != "integrity":
            paths.extend((key, inner) for inner in value)
    return paths


def _entry_edits(name: str, keys: tuple):
    shown = ".".join(str(k) for k in keys)
    yield f"{name}: {shown} deleted", _json_edit(name, keys, ...)
    for value in _BAD_VALUES:
        yield f"{name}: {shown} = {value!r:.20}", _json_edit(name, keys, value)


def fuzz(
    interrupted: Path, tmp_path: Path, legacy: bool, every: int = 1
) -> tuple[Counter, dict[str, list[str]]]:
    """Apply every ``every``-th corruption to a copy of ``interrupted`` and resume.

    Outcomes: ``error`` (a RunDirectoryError), ``harmless`` (resumed from exactly
    what the intact directory gives), ``silent`` (resumed from something else) and
    ``traceback`` (any other exception).
    """
    clean = tmp_path / "clean"
    shutil.copytree(interrupted, clean)
    if legacy:
        _legacy(clean)
    kind, expected = _resume_outcome(_copied(clean, tmp_path / "expected"))
    assert kind == "accepted", expected
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    cases = list(corruptions(clean))[::every]
    for number, (label, corrupt) in enumerate(cases):
        run_dir = _copied(clean, tmp_path / f"case{number}")
        try:
            corrupt(run_dir)
        except (FileNotFoundError, KeyError, IndexError, TypeError):
            counts["not applicable"] += 1
            continue
        kind, detail = _resume_outcome(run_dir)
        if kind == "accepted":
            kind = "harmless" if detail == expected else "silent"
        counts[kind] += 1
        examples.setdefault(kind, []).append(f"{label} -> {str(detail)[:160]}")
        shutil.rmtree(run_dir)
    return counts, examples


def _copied(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_fuzz_sample_has_no_silent_acceptance_and_no_traceback(
    tiny_preset, interrupted, tmp_path, monkeypatch
):
    monkeypatch.setattr(runner._Loop, "drive", _record_drive)
    counts, examples = fuzz(interrupted, tmp_path, legacy=False, every=9)
    assert counts["error"] > 40
    assert not counts["silent"], examples["silent"]
    assert not counts["traceback"], examples["traceback"]


@pytest.mark.slow
def test_fuzz_every_corruption(tiny_preset, interrupted, tmp_path, monkeypatch):
    """The figures of the closing note: ``pytest -m slow -s -k fuzz_every``."""
    monkeypatch.setattr(runner._Loop, "drive", _record_drive)
    for legacy in (False, True):
        started = time.perf_counter()
        counts, examples = fuzz(interrupted, tmp_path / str(legacy), legacy)
        seconds = time.perf_counter() - started
        tried = sum(counts.values()) - counts["not applicable"]
        what = "older-version directory (no checksums)" if legacy else "current format"
        print(f"\n{what}: {tried} corruptions in {seconds:.1f} s: {dict(counts)}")
        for kind in ("silent", "traceback"):
            for example in examples.get(kind, []):
                print(f"  {kind}: {example}")
        if not legacy:
            assert not counts["silent"] and not counts["traceback"]
        else:
            assert not counts["traceback"]


def test_reference_resumes_bit_identically(tiny_preset, copy, reference):
    runner.resume(copy, progress=False)
    assert _final_params(copy) == _final_params(reference)
    copied = (copy / "metrics.jsonl").read_text().splitlines()
    expected = (reference / "metrics.jsonl").read_text().splitlines()
    for a, b in zip(copied, expected, strict=True):
        assert {**json.loads(a), "wall_time": 0} == {**json.loads(b), "wall_time": 0}
