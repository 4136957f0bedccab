"""Evaluation records of a group of runs, pooled for the report sections.

:func:`pool_evaluation` reads the ``evaluation.json`` of every run of a
:class:`~dilemmas.analysis.report_runs.Group` (``docs/run_directory.md``) into one
:class:`PooledEvaluation`, each record's seeds concatenated over the runs; the
helpers below turn JSON lists into NaN-padded arrays and average them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dilemmas.analysis.report_runs import Group, is_number

#: Memory-one states, in the order of ``evaluation.json``'s ``memory_one`` vectors.
STATES: tuple[str, ...] = ("s0", "CC", "CD", "DC", "DD")
#: Key of a per-learner record stored once for all learners (a plain per-seed list).
ALL_LEARNERS = "all learners"


def _as_float(value: Any) -> float:
    return float(value) if is_number(value) else math.nan


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


def payoff_table(evaluation: Mapping[str, Any] | None) -> np.ndarray | None:
    """The finite ``[2, 2, 2]`` payoff table of ``evaluation["game"]``, or None."""
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
class PooledEvaluation:
    """A group's evaluation records, seeds concatenated over runs.

    Attributes:
      game: the first run's ``game`` entry.
      pairs: ``"row vs col"`` -> ``"reward"`` / ``"cooperation"`` -> ``[seeds, 2]``.
      memory_one: agent -> (``[seeds, 5]`` vectors, ``"<run> seed <i>"`` labels).
      profiles: series -> ``[seeds, M]`` within-meta-episode profiles.
      profiles_x: their x axis label.
      grid: series -> ``[seeds, M]`` grid-game evaluation panels.
      grid_x: their x axis label.
      within_episode: panel (``"learner_0 vs allc"``) -> series -> ``[seeds, T]``.
      within_episode_x: their x axis label.
      best_response_gap: learner -> ``[seeds, T]`` gap per round.
      best_response_total: learner -> ``[seeds]`` gap summed over rounds.
      best_response_value: learner -> ``[seeds]`` value per step of the exact best
        response (key :data:`ALL_LEARNERS` when stored once for every learner).
      learner_return: learner -> ``[seeds]`` the learner's return per step against
        the same co-players.
      best_response_x: the gap's x axis label.
      best_response_co_players: the co-players the gap was measured against.
      runs: runs with an ``evaluation.json``.
    """

    game: Mapping[str, Any] | None = None
    pairs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    memory_one: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)
    profiles: dict[str, np.ndarray] = field(default_factory=dict)
    profiles_x: str = "inner episode"
    grid: dict[str, np.ndarray] = field(default_factory=dict)
    grid_x: str = "episode"
    within_episode: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    within_episode_x: str = "round"
    best_response_gap: dict[str, np.ndarray] = field(default_factory=dict)
    best_response_total: dict[str, np.ndarray] = field(default_factory=dict)
    best_response_value: dict[str, np.ndarray] = field(default_factory=dict)
    learner_return: dict[str, np.ndarray] = field(default_factory=dict)
    best_response_x: str = "round"
    best_response_co_players: list[str] = field(default_factory=list)
    runs: int = 0


def _concat(current: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    if current is None:
        return new
    width = max(current.shape[1], new.shape[1])

    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=np.nan)

    return np.concatenate([pad(current), pad(new)], axis=0)


def pool_evaluation(group: Group) -> PooledEvaluation:
    """The evaluation records of ``group``'s runs, seeds concatenated over runs."""
    pooled = PooledEvaluation()
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
                    _add_series(target, name, values)
        _pool_within_episode(pooled, evaluation.get("within_episode"))
        _pool_best_response_gap(pooled, evaluation.get("best_response_gap"))
    return pooled


def _add_series(target: dict[str, np.ndarray], name: str, values: Any) -> None:
    """Append the per-seed rows of a JSON series to ``target[name]``; a series
    without rows (``null``, not a list) is left out."""
    rows = _rows(values)
    if rows.size:
        target[name] = _concat(target.get(name), rows)


def _values(values: Any) -> np.ndarray:
    """A JSON list of per-seed numbers as ``float[seeds]`` (null -> NaN)."""
    if not isinstance(values, list):
        return np.zeros((0, 1))
    return np.array([[_as_float(x)] for x in values], np.float64).reshape(-1, 1)


def _pool_within_episode(pooled: PooledEvaluation, block: Any) -> None:
    if not isinstance(block, Mapping):
        return
    if isinstance(block.get("x"), str):
        pooled.within_episode_x = block["x"]
    panels = block.get("panels")
    if not isinstance(panels, Mapping):
        return
    for panel, series in panels.items():
        if not isinstance(series, Mapping):
            continue
        target = pooled.within_episode.setdefault(panel, {})
        for name, values in series.items():
            _add_series(target, name, values)
        if not target:
            del pooled.within_episode[panel]


def _pool_best_response_gap(pooled: PooledEvaluation, block: Any) -> None:
    if not isinstance(block, Mapping):
        return
    if isinstance(block.get("x"), str):
        pooled.best_response_x = block["x"]
    co_player = block.get("co_player")
    if isinstance(co_player, str) and co_player not in pooled.best_response_co_players:
        pooled.best_response_co_players.append(co_player)
    series = block.get("series")
    if isinstance(series, Mapping):
        for learner, values in series.items():
            _add_series(pooled.best_response_gap, learner, values)
    for key, target in (
        ("total", pooled.best_response_total),
        ("best_response_value", pooled.best_response_value),
        ("learner_return", pooled.learner_return),
    ):
        _add_per_learner(target, block.get(key))


def _add_per_learner(target: dict[str, np.ndarray], record: Any) -> None:
    """Append a per-seed record to ``target``: a mapping learner -> per-seed list,
    or one per-seed list for all learners (under :data:`ALL_LEARNERS`)."""
    items = record.items() if isinstance(record, Mapping) else [(ALL_LEARNERS, record)]
    for learner, values in items:
        rows = _values(values)
        if rows.size:
            current = target.get(learner)
            target[learner] = _concat(
                None if current is None else current[:, None], rows
            )[:, 0]


def agent_mean(values: np.ndarray) -> np.ndarray:
    """``[N, seeds(, agents)]`` -> ``[N, seeds]``, NaN-aware over agents."""
    values = np.asarray(values, np.float64)
    if values.ndim == 2:
        return values
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values)
        total = np.where(finite, values, 0.0).sum(axis=2)
        count = finite.sum(axis=2)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def missing_states(vector: np.ndarray, first: int = 0) -> list[str]:
    """Names of the NaN entries of a memory-one vector (from index ``first``)."""
    return [
        state
        for state, value in zip(STATES[first:], vector[first:], strict=True)
        if np.isnan(value)
    ]


def nanmean(values: np.ndarray, axis: int | None = None) -> Any:
    """``np.nanmean`` without warnings; NaN for empty input."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        if axis is None:
            return math.nan
        return np.full(np.delete(values.shape, axis), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)
