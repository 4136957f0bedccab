"""The run driver of ``dilemmas train``: run directories for every algorithm.

:func:`run` drives any :class:`~dilemmas.training.experiment.Experiment` and
:func:`resume` continues a run directory; the format is ``docs/run_directory.md``.
The Python loop only moves data: each step calls one compiled chunk, ``jax.jit``
of ``lax.scan`` over ``log_every`` calls of ``experiment.update``, then

1. checks ``experiment.loss_metrics``, and every float of the state after each
   update, for non-finite values: the run stops before anything from the bad
   iteration is written or checkpointed, so the last checkpoint is a good one;
2. appends one ``metrics.jsonl`` line per iteration (``wall_time`` is interpolated
   linearly inside a chunk; non-finite values are written as ``null``) and the
   means over seeds and agents to TensorBoard (``events.out.tfevents.*``);
3. every ``checkpoint_every`` iterations (a multiple of ``log_every``) and after
   the last one, writes ``checkpoints/iter_XXXXXXXX.msgpack`` with
   :func:`flax.serialization.to_bytes` (msgpack, never pickle; typed PRNG keys are
   stored as their raw ``key_data``), then ``checkpoints/latest.json``, and keeps
   the last ``keep_checkpoints``;
4. updates the progress bar (``experiment.progress_metrics``, means over seeds and
   agents).

At the end it writes ``evaluation.json`` (``experiment.evaluate``) and
``summary.json``, and prints the headline numbers (mean ± std over seeds).
``summary.json`` follows the contract; its ``headline`` holds means over seeds and
``headline_per_seed`` the per-seed values that ``experiment.summary`` returned.

Outcomes:

* completed: :func:`run` returns the summary dict;
* a non-finite loss: ``summary.json`` says ``"stopped"``, ``metrics.jsonl`` ends at
  the last good iteration, the last checkpoint is untouched, and
  :class:`NonFiniteLossError` is raised (``dilemmas train`` exits with code 1);
* ``KeyboardInterrupt``: the state after the last completed chunk is
  checkpointed, ``metrics.jsonl`` is cut to it, ``summary.json`` says
  ``"interrupted"`` and the interrupt propagates (exit code 130).

Resumption is exact: the state (PRNG keys included) is the checkpoint's, the chunk
boundaries are the same multiples of ``log_every``, so a resumed run ends with
bitwise the same parameters as an uninterrupted one with the same seed. The state
is not donated to the compiled chunk: the previous state must survive an
interruption during a chunk so that it can be checkpointed.

Every file except the append-only ``metrics.jsonl`` is written atomically (a
temporary file in the same folder, ``fsync``, ``os.replace``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import serialization

from dilemmas.training.configs import config_from_json, config_to_json, to_json_value
from dilemmas.training.experiment import Experiment

#: ``format_version`` of the run directories this module writes and reads.
FORMAT_VERSION = 1

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVALUATION_FILE = "evaluation.json"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.json"
_CHECKPOINT_NAME = re.compile(r"^iter_(\d{8,})\.msgpack$")


class RunDirectoryError(ValueError):
    """A run directory that is missing, corrupt, or may not be (re)used."""


class NonFiniteLossError(RuntimeError):
    """A loss metric became non-finite; the run stopped (see ``summary``)."""

    def __init__(self, message: str, summary: dict[str, Any]):
        super().__init__(message)
        self.summary = summary


# --------------------------------------------------------------------------------------
# Settings


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How a run is chunked and checkpointed (``config.json["run"]``).

    Attributes:
      log_every: iterations per compiled chunk (metrics are still one line per
        iteration).
      checkpoint_every: iterations between checkpoints, a multiple of
        ``log_every``; the last iteration is always checkpointed.
      keep_checkpoints: how many of the newest checkpoints to keep.
      seed: the run's key is ``jax.random.key(seed)``, passed to
        ``experiment.init``.
    """

    log_every: int
    checkpoint_every: int
    keep_checkpoints: int = 3
    seed: int = 0

    def __post_init__(self):
        for name, low in (
            ("log_every", 1),
            ("checkpoint_every", 1),
            ("keep_checkpoints", 1),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if self.checkpoint_every % self.log_every:
            raise ValueError(
                f"checkpoint_every = {self.checkpoint_every} must be a multiple of "
                f"log_every = {self.log_every}"
            )


def make_settings(
    iterations: int,
    *,
    log_every: int | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 3,
    seed: int = 0,
) -> RunSettings:
    """Validated settings, with defaults for what is not given.

    By default a chunk is about 1 % of the run (``max(1, iterations // 100)``,
    a divisor of ``checkpoint_every`` when that is given) and there are about ten
    checkpoints.

    Raises:
      ValueError: a value out of range, ``log_every`` above ``iterations``, or
        ``checkpoint_every`` not a multiple of ``log_every``.
    """
    if log_every is None:
        log_every = max(1, iterations // 100)
        if isinstance(checkpoint_every, int) and checkpoint_every >= 1:
            log_every = math.gcd(log_every, checkpoint_every)
    if checkpoint_every is None and isinstance(log_every, int) and log_every >= 1:
        checkpoint_every = log_every * max(1, math.ceil(iterations / log_every / 10))
    settings = RunSettings(log_every, checkpoint_every, keep_checkpoints, seed)
    if settings.log_every > iterations:
        raise ValueError(
            f"log_every = {settings.log_every} is more than the run's "
            f"{iterations} iterations"
        )
    return settings


# --------------------------------------------------------------------------------------
# Files


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder
    (``fsync`` then ``os.replace``): readers see the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _write_json(path: Path, record: Any) -> None:
    text = json.dumps(to_json_value(record), indent=2, allow_nan=False)
    atomic_write(path, (text + "\n").encode())


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirectoryError(f"{path.parent} has no {path.name} ({what})") from None
    except (OSError, ValueError) as err:
        raise RunDirectoryError(f"{path} is not readable JSON ({err})") from None


def _remove_stale_temporaries(run_dir: Path) -> None:
    for folder in (run_dir, run_dir / CHECKPOINT_DIR):
        for tmp in folder.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _dilemmas_version() -> str:
    try:
        return version("dilemmas")
    except PackageNotFoundError:
        return "unknown"


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a run directory, checked for a known ``format_version``.

    Raises:
      RunDirectoryError: no such directory, no or unreadable ``config.json``, or a
        ``format_version`` this version of dilemmas does not know.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"no run directory at {run_dir}")
    config = _read_json(run_dir / CONFIG_FILE, "not a run directory?")
    if not isinstance(config, dict):
        raise RunDirectoryError(f"{run_dir / CONFIG_FILE} is not a JSON object")
    found = config.get("format_version")
    if found != FORMAT_VERSION:
        raise RunDirectoryError(
            f"{run_dir / CONFIG_FILE} has format_version {found!r}, but this version "
            f"of dilemmas ({_dilemmas_version()}) reads format_version "
            f"{FORMAT_VERSION}"
        )
    for key in ("kind", "config", "run"):
        if key not in config:
            raise RunDirectoryError(f"{run_dir / CONFIG_FILE} has no {key!r} entry")
    return config


# --------------------------------------------------------------------------------------
# Checkpoints


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(
        leaf.dtype, jax.dtypes.prng_key
    )


def _raw_keys(state: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def state_to_bytes(state: Any) -> bytes:
    """The msgpack bytes of a state pytree (typed PRNG keys as raw key data)."""
    return serialization.to_bytes(jax.device_get(_raw_keys(state)))


def state_from_bytes(template: Any, data: bytes) -> Any:
    """Inverse of :func:`state_to_bytes`: a state shaped like ``template``.

    Leaves come back as device arrays with the template's dtypes; typed keys are
    rewrapped with the template's key implementation.

    Raises:
      ValueError: ``data`` is not a checkpoint of a state like ``template``.
    """
    raw_template = jax.device_get(_raw_keys(template))
    try:
        restored = serialization.from_bytes(raw_template, data)
    except Exception as err:
        raise ValueError(f"not a checkpoint of this state ({err})") from None

    def restore(template_leaf, raw_leaf, value):
        value = np.asarray(value)
        expected = np.shape(raw_leaf), np.asarray(raw_leaf).dtype
        if (value.shape, value.dtype) != expected:
            raise ValueError(
                f"a leaf has shape {value.shape} and dtype {value.dtype}, the "
                f"state expects {expected[0]} and {expected[1]}"
            )
        if _is_key(template_leaf):
            impl = jax.random.key_impl(template_leaf)
            return jax.random.wrap_key_data(value, impl=impl)
        return jax.numpy.asarray(value)

    return jax.tree.map(restore, template, raw_template, restored)


def _checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    files = []
    for path in folder.glob("iter_*.msgpack"):
        match = _CHECKPOINT_NAME.match(path.name)
        if match:
            files.append((int(match.group(1)), path))
    return sorted(files)


def save_checkpoint(run_dir: Path, iteration: int, state: Any, keep: int) -> Path:
    """Write ``iter_XXXXXXXX.msgpack`` and ``latest.json``; keep the newest ``keep``."""
    folder = run_dir / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    name = f"iter_{iteration:08d}.msgpack"
    atomic_write(folder / name, state_to_bytes(state))
    latest = {"iteration": iteration, "file": name}
    atomic_write(folder / LATEST_FILE, (json.dumps(latest) + "\n").encode())
    for _, old in _checkpoint_files(folder)[:-keep]:
        if old.name != name:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
    return folder / name


def latest_checkpoint(run_dir: str | Path) -> tuple[int, Path] | None:
    """``(iteration, path)`` of the newest checkpoint, or ``None`` when there is none.

    ``latest.json`` names it; without ``latest.json`` (a run killed between the
    first checkpoint and its pointer) the newest complete ``iter_*.msgpack`` is
    used, complete because every checkpoint is written atomically.

    Raises:
      RunDirectoryError: ``latest.json`` is unreadable or names a missing file.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    pointer = folder / LATEST_FILE
    if pointer.exists():
        latest = _read_json(pointer, "checkpoint pointer")
        if (
            not isinstance(latest, dict)
            or not isinstance(latest.get("iteration"), int)
            or not isinstance(latest.get("file"), str)
        ):
            raise RunDirectoryError(f"{pointer} is not a checkpoint pointer: {latest}")
        path = folder / latest["file"]
        if not path.is_file():
            raise RunDirectoryError(
                f"{pointer} names {latest['file']}, which is missing"
            )
        return latest["iteration"], path
    files = _checkpoint_files(folder) if folder.is_dir() else []
    return files[-1] if files else None


def load_checkpoint(run_dir: str | Path, experiment: Experiment) -> tuple[int, Any]:
    """``(iteration, state)`` of the newest checkpoint of a run directory.

    The template is ``experiment.init(jax.random.key(seed))`` with the run's seed.

    Raises:
      RunDirectoryError: no checkpoint, or one that does not fit the experiment.
    """
    config = read_config(run_dir)
    found = latest_checkpoint(run_dir)
    if found is None:
        raise RunDirectoryError(f"{run_dir} has no checkpoint yet")
    seed = int(config["run"].get("seed", 0))
    template = experiment.init(jax.random.key(seed))
    return found[0], _restore(found[1], template)


def _restore(path: Path, template: Any) -> Any:
    try:
        return state_from_bytes(template, path.read_bytes())
    except (OSError, ValueError) as err:
        raise RunDirectoryError(f"cannot restore {path}: {err}") from None


# --------------------------------------------------------------------------------------
# Metrics


def _json_numbers(values: Any) -> Any:
    """Nested lists of numbers; non-finite values become ``None``. Floats narrower
    than float64 are written with their own shortest repr (``0.41``, not
    ``0.4099999964237213``)."""
    if np.ndim(values) == 0:
        value = np.asarray(values)
        if not np.isfinite(value):
            return None
        if value.dtype.itemsize < 8:
            return float(str(value))
        return float(value)
    return [_json_numbers(v) for v in values]


def _mean(values: np.ndarray) -> np.ndarray:
    """Means over everything but the leading axis, ignoring non-finite entries."""
    flat = np.asarray(values, np.float64).reshape(values.shape[0], -1)
    flat = np.where(np.isfinite(flat), flat, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(flat, axis=1)


class _Failure(NamedTuple):
    """The first non-finite value of a chunk."""

    index: int  # iteration within the chunk, from 0
    what: str  # a loss metric's name, or "" for the training state
    where: tuple[int, ...]  # (seed,) or (seed, agent)
    value: float


def _first_non_finite(
    metrics: Mapping[str, np.ndarray],
    names: tuple[str, ...],
    state_finite: np.ndarray,
) -> _Failure | None:
    """The earliest non-finite loss value or training state (``state_finite``
    ``[chunk, num_seeds]``) of a chunk; at the same iteration, loss metrics in the
    order of ``names`` come first."""
    found = None
    for name in names:
        bad = ~np.isfinite(np.asarray(metrics[name], np.float64))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            if found is None or index[0] < found.index:
                value = float(metrics[name][index])
                found = _Failure(index[0], name, index[1:], value)
    bad_state = ~np.asarray(state_finite, bool)
    if bad_state.any():
        index, seed = (int(i) for i in np.argwhere(bad_state)[0])
        if found is None or index < found.index:
            found = _Failure(index, "", (seed,), math.nan)
    return found


def _truncate_metrics(path: Path, iteration: int) -> float:
    """Keep the lines of iterations ``1..iteration`` (dropping later ones and a torn
    last line) and return the ``wall_time`` of the last kept line."""
    if not path.exists():
        if iteration > 0:
            raise RunDirectoryError(f"{path} is missing but there is a checkpoint")
        return 0.0
    data = path.read_bytes()
    kept: list[bytes] = []
    wall_time = 0.0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            break  # a torn line: everything after it is unwritten
        if not isinstance(record, dict) or record.get("iteration", 0) > iteration:
            break
        if record.get("iteration") != len(kept) + 1:
            raise RunDirectoryError(
                f"{path} line {len(kept) + 1} is iteration {record.get('iteration')}"
            )
        kept.append(line)
        wall_time = float(record.get("wall_time", 0.0))
    if len(kept) != iteration:
        raise RunDirectoryError(
            f"{path} has {len(kept)} complete lines, but the checkpoint is at "
            f"iteration {iteration}"
        )
    text = b"".join(line + b"\n" for line in kept)
    if text != data:
        atomic_write(path, text)
    return wall_time


# --------------------------------------------------------------------------------------
# The loop


def _finite_per_seed(state: Any) -> jax.Array:
    """``[num_seeds]``: whether every float in the seed's slice of ``state`` is
    finite (PRNG keys and integers are skipped)."""
    checks = []
    for leaf in jax.tree.leaves(state):
        if not jax.numpy.issubdtype(leaf.dtype, jax.numpy.inexact):
            continue
        finite = jax.numpy.isfinite(leaf)
        checks.append(finite.reshape(leaf.shape[0], -1).all(axis=1))
    if not checks:
        return jax.numpy.ones(_num_seeds(state), bool)
    return jax.numpy.stack(checks).all(axis=0)


def _chunk_fn(experiment: Experiment, length: int) -> Callable[[Any], Any]:
    """``jit(chunk)``: ``chunk(state) -> (state, metrics, state_finite)`` runs
    ``length`` updates; metrics are stacked ``[length, num_seeds, ...]`` and
    ``state_finite`` ``[length, num_seeds]`` checks the state after each update."""

    def body(state, _):
        state, metrics = experiment.update(state)
        return state, (metrics, _finite_per_seed(state))

    def chunk(state):
        state, (metrics, finite) = jax.lax.scan(body, state, None, length=length)
        return state, metrics, finite

    return jax.jit(chunk)


def _num_seeds(state: Any) -> int:
    leaves = jax.tree.leaves(state)
    if not leaves or not np.shape(leaves[0]):
        raise ValueError("the experiment's state needs a leading [num_seeds] axis")
    return int(np.shape(leaves[0])[0])


def _check_metrics(experiment: Experiment, chunk: Callable, state: Any) -> None:
    """Trace one chunk (no compilation) and check the metrics' names and shapes."""
    _, metrics, _ = jax.eval_shape(chunk, state)
    num_seeds = _num_seeds(state)
    for name, shape in ((k, v.shape) for k, v in metrics.items()):
        if len(shape) not in (2, 3) or shape[1] != num_seeds:
            raise ValueError(
                f"metric {name!r} has shape {shape[1:]} per iteration; expected "
                f"[num_seeds] or [num_seeds, num_agents] with num_seeds = {num_seeds}"
            )
    for kind in ("loss_metrics", "progress_metrics"):
        missing = sorted(set(getattr(experiment, kind)) - set(metrics))
        if missing:
            raise ValueError(
                f"{kind} {missing} are not among the metrics {sorted(metrics)}"
            )


def _headline(headline: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(means over seeds, per-seed values)`` of ``experiment.summary`` output."""
    means: dict[str, Any] = {}
    per_seed: dict[str, Any] = {}
    for name, value in headline.items():
        array = np.asarray(value, np.float64)
        if array.ndim == 0:
            means[name] = float(array)
            continue
        finite = array[np.isfinite(array)]
        means[name] = float(finite.mean()) if finite.size else None
        per_seed[name] = to_json_value(value)
    return means, per_seed


def format_summary(summary: Mapping[str, Any], run_dir: str | Path) -> str:
    """The short result printed at the end of a run."""
    lines = [
        f"{summary['status']} after {summary['iterations_completed']} iterations "
        f"in {summary['wall_time']:.1f} s: {run_dir}"
    ]
    headline = summary.get("headline", {})
    per_seed = summary.get("headline_per_seed", {})
    width = max((len(name) for name in headline), default=0)
    for name, mean in headline.items():
        seeds = np.ravel(np.asarray(per_seed.get(name, []), float))
        seeds = seeds[np.isfinite(seeds)]
        shown = "n/a" if mean is None else f"{mean:+.3f}"
        if seeds.size > 1:
            shown += f" ± {seeds.std():.3f} over {seeds.size} seeds"
        lines.append(f"  {name:<{width}}  {shown}")
    return "\n".join(lines)


@dataclasses.dataclass
class _Loop:
    """One session of the training loop over a prepared run directory."""

    experiment: Experiment
    run_dir: Path
    settings: RunSettings
    label: str
    progress: bool
    chunks: dict[int, Callable] = dataclasses.field(default_factory=dict, init=False)
    last_checkpoint: int = dataclasses.field(default=-1, init=False)

    def chunk(self, length: int) -> Callable:
        if length not in self.chunks:
            self.chunks[length] = _chunk_fn(self.experiment, length)
        return self.chunks[length]

    def write_summary(
        self,
        status: str,
        message: str,
        iterations: int,
        wall_time: float,
        headline: Mapping[str, Any] | None = None,
        timing: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        means, per_seed = _headline(headline or {})
        summary = {
            "status": status,
            "message": message,
            "iterations_completed": iterations,
            "wall_time": round(wall_time, 3),
            "headline": means,
        }
        if per_seed:
            summary["headline_per_seed"] = per_seed
        if timing:
            summary["timing"] = dict(timing)
        _write_json(self.run_dir / SUMMARY_FILE, summary)
        return summary

    def checkpoint(self, iteration: int, state: Any) -> None:
        save_checkpoint(self.run_dir, iteration, state, self.settings.keep_checkpoints)
        self.last_checkpoint = iteration

    def drive(self, state: Any, start: int, wall_offset: float) -> dict[str, Any]:
        from tensorboardX import SummaryWriter
        from tqdm.auto import tqdm

        experiment, settings = self.experiment, self.settings
        total = experiment.iterations
        self.last_checkpoint = start
        clock0 = time.perf_counter() - wall_offset
        done = (start, state)  # the last chunk whose metric lines are all written
        last_metrics: dict[str, np.ndarray] = {}
        # Where the time goes after the first chunk (which also compiles): inside
        # the compiled chunks (until their metrics reach the host) or outside them
        # (logging, checkpoints, progress bar, Python).
        timing = {
            "first_chunk_seconds": 0.0,
            "seconds_in_compiled_code": 0.0,
            "seconds_outside_compiled_code": 0.0,
        }
        writer = SummaryWriter(
            logdir=str(self.run_dir),
            purge_step=start + 1 if start else None,
            filename_suffix=f".{os.getpid()}.{time.time_ns()}",
        )
        bar = tqdm(
            total=total,
            initial=start,
            desc=self.label,
            unit="it",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        try:
            if start < total:
                _check_metrics(
                    experiment, self.chunk(min(settings.log_every, total)), state
                )
            previous_end = None
            while done[0] < total:
                iteration, state = done
                length = min(settings.log_every, total - iteration)
                chunk_start = time.perf_counter() - clock0
                new_state, metrics, finite = self.chunk(length)(state)
                metrics, finite = jax.device_get((metrics, finite))
                chunk_end = time.perf_counter() - clock0
                if previous_end is None:  # includes compilation
                    timing["first_chunk_seconds"] += chunk_end - chunk_start
                else:
                    timing["seconds_in_compiled_code"] += chunk_end - chunk_start
                    timing["seconds_outside_compiled_code"] += (
                        chunk_start - previous_end
                    )
                bad = _first_non_finite(metrics, tuple(experiment.loss_metrics), finite)
                good = length if bad is None else bad.index
                self.write_metrics(
                    writer, metrics, iteration, good, chunk_start, chunk_end, length
                )
                if bad is not None:
                    raise self.stop(bad, iteration, chunk_end)
                last_metrics = {name: value[-1] for name, value in metrics.items()}
                done = (iteration + length, new_state)
                if done[0] % settings.checkpoint_every == 0 or done[0] == total:
                    self.checkpoint(*done)
                bar.set_postfix(
                    {
                        name: f"{_mean(metrics[name][-1:])[0]:.3f}"
                        for name in experiment.progress_metrics
                    },
                    refresh=False,
                )
                bar.update(length)
                previous_end = time.perf_counter() - clock0
        except KeyboardInterrupt:
            self.interrupted(*done, time.perf_counter() - clock0)
            raise
        finally:
            bar.close()
            writer.close()
        iteration, state = done
        if self.last_checkpoint != iteration:
            self.checkpoint(iteration, state)
        evaluation = experiment.evaluate(state)
        _write_json(self.run_dir / EVALUATION_FILE, evaluation)
        if not last_metrics:  # resumed at the end: the last metrics line
            last_metrics = self.last_logged_metrics()
        measured = (
            timing["seconds_in_compiled_code"] + timing["seconds_outside_compiled_code"]
        )
        if measured > 0:
            timing["share_outside_compiled_code"] = (
                timing["seconds_outside_compiled_code"] / measured
            )
        summary = self.write_summary(
            "completed",
            "",
            iteration,
            time.perf_counter() - clock0,
            experiment.summary(state, last_metrics),
            timing={k: round(v, 4) for k, v in timing.items()},
        )
        print(f"{self.label}: {format_summary(summary, self.run_dir)}")
        return summary

    def write_metrics(
        self,
        writer: Any,
        metrics: Mapping[str, np.ndarray],
        iteration: int,
        count: int,
        chunk_start: float,
        chunk_end: float,
        length: int,
    ) -> None:
        """Append the first ``count`` iterations of a chunk to metrics.jsonl and
        TensorBoard."""
        if count == 0:
            return
        means = {name: _mean(value) for name, value in metrics.items()}
        lines = []
        for k in range(count):
            step = iteration + k + 1
            wall = chunk_start + (chunk_end - chunk_start) * (k + 1) / length
            record = {"iteration": step, "wall_time": round(wall, 4)}
            record.update({n: _json_numbers(v[k]) for n, v in metrics.items()})
            lines.append(json.dumps(record, allow_nan=False))
            for name, mean in means.items():
                if np.isfinite(mean[k]):
                    writer.add_scalar(name, float(mean[k]), step)
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        writer.flush()

    def last_logged_metrics(self) -> dict[str, np.ndarray]:
        lines = (self.run_dir / METRICS_FILE).read_text().splitlines()
        record = json.loads(lines[-1])
        return {
            name: np.asarray(
                [np.nan if v is None else v for v in np.ravel(value)], np.float64
            ).reshape(np.shape(value))
            for name, value in record.items()
            if name not in ("iteration", "wall_time")
        }

    def stop(
        self, bad: _Failure, iteration: int, wall_time: float
    ) -> NonFiniteLossError:
        step = iteration + bad.index + 1
        agent = f", agent {bad.where[1]}" if len(bad.where) > 1 else ""
        pointer = latest_checkpoint(self.run_dir)
        kept = (
            f"the last good checkpoint is {CHECKPOINT_DIR}/{pointer[1].name} "
            f"(iteration {pointer[0]})"
            if pointer
            else "no checkpoint had been written yet"
        )
        if bad.what:
            what = f"non-finite {bad.what} ({bad.value}) at iteration {step}"
        else:
            what = f"non-finite values in the training state after iteration {step}"
        message = (
            f"{what}, seed {bad.where[0]}{agent}; the run stopped. {METRICS_FILE} "
            f"ends at iteration {step - 1} and {kept}."
        )
        summary = self.write_summary("stopped", message, step - 1, wall_time)
        return NonFiniteLossError(message, summary)

    def interrupted(self, iteration: int, state: Any, wall_time: float) -> None:
        if iteration > 0 and iteration != self.last_checkpoint:
            self.checkpoint(iteration, state)
        _truncate_metrics(self.run_dir / METRICS_FILE, iteration)
        self.write_summary(
            "interrupted",
            f"interrupted after iteration {iteration}; continue with "
            f"`dilemmas train --resume {self.run_dir}`",
            iteration,
            wall_time,
        )


# --------------------------------------------------------------------------------------
# Entry points


def run(
    experiment: Experiment,
    run_dir: str | Path,
    *,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    log_every: int | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 3,
    progress: bool = True,
    seed: int | None = None,
) -> dict[str, Any]:
    """Train ``experiment`` into a new run directory and return its summary.

    Args:
      experiment: what to run (:class:`~dilemmas.training.experiment.Experiment`).
      run_dir: a new or empty directory (created with its parents).
      preset: preset name stored in ``config.json``; :func:`resume` rebuilds the
        experiment from it and the stored resolved config.
      overrides: the ``--set`` values as typed values, stored as given.
      log_every, checkpoint_every, keep_checkpoints: see :class:`RunSettings`
        (defaults: :func:`make_settings`).
      progress: show a progress bar.
      seed: the run's seed; default ``experiment.config.seed`` (0 without one).

    Returns:
      The ``summary.json`` record of the completed run.

    Raises:
      ValueError: bad settings, or metrics that do not fit the contract.
      RunDirectoryError: ``run_dir`` is a file or a non-empty directory.
      NonFiniteLossError: a loss metric became non-finite (the run stopped).
      KeyboardInterrupt: after checkpointing the last completed chunk.
    """
    if seed is None:
        seed = getattr(experiment.config, "seed", 0)
    settings = make_settings(
        experiment.iterations,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        seed=seed,
    )
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise RunDirectoryError(
            f"refusing to write into the non-empty directory {run_dir}; continue it "
            f"with `dilemmas train --resume {run_dir}` or choose another --run-dir"
        )
    state = experiment.init(jax.random.key(settings.seed))
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "format_version": FORMAT_VERSION,
        "dilemmas_version": _dilemmas_version(),
        "kind": experiment.kind,
        "preset": preset,
        "overrides": dict(overrides or {}),
        "config": config_to_json(experiment.config),
        "run": dataclasses.asdict(settings),
        "num_seeds": _num_seeds(state),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    _write_json(run_dir / CONFIG_FILE, record)
    loop = _Loop(experiment, run_dir, settings, preset or experiment.kind, progress)
    return loop.drive(state, 0, 0.0)


def experiment_from_run(config: Mapping[str, Any]) -> Experiment:
    """Rebuild the experiment of a ``config.json`` record: the preset's config class
    filled with the stored resolved config.

    Raises:
      RunDirectoryError: no preset recorded, an unknown preset, or a stored
        config the preset's class rejects.
    """
    from dilemmas.training.presets import experiment_from_config, get_preset

    preset = config.get("preset")
    if not preset:
        raise RunDirectoryError(
            "the run was not started from a preset; pass the experiment to resume()"
        )
    try:
        cls = type(get_preset(preset))
        resolved = config_from_json(cls, config["config"])
    except ValueError as err:
        raise RunDirectoryError(f"cannot rebuild the run's experiment: {err}") from None
    experiment = experiment_from_config(resolved)
    if experiment.kind != config["kind"]:
        raise RunDirectoryError(
            f"preset {preset!r} is now a {experiment.kind!r} experiment, the run "
            f"is {config['kind']!r}"
        )
    return experiment


def resume(
    run_dir: str | Path,
    *,
    experiment: Experiment | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Continue a run directory from its latest checkpoint and return its summary.

    The experiment is rebuilt from ``config.json`` (:func:`experiment_from_run`)
    unless given; the settings are the stored ones. ``metrics.jsonl`` is cut back to
    the checkpoint's iteration, TensorBoard events continue in the same folder (the
    later steps of the killed session are purged), and the run goes on exactly as
    an uninterrupted one. Without any checkpoint the run starts again from its
    first iteration. Interrupted and stopped runs can be resumed (a stopped run
    deterministically meets its non-finite loss again).

    Raises:
      RunDirectoryError: missing or corrupt directory, unknown format version, a
        completed run, or an ``experiment`` that does not match the stored config.
      NonFiniteLossError, KeyboardInterrupt: as in :func:`run`.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    summary_path = run_dir / SUMMARY_FILE
    if summary_path.exists():
        status = _read_json(summary_path, "summary").get("status")
        if status == "completed":
            raise RunDirectoryError(
                f"{run_dir} is a completed run; there is nothing to resume (start a "
                "new run with another --run-dir)"
            )
    if experiment is None:
        experiment = experiment_from_run(config)
    elif (
        experiment.kind != config["kind"]
        or config_to_json(experiment.config) != config["config"]
    ):
        raise RunDirectoryError(
            f"the given experiment does not match the config stored in {run_dir}"
        )
    try:
        settings = RunSettings(**config["run"])
    except (TypeError, ValueError) as err:
        raise RunDirectoryError(
            f"{run_dir / CONFIG_FILE}: bad 'run' entry ({err})"
        ) from None
    template = experiment.init(jax.random.key(settings.seed))
    found = latest_checkpoint(run_dir)
    if found is None:
        start, state = 0, template
    else:
        start, state = found[0], _restore(found[1], template)
        on_boundary = start % settings.log_every == 0 or start == experiment.iterations
        if start > experiment.iterations or not on_boundary:
            raise RunDirectoryError(
                f"checkpoint iteration {start} does not fit the run "
                f"({experiment.iterations} iterations, log_every {settings.log_every})"
            )
    _remove_stale_temporaries(run_dir)
    wall_offset = _truncate_metrics(run_dir / METRICS_FILE, start)
    with contextlib.suppress(FileNotFoundError):
        summary_path.unlink()
    label = config.get("preset") or experiment.kind
    loop = _Loop(experiment, run_dir, settings, label, progress)
    return loop.drive(state, start, wall_offset)
