"""Run directories of ``dilemmas train``: their files, their lock, their checks.

Everything that reads, writes or verifies a file of a run directory (the format
is ``docs/run_directory.md``); :mod:`dilemmas.training.runner` drives a run
through it:

* ``config.json`` (:func:`read_config`), with the run's :class:`RunSettings`
  (its ``"run"`` entry) and the sha256 records of :func:`config_integrity`;
* checkpoints: :func:`save_checkpoint` writes ``checkpoints/iter_XXXXXXXX.msgpack``
  with :func:`flax.serialization.to_bytes` (msgpack, never pickle; typed PRNG keys
  are stored as their raw ``key_data``), then ``checkpoints/latest.json``, and
  keeps the newest ``keep_checkpoints``; :func:`find_checkpoint`,
  :func:`read_checkpoint` and :func:`load_checkpoint` read them back, verified;
* ``metrics.jsonl`` and ``summary.json`` as a resumed run reads them: checked,
  verified, and cut back to the checkpoint;
* the exclusive lock of the directory (:func:`lock_run_directory`).

Every file except the append-only ``metrics.jsonl`` is written atomically (a
temporary file in the same folder, ``fsync``, ``os.replace``; :func:`atomic_write`).

Safety of a run directory (``docs/run_directory.md``):

* one writer: :func:`~dilemmas.training.runner.run` and
  :func:`~dilemmas.training.runner.resume` hold an exclusive ``flock`` on
  ``RUN_DIR/.lock`` (:func:`lock_run_directory`) while they write; a second
  process is refused with the holder's pid. The kernel releases the lock when the
  process dies, so a killed run never leaves a stale lock.
* integrity: ``latest.json`` records the sha256 of its checkpoint and of the
  ``metrics.jsonl`` lines up to it; ``config.json`` records the sha256 of its own
  content and of each field. Both are verified before a run resumes; a mismatch,
  like any corrupt or inconsistent file, is a :class:`RunDirectoryError` naming
  the file and what is wrong (files of older versions without these records are
  accepted, unverified).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import serialization

from dilemmas.agents.policy import POLICY_DIR, policy_files
from dilemmas.envs.seeding import check_seed, key_from_seed
from dilemmas.training.configs import (
    check_ints,
    is_int,
    is_number,
    to_json_value,
)
from dilemmas.training.experiment import Experiment

#: ``format_version`` of the run directories this module writes and reads.
FORMAT_VERSION = 1

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVALUATION_FILE = "evaluation.json"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.json"
LOCK_FILE = ".lock"
#: Key of ``config.json`` holding the sha256 of the rest of the file.
INTEGRITY_KEY = "integrity"
_CHECKPOINT_NAME = re.compile(r"iter_([0-9]{8,})\.msgpack", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_FIELD_DIGEST = re.compile(r"[0-9a-f]{16}", re.ASCII)
_STATUSES = ("completed", "stopped", "interrupted")


class RunDirectoryError(ValueError):
    """A run directory that is missing, corrupt, in use, or may not be (re)used."""


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
      seed: any integer; the run's key is
        :func:`~dilemmas.envs.seeding.key_from_seed` of it (``jax.random.key(seed)``
        for ``0 <= seed < 2**32``), passed to ``experiment.init``.
    """

    log_every: int
    checkpoint_every: int
    keep_checkpoints: int = 3
    seed: int = 0

    def __post_init__(self):
        check_ints(self, {"log_every": 1, "checkpoint_every": 1, "keep_checkpoints": 1})
        object.__setattr__(self, "seed", check_seed(self.seed, "seed"))
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


def write_policies(
    run_dir: str | Path, experiment: Experiment, state: Any
) -> list[str]:
    """Write the trained agents of ``state`` to ``run_dir/policies/`` (the files
    :func:`dilemmas.agents.load_policy` reads); returns their names. An experiment
    without a ``policies(state)`` method writes none."""
    exporter = getattr(experiment, "policies", None)
    if exporter is None:
        return []
    folder = Path(run_dir) / POLICY_DIR
    folder.mkdir(exist_ok=True)
    written = []
    for name, trained in exporter(state).items():
        spec, data = policy_files(trained)
        atomic_write(folder / f"{name}.msgpack", data)
        atomic_write(folder / f"{name}.json", spec)
        written.append(name)
    return written


def _write_json(path: Path, record: Any) -> None:
    text = json.dumps(to_json_value(record), indent=2, allow_nan=False)
    atomic_write(path, (text + "\n").encode())


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of the range of floats")
    return value


def _loads(data: str | bytes) -> Any:
    """``json.loads`` of what this module writes: no ``NaN``/``Infinity`` and no
    float literals out of range (they become ``inf`` otherwise).

    Raises:
      ValueError: not JSON, not UTF-8, or nested too deeply.
    """
    try:
        return json.loads(
            data, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _read_json(path: Path, what: str) -> Any:
    try:
        return _loads(path.read_bytes())
    except FileNotFoundError:
        raise RunDirectoryError(f"{path.parent} has no {path.name} ({what})") from None
    except IsADirectoryError:
        raise RunDirectoryError(f"{path} is a directory, not a file") from None
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


# --------------------------------------------------------------------------------------
# One writer per run directory


def _lock_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        if text.isdigit():
            return f"pid {int(text)}"
    return "pid unknown"


@contextlib.contextmanager
def lock_run_directory(run_dir: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of ``run_dir`` (``flock`` on ``RUN_DIR/.lock``).

    The lock file keeps the holder's pid for the refusal message. The kernel drops
    the lock when the holder's file descriptor closes, including when the process
    is killed, so there are no stale locks; the file itself stays (removing it
    would let two processes lock two different files). ``flock`` is advisory and
    may not work across machines on network file systems; on systems without
    ``fcntl`` there is no lock.

    Raises:
      RunDirectoryError: another process holds the lock (its pid is named).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunDirectoryError(f"cannot open the lock file {path}: {err}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryError(
                f"{run_dir} is in use by another dilemmas process ({_lock_holder(fd)}"
                f" holds {path}); two writers would interleave its files. Wait for "
                "it to finish or stop it, then resume with `dilemmas train --resume "
                f"{run_dir}`"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------
# config.json


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode()


def _leaves(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted paths of the values of a JSON object (non-empty objects are
    flattened, everything else is a leaf)."""
    leaves = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def config_integrity(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``"integrity"`` entry of a ``config.json`` record: the sha256 of the
    canonical JSON of every other entry, and a short digest of each field (dotted
    path) so that a mismatch can name the fields that changed."""
    body = {k: v for k, v in record.items() if k != INTEGRITY_KEY}
    fields = {
        path: hashlib.sha256(_canonical(value)).hexdigest()[:16]
        for path, value in _leaves(body).items()
    }
    return {"sha256": hashlib.sha256(_canonical(body)).hexdigest(), "fields": fields}


def _write_config(run_dir: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    body = to_json_value({k: v for k, v in record.items() if k != INTEGRITY_KEY})
    body[INTEGRITY_KEY] = config_integrity(body)
    _write_json(run_dir / CONFIG_FILE, body)
    return body


def _verify_integrity(path: Path, record: dict[str, Any]) -> None:
    stored = record.get(INTEGRITY_KEY)
    if stored is None:  # written before dilemmas recorded it: not verifiable
        return
    if (
        not isinstance(stored, dict)
        or not isinstance(stored.get("sha256"), str)
        or not _SHA256.fullmatch(stored["sha256"])
        or not isinstance(stored.get("fields"), dict)
        or not all(
            isinstance(v, str) and _FIELD_DIGEST.fullmatch(v)
            for v in stored["fields"].values()
        )
    ):
        raise RunDirectoryError(
            f"{path}: its {INTEGRITY_KEY!r} entry is corrupt (expected the sha256 "
            "of the file and a digest per field)"
        )
    try:
        current = config_integrity(record)
    except (TypeError, ValueError) as err:
        raise RunDirectoryError(
            f"{path} holds values JSON cannot hold ({err})"
        ) from None
    if current["sha256"] == stored["sha256"]:
        return
    now, then = current["fields"], stored["fields"]
    changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    what = (
        f"fields that differ from what the run wrote: {', '.join(changed)}"
        if changed
        else "its content does not match its recorded sha256"
    )
    raise RunDirectoryError(
        f"{path} was changed after the run wrote it ({what}). Restore it; to "
        "change a config field of a run on purpose, resume it with `dilemmas train "
        f"--resume {path.parent} --set key=value`"
    )


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a run directory, checked before anything uses it.

    Checked: a known ``format_version``, the type of every entry, and the recorded
    sha256 (``"integrity"``, absent from run directories of older versions, which
    are accepted unverified).

    Raises:
      RunDirectoryError: no such directory, no or unreadable ``config.json``, a
        ``format_version`` this version of dilemmas does not know, a missing or
        mistyped entry, or content that does not match its sha256 (naming the
        fields that differ).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"no run directory at {run_dir}")
    path = run_dir / CONFIG_FILE
    config = _read_json(path, "not a run directory?")
    if not isinstance(config, dict):
        raise RunDirectoryError(f"{path} is not a JSON object")
    found = config.get("format_version")
    if not is_int(found) or found != FORMAT_VERSION:
        raise RunDirectoryError(
            f"{path} has format_version {found!r}, but this version "
            f"of dilemmas ({_dilemmas_version()}) reads format_version "
            f"{FORMAT_VERSION}"
        )
    for key in ("kind", "config", "run"):
        if key not in config:
            raise RunDirectoryError(f"{path} has no {key!r} entry")
    _verify_integrity(path, config)
    expected = {
        "kind": (str, "a string"),
        "config": (dict, "an object"),
        "run": (dict, "an object"),
        "preset": ((str, type(None)), "a string or null"),
        "overrides": (dict, "an object"),
        "dilemmas_version": (str, "a string"),
        "created": (str, "a string"),
        "resumed_with_overrides": (list, "a list"),
    }
    for key, (types_, shown) in expected.items():
        if key in config and not isinstance(config[key], types_):
            raise RunDirectoryError(
                f"{path}: {key!r} must be {shown}, got {config[key]!r:.80}"
            )
    num_seeds = config.get("num_seeds", 1)
    if not is_int(num_seeds) or num_seeds < 1:
        raise RunDirectoryError(
            f"{path}: 'num_seeds' must be an int >= 1, got {num_seeds!r}"
        )
    return config


def _settings(config: Mapping[str, Any], run_dir: Path) -> RunSettings:
    try:
        return RunSettings(**config["run"])
    except (TypeError, ValueError) as err:
        raise RunDirectoryError(
            f"{run_dir / CONFIG_FILE}: bad 'run' entry ({err})"
        ) from None


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

    try:
        return jax.tree.map(restore, template, raw_template, restored)
    except ValueError:
        raise
    except Exception as err:  # a structure or leaf msgpack decoded differently
        raise ValueError(
            f"not a checkpoint of this state ({type(err).__name__}: {err})"
        ) from None


def _checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    files = []
    for path in folder.glob("iter_*.msgpack"):
        match = _CHECKPOINT_NAME.fullmatch(path.name)
        if match:
            files.append((int(match.group(1)), path))
    return sorted(files)


def save_checkpoint(
    run_dir: Path,
    iteration: int,
    state: Any,
    keep: int,
    metrics: tuple[int, str] | None = None,
) -> Path:
    """Write ``iter_XXXXXXXX.msgpack`` and ``latest.json``; keep the newest ``keep``.

    ``latest.json`` records the file's sha256 and, when given, ``metrics`` =
    ``(bytes, sha256)`` of ``metrics.jsonl`` up to this iteration.
    """
    folder = run_dir / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    name = f"iter_{iteration:08d}.msgpack"
    data = state_to_bytes(state)
    atomic_write(folder / name, data)
    latest = {
        "iteration": iteration,
        "file": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    if metrics is not None:
        latest["metrics_bytes"], latest["metrics_sha256"] = metrics
    atomic_write(folder / LATEST_FILE, (json.dumps(latest) + "\n").encode())
    for _, old in _checkpoint_files(folder)[:-keep]:
        if old.name != name:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
    return folder / name


class Checkpoint(NamedTuple):
    """What ``latest.json`` says about the newest checkpoint (``None``: not
    recorded, by an older version or without ``latest.json``)."""

    iteration: int
    path: Path
    sha256: str | None = None
    size: int | None = None
    metrics_bytes: int | None = None
    metrics_sha256: str | None = None


def _pointer_entry(latest: dict, key: str, pointer: Path, check, shown: str) -> Any:
    if key not in latest:
        return None
    value = latest[key]
    if not check(value):
        raise RunDirectoryError(
            f"{pointer}: {key!r} must be {shown}, got {value!r:.80}"
        )
    return value


def _read_pointer(pointer: Path) -> Checkpoint:
    latest = _read_json(pointer, "checkpoint pointer")
    if not isinstance(latest, dict):
        raise RunDirectoryError(
            f"{pointer} is not a checkpoint pointer: {latest!r:.80}"
        )
    for key in ("iteration", "file"):
        if key not in latest:
            raise RunDirectoryError(f"{pointer} has no {key!r} entry")
    iteration = _pointer_entry(
        latest, "iteration", pointer, lambda v: is_int(v) and v >= 1, "an int >= 1"
    )
    name = _pointer_entry(
        latest,
        "file",
        pointer,
        lambda v: isinstance(v, str) and _CHECKPOINT_NAME.fullmatch(v),
        "the name of a checkpoint in checkpoints/ (iter_XXXXXXXX.msgpack)",
    )
    if int(_CHECKPOINT_NAME.fullmatch(name).group(1)) != iteration:
        raise RunDirectoryError(
            f"{pointer} names {name} but says iteration {iteration}"
        )

    def is_hash(v: Any) -> bool:
        return isinstance(v, str) and _SHA256.fullmatch(v) is not None

    def is_size(v: Any) -> bool:
        return is_int(v) and v >= 0

    found = Checkpoint(
        iteration,
        pointer.parent / name,
        _pointer_entry(latest, "sha256", pointer, is_hash, "a sha256 hex digest"),
        _pointer_entry(latest, "size", pointer, is_size, "an int >= 0"),
        _pointer_entry(latest, "metrics_bytes", pointer, is_size, "an int >= 0"),
        _pointer_entry(
            latest, "metrics_sha256", pointer, is_hash, "a sha256 hex digest"
        ),
    )
    if (found.metrics_bytes is None) != (found.metrics_sha256 is None):
        raise RunDirectoryError(
            f"{pointer} has one of 'metrics_bytes' and 'metrics_sha256' without "
            "the other"
        )
    if not found.path.is_file():
        raise RunDirectoryError(f"{pointer} names {name}, which is missing")
    return found


def find_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """The newest checkpoint as ``latest.json`` records it, or ``None``.

    ``latest.json`` may only name a file ``iter_XXXXXXXX.msgpack`` of
    ``checkpoints/`` (no path separators, no ``..``) whose number is its
    ``iteration``. Without ``latest.json`` (a run killed between its first
    checkpoint and the pointer) the single ``iter_*.msgpack`` is used, unverified;
    several checkpoints without a pointer are an error (one was deleted).

    Raises:
      RunDirectoryError: ``latest.json`` is unreadable, malformed, inconsistent or
        names a missing file, or is missing while there are several checkpoints.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    pointer = folder / LATEST_FILE
    if pointer.exists() or pointer.is_symlink():
        return _read_pointer(pointer)
    files = _checkpoint_files(folder) if folder.is_dir() else []
    if len(files) > 1:
        raise RunDirectoryError(
            f"{pointer} is missing but {folder} holds {len(files)} checkpoints "
            f"({', '.join(p.name for _, p in files)}); restore {LATEST_FILE}, or "
            "delete the checkpoints that are not the run's latest"
        )
    return Checkpoint(*files[0]) if files else None


def latest_checkpoint(run_dir: str | Path) -> tuple[int, Path] | None:
    """``(iteration, path)`` of the newest checkpoint, or ``None`` when there is none
    (see :func:`find_checkpoint`, which also gives the recorded checksums).

    Raises:
      RunDirectoryError: as :func:`find_checkpoint`.
    """
    found = find_checkpoint(run_dir)
    return None if found is None else (found.iteration, found.path)


def _checkpoint_bytes(found: Checkpoint) -> bytes:
    try:
        data = found.path.read_bytes()
    except OSError as err:
        raise RunDirectoryError(f"cannot read {found.path}: {err}") from None
    if found.sha256 is None:
        warnings.warn(
            f"{found.path} is not verified: no sha256 is recorded for it (a run "
            f"directory of an older dilemmas, or a missing {LATEST_FILE})",
            RuntimeWarning,
            stacklevel=3,
        )
    elif (found.size is not None and len(data) != found.size) or (
        hashlib.sha256(data).hexdigest() != found.sha256
    ):
        size = "" if found.size is None else f", {found.size} bytes when written"
        raise RunDirectoryError(
            f"{found.path} is corrupt: its sha256 does not match the one recorded "
            f"in {LATEST_FILE} ({len(data)} bytes now{size}). Restore the file, or "
            "start a new run"
        )
    return data


def read_checkpoint(run_dir: str | Path) -> tuple[int, bytes] | None:
    """``(iteration, msgpack bytes)`` of the newest checkpoint, verified against
    the sha256 in ``latest.json``; ``None`` when there is no checkpoint.

    For readers of other runs' checkpoints (e.g. to initialise from them): restore
    with :func:`state_from_bytes` or ``flax.serialization.msgpack_restore``.

    Raises:
      RunDirectoryError: as :func:`find_checkpoint`, or a checksum mismatch.
    """
    found = find_checkpoint(run_dir)
    return None if found is None else (found.iteration, _checkpoint_bytes(found))


def load_checkpoint(run_dir: str | Path, experiment: Experiment) -> tuple[int, Any]:
    """``(iteration, state)`` of the newest checkpoint of a run directory.

    The template is ``experiment.init(key_from_seed(seed))`` with the run's seed;
    the bytes are verified against ``latest.json``.

    Raises:
      RunDirectoryError: no checkpoint, a corrupt one, or one that does not fit
        the experiment.
    """
    run_dir = Path(run_dir)
    settings = _settings(read_config(run_dir), run_dir)
    found = find_checkpoint(run_dir)
    if found is None:
        raise RunDirectoryError(f"{run_dir} has no checkpoint yet")
    template = experiment.init(key_from_seed(settings.seed))
    return found.iteration, _restore(found, template)


def _restore(found: Checkpoint, template: Any, hint: str = "") -> Any:
    data = _checkpoint_bytes(found)
    try:
        return state_from_bytes(template, data)
    except ValueError as err:
        raise RunDirectoryError(f"cannot restore {found.path}: {err}{hint}") from None


# --------------------------------------------------------------------------------------
# metrics.jsonl


def _is_metric_value(value: Any) -> bool:
    if value is None or (is_number(value) and math.isfinite(value)):
        return True
    return isinstance(value, list) and all(_is_metric_value(v) for v in value)


def _check_metric_line(path: Path, number: int, record: Any, names: set) -> float:
    """Check one parsed ``metrics.jsonl`` line against the contract; return its
    ``wall_time``."""
    where = f"{path} line {number}"
    if not isinstance(record, dict):
        raise RunDirectoryError(f"{where} is not a JSON object")
    wall = record.get("wall_time")
    if not is_number(wall) or not math.isfinite(wall) or wall < 0:
        raise RunDirectoryError(f"{where}: 'wall_time' must be a number >= 0")
    for name, value in record.items():
        if name not in ("iteration", "wall_time") and not _is_metric_value(value):
            raise RunDirectoryError(
                f"{where}: metric {name!r} must be numbers or null in lists"
            )
    if names and set(record) != names:
        raise RunDirectoryError(
            f"{where} has the keys {sorted(record)}, the lines before {sorted(names)}"
        )
    return float(wall)


def _verified_metrics(path: Path, found: Checkpoint | None) -> bytes | None:
    """The bytes of ``metrics.jsonl`` up to the checkpoint, verified against the
    sha256 recorded with it; ``None`` when none is recorded."""
    if found is None or found.metrics_sha256 is None:
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunDirectoryError(
            f"{path} is missing but there is a checkpoint"
        ) from None
    except OSError as err:
        raise RunDirectoryError(f"cannot read {path}: {err}") from None
    prefix = data[: found.metrics_bytes]
    if (
        len(prefix) != found.metrics_bytes
        or hashlib.sha256(prefix).hexdigest() != found.metrics_sha256
    ):
        raise RunDirectoryError(
            f"{path} does not match the sha256 recorded with the checkpoint "
            f"{found.path.name}: its first {found.metrics_bytes} bytes (iterations "
            f"1 to {found.iteration}) were changed or cut ({len(data)} bytes now). "
            "Restore the file, or start a new run"
        )
    return prefix


def _truncate_metrics(
    path: Path, iteration: int, verified: bytes | None = None
) -> tuple[float, bytes]:
    """Keep the lines of iterations ``1..iteration`` (dropping later ones and a torn
    last line); return the ``wall_time`` of the last kept line and the kept bytes.

    ``verified`` is the prefix that :func:`_verified_metrics` checked; without it
    (run directories of older versions) every kept line is checked against the
    contract.

    Raises:
      RunDirectoryError: fewer complete lines than ``iteration``, lines out of
        order, or a line that breaks the contract.
    """
    if verified is None and not path.exists():
        if iteration > 0:
            raise RunDirectoryError(f"{path} is missing but there is a checkpoint")
        return 0.0, b""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RunDirectoryError(f"cannot read {path}: {err}") from None
    if verified is not None:
        lines = verified.split(b"\n")[:-1] if verified else []
        if len(lines) != iteration or (verified and not verified.endswith(b"\n")):
            raise RunDirectoryError(
                f"{path}: the bytes recorded with the checkpoint hold {len(lines)} "
                f"lines, but the checkpoint is at iteration {iteration}"
            )
        wall_time = 0.0
        if lines:
            try:
                record = _loads(lines[-1])
            except ValueError as err:
                raise RunDirectoryError(f"{path} line {iteration}: {err}") from None
            wall_time = _check_metric_line(path, iteration, record, set())
        if data != verified:
            atomic_write(path, verified)
        return wall_time, verified
    kept: list[bytes] = []
    names: set = set()
    wall_time = 0.0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except ValueError:
            break  # a torn line: everything after it is unwritten
        number = len(kept) + 1
        step = record.get("iteration") if isinstance(record, dict) else None
        if not is_int(step):
            raise RunDirectoryError(
                f"{path} line {number}: 'iteration' must be an integer, got "
                f"{step!r:.40}"
            )
        if step > iteration:
            break
        if step != number:
            raise RunDirectoryError(f"{path} line {number} is iteration {step}")
        wall_time = _check_metric_line(path, number, record, names)
        names = set(record)
        kept.append(line)
    if len(kept) != iteration:
        raise RunDirectoryError(
            f"{path} has {len(kept)} complete lines, but the checkpoint is at "
            f"iteration {iteration}"
        )
    text = b"".join(line + b"\n" for line in kept)
    if text != data:
        atomic_write(path, text)
    return wall_time, text


# --------------------------------------------------------------------------------------
# summary.json and the directory as a whole


def _previous_summary(path: Path) -> tuple[str, int] | None:
    """``(status, iterations_completed)`` of an existing ``summary.json``."""
    if not path.exists() and not path.is_symlink():
        return None
    summary = _read_json(path, "summary")
    status = summary.get("status") if isinstance(summary, dict) else None
    done = summary.get("iterations_completed") if isinstance(summary, dict) else None
    if status not in _STATUSES or not is_int(done) or done < 0:
        raise RunDirectoryError(
            f"{path} is not a run summary (expected a status among "
            f"{', '.join(_STATUSES)} and iterations_completed, an int >= 0); if the "
            f"run did not complete, delete {path.name} and resume again"
        )
    return status, done


def archive_completed(run_dir: Path, iterations: int) -> Path:
    """Move a completed run's end products (``evaluation.json``, ``policies/``, then
    ``summary.json``) into ``completed_<iterations>/`` before the run is extended,
    so that nothing of the shorter run is overwritten; returns that folder."""
    folder = run_dir / f"completed_{iterations:08d}"
    folder.mkdir(exist_ok=True)
    for name in (EVALUATION_FILE, POLICY_DIR, SUMMARY_FILE):
        path = run_dir / name
        if path.exists():
            os.replace(path, folder / name)
    return folder


def _check_consistent(
    run_dir: Path,
    summary: tuple[str, int] | None,
    found: Checkpoint | None,
    settings: RunSettings,
) -> None:
    """The summary, the checkpoint and ``metrics.jsonl`` tell the same story."""
    at = 0 if found is None else found.iteration
    where = "there is no checkpoint" if found is None else f"the checkpoint is at {at}"
    if summary is not None:
        status, done = summary
        if (status == "interrupted" and done != at) or done < at:
            raise RunDirectoryError(
                f"{run_dir / SUMMARY_FILE} says {status} after iteration {done}, but "
                f"{where}: a file was replaced or deleted. Restore it, or start a "
                "new run"
            )
    if found is None:
        path = run_dir / METRICS_FILE
        try:
            lines = path.read_bytes().count(b"\n") if path.exists() else 0
        except OSError as err:
            raise RunDirectoryError(f"cannot read {path}: {err}") from None
        if lines > settings.checkpoint_every:
            raise RunDirectoryError(
                f"{path} has {lines} lines but there is no checkpoint, although "
                f"one is written every {settings.checkpoint_every} iterations: "
                f"{CHECKPOINT_DIR}/ was emptied. Restore it, or start a new run"
            )


def _check_new_directory(run_dir: Path) -> None:
    """``run_dir`` is missing or empty (a lock file left by an attempt that was
    refused counts as empty)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} exists and is not a directory")
    if run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        raise RunDirectoryError(
            f"refusing to write into the non-empty directory {run_dir}; continue it "
            f"with `dilemmas train --resume {run_dir}` or choose another --run-dir"
        )
