"""Run directories for reports: reading, finding and grouping them.

The reading half of :mod:`dilemmas.analysis.report` (which re-exports the public
names): :func:`load_run` reads one run directory (the format of
``docs/run_directory.md``, the whole contract with the training side: nothing here
imports ``dilemmas.training``) into a :class:`Run`; :func:`find_runs` finds run
directories under a folder; :func:`group_runs` groups runs by preset and config
(seed aside) and pools each group's seeds into a :class:`Group`, counting a run
that repeats another (:func:`find_repeats`) once.

Bad input: a missing ``config.json``, an unknown ``format_version``, or nothing to
analyse raise :class:`RunDirectoryError` naming what is missing. A run without
``summary.json`` (still running or killed) is read up to its last complete
``metrics.jsonl`` line, with a note saying so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: ``format_version`` values of ``config.json`` this reader understands.
SUPPORTED_FORMAT_VERSIONS: tuple[int, ...] = (1,)
#: Status of a run directory without ``summary.json``.
INCOMPLETE = "incomplete (no summary.json: still running or killed)"

_CONTENTS = (
    "A run directory (written by `dilemmas train`) holds config.json, "
    "metrics.jsonl and, once the run ends, evaluation.json and summary.json; "
    "see docs/run_directory.md."
)
_RESERVED = ("iteration", "wall_time")
#: Entries of ``config.json`` that record when and how a run was started or
#: extended, not what it computes: runs whose ``config.json`` differ only in these
#: are the same run (:func:`find_repeats`).
_BOOKKEEPING = ("created", "integrity", "overrides", "resumed_with_overrides")


class RunDirectoryError(ValueError):
    """A run directory that cannot be analysed; the message says what is missing."""


@dataclass
class Run:
    """One run directory, as read by :func:`load_run`.

    Attributes:
      path: the run directory.
      config: ``config.json`` as a dict.
      iterations: ``int[N]`` iteration numbers of the complete metrics records,
        ascending (a later record of the same iteration, from a resumed run,
        replaces the earlier one).
      wall_time: ``float[N]`` seconds since the run began, NaN where not logged.
      metrics: name -> ``float[N, seeds]`` or ``float[N, seeds, agents]``, NaN where
        the record held ``null`` or did not hold the metric.
      evaluation: ``evaluation.json`` as a dict, or ``None`` if absent.
      summary: ``summary.json`` as a dict, or ``None`` if absent.
      status: ``"completed"``, ``"stopped"``, ``"interrupted"`` (from
        ``summary.json``) or :data:`INCOMPLETE`.
      notes: human-readable warnings (partial run, torn lines, ...).
    """

    path: Path
    config: dict[str, Any]
    iterations: np.ndarray
    wall_time: np.ndarray
    metrics: dict[str, np.ndarray]
    evaluation: dict[str, Any] | None
    summary: dict[str, Any] | None
    status: str
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.path.name

    @property
    def preset(self) -> str:
        """The preset given to ``dilemmas train`` (``"?"`` if not recorded), or the
        ``name`` the run was given with ``--set name=...`` (the configs' label for
        reports)."""
        overrides = self.config.get("overrides")
        if isinstance(overrides, Mapping):
            name = overrides.get("name")
            if isinstance(name, str) and name:
                return name
        return str(self.config.get("preset", "?"))

    @property
    def kind(self) -> str:
        """The algorithm family (``"?"`` if not recorded)."""
        return str(self.config.get("kind", "?"))

    @property
    def num_seeds(self) -> int:
        """Seeds of the run: ``config.json``'s ``num_seeds``, else the metrics'."""
        value = self.config.get("num_seeds")
        if isinstance(value, int) and value > 0:
            return value
        for values in self.metrics.values():
            return int(values.shape[1])
        return 0

    @property
    def last_iteration(self) -> int:
        """The last complete iteration in ``metrics.jsonl`` (0 if none)."""
        return int(self.iterations[-1]) if len(self.iterations) else 0

    @property
    def planned_iterations(self) -> int | None:
        """The iterations the config asked for, when it says."""
        for source in (self.config.get("config"), self.config.get("overrides")):
            if isinstance(source, Mapping):
                value = source.get("iterations")
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
        return None

    @property
    def seconds(self) -> float | None:
        """Wall time: ``summary.json``'s, else the last metrics record's."""
        if self.summary is not None and is_number(self.summary.get("wall_time")):
            return float(self.summary["wall_time"])
        finite = self.wall_time[np.isfinite(self.wall_time)]
        return float(finite[-1]) if len(finite) else None


# Reading ------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """A JSON number (``bool`` excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirectoryError(f"{path}: cannot read {what}: {err}") from err


def read_config(path: str | Path) -> dict[str, Any]:
    """``config.json`` of a run directory, its ``format_version`` checked.

    Raises:
      RunDirectoryError: not a directory, no ``config.json`` (the message says what
        a run directory holds), unreadable JSON, or a ``format_version`` this
        reader does not support (the message names found and supported values).
    """
    path = Path(path)
    if not path.is_dir():
        raise RunDirectoryError(
            f"{path} is not a directory (it does not exist or is a file). " + _CONTENTS
        )
    config_path = path / "config.json"
    if not config_path.is_file():
        raise RunDirectoryError(
            f"{path} is not a run directory: config.json is missing. " + _CONTENTS
        )
    config = _read_json(config_path, "config.json")
    if not isinstance(config, dict):
        raise RunDirectoryError(
            f"{config_path} must hold a JSON object, got {type(config).__name__}"
        )
    supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
    found = config.get("format_version")
    if found is None:
        raise RunDirectoryError(
            f"{config_path} has no format_version: not written by a compatible "
            f"`dilemmas train` (this reader supports format_version {supported})"
        )
    if found not in SUPPORTED_FORMAT_VERSIONS or isinstance(found, bool):
        writer = config.get("dilemmas_version", "an unknown version")
        raise RunDirectoryError(
            f"{path} was written with run-directory format_version {found!r} (by "
            f"dilemmas {writer}); this dilemmas ({package_version()}) reads "
            f"format_version {supported} only: analyse it with a matching version"
        )
    return config


def read_evaluation(path: str | Path) -> dict[str, Any]:
    """``evaluation.json`` of a run directory (``config.json`` checked first).

    Raises:
      RunDirectoryError: as :func:`read_config`, or no (or an unreadable)
        ``evaluation.json``.
    """
    path = Path(path)
    read_config(path)
    evaluation_path = path / "evaluation.json"
    if not evaluation_path.is_file():
        raise RunDirectoryError(
            f"{path} has no evaluation.json: it is written when a run ends, so the "
            "run is still going, was killed, or stopped on an error (see its "
            "summary.json)"
        )
    evaluation = _read_json(evaluation_path, "evaluation.json")
    if not isinstance(evaluation, dict):
        raise RunDirectoryError(f"{evaluation_path} must hold a JSON object")
    return evaluation


def _optional_json(path: Path, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        notes.append(f"{path.name} cannot be read ({err}); ignored")
        return None
    if not isinstance(value, dict):
        notes.append(f"{path.name} does not hold a JSON object; ignored")
        return None
    return value


def _records(
    path: Path, notes: list[str]
) -> tuple[list[tuple[int, dict[str, Any]]], int | None]:
    """``(line number, record)`` of the complete lines of ``metrics.jsonl``, and the
    number of a torn last line (``None`` if the last line is complete)."""
    lines = path.read_bytes().split(b"\n")
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    records = []
    torn = None
    for position, (number, line) in enumerate(numbered):
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if position == len(numbered) - 1:
                torn = number
            else:
                notes.append(
                    f"metrics.jsonl line {number} is not valid JSON (a torn write "
                    "of a killed run that was later resumed?); it is skipped"
                )
            continue
        iteration = record.get("iteration") if isinstance(record, dict) else None
        if not isinstance(iteration, int) or isinstance(iteration, bool):
            raise RunDirectoryError(
                f"{path} line {number}: a metrics record must be a JSON object with "
                f"an integer 'iteration'; got {line[:120].decode('utf-8', 'replace')}"
            )
        records.append((number, record))
    return records, torn


def _metric_entry(
    value: Any, where: str, name: str, num_seeds: int
) -> list[float | list[float] | None]:
    if not isinstance(value, list) or len(value) != num_seeds:
        raise RunDirectoryError(
            f"{where}: metric {name!r} must be a list over the {num_seeds} seeds "
            f"(num_seeds in config.json); got {json.dumps(value)[:120]}"
        )
    for entry in value:
        entries = entry if isinstance(entry, list) else [entry]
        if not all(x is None or is_number(x) for x in entries):
            raise RunDirectoryError(
                f"{where}: metric {name!r} holds a value that is neither a number, "
                f"null nor a list of them: {json.dumps(entry)[:120]}"
            )
    return value


def _parse_metrics(
    path: Path, num_seeds: int | None, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    records, torn = _records(path, notes)
    by_iteration: dict[int, tuple[int, dict[str, Any]]] = {}
    replayed: list[int] = []
    for number, record in records:
        if record["iteration"] in by_iteration:
            replayed.append(record["iteration"])
        by_iteration[record["iteration"]] = (number, record)
    if replayed:
        notes.append(
            f"iterations {min(replayed)}-{max(replayed)} were logged more than once "
            "(a resumed run repeats the iterations after its last checkpoint); the "
            "later records are used"
        )
    ordered = [by_iteration[i] for i in sorted(by_iteration)]
    if num_seeds is None:
        for _, record in ordered:
            for key, value in record.items():
                if key not in _RESERVED and isinstance(value, list):
                    num_seeds = len(value)
                    break
            if num_seeds is not None:
                break
    names: dict[str, int] = {}  # name -> number of agents (0: no agents axis)
    for number, record in ordered:
        for key, value in record.items():
            if key in _RESERVED:
                continue
            where = f"{path} line {number}"
            entries = _metric_entry(value, where, key, num_seeds or 0)
            agents = max(
                (len(entry) for entry in entries if isinstance(entry, list)),
                default=0,
            )
            names[key] = max(names.get(key, 0), agents)
    iterations = np.array([record["iteration"] for _, record in ordered], np.int64)
    wall_time = np.array(
        [
            float(record["wall_time"]) if is_number(record.get("wall_time")) else np.nan
            for _, record in ordered
        ],
        np.float64,
    )
    metrics: dict[str, np.ndarray] = {}
    for name, agents in names.items():
        shape = (len(ordered), num_seeds or 0) + ((agents,) if agents else ())
        values = np.full(shape, np.nan)
        for row, (_, record) in enumerate(ordered):
            for seed, entry in enumerate(record.get(name) or ()):
                if isinstance(entry, list):
                    for agent, x in enumerate(entry):
                        if x is not None:
                            values[row, seed, agent] = x
                elif entry is not None:
                    if agents:
                        values[row, seed, :] = entry
                    else:
                        values[row, seed] = entry
        metrics[name] = values
    if torn is not None:
        last = int(iterations[-1]) if len(iterations) else 0
        notes.append(
            f"metrics.jsonl ends in an incomplete line (line {torn}: the run was "
            f"killed while writing it); it is ignored, so the run is analysed up to "
            f"iteration {last}"
        )
    return iterations, wall_time, metrics


def load_run(path: str | Path) -> Run:
    """Read one run directory.

    A torn last line of ``metrics.jsonl`` (a run killed mid-write) is ignored and
    noted; so is an unreadable middle line. Iterations logged twice (a resumed run
    replays from its checkpoint) keep the later record. A run without
    ``summary.json`` has status :data:`INCOMPLETE` and a note saying up to which
    iteration it is analysed.

    Raises:
      RunDirectoryError: not a directory, missing ``config.json``, unknown
        ``format_version``, a malformed metrics record, or nothing to analyse
        (``metrics.jsonl`` missing or without a complete record and no
        ``evaluation.json``). A run with ``evaluation.json`` but no metrics is
        read, with empty metrics and a note.
    """
    path = Path(path)
    config = read_config(path)
    notes: list[str] = []
    num_seeds = config.get("num_seeds")
    if not isinstance(num_seeds, int) or isinstance(num_seeds, bool) or num_seeds < 1:
        num_seeds = None
    evaluation = _optional_json(path / "evaluation.json", notes)
    summary = _optional_json(path / "summary.json", notes)
    metrics_path = path / "metrics.jsonl"
    if metrics_path.is_file():
        iterations, wall_time, metrics = _parse_metrics(metrics_path, num_seeds, notes)
        problem = None if len(iterations) else "metrics.jsonl holds no complete record"
    else:
        iterations = np.zeros(0, np.int64)
        wall_time = np.zeros(0, np.float64)
        metrics = {}
        problem = "metrics.jsonl is missing"
    if problem is not None:
        if evaluation is None:
            raise RunDirectoryError(
                f"{path}: nothing to analyse: {problem} and there is no "
                "evaluation.json (the run was killed before its first iteration "
                "completed, or this is not a complete run directory). " + _CONTENTS
            )
        notes.append(f"{problem}: no learning curves, only the evaluation")
    run = Run(
        path=path,
        config=config,
        iterations=iterations,
        wall_time=wall_time,
        metrics=metrics,
        evaluation=evaluation,
        summary=summary,
        status=INCOMPLETE if summary is None else str(summary.get("status", "?")),
        notes=notes,
    )
    if summary is None:
        planned = run.planned_iterations
        of = f" of {planned} planned" if planned is not None else ""
        notes.append(
            "no summary.json: the run is still going or was killed; analysed up to "
            f"iteration {run.last_iteration}{of} (its last complete metrics record)"
        )
    elif run.status != "completed":
        message = summary.get("message") or "no message"
        notes.append(f"the run ended with status {run.status!r}: {message}")
    for name, values in metrics.items():
        undefined = int(np.sum(np.isnan(values)))
        if undefined:
            axes = (
                "iteration x seed x agent" if values.ndim == 3 else "iteration x seed"
            )
            notes.append(
                f"{name} is undefined (null or not logged) in {undefined} of "
                f"{values.size} {axes} entries; curves and means skip them"
            )
    if evaluation is not None:
        for key in ("game", "num_seeds"):
            if key not in evaluation:
                notes.append(f"evaluation.json has no {key!r} entry")
    return run


# Grouping -----------------------------------------------------------------------------


def _without_seed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_seed(v) for k, v in value.items() if k != "seed"}
    if isinstance(value, list):
        return [_without_seed(v) for v in value]
    return value


def group_key(run: Run) -> tuple[str, str]:
    """``(preset, resolved config without any "seed" key, as canonical JSON)``."""
    config = _without_seed(run.config.get("config", {}))
    return run.preset, json.dumps(config, sort_keys=True, default=str)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


@dataclass
class Group:
    """Runs sharing a preset and config, their seeds pooled.

    Attributes:
      label: the preset, plus the config values that set it apart from other
        groups of the same preset.
      runs: the runs, in path order.
      iterations: ``int[N]`` union of the runs' iterations.
      metrics: name -> ``[N, seeds]`` or ``[N, seeds, agents]``, every run's seeds
        concatenated (NaN where a run has no record of an iteration).
      seed_labels: ``"<run> seed <i>"`` per pooled seed.
      notes: warnings about the pooling.
      repeats: runs of the group that repeat one of :attr:`runs`
        (:func:`find_repeats`): listed, but their seeds are not pooled.
    """

    label: str
    runs: list[Run]
    iterations: np.ndarray
    metrics: dict[str, np.ndarray]
    seed_labels: list[str]
    notes: list[str] = field(default_factory=list)
    repeats: list[Repeat] = field(default_factory=list)

    @property
    def num_seeds(self) -> int:
        """Pooled seeds."""
        return len(self.seed_labels)


def _pad_agents(values: np.ndarray, agents: int) -> np.ndarray:
    if values.ndim == 2:
        values = np.repeat(values[:, :, None], max(agents, 1), axis=2)
    if values.shape[2] < agents:
        pad = np.full((*values.shape[:2], agents - values.shape[2]), np.nan)
        values = np.concatenate([values, pad], axis=2)
    return values


def pool(runs: Sequence[Run], label: str) -> Group:
    """Pool the seeds of ``runs`` (same config) into one :class:`Group`."""
    iterations = np.unique(
        np.concatenate([run.iterations for run in runs] or [np.zeros(0, np.int64)])
    )
    names: list[str] = []
    for run in runs:
        names += [name for name in run.metrics if name not in names]
    notes = []
    seed_labels = [
        f"{run.name} seed {seed}" for run in runs for seed in range(run.num_seeds)
    ]
    metrics = {}
    for name in names:
        agents = {
            run.metrics[name].shape[2] if run.metrics[name].ndim == 3 else 0
            for run in runs
            if name in run.metrics
        }
        width = max(agents)
        parts = []
        for run in runs:
            shape = (len(iterations), run.num_seeds) + ((width,) if width else ())
            part = np.full(shape, np.nan)
            if name in run.metrics:
                values = run.metrics[name]
                if width:
                    values = _pad_agents(values, width)
                rows = np.searchsorted(iterations, run.iterations)
                part[rows, : values.shape[1]] = values
            parts.append(part)
        metrics[name] = np.concatenate(parts, axis=1)
        if len(agents) > 1:
            notes.append(
                f"{name}: the runs log different numbers of agents ({sorted(agents)}); "
                "missing agents are NaN"
            )
    lengths = {run.last_iteration for run in runs}
    if len(runs) > 1 and len(lengths) > 1:
        notes.append(
            f"the pooled runs end at different iterations ({sorted(lengths)}); the "
            "later part of the curves has fewer seeds"
        )
    return Group(label, list(runs), iterations, metrics, seed_labels, notes)


class Repeat(NamedTuple):
    """A run that repeats an earlier one (:func:`find_repeats`)."""

    run: Run
    original: Run
    reason: str

    @property
    def note(self) -> str:
        """What the report and ``dilemmas analyze`` say about it."""
        return (
            f"{self.run.name} repeats {self.original.name} ({self.reason}): the same "
            "seed of the same config, not an independent one; counted once"
        )


def _final_metrics(run: Run) -> dict[str, np.ndarray] | None:
    """Every metric at the last iteration, ``None`` if there is no finite value."""
    if not len(run.iterations):
        return None
    final = {name: values[-1] for name, values in run.metrics.items()}
    if not any(np.isfinite(values).any() for values in final.values()):
        return None
    return final


def _same_metrics(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[name].shape == b[name].shape
        and np.array_equal(a[name], b[name], equal_nan=True)
        for name in a
    )


def find_repeats(runs: Sequence[Run]) -> list[Repeat]:
    """The runs that repeat an earlier run of ``runs`` (in order): the same seed of
    the same config, e.g. a run directory copied, or a command run twice.

    A run repeats an earlier one when both stopped at the same iteration and either
    their ``config.json`` are identical (the seed included) up to the entries that
    only record when and how a run was started (``created``, ``integrity``,
    ``overrides``, ``resumed_with_overrides``), or every metric holds identical
    values for every seed at that last iteration. Pooling such runs would count one
    outcome several times as independent seeds.
    """
    repeats: list[Repeat] = []
    originals: list[tuple[Run, str, dict[str, np.ndarray] | None]] = []
    for run in runs:
        identity = json.dumps(
            {k: v for k, v in run.config.items() if k not in _BOOKKEEPING},
            sort_keys=True,
            default=str,
        )
        final = _final_metrics(run)
        for original, original_identity, original_final in originals:
            if run.last_iteration != original.last_iteration:
                continue
            where = f"both at iteration {run.last_iteration}"
            if identity == original_identity:
                reason = f"identical config.json, seed included, {where}"
            elif (
                final is not None
                and original_final is not None
                and _same_metrics(final, original_final)
            ):
                reason = f"identical final metrics of every seed, {where}"
            else:
                continue
            repeats.append(Repeat(run, original, reason))
            break
        else:
            originals.append((run, identity, final))
    return repeats


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Group runs by :func:`group_key` (first appearance order) and pool each group.

    A run that repeats an earlier run of its group (:func:`find_repeats`) is not
    pooled: it goes to :attr:`Group.repeats`, with a note.

    Labels: the preset, plus ``[key=value, ...]`` for the config values that differ
    between groups of the same preset (a sweep).
    """
    keyed: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        keyed.setdefault(group_key(run), []).append(run)
    labels = {}
    for key in keyed:
        siblings = [k for k in keyed if k[0] == key[0]]
        if len(siblings) == 1:
            labels[key] = key[0]
            continue
        flat = {k: _flatten(json.loads(k[1])) for k in siblings}
        differing = sorted(
            name
            for name in set().union(*flat.values())
            if len({json.dumps(f.get(name), default=str) for f in flat.values()}) > 1
        )
        settings = ", ".join(f"{name}={flat[key].get(name)}" for name in differing)
        labels[key] = f"{key[0]} [{settings}]"
    groups = []
    for key, members in keyed.items():
        repeats = find_repeats(members)
        repeated = {id(repeat.run) for repeat in repeats}
        group = pool([run for run in members if id(run) not in repeated], labels[key])
        group.repeats = repeats
        group.notes += [repeat.note for repeat in repeats]
        groups.append(group)
    return groups


def package_version() -> str:
    """The installed dilemmas version (``"unknown"`` when not installed)."""
    try:
        return version("dilemmas")
    except PackageNotFoundError:
        return "unknown"


def _is_sweep_program(config_path: Path) -> bool:
    """Whether ``config_path`` is the ``config.json`` of a sweep's program folder."""
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("kind") == "sweep"


def find_runs(path: str | Path) -> list[Path]:
    """Run directories under ``path``: itself if it holds ``config.json``, else every
    subfolder (recursively, sorted) that does, except a sweep's program folders
    (``config.json`` of kind ``"sweep"``: their points have run directories of their
    own under ``SWEEP_DIR/runs``, which are analysed instead).

    Raises:
      RunDirectoryError: ``path`` is not a directory, or holds no ``config.json``
        anywhere.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunDirectoryError(
            f"{path} is not a directory (it does not exist or is a file). " + _CONTENTS
        )
    if (path / "config.json").is_file():
        return [path]
    found = sorted(
        p.parent
        for p in path.rglob("config.json")
        if p.is_file() and not _is_sweep_program(p)
    )
    if not found:
        raise RunDirectoryError(
            f"{path} is not a run directory (no config.json) and no subfolder holds "
            "one: give a run directory or a folder of them. " + _CONTENTS
        )
    return found


__all__ = [
    "INCOMPLETE",
    "SUPPORTED_FORMAT_VERSIONS",
    "Group",
    "Run",
    "Repeat",
    "RunDirectoryError",
    "find_repeats",
    "find_runs",
    "group_key",
    "group_runs",
    "is_number",
    "load_run",
    "package_version",
    "pool",
    "read_config",
    "read_evaluation",
]
