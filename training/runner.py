"""The run driver of ``dilemmas train``: run directories for every algorithm.

:func:`run` drives any :class:`~dilemmas.training.experiment.Experiment` and
:func:`resume` continues a run directory; the format is ``docs/run_directory.md``,
and its files (``config.json``, checkpoints, ``latest.json``, the lock, the
integrity checks) are read, written and verified by
:mod:`dilemmas.training.run_dir`, whose names this module re-exports.
The Python loop only moves data: each step calls one compiled chunk, ``jax.jit``
of ``lax.scan`` over ``log_every`` calls of ``experiment.update``, then

1. checks ``experiment.loss_metrics``, and every float of the state after each
   update, for non-finite values: the run stops before anything from the bad
   iteration is written or checkpointed, so the last checkpoint is a good one;
2. appends one ``metrics.jsonl`` line per iteration (``wall_time`` is interpolated
   linearly inside a chunk; non-finite values are written as ``null``) and the
   means over seeds and agents to TensorBoard (``events.out.tfevents.*``);
3. every ``checkpoint_every`` iterations (a multiple of ``log_every``) and after
   the last one, writes ``checkpoints/iter_XXXXXXXX.msgpack`` and
   ``checkpoints/latest.json`` (:func:`~dilemmas.training.run_dir.save_checkpoint`),
   and keeps the last ``keep_checkpoints``;
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
* ``KeyboardInterrupt``, or ``SIGTERM`` (what schedulers send; it takes effect at
  the end of the current chunk): the state after the last completed chunk is
  checkpointed, ``metrics.jsonl`` is cut to it, ``summary.json`` says
  ``"interrupted"`` and the interrupt propagates (:class:`Terminated`, a
  ``KeyboardInterrupt``, for ``SIGTERM``; exit codes 130 and 143).

Resumption is exact: the state (PRNG keys included) is the checkpoint's, the chunk
boundaries are the same multiples of ``log_every``, so a resumed run ends with
bitwise the same parameters as an uninterrupted one with the same seed. The state
is not donated to the compiled chunk: the previous state must survive an
interruption during a chunk so that it can be checkpointed.

Before a run (``docs/run_directory.md``; the lock and the integrity checks of the
run directory are described in :mod:`dilemmas.training.run_dir`):

* validation first: settings, the config's bounds and its memory estimate
  (:func:`dilemmas.training.configs.check_memory` against
  :func:`available_memory`) are checked before anything is compiled and before a
  directory is created.
* seeds: the run's key is :func:`dilemmas.envs.seeding.key_from_seed` of its
  seed, any integer (the same key as ``jax.random.key(seed)`` for
  ``0 <= seed < 2**32``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from dilemmas.analysis.verdict import shaping_verdict
from dilemmas.envs.seeding import key_from_seed
from dilemmas.training import distributed
from dilemmas.training.configs import (
    check_memory,
    config_from_json,
    config_to_json,
    is_int,
    parse_overrides,
    replace_values,
    to_json_value,
)
from dilemmas.training.experiment import Experiment
from dilemmas.training.run_dir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EVALUATION_FILE,
    FORMAT_VERSION,
    INTEGRITY_KEY,
    LATEST_FILE,
    LOCK_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    Checkpoint,
    RunDirectoryError,
    RunSettings,
    _check_consistent,
    _check_metric_line,
    _check_new_directory,
    _dilemmas_version,
    _leaves,
    _loads,
    _previous_summary,
    _remove_stale_temporaries,
    _restore,
    _settings,
    _truncate_metrics,
    _verified_metrics,
    _write_config,
    _write_json,
    archive_completed,
    atomic_write,
    config_integrity,
    find_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    lock_run_directory,
    make_settings,
    read_checkpoint,
    read_config,
    save_checkpoint,
    state_from_bytes,
    state_to_bytes,
    write_policies,
)
from dilemmas.training.sharding import batch_mesh

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "EVALUATION_FILE",
    "FORMAT_VERSION",
    "INTEGRITY_KEY",
    "LATEST_FILE",
    "LOCK_FILE",
    "METRICS_FILE",
    "SUMMARY_FILE",
    "Checkpoint",
    "NonFiniteLossError",
    "RunDirectoryError",
    "RunSettings",
    "Terminated",
    "atomic_write",
    "available_memory",
    "config_integrity",
    "experiment_from_run",
    "find_checkpoint",
    "format_summary",
    "latest_checkpoint",
    "load_checkpoint",
    "lock_run_directory",
    "make_settings",
    "read_checkpoint",
    "read_config",
    "resume",
    "run",
    "save_checkpoint",
    "state_from_bytes",
    "state_to_bytes",
]


class Terminated(KeyboardInterrupt):
    """The run received ``SIGTERM``; handled like ``KeyboardInterrupt`` (the last
    completed chunk is checkpointed, ``summary.json`` says ``"interrupted"``).

    Attributes:
      signum: the signal number (``signal.SIGTERM``).
    """

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(f"received signal {signum}")
        self.signum = signum


class NonFiniteLossError(RuntimeError):
    """A loss metric became non-finite; the run stopped (see ``summary``)."""

    def __init__(self, message: str, summary: dict[str, Any]):
        super().__init__(message)
        self.summary = summary


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


#: Seconds between refreshes of the progress bar while the first chunk compiles and
#: runs.
TICK_SECONDS = 1.0


@contextlib.contextmanager
def _first_chunk_ticker(bar: Any, interval: float) -> Iterator[None]:
    """While the first chunk compiles and runs, the progress bar says so with the
    time elapsed (refreshed every ``interval`` seconds); ``bar=None``: nothing."""
    if bar is None or bar.disable:
        yield
        return
    stop = threading.Event()
    start = time.perf_counter()

    def tick() -> None:
        while not stop.wait(interval):
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"compiling + first chunk {elapsed:.0f} s")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _restart_rate(bar: Any, first_seconds: float) -> None:
    """Count the bar's rate (and so its ETA) from the end of the first chunk, whose
    time includes compilation; one line above the bar says so."""
    postfix, done = bar.postfix, bar.n
    bar.reset(total=bar.total)
    bar.initial = bar.n = bar.last_print_n = done
    bar.postfix = postfix
    bar.write(
        f"{bar.desc}: first chunk {first_seconds:.0f} s (compilation included); "
        "the rate and ETA count from here",
        file=sys.stderr,
    )
    bar.refresh()


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


def _chunk_fn(
    experiment: Experiment, length: int, shardings: Any = None
) -> Callable[[Any], Any]:
    """``jit(chunk)``: ``chunk(state) -> (state, metrics, state_finite)`` runs
    ``length`` updates; metrics are stacked ``[length, num_seeds, ...]`` and
    ``state_finite`` ``[length, num_seeds]`` checks the state after each update.

    ``shardings`` (:func:`~dilemmas.training.distributed.state_shardings`) keep
    the state where it is and replicate the metrics on every device, so that every
    process reads them without a collective."""

    def body(state, _):
        state, metrics = experiment.update(state)
        return state, (metrics, _finite_per_seed(state))

    def chunk(state):
        state, (metrics, finite) = jax.lax.scan(body, state, None, length=length)
        return state, metrics, finite

    if shardings is None:
        return jax.jit(chunk)
    mesh = jax.tree.leaves(shardings)[0].mesh
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.jit(
        chunk,
        in_shardings=(shardings,),
        out_shardings=(shardings, replicated, replicated),
    )


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
    """The short result printed at the end of a run: each headline's mean ± std over
    seeds, and from 4 seeds on its median and interquartile range."""
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
        if seeds.size >= 4:
            q1, median, q3 = np.percentile(seeds, [25, 50, 75])
            shown += f" (median {median:+.3f}, IQR {q1:+.3f} to {q3:+.3f})"
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
    # process 0 writes the run directory; the others only compute
    writer: bool = True
    # where the state lives (distributed.state_shardings); None: where JAX puts it
    shardings: Any = None
    chunks: dict[int, Callable] = dataclasses.field(default_factory=dict, init=False)
    last_checkpoint: int = dataclasses.field(default=-1, init=False)
    # sha256 and size of metrics.jsonl as written, and as of the last completed
    # chunk (what a checkpoint of that chunk records).
    metrics_hash: Any = dataclasses.field(default=None, init=False)
    metrics_size: int = dataclasses.field(default=0, init=False)
    metrics_done: tuple[int, str] = dataclasses.field(default=(0, ""), init=False)
    # the same, as of the last checkpoint
    metrics_checkpointed: tuple[int, str] = dataclasses.field(
        default=(0, ""), init=False
    )
    # the signal (SIGTERM) that asked the run to stop after the current chunk
    stop_signal: int | None = dataclasses.field(default=None, init=False)

    def chunk(self, length: int) -> Callable:
        if length not in self.chunks:
            self.chunks[length] = _chunk_fn(self.experiment, length, self.shardings)
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
        if self.writer:
            _write_json(self.run_dir / SUMMARY_FILE, summary)
        return summary

    def checkpoint(self, iteration: int, state: Any) -> None:
        """Write a checkpoint (process 0); on every process of a multi-process run
        (the state is gathered from all of them)."""
        state = distributed.host_state(state)
        if self.writer:
            save_checkpoint(
                self.run_dir,
                iteration,
                state,
                self.settings.keep_checkpoints,
                metrics=self.metrics_done,
            )
        self.last_checkpoint = iteration
        self.metrics_checkpointed = self.metrics_done

    def commit_metrics(self) -> None:
        """Mark the metrics written so far as those of the last completed chunk."""
        self.metrics_done = (self.metrics_size, self.metrics_hash.hexdigest())

    def drive(
        self, state: Any, start: int, wall_offset: float, metrics: bytes = b""
    ) -> dict[str, Any]:
        """Train from ``state`` at iteration ``start``; ``metrics`` is the content
        of ``metrics.jsonl`` (its ``start`` lines)."""
        state = distributed.place(state, self.shardings)
        distributed.barrier("dilemmas:start")
        with _sigterm_requests_stop(self):
            summary = self._drive(state, start, wall_offset, metrics)
        distributed.barrier("dilemmas:end")
        return summary

    def _drive(
        self, state: Any, start: int, wall_offset: float, metrics: bytes
    ) -> dict[str, Any]:
        from tensorboardX import SummaryWriter
        from tqdm.auto import tqdm

        experiment, settings = self.experiment, self.settings
        total = experiment.iterations
        self.last_checkpoint = start
        self.metrics_hash = hashlib.sha256(metrics)
        self.metrics_size = len(metrics)
        self.commit_metrics()
        self.metrics_checkpointed = self.metrics_done
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
        writer = (
            SummaryWriter(
                logdir=str(self.run_dir),
                purge_step=start + 1 if start else None,
                filename_suffix=f".{os.getpid()}.{time.time_ns()}",
            )
            if self.writer
            else None
        )
        bar = tqdm(
            total=total,
            initial=start,
            desc=self.label,
            unit="it",
            disable=not (self.progress and self.writer),
            dynamic_ncols=True,
            smoothing=0,  # the rate since the first chunk (_restart_rate)
        )
        try:
            if start < total:
                _check_metrics(
                    experiment, self.chunk(min(settings.log_every, total)), state
                )
            previous_end = None
            while done[0] < total:
                iteration, state = done
                # Chunks end on multiples of log_every (a run extended from an
                # end between them first catches up), or at the last iteration.
                step = settings.log_every - iteration % settings.log_every
                length = min(step, total - iteration)
                chunk_start = time.perf_counter() - clock0
                first = previous_end is None
                with _first_chunk_ticker(bar if first else None, TICK_SECONDS):
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
                self.commit_metrics()
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
                if first and done[0] < total and not bar.disable:
                    _restart_rate(bar, chunk_end - chunk_start)
                previous_end = time.perf_counter() - clock0
                if distributed.any_process(self.stop_signal is not None):
                    raise Terminated(self.stop_signal or signal.SIGTERM)
        except KeyboardInterrupt as err:
            self.interrupted(*done, time.perf_counter() - clock0, err)
            raise
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        iteration, state = done
        if self.last_checkpoint != iteration:
            self.checkpoint(iteration, state)
        state = distributed.host_state(state)  # on every process: a collective
        if self.writer:
            evaluation = experiment.evaluate(state)
            _write_json(self.run_dir / EVALUATION_FILE, evaluation)
            write_policies(self.run_dir, experiment, state)
        else:
            evaluation = {}
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
        if not self.writer:
            return summary
        print(f"{self.label}: {format_summary(summary, self.run_dir)}")
        verdict = shaping_verdict(evaluation)
        if verdict is not None:
            print(
                f"  the learning-aware agent ({EVALUATION_FILE}, the test "
                "`dilemmas analyze` reports):"
            )
            for line in verdict.lines():
                print(f"    {line}")
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
        TensorBoard (process 0)."""
        if count == 0 or not self.writer:
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
        data = ("\n".join(lines) + "\n").encode()
        with open(self.run_dir / METRICS_FILE, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.metrics_hash.update(data)
        self.metrics_size += len(data)
        writer.flush()

    def last_logged_metrics(self) -> dict[str, np.ndarray]:
        path = self.run_dir / METRICS_FILE
        try:
            record = _loads(path.read_bytes().splitlines()[-1])
            _check_metric_line(path, self.experiment.iterations, record, set())
        except (OSError, ValueError, IndexError) as err:
            raise RunDirectoryError(
                f"cannot read the last line of {path}: {err}"
            ) from None
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

    def interrupted(
        self, iteration: int, state: Any, wall_time: float, why: BaseException
    ) -> None:
        """Checkpoint the last completed chunk and say so in ``summary.json``.

        Over several processes only a stop they agreed on (:class:`Terminated`,
        after ``SIGTERM`` reached any of them) gathers the state for a checkpoint;
        after any other interrupt the others may be gone, so the run resumes from
        its last periodic checkpoint."""
        agreed = isinstance(why, Terminated) or not distributed.multi_process()
        if not agreed:
            iteration = self.last_checkpoint
        elif iteration > 0 and iteration != self.last_checkpoint:
            self.checkpoint(iteration, state)
        if not self.writer:
            return
        path = self.run_dir / METRICS_FILE
        size = (self.metrics_done if agreed else self.metrics_checkpointed)[0]
        if path.exists() and path.stat().st_size != size:
            with open(path, "rb") as f:
                atomic_write(path, f.read(size))  # the lines 1..iteration
        signum = getattr(why, "signum", None)
        by = f" by {signal.Signals(signum).name}" if signum else ""
        self.write_summary(
            "interrupted",
            f"interrupted{by} after iteration {iteration}; continue with "
            f"`dilemmas train --resume {self.run_dir}`",
            iteration,
            wall_time,
        )


@contextlib.contextmanager
def _sigterm_requests_stop(loop: _Loop) -> Iterator[None]:
    """While the loop runs, ``SIGTERM`` asks it to stop at the end of the current
    chunk (it then raises :class:`Terminated`): the signal never interrupts a
    write or a library call halfway. Only in the main thread, where Python runs
    signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        del frame
        loop.stop_signal = signum

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------
# Validation before anything is compiled or created


def available_memory() -> tuple[int, str] | None:
    """``(bytes, what)``: the memory the run's arrays can use, or ``None`` when it
    is unknown.

    On CPU the host's physical memory (``os.sysconf``); on accelerators the sum of
    ``device.memory_stats()["bytes_limit"]`` over the local devices.
    """
    try:
        devices = jax.local_devices()
    except RuntimeError:
        return None
    if not devices:
        return None
    platform = devices[0].platform
    if platform == "cpu":
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, OSError, ValueError):
            return None
        return (total, "host memory") if total > 0 else None
    limits = []
    for device in devices:
        try:
            stats = device.memory_stats() or {}
        except Exception:  # backends without memory statistics
            return None
        if not is_int(stats.get("bytes_limit")):
            return None
        limits.append(int(stats["bytes_limit"]))
    return sum(limits), f"memory of {len(devices)} {platform} device(s)"


def _check_memory(config: Any) -> None:
    found = available_memory()
    if found is not None:
        check_memory(config, *found)


# --------------------------------------------------------------------------------------
# Entry points


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


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

    Everything is validated (settings, the seed, the config's memory estimate
    against :func:`available_memory`) before anything is compiled or any
    directory is created; the directory is then written under its lock
    (:func:`lock_run_directory`).

    Args:
      experiment: what to run (:class:`~dilemmas.training.experiment.Experiment`).
      run_dir: a new or empty directory (created with its parents).
      preset: preset name stored in ``config.json``; :func:`resume` rebuilds the
        experiment from it and the stored resolved config.
      overrides: the ``--set`` values as typed values, stored as given.
      log_every, checkpoint_every, keep_checkpoints: see :class:`RunSettings`
        (defaults: :func:`make_settings`).
      progress: show a progress bar.
      seed: the run's seed, any integer; default ``experiment.config.seed`` (0
        without one).

    Returns:
      The ``summary.json`` record of the completed run.

    Raises:
      ValueError: bad settings, a config too large for the memory, or metrics that
        do not fit the contract.
      RunDirectoryError: ``run_dir`` is a file or a non-empty directory, or
        another process holds its lock.
      NonFiniteLossError: a loss metric became non-finite (the run stopped).
      KeyboardInterrupt: after checkpointing the last completed chunk
        (:class:`Terminated` for ``SIGTERM``).
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
    _check_memory(experiment.config)
    run_dir = Path(run_dir)
    writer = distributed.is_writer()
    _agreed(writer, lambda: _check_new_directory(run_dir))
    state = experiment.init(key_from_seed(settings.seed))
    record = {
        "format_version": FORMAT_VERSION,
        "dilemmas_version": _dilemmas_version(),
        "kind": experiment.kind,
        "preset": preset,
        "overrides": dict(overrides or {}),
        "config": config_to_json(experiment.config),
        "run": dataclasses.asdict(settings),
        "num_seeds": _num_seeds(state),
        "created": _now(),
    }
    with contextlib.ExitStack() as held:

        def create() -> None:
            run_dir.mkdir(parents=True, exist_ok=True)
            held.enter_context(lock_run_directory(run_dir))
            _check_new_directory(run_dir)  # nobody came first
            _write_config(run_dir, record)

        _agreed(writer, create)
        loop = _Loop(
            experiment,
            run_dir,
            settings,
            preset or experiment.kind,
            progress,
            writer=writer,
            shardings=_shardings(state),
        )
        return loop.drive(state, 0, 0.0)


def _shardings(state: Any) -> Any:
    """Where the run keeps ``state``: on the mesh of every process's devices
    (:func:`~dilemmas.training.distributed.state_shardings`) when there are
    several; ``None`` (where JAX puts it) with one device."""
    return distributed.state_shardings(batch_mesh(), state)


def _agreed(here: bool, prepare: Callable[[], Any]) -> Any:
    """``prepare()`` where ``here`` is true; then every process learns whether it
    failed anywhere, so that none of them goes on to wait for the others in a
    collective (in a one-process run this is just ``prepare()``).

    Raises:
      Exception: ``prepare``'s own error where it failed, and
        :class:`RunDirectoryError` on the other processes.
    """
    error, result = None, None
    if here:
        try:
            result = prepare()
        except Exception as err:
            error = err
    if distributed.any_process(error is not None):
        if error is not None:
            raise error
        raise RunDirectoryError(
            "another process of the run failed to prepare it (its error says why)"
        )
    return result


def _stored_config(config: Mapping[str, Any]) -> Any:
    """The preset's config class filled with the stored resolved config."""
    from dilemmas.training.presets import get_preset

    preset = config.get("preset")
    if not preset:
        raise RunDirectoryError(
            "the run was not started from a preset; pass the experiment to resume()"
        )
    try:
        return config_from_json(type(get_preset(preset)), config["config"])
    except ValueError as err:
        raise RunDirectoryError(f"cannot rebuild the run's experiment: {err}") from None


def _experiment(resolved: Any, config: Mapping[str, Any]) -> Experiment:
    from dilemmas.training.presets import experiment_from_config

    try:
        experiment = experiment_from_config(resolved)
    except ValueError as err:
        raise RunDirectoryError(f"cannot rebuild the run's experiment: {err}") from None
    if experiment.kind != config["kind"]:
        raise RunDirectoryError(
            f"preset {config.get('preset')!r} is now a {experiment.kind!r} "
            f"experiment, the run is {config['kind']!r}"
        )
    return experiment


def experiment_from_run(config: Mapping[str, Any]) -> Experiment:
    """Rebuild the experiment of a ``config.json`` record: the preset's config class
    filled with the stored resolved config.

    Raises:
      RunDirectoryError: no preset recorded, an unknown preset, or a stored
        config the preset's class rejects.
    """
    return _experiment(_stored_config(config), config)


def _changes(before: Any, after: Any) -> dict[str, tuple[Any, Any]]:
    """``{dotted field: (old, new)}`` of two configs' JSON forms."""
    old = _leaves(config_to_json(before))
    new = _leaves(config_to_json(after))
    return {k: (old.get(k), new.get(k)) for k in new if old.get(k) != new.get(k)}


def resume(
    run_dir: str | Path,
    *,
    experiment: Experiment | None = None,
    progress: bool = True,
    overrides: Iterable[str] = (),
) -> dict[str, Any]:
    """Continue a run directory from its latest checkpoint and return its summary.

    The experiment is rebuilt from ``config.json`` (:func:`experiment_from_run`)
    unless given; the settings are the stored ones. ``metrics.jsonl`` is cut back to
    the checkpoint's iteration, TensorBoard events continue in the same folder (the
    later steps of the killed session are purged), and the run goes on exactly as
    an uninterrupted one. Without any checkpoint the run starts again from its
    first iteration. Interrupted and stopped runs can be resumed (a stopped run
    deterministically meets its non-finite loss again).

    Everything is read under the directory's lock and checked before anything is
    compiled: ``config.json`` (types and sha256), ``summary.json``, ``latest.json``,
    the checkpoint's sha256 and the ``metrics.jsonl`` lines up to it.

    Args:
      run_dir: the run directory.
      experiment: the run's experiment, when it does not come from a preset.
      progress: show a progress bar.
      overrides: ``"key=value"`` strings changing config fields on purpose (e.g.
        ``iterations=2000``); the seed cannot change. They are validated like
        ``--set`` of a new run, applied to the stored config, and recorded in
        ``config.json`` (``"resumed_with_overrides"``, with the iteration and the
        previous values) before the run continues.

    Raises:
      ValueError: overrides together with ``experiment``, or overrides the config
        rejects (including its memory estimate).
      RunDirectoryError: missing, corrupt or inconsistent directory, unknown format
        version, a completed run without a larger ``iterations`` override (with
        one, its end products move to ``completed_<iterations>/`` and it trains
        on), another process holding the lock, or an
        ``experiment`` that does not match the stored config.
      NonFiniteLossError, KeyboardInterrupt: as in :func:`run`.
    """
    run_dir = Path(run_dir)
    overrides = list(overrides)
    if overrides and experiment is not None:
        raise ValueError("resume() takes overrides or an experiment, not both")
    if not run_dir.is_dir():
        raise RunDirectoryError(f"no run directory at {run_dir}")
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunDirectoryError(
            f"{run_dir} has no {CONFIG_FILE} (not a run directory?)"
        )
    writer = distributed.is_writer()
    with contextlib.ExitStack() as held:

        def prepare() -> _Resumed:
            held.enter_context(lock_run_directory(run_dir))
            return _prepare_resume(run_dir, experiment, overrides, writes=True)

        # process 0 first (it may record overrides and cut metrics.jsonl), then
        # the others read the directory as it left it
        first = _agreed(writer, prepare)
        others = _agreed(
            not writer,
            lambda: _prepare_resume(run_dir, experiment, overrides, writes=False),
        )
        resumed = first if writer else others
        loop = _Loop(
            resumed.experiment,
            run_dir,
            resumed.settings,
            resumed.label,
            progress,
            writer=writer,
            shardings=_shardings(resumed.state),
        )
        return loop.drive(
            resumed.state, resumed.start, resumed.wall_offset, resumed.metrics
        )


class _Resumed(NamedTuple):
    """What a resumed run starts from."""

    experiment: Experiment
    settings: RunSettings
    label: str
    state: Any
    start: int
    wall_offset: float
    metrics: bytes


def _prepare_resume(
    run_dir: Path,
    experiment: Experiment | None,
    overrides: list[str],
    writes: bool,
) -> _Resumed:
    """Read and check a run directory, restore its checkpoint and (``writes``:
    process 0, holding the lock) record the overrides and cut ``metrics.jsonl``
    back to the checkpoint."""
    config = read_config(run_dir)
    summary_path = run_dir / SUMMARY_FILE
    summary = _previous_summary(summary_path)
    completed = summary is not None and summary[0] == "completed"
    changes: dict[str, tuple[Any, Any]] = {}
    if experiment is None:
        stored = _stored_config(config)
        if overrides:
            changed = replace_values(stored, parse_overrides(stored, overrides))
            changes = _changes(stored, changed)
            if "seed" in changes:
                raise ValueError(
                    "the seed of a run cannot change when it resumes (its PRNG keys "
                    "are in the checkpoint); start a new run for another seed"
                )
            stored = changed
        experiment = _experiment(stored, config)
    elif (
        experiment.kind != config["kind"]
        or config_to_json(experiment.config) != config["config"]
    ):
        raise RunDirectoryError(
            f"the given experiment does not match the config stored in {run_dir}"
        )
    if completed and experiment.iterations <= summary[1]:
        raise RunDirectoryError(
            f"{run_dir} is a completed run of {summary[1]} iterations; there is "
            f"nothing to resume. Train it longer with --set iterations=N (N > "
            f"{summary[1]}), or start a new run with another --run-dir"
        )
    settings = _settings(config, run_dir)
    _check_memory(experiment.config)
    found = find_checkpoint(run_dir)
    _check_consistent(run_dir, summary, found, settings)
    verified = _verified_metrics(run_dir / METRICS_FILE, found)
    template = experiment.init(key_from_seed(settings.seed))
    if found is None:
        start, state = 0, template
    else:
        hint = (
            f" (the overrides {', '.join(changes)} change the training state)"
            if changes
            else ""
        )
        start, state = found.iteration, _restore(found, template, hint)
        on_boundary = (
            start % settings.log_every == 0
            or start == experiment.iterations
            or (completed and start == summary[1])  # the end of a shorter run
        )
        if start > experiment.iterations or not on_boundary:
            raise RunDirectoryError(
                f"checkpoint iteration {start} does not fit the run "
                f"({experiment.iterations} iterations, log_every {settings.log_every})"
            )
    if changes:
        entry = {
            "iteration": start,
            "set": {k: new for k, (_, new) in changes.items()},
            "previous": {k: old for k, (old, _) in changes.items()},
            "time": _now(),
        }
        config = {
            **config,
            "config": config_to_json(experiment.config),
            "resumed_with_overrides": [
                *config.get("resumed_with_overrides", []),
                entry,
            ],
        }
        if writes:
            _write_config(run_dir, config)
    label = config.get("preset") or experiment.kind
    if not writes:
        return _Resumed(experiment, settings, label, state, start, 0.0, b"")
    _remove_stale_temporaries(run_dir)
    if completed:
        archive_completed(run_dir, summary[1])
    wall_offset, metrics = _truncate_metrics(run_dir / METRICS_FILE, start, verified)
    with contextlib.suppress(FileNotFoundError):
        summary_path.unlink()
    return _Resumed(experiment, settings, label, state, start, wall_offset, metrics)
