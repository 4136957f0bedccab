"""Reports of training runs: ``dilemmas analyze RUN_DIR``.

:func:`load_run` reads one run directory (the format of ``docs/run_directory.md``,
the whole contract with the training side: this module never imports
``dilemmas.training``) into a :class:`Run`; :func:`write_report` turns one run or
a folder of runs into ``report.md`` plus PNG figures (and ``report.html``, the same
content as a page) with these sections:

* **Runs**: path, preset, kind, status, iterations, seeds, wall time, headline;
* **Learning curves**: every logged metric, mean over seeds with a seed band, and a
  table of final values;
* **Payoff space**: the feasible payoff polygon of the game with each evaluated
  agent pair's outcome (per seed and mean);
* **Conditional cooperation**: heatmap of P(C | s0, CC, CD, DC, DD) per agent;
* **Within-meta-episode profiles**: ``evaluation.json``'s profiles per inner
  episode;
* **Extortion**: zero-determinant fits of every stored memory-one vector
  (:func:`dilemmas.analysis.extortion.zd_fit` and, for prisoner's dilemmas,
  :func:`~dilemmas.analysis.extortion.coala_zd_fit`);
* **Grid panels**: cleaning / zapping / pollution / apples, only when the metrics
  hold such keys (grid games);
* **Notes**: partial runs, undefined metrics, skipped fits, unreadable runs.

A section without data says so in one line (except Grid panels, which appear only
for grid games).

Several runs: a path without ``config.json`` is a folder searched recursively for
run directories. Runs are grouped by preset and resolved config without ``seed``;
a group pools its runs' seeds (each run's metrics already have a seeds axis; the
runs are concatenated along it, aligned on iteration numbers). Each group gets its
own figures.

Bad input: a missing ``config.json``, an unknown ``format_version``, or nothing to
analyse raise :class:`RunDirectoryError` naming what is missing. A run without
``summary.json`` (still running or killed) is analysed up to its last complete
``metrics.jsonl`` line, and the report says so.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

#: ``format_version`` values of ``config.json`` this reader understands.
SUPPORTED_FORMAT_VERSIONS: tuple[int, ...] = (1,)
#: Status of a run directory without ``summary.json``.
INCOMPLETE = "incomplete (no summary.json: still running or killed)"
#: Memory-one states, in the order of ``evaluation.json``'s ``memory_one`` vectors.
STATES: tuple[str, ...] = ("s0", "CC", "CD", "DC", "DD")
#: Section headings of ``report.md``, in order (Grid panels only for grid games).
SECTIONS: tuple[str, ...] = (
    "Runs",
    "Learning curves",
    "Payoff space",
    "Conditional cooperation",
    "Within-meta-episode profiles",
    "Extortion",
    "Grid panels",
    "Notes",
)

_CONTENTS = (
    "A run directory (written by `dilemmas train`) holds config.json, "
    "metrics.jsonl and, once the run ends, evaluation.json and summary.json; "
    "see docs/run_directory.md."
)
_RESERVED = ("iteration", "wall_time")


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
        """The preset given to ``dilemmas train`` (``"?"`` if not recorded)."""
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
        if self.summary is not None and _is_number(self.summary.get("wall_time")):
            return float(self.summary["wall_time"])
        finite = self.wall_time[np.isfinite(self.wall_time)]
        return float(finite[-1]) if len(finite) else None


# --------------------------------------------------------------------------------------
# Reading


def _is_number(value: Any) -> bool:
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
            f"dilemmas {writer}); this dilemmas ({_version()}) reads format_version "
            f"{supported} only: analyse it with a matching version"
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
        if not all(x is None or _is_number(x) for x in entries):
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
            float(record["wall_time"])
            if _is_number(record.get("wall_time"))
            else np.nan
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


# --------------------------------------------------------------------------------------
# Grouping


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
    """

    label: str
    runs: list[Run]
    iterations: np.ndarray
    metrics: dict[str, np.ndarray]
    seed_labels: list[str]
    notes: list[str] = field(default_factory=list)

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


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Group runs by :func:`group_key` (first appearance order) and pool each group.

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
    return [pool(members, labels[key]) for key, members in keyed.items()]


# --------------------------------------------------------------------------------------
# Evaluation helpers


def _as_float(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _rows(values: Any, width: int | None = None) -> np.ndarray:
    """A JSON list of per-seed lists as ``float[seeds, width]`` (null -> NaN)."""
    if not isinstance(values, list):
        return np.zeros((0, width or 0))
    rows = [row if isinstance(row, list) else [] for row in values]
    width = width if width is not None else max((len(row) for row in rows), default=0)
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        for j, x in enumerate(row[:width]):
            out[i, j] = _as_float(x)
    return out


def _payoff_table(evaluation: Mapping[str, Any] | None) -> np.ndarray | None:
    game = evaluation.get("game") if evaluation else None
    payoffs = game.get("payoffs") if isinstance(game, Mapping) else None
    if payoffs is None:
        return None
    try:
        table = np.asarray(payoffs, np.float64)
    except (TypeError, ValueError):
        return None
    return table if table.shape == (2, 2, 2) and np.all(np.isfinite(table)) else None


@dataclass
class _Pooled:
    """A group's evaluation records, seeds concatenated over runs."""

    game: Mapping[str, Any] | None = None
    pairs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    memory_one: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    profiles: dict[str, np.ndarray] = field(default_factory=dict)
    profiles_x: str = "inner episode"
    grid: dict[str, np.ndarray] = field(default_factory=dict)
    grid_x: str = "episode"
    runs: int = 0


def _concat(current: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    if current is None:
        return new
    width = max(current.shape[1], new.shape[1])

    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=np.nan)

    return np.concatenate([pad(current), pad(new)], axis=0)


def _pool_evaluation(group: Group) -> _Pooled:
    pooled = _Pooled()
    for run in group.runs:
        evaluation = run.evaluation
        if not evaluation:
            continue
        pooled.runs += 1
        if pooled.game is None and isinstance(evaluation.get("game"), Mapping):
            pooled.game = evaluation["game"]
        for pair in evaluation.get("pairs") or ():
            if not isinstance(pair, Mapping):
                continue
            label = f"{pair.get('row', '?')} vs {pair.get('col', '?')}"
            entry = pooled.pairs.setdefault(label, {})
            for key in ("reward", "cooperation"):
                if key in pair:
                    entry[key] = _concat(entry.get(key), _rows(pair[key], 2))
        memory = evaluation.get("memory_one")
        if isinstance(memory, Mapping):
            for agent, vectors in memory.items():
                rows = _rows(vectors, len(STATES))
                labels = [f"{run.name} seed {i}" for i in range(len(rows))]
                current, names = pooled.memory_one.get(agent, (None, []))
                pooled.memory_one[agent] = (_concat(current, rows), names + labels)
        for key, target in (("profiles", pooled.profiles), ("grid", pooled.grid)):
            block = evaluation.get(key)
            if not isinstance(block, Mapping):
                continue
            if isinstance(block.get("x"), str):
                if key == "profiles":
                    pooled.profiles_x = block["x"]
                else:
                    pooled.grid_x = block["x"]
            series = block.get("series")
            if isinstance(series, Mapping):
                for name, values in series.items():
                    target[name] = _concat(target.get(name), _rows(values))
    return pooled


# --------------------------------------------------------------------------------------
# Report blocks (rendered to Markdown and HTML)


@dataclass
class _Doc:
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", level, text))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", list(header), [list(r) for r in rows]))

    def image(self, src: str, caption: str) -> None:
        self.blocks.append(("image", src, caption))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(doc: _Doc) -> str:
    out: list[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            out += ["#" * block[1] + " " + block[2], ""]
        elif kind == "text":
            out += [block[1], ""]
        elif kind == "bullets":
            out += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(map(_md_cell, header)) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
            out.append("")
        elif kind == "image":
            out += [f"![{block[2]}]({block[1]})", "", f"*{block[2]}*", ""]
    return "\n".join(out).rstrip() + "\n"


def _inline_html(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', escaped)


def _html(doc: _Doc, title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.25em .6em;font-size:90%}"
        "img{max-width:100%}figcaption{color:#555;font-size:90%}</style>",
        "</head><body>",
    ]
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            out.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "text":
            out.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "bullets":
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in block[1])
            out.append(f"<ul>{items}</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block[1])
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                for row in block[2]
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        elif kind == "image":
            out.append(
                f'<figure><img src="{html.escape(block[1])}" '
                f'alt="{html.escape(block[2])}"><figcaption>'
                f"{_inline_html(block[2])}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------
# Sections


def _fmt(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "n/a" if value is None or np.isnan(value) else f"{value:g}"
    return f"{value:.4g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _headline(run: Run) -> str:
    headline = run.summary.get("headline") if run.summary else None
    if not isinstance(headline, Mapping) or not headline:
        return "n/a"
    return ", ".join(
        f"{key} = {_fmt(value) if _is_number(value) else value}"
        for key, value in headline.items()
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "group"


class _Writer:
    """Builds the document and figures of :func:`write_report`."""

    def __init__(self, groups: list[Group], out_dir: Path, notes: list[str]):
        from dilemmas.analysis import plots

        self.plots = plots
        self.groups = groups
        self.out_dir = out_dir
        self.figures = out_dir / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        self.notes = list(notes)
        self.doc = _Doc()
        self.evaluations = [_pool_evaluation(group) for group in groups]
        self.prefixes = (
            [""]
            if len(groups) == 1
            else [f"{i + 1:02d}-{_slug(g.label)}_" for i, g in enumerate(groups)]
        )

    def figure(self, index: int, name: str) -> tuple[Path, str]:
        filename = f"{self.prefixes[index]}{name}.png"
        return self.figures / filename, f"figures/{filename}"

    def missing(self, key: str, what: str) -> str:
        """One line for a section without data: no evaluation.json or no ``key``."""
        if not any(ev.runs for ev in self.evaluations):
            return (
                f"No {what}: no run has an evaluation.json (it is written when a "
                "run ends)."
            )
        return f"No {what} (evaluation.json has no '{key}')."

    def group_heading(self, index: int) -> None:
        if len(self.groups) > 1:
            group = self.groups[index]
            self.doc.heading(3, f"{group.label} ({group.num_seeds} seeds)")

    def save(
        self, index: int, name: str, draw: Callable[[Path], Any], caption: str
    ) -> None:
        """Draw a figure into ``figures/`` and add it to the document."""
        path, src = self.figure(index, name)
        draw(path)
        self.doc.image(src, caption)

    # Sections -----------------------------------------------------------------

    def runs(self) -> None:
        self.doc.heading(2, "Runs")
        rows = []
        for group in self.groups:
            for run in group.runs:
                link = Path(os.path.relpath(run.path, self.out_dir)).as_posix()
                planned = run.planned_iterations
                iterations = str(run.last_iteration)
                if planned is not None and planned != run.last_iteration:
                    iterations += f" / {planned}"
                rows.append(
                    [
                        f"[{run.name}]({link})",
                        group.label,
                        run.kind,
                        run.status,
                        iterations,
                        str(run.num_seeds),
                        _duration(run.seconds),
                        _headline(run),
                    ]
                )
        self.doc.table(
            [
                "run",
                "preset / group",
                "kind",
                "status",
                "iterations",
                "seeds",
                "wall time",
                "headline",
            ],
            rows,
        )
        self.doc.text(
            f"{sum(len(g.runs) for g in self.groups)} run(s) in {len(self.groups)} "
            "group(s); runs with the same preset and config (seed aside) are one "
            "group, their seeds pooled."
        )

    def learning_curves(self) -> None:
        self.doc.heading(2, "Learning curves")
        if not any(group.metrics for group in self.groups):
            self.doc.text("No metrics logged (metrics.jsonl missing or empty).")
            return
        for index, group in enumerate(self.groups):
            self.group_heading(index)
            if not group.metrics:
                self.doc.text("No metrics logged for this group.")
                continue
            kind = self.plots.band_kind(group.num_seeds)
            self.save(
                index,
                "learning_curves",
                lambda path, g=group: self.plots.learning_curves(
                    g.iterations, g.metrics, path, title=f"Learning curves: {g.label}"
                ),
                f"Learning curves of {group.label}: mean over {group.num_seeds} "
                f"seeds, band = {kind} over seeds. Rewards are per step on the "
                "game's original scale.",
            )
            self.final_values(group)

    def comparison(self) -> None:
        """Outcome metrics shared by several groups, overlaid (several groups only)."""
        if len(self.groups) < 2:
            return
        names = sorted({name for group in self.groups for name in group.metrics})
        names = [
            name
            for name in names
            if not _is_diagnostic(name)
            and sum(name in group.metrics for group in self.groups) >= 2
        ]
        if not names:
            return
        self.doc.heading(2, "Comparison")
        curves = {
            name: {
                group.label: (group.iterations, _agent_mean(group.metrics[name]))
                for group in self.groups
                if name in group.metrics
            }
            for name in names
        }
        path = self.figures / "comparison.png"
        self.plots.comparison(curves, path, title="Comparison of the groups")
        self.doc.image(
            "figures/comparison.png",
            "Outcome metrics of every group that logs them: mean over seeds (pool "
            "agents averaged first), band over seeds.",
        )
        rows = []
        for name in names:
            for label, (_, values) in curves[name].items():
                tail = values[-max(1, len(values) // 10) :]
                per_seed = _nanmean(tail, axis=0)
                finite = per_seed[np.isfinite(per_seed)]
                if not len(finite):
                    continue
                rows.append(
                    [
                        name,
                        label,
                        str(len(finite)),
                        _fmt(float(np.mean(finite))),
                        f"{_fmt(float(np.min(finite)))} to "
                        f"{_fmt(float(np.max(finite)))}",
                    ]
                )
        self.doc.text(
            "Final values: per seed, the mean over the last 10% of iterations; then "
            "the mean and range over seeds."
        )
        self.doc.table(["metric", "group", "seeds", "mean", "range over seeds"], rows)

    def final_values(self, group: Group) -> None:
        rows = []
        for name, values in group.metrics.items():
            agents = [None] if values.ndim == 2 else list(range(values.shape[2]))
            for agent in agents:
                series = values if agent is None else values[:, :, agent]
                defined = np.flatnonzero(np.any(np.isfinite(series), axis=1))
                total = series.size
                undefined = int(np.sum(np.isnan(series)))
                label = "" if agent is None else f"agent {agent}"
                if not len(defined):
                    rows.append([name, label, "n/a", "n/a", "n/a", "n/a"])
                    self.notes.append(
                        f"{group.label}: {name}{' ' + label if label else ''} is "
                        "never defined (null in every record)"
                    )
                    continue
                last = defined[-1]
                mean, low, high, kind = self.plots.seed_band(series[last][None], 1)
                rows.append(
                    [
                        name,
                        label,
                        str(int(group.iterations[last])),
                        _fmt(mean[0]),
                        f"{_fmt(low[0])} to {_fmt(high[0])}",
                        f"{undefined} / {total}" if undefined else "0",
                    ]
                )
        kind = self.plots.band_kind(group.num_seeds)
        self.doc.text(
            f"Final values (last iteration with a defined value; mean and {kind} "
            "over seeds):"
        )
        self.doc.table(
            [
                "metric",
                "agent",
                "iteration",
                "mean",
                f"{kind} over seeds",
                "undefined or missing entries",
            ],
            rows,
        )

    def payoff_space(self) -> None:
        self.doc.heading(2, "Payoff space")
        if not any(ev.pairs for ev in self.evaluations):
            self.doc.text(self.missing("pairs", "evaluated agent pairs"))
            return
        for index, (group, ev) in enumerate(
            zip(self.groups, self.evaluations, strict=True)
        ):
            self.group_heading(index)
            outcomes = {
                label: entry["reward"]
                for label, entry in ev.pairs.items()
                if "reward" in entry
            }
            if not outcomes:
                self.doc.text("No evaluated agent pairs for this group.")
                continue
            table = _payoff_table({"game": ev.game} if ev.game else None)
            game_id = ev.game.get("id", "?") if ev.game else "?"
            polygon = (
                "the grey polygon is the feasible payoff region (convex hull of the "
                "four payoff pairs)"
                if table is not None
                else "no 2x2 payoff table in evaluation.json, so no feasible polygon"
            )
            self.save(
                index,
                "payoff_space",
                lambda path, t=table, o=outcomes, g=group, gid=game_id: (
                    self.plots.payoff_space(
                        t, o, path, title=f"Payoff space: {g.label} ({gid})"
                    )
                ),
                f"Payoff space of {game_id}: {polygon}; small dots are seeds, large "
                "markers the seed means (rewards per step, row agent on x).",
            )
            rows = []
            for label, entry in ev.pairs.items():
                reward = entry.get("reward", np.full((0, 2), np.nan))
                coop = entry.get("cooperation", np.full((0, 2), np.nan))
                rows.append(
                    [label, str(len(reward) or len(coop))]
                    + [_fmt(_nanmean(reward[:, i])) for i in range(2)]
                    + [_fmt(_nanmean(coop[:, i])) for i in range(2)]
                )
            self.doc.table(
                [
                    "pair (row vs col)",
                    "seeds",
                    "row reward",
                    "col reward",
                    "row cooperation",
                    "col cooperation",
                ],
                rows,
            )

    def conditional_cooperation(self) -> None:
        self.doc.heading(2, "Conditional cooperation")
        if not any(ev.memory_one for ev in self.evaluations):
            self.doc.text(self.missing("memory_one", "memory-one vectors"))
            return
        for index, (group, ev) in enumerate(
            zip(self.groups, self.evaluations, strict=True)
        ):
            self.group_heading(index)
            if not ev.memory_one:
                self.doc.text("No memory-one vectors for this group.")
                continue
            agents = list(ev.memory_one)
            p = np.stack([_nanmean(ev.memory_one[a][0], axis=0) for a in agents])
            self.save(
                index,
                "conditional_cooperation",
                lambda path, p=p, a=agents, g=group: self.plots.cooperation_heatmap(
                    p, a, path, title=f"P(cooperate | state): {g.label}"
                ),
                "P(cooperate | state), own move first (CD = I cooperated, the "
                "co-player defected), mean over seeds that visited the state; grey "
                "hatched cells were never visited. For recurrent agents these are "
                "memory-one probes of their play.",
            )
            missing = [
                f"{agent}: {', '.join(_missing_states(row))}"
                for agent, row in zip(agents, p, strict=True)
                if np.any(np.isnan(row))
            ]
            if missing:
                self.doc.text("States never visited: " + "; ".join(missing) + ".")

    def profiles(self) -> None:
        self.doc.heading(2, "Within-meta-episode profiles")
        if not any(ev.profiles for ev in self.evaluations):
            self.doc.text(self.missing("profiles", "within-meta-episode profiles"))
            return
        for index, (group, ev) in enumerate(
            zip(self.groups, self.evaluations, strict=True)
        ):
            self.group_heading(index)
            if not ev.profiles:
                self.doc.text("No profiles for this group.")
                continue
            seeds = max(v.shape[0] for v in ev.profiles.values())
            kind = self.plots.band_kind(seeds)
            self.save(
                index,
                "profiles",
                lambda path, ev=ev, g=group: self.plots.profiles(
                    ev.profiles,
                    path,
                    xlabel=ev.profiles_x,
                    title=f"Within-meta-episode profiles: {g.label}",
                ),
                f"Per {ev.profiles_x}: mean over {seeds} seeds, band = {kind} over "
                "seeds.",
            )

    def extortion(self) -> None:
        self.doc.heading(2, "Extortion")
        if not any(ev.memory_one for ev in self.evaluations):
            self.doc.text(self.missing("memory_one", "memory-one vectors to fit"))
            return
        self.doc.text(
            "Zero-determinant fits of each stored memory-one vector (spec "
            "matrix_games.md §5.6): `zd_fit`, least squares with the punishment "
            "baseline, gives chi (extortion factor), phi (Press-Dyson scale) and "
            "the residual (0 for an exact ZD strategy; extortionate: residual ~ 0, "
            "phi > 0, chi > 1); `coala_zd_fit` gives the nearest extortionate ZD "
            "vector (chi >= 1) and its squared distance (COALA-PG's loss). The first "
            "move (s0) is not used by either fit."
        )
        for index, (group, ev) in enumerate(
            zip(self.groups, self.evaluations, strict=True)
        ):
            self.group_heading(index)
            if not ev.memory_one:
                self.doc.text("No memory-one vectors for this group.")
                continue
            self.extortion_table(group, ev)

    def extortion_table(self, group: Group, ev: _Pooled) -> None:
        from dilemmas.analysis import extortion

        table = _payoff_table({"game": ev.game} if ev.game else None)
        if table is None:
            self.doc.text(
                "No 2x2 payoff table in evaluation.json: the ZD fits need one."
            )
            return
        if not np.array_equal(table[..., 1], table[..., 0].T):
            self.doc.text(
                "The game is not symmetric: ZD fits assume a symmetric 2x2 game, "
                "so none is made."
            )
            return
        r, s, t, p = table[0, 0, 0], table[0, 1, 0], table[1, 0, 0], table[1, 1, 0]
        dilemma = t > r > p > s
        entries: list[tuple[str, str, np.ndarray]] = []
        for agent, (vectors, labels) in ev.memory_one.items():
            entries += [(agent, lab, v) for v, lab in zip(vectors, labels, strict=True)]
        complete = [i for i, e in enumerate(entries) if np.all(np.isfinite(e[2][1:]))]
        zd = coala = None
        if complete:
            vectors = np.stack([entries[i][2][1:] for i in complete])
            vectors = np.clip(vectors, 0.0, 1.0)
            try:
                zd = extortion.zd_fit(vectors, table)
                coala = extortion.coala_zd_fit(vectors, table) if dilemma else None
            except ValueError as err:
                self.doc.text(f"The ZD fits are undefined for this game: {err}")
                return
        rows = []
        for i, (agent, label, vector) in enumerate(entries):
            probs = [_fmt(x) for x in vector]
            if i not in complete:
                missing = ", ".join(_missing_states(vector, first=1))
                rows.append(
                    [agent, label, *probs, f"not fitted: {missing} missing"] + [""] * 5
                )
                self.notes.append(
                    f"{group.label}: {agent} ({label}) never visited {missing}; "
                    "its ZD fit is skipped"
                )
                continue
            k = complete.index(i)
            row = [
                _fmt(float(zd.chi[k])),
                _fmt(float(zd.phi[k])),
                _fmt(float(zd.residual[k])),
                "yes" if bool(zd.is_extortionate[k]) else "no",
            ]
            if coala is None:
                row += ["n/a", "n/a"]
            else:
                row += [_fmt(float(coala.chi[k])), _fmt(float(coala.loss[k]))]
            rows.append([agent, label, *probs, *row])
        self.doc.table(
            [
                "agent",
                "seed",
                *STATES,
                "chi",
                "phi",
                "residual",
                "extortionate",
                "COALA chi",
                "COALA loss",
            ],
            rows,
        )
        if not dilemma:
            self.doc.text(
                f"(R, S, T, P) = ({r:g}, {s:g}, {t:g}, {p:g}) is not a prisoner's "
                "dilemma (T > R > P > S): no COALA fit."
            )
        elif complete:
            import jax

            baseline = extortion.random_policy_zd_losses(jax.random.key(0), 64, table)
            self.doc.text(
                "For reference, the COALA loss of 64 uniform-random memory-one "
                f"policies has median {_fmt(float(np.median(baseline)))} (min "
                f"{_fmt(float(np.min(baseline)))})."
            )

    def grid(self) -> None:
        indices = [
            i
            for i, group in enumerate(self.groups)
            if any(self.plots.grid_panel(name) for name in group.metrics)
            or self.evaluations[i].grid
        ]
        if not indices:
            return
        self.doc.heading(2, "Grid panels")
        for index in indices:
            group, ev = self.groups[index], self.evaluations[index]
            self.group_heading(index)
            kind = self.plots.band_kind(group.num_seeds)
            grid_metrics = {
                name: values
                for name, values in group.metrics.items()
                if self.plots.grid_panel(name)
            }
            if grid_metrics:
                self.save(
                    index,
                    "grid_panels",
                    lambda path, g=group, m=grid_metrics: self.plots.grid_panels(
                        g.iterations, m, path, title=f"Grid-game panels: {g.label}"
                    ),
                    "Cleaning (share of steps spent removing dirt), zapping (zaps "
                    "per episode), pollution (dirt cells) and apples over training: "
                    f"mean over {group.num_seeds} seeds, band = {kind} over seeds.",
                )
            if ev.grid:
                seeds = max(v.shape[0] for v in ev.grid.values())
                self.save(
                    index,
                    "grid_episodes",
                    lambda path, ev=ev, g=group: self.plots.profiles(
                        ev.grid,
                        path,
                        xlabel=ev.grid_x,
                        title=f"Grid-game evaluation panels: {g.label}",
                    ),
                    f"Evaluation per {ev.grid_x}: mean over {seeds} seeds, band = "
                    f"{self.plots.band_kind(seeds)} over seeds.",
                )

    def notes_section(self) -> None:
        self.doc.heading(2, "Notes")
        notes = list(self.notes)
        for group in self.groups:
            notes += [f"{group.label}: {note}" for note in group.notes]
            for run in group.runs:
                notes += [f"{run.name}: {note}" for note in run.notes]
        if notes:
            self.doc.bullets(notes)
        else:
            self.doc.text("Nothing to report.")

    def build(self, title: str) -> _Doc:
        self.doc.heading(1, title)
        self.doc.text(
            f"Written by dilemmas {_version()} on "
            f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}."
        )
        self.runs()
        self.learning_curves()
        self.comparison()
        self.payoff_space()
        self.conditional_cooperation()
        self.profiles()
        self.extortion()
        self.grid()
        self.notes_section()
        return self.doc


_DIAGNOSTIC = ("loss", "kl", "clip", "grad_norm", "entropy")


def _is_diagnostic(name: str) -> bool:
    """Optimisation diagnostics (losses, KL, clipping) rather than outcomes."""
    return any(part in name for part in _DIAGNOSTIC)


def _agent_mean(values: np.ndarray) -> np.ndarray:
    """``[N, seeds(, agents)]`` -> ``[N, seeds]``, NaN-aware over agents."""
    values = np.asarray(values, np.float64)
    if values.ndim == 2:
        return values
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values)
        total = np.where(finite, values, 0.0).sum(axis=2)
        count = finite.sum(axis=2)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _missing_states(vector: np.ndarray, first: int = 0) -> list[str]:
    """Names of the NaN entries of a memory-one vector (from index ``first``)."""
    return [
        state
        for state, value in zip(STATES[first:], vector[first:], strict=True)
        if np.isnan(value)
    ]


def _nanmean(values: np.ndarray, axis: int | None = None) -> Any:
    values = np.asarray(values, np.float64)
    if values.size == 0:
        if axis is None:
            return math.nan
        return np.full(np.delete(values.shape, axis), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _version() -> str:
    try:
        return version("dilemmas")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------
# Entry point


def find_runs(path: str | Path) -> list[Path]:
    """Run directories under ``path``: itself if it holds ``config.json``, else every
    subfolder (recursively, sorted) that does.

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
    found = sorted(p.parent for p in path.rglob("config.json") if p.is_file())
    if not found:
        raise RunDirectoryError(
            f"{path} is not a run directory (no config.json) and no subfolder holds "
            "one: give a run directory or a folder of them. " + _CONTENTS
        )
    return found


def write_report(
    paths: str | Path | Sequence[str | Path], out_dir: str | Path | None = None
) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` for runs.

    Args:
      paths: run directories and/or folders of runs (searched recursively for
        ``config.json``). A run directory named explicitly must load; a run found
        inside a folder that does not is listed under Notes instead.
      out_dir: output folder; default ``<RUN_DIR>/report`` for one path (a run or a
        folder), the common parent's ``report`` for several.

    Returns:
      The path of ``report.md``.

    Raises:
      RunDirectoryError: a named run directory cannot be read (missing
        ``config.json``, unknown ``format_version``, nothing to analyse), a folder
        holds no run, or none of the runs found can be read.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise RunDirectoryError("write_report needs at least one run directory")
    runs: list[Run] = []
    notes: list[str] = []
    failures: list[str] = []
    for path in paths:
        direct = (path / "config.json").is_file()
        for run_path in find_runs(path):
            if direct:
                runs.append(load_run(run_path))
                continue
            try:
                runs.append(load_run(run_path))
            except RunDirectoryError as err:
                failures.append(str(err))
    if not runs:
        raise RunDirectoryError(
            "none of the runs found can be analysed:\n" + "\n".join(failures)
        )
    notes += [f"skipped: {failure}" for failure in failures]
    if out_dir is None:
        if len(paths) == 1:
            out_dir = paths[0] / "report"
        else:
            common = os.path.commonpath([p.resolve() for p in paths])
            out_dir = Path(common) / "report"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    title = (
        f"Report: {runs[0].name}"
        if len(runs) == 1
        else f"Report: {len(runs)} runs in {len(groups)} group(s)"
    )
    doc = _Writer(groups, out_dir, notes).build(title)
    report = out_dir / "report.md"
    _write_atomic(report, _markdown(doc))
    _write_atomic(out_dir / "report.html", _html(doc, title))
    return report


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


__all__ = [
    "INCOMPLETE",
    "SECTIONS",
    "STATES",
    "SUPPORTED_FORMAT_VERSIONS",
    "Group",
    "Run",
    "RunDirectoryError",
    "find_runs",
    "group_key",
    "group_runs",
    "load_run",
    "pool",
    "read_config",
    "read_evaluation",
    "write_report",
]
