"""Figures of a training run: matplotlib only, no pyplot.

Every function here is pure: it takes numpy arrays, builds a fresh
:class:`matplotlib.figure.Figure` (never pyplot's global figure manager, so nothing
leaks between calls and no display is needed), saves it as a PNG when given a
``path`` and returns it. The caller needs no backend setup: saving a bare
``Figure`` renders through Agg.

Array conventions (those of :func:`dilemmas.analysis.report.load_run`):

* a training metric is ``[iterations, seeds]`` or ``[iterations, seeds, agents]``,
  NaN where the value was undefined (``null`` in ``metrics.jsonl``);
* a per-episode series (within-meta-episode profiles, grid panels) is ``[seeds,
  M]``;
* a memory-one table is ``[agents, 5]``, P(C | s0, CC, CD, DC, DD), NaN for a state
  that was never visited;
* a pair's outcome is ``[seeds, 2]``, the (row, column) rewards per step.

Seed bands: the line is the mean over seeds (NaN entries ignored); the band spans
min-max over seeds when there are fewer than :data:`QUARTILE_MIN_SEEDS` seeds and
the 25-75 % quantiles otherwise (:func:`band_kind` says which, for captions).
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

#: Resolution of the saved PNGs.
DPI = 120
#: Legend labels are wrapped at this many characters (long group labels).
LEGEND_WIDTH = 40
#: From this many seeds on, bands are the 25-75 % quantiles instead of min-max.
QUARTILE_MIN_SEEDS = 5
#: Column labels of the conditional-cooperation heatmap.
STATE_LABELS: tuple[str, ...] = ("s0", "CC", "CD", "DC", "DD")
#: Substrings marking a grid-game metric, and the panel each one goes to.
GRID_PANELS: tuple[tuple[str, str], ...] = (
    ("cleaning", "cleaning"),
    ("zap", "zapping"),
    ("pollution", "pollution"),
    ("apple", "apples"),
    ("coin", "coins"),
)

_PANEL_WIDTH, _PANEL_HEIGHT = 4.4, 3.1
_MARKER_MAX_POINTS = 20


def band_kind(num_seeds: int) -> str:
    """``"min-max"`` below :data:`QUARTILE_MIN_SEEDS` seeds, else ``"25-75%"``."""
    return "min-max" if num_seeds < QUARTILE_MIN_SEEDS else "25-75%"


def seed_band(
    values: np.ndarray, axis: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Mean and band over the seed ``axis``, ignoring NaN.

    Returns:
      ``(mean, low, high, kind)``: arrays with ``axis`` removed (NaN where every
      seed is NaN) and the :func:`band_kind` of the band.
    """
    values = np.asarray(values, np.float64)
    kind = band_kind(values.shape[axis])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        mean = np.nanmean(values, axis=axis)
        if kind == "min-max":
            low, high = np.nanmin(values, axis=axis), np.nanmax(values, axis=axis)
        else:
            low, high = np.nanquantile(values, [0.25, 0.75], axis=axis)
    return mean, low, high, kind


def unit_label(name: str) -> str:
    """Axis label with units for a metric or series name."""
    lowered = name.lower()
    if "reward" in lowered or "return" in lowered:
        return "reward per step"
    if "cooperation" in lowered:
        return "P(cooperate)"
    if "loss" in lowered:
        return "loss"
    if "cleaning" in lowered:
        return "cleaning time (share of steps)"
    if "zap" in lowered:
        return "zaps per episode"
    if "pollution" in lowered:
        return "dirt cells"
    if "apple" in lowered:
        return "apples"
    if "coin" in lowered:
        return "coins per episode"
    return name.replace("_", " ")


def grid_panel(name: str) -> str | None:
    """The grid panel (``"cleaning"``, ``"zapping"``, ...) of a metric, or ``None``."""
    lowered = name.lower()
    for marker, panel in GRID_PANELS:
        if marker in lowered:
            return panel
    return None


def _grid_of_axes(fig: Figure, count: int, ncols: int) -> list:
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[count:]:
        ax.set_visible(False)
    return axes[:count]


def _new_figure(count: int, ncols: int) -> Figure:
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    return Figure(
        figsize=(_PANEL_WIDTH * ncols, _PANEL_HEIGHT * nrows + 0.6),
        layout="constrained",
    )


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        fig.savefig(Path(path), dpi=DPI, format="png")
    return fig


def _banded_line(
    ax,
    x: np.ndarray,
    values: np.ndarray,
    label: str | None,
    color,
    linestyle: str = "-",
):
    """Mean line and seed band of ``values`` ``[len(x), seeds]``; returns the kind.

    Points where every seed is NaN are left out and the line joins the defined
    ones; sparse lines (at most :data:`_MARKER_MAX_POINTS` points) get markers.
    """
    mean, low, high, kind = seed_band(values, axis=1)
    defined = np.isfinite(mean)
    x, mean, low, high = x[defined], mean[defined], low[defined], high[defined]
    marker = "o" if 0 < len(x) <= _MARKER_MAX_POINTS else None
    ax.plot(
        x,
        mean,
        color=color,
        label=label,
        linewidth=1.6,
        linestyle=linestyle,
        marker=marker,
        markersize=3,
    )
    if values.shape[1] > 1:
        ax.fill_between(x, low, high, color=color, alpha=0.25, linewidth=0)
    return kind


def _color(index: int) -> str:
    return f"C{index % 10}"


def _check_series(name: str, values: np.ndarray, length: int) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.ndim not in (2, 3) or values.shape[0] != length:
        raise ValueError(
            f"metric {name!r} must have shape [iterations, seeds] or [iterations, "
            f"seeds, agents] with {length} iterations; got shape {values.shape}"
        )
    return values


def learning_curves(
    iterations: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    path: str | Path | None = None,
    *,
    title: str | None = None,
    agent_names: Sequence[str] | None = None,
    ncols: int = 3,
) -> Figure:
    """One panel per metric: mean over seeds with a seed band, per agent.

    Args:
      iterations: ``[N]`` training iterations (x axis).
      metrics: name -> ``[N, seeds]`` or ``[N, seeds, agents]`` (NaN = undefined).
      path: where to save the PNG (``None``: do not save).
      title: figure title; the band kind is appended.
      agent_names: legend labels of the agents axis (default ``agent 0``, ...);
        in a panel of the naive learners (a metric named ``naive...``) a label
        ``meta_<i>`` reads ``naive vs meta_<i>``: they are the learners that agent
        faces.
      ncols: panels per row.

    Raises:
      ValueError: no metrics, or a metric of the wrong shape.
    """
    if not metrics:
        raise ValueError("learning_curves needs at least one metric")
    x = np.asarray(iterations)
    fig = _new_figure(len(metrics), ncols)
    kinds = set()
    for ax, (name, values) in zip(
        _grid_of_axes(fig, len(metrics), ncols), metrics.items(), strict=True
    ):
        values = _check_series(name, values, len(x))
        if values.ndim == 2:
            kinds.add(_banded_line(ax, x, values, None, _color(0)))
        else:
            for agent in range(values.shape[2]):
                label = (
                    agent_names[agent]
                    if agent_names is not None and agent < len(agent_names)
                    else f"agent {agent}"
                )
                if name.startswith("naive") and label.startswith("meta_"):
                    label = f"naive vs {label}"
                kinds.add(
                    _banded_line(ax, x, values[:, :, agent], label, _color(agent))
                )
            ax.legend(fontsize="small")
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.set_ylabel(unit_label(name))
        ax.grid(alpha=0.3)
    seeds = {np.shape(v)[1] for v in metrics.values()}
    suptitle = title or "Learning curves"
    fig.suptitle(
        f"{suptitle}\nmean over seeds ({', '.join(map(str, sorted(seeds)))}); band: "
        f"{' / '.join(sorted(kinds))} over seeds"
    )
    return _save(fig, path)


class Line(NamedTuple):
    """One line of :func:`line_panels`: a seed mean with its band.

    Attributes:
      x: ``[M]`` x positions.
      values: ``[M, seeds]`` values, NaN where undefined.
      color: colour index (``C0``, ``C1``, ...); ``None``: the line's position in
        its panel.
      linestyle: matplotlib line style (``"-"``, ``"--"``, ...).
    """

    x: np.ndarray
    values: np.ndarray
    color: int | None = None
    linestyle: str = "-"


def line_panels(
    panels: Mapping[str, Mapping[str, Line | tuple[np.ndarray, np.ndarray]]],
    path: str | Path | None = None,
    *,
    title: str,
    xlabel: str = "iteration",
    ylabel: str | None = None,
    ncols: int = 3,
) -> Figure:
    """Small multiples: one panel per entry, labelled lines with seed bands.

    Args:
      panels: panel title -> line label -> :class:`Line` (or a plain ``(x,
        values)`` pair, coloured by its position in the panel).
      path: where to save the PNG (``None``: do not save).
      title: figure title; the band kind is appended.
      xlabel: x axis label of every panel.
      ylabel: y axis label of every panel; default the :func:`unit_label` of the
        panel title.
      ncols: panels per row.

    Raises:
      ValueError: no panels, or a line whose values are not ``[len(x), seeds]``.
    """
    if not panels:
        raise ValueError("line_panels needs at least one panel")
    fig = _new_figure(len(panels), ncols)
    kinds = set()
    for ax, (name, lines) in zip(
        _grid_of_axes(fig, len(panels), ncols), panels.items(), strict=True
    ):
        for index, (label, line) in enumerate(lines.items()):
            line = Line(*line)
            x = np.asarray(line.x)
            values = _check_series(f"{name} of {label}", line.values, len(x))
            if values.ndim != 2:
                raise ValueError(
                    f"line {label!r} of {name!r} must have shape [{len(x)}, seeds]; "
                    f"got {values.shape}"
                )
            color = _color(index if line.color is None else line.color)
            shown = "\n".join(textwrap.wrap(label, LEGEND_WIDTH)) or label
            kinds.add(_banded_line(ax, x, values, shown, color, line.linestyle))
        ax.legend(fontsize="small" if len(lines) < 4 else "x-small")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel or unit_label(name))
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"{title}\nmean over seeds; band: {' / '.join(sorted(kinds))} over seeds"
    )
    return _save(fig, path)


def comparison(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    path: str | Path | None = None,
    *,
    title: str | None = None,
    ncols: int = 3,
) -> Figure:
    """One panel per metric, one line per group of runs (e.g. per estimator).

    Args:
      curves: metric -> group label -> ``(iterations [N], values [N, seeds])``,
        agents already averaged.
      path: where to save the PNG (``None``: do not save).
      title: figure title; the band kind is appended.
      ncols: panels per row.

    Raises:
      ValueError: no metrics, or a series of the wrong shape.
    """
    if not curves:
        raise ValueError("comparison needs at least one metric")
    return line_panels(curves, path, title=title or "Comparison", ncols=ncols)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of ``[n, 2]`` points, counter-clockwise.

    Andrew's monotone chain; collinear and repeated points are dropped, so a
    degenerate hull has 1 or 2 vertices.
    """
    pts = sorted({(float(a), float(b)) for a, b in np.asarray(points, np.float64)})
    if len(pts) <= 2:
        return np.asarray(pts, np.float64).reshape(-1, 2)

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(sequence):
        hull: list[tuple[float, float]] = []
        for p in sequence:
            while len(hull) >= 2 and cross(hull[-2], hull[-1], p) <= 0:
                hull.pop()
            hull.append(p)
        return hull

    lower, upper = half(pts), half(reversed(pts))
    return np.asarray(lower[:-1] + upper[:-1], np.float64)


def payoff_space(
    payoffs: np.ndarray | None,
    outcomes: Mapping[str, np.ndarray],
    path: str | Path | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """The feasible payoff polygon and each agent pair's outcome.

    The polygon is the convex hull of the four payoff pairs ``payoffs[a0][a1] =
    (r_row, r_col)``; mutual cooperation (CC) and mutual defection (DD) are marked,
    CD and DC labelled. Each pair gets one colour: a small dot per seed and a large
    marker at the seed mean.

    Args:
      payoffs: ``[2, 2, 2]`` payoff table, or ``None`` (no polygon: games without a
        2x2 table, such as the grid games).
      outcomes: label (e.g. ``"meta vs naive"``) -> ``[seeds, 2]`` rewards per step
        (row, column); NaN rows are skipped.
      path: where to save the PNG.
      title: figure title.

    Raises:
      ValueError: a table not of shape ``[2, 2, 2]`` or an outcome not ``[seeds, 2]``.
    """
    fig = Figure(figsize=(6.4, 6.8), layout="constrained")
    ax = fig.subplots()
    if payoffs is not None:
        table = np.asarray(payoffs, np.float64)
        if table.shape != (2, 2, 2):
            raise ValueError(
                f"payoffs must be a [2, 2, 2] table, got shape {table.shape}"
            )
        hull = convex_hull(table.reshape(4, 2))
        if len(hull) >= 3:
            ax.add_patch(
                Polygon(
                    hull,
                    closed=True,
                    facecolor="0.92",
                    edgecolor="0.45",
                    label="feasible payoffs",
                )
            )
        names = {(0, 0): "CC", (0, 1): "CD", (1, 0): "DC", (1, 1): "DD"}
        for (a0, a1), name in names.items():
            r0, r1 = table[a0, a1]
            ax.plot(r0, r1, marker="s", color="0.35", markersize=5, linestyle="none")
            ax.annotate(
                f"{name} ({r0:g}, {r1:g})",
                (r0, r1),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize="small",
                color="0.25",
            )
        ax.plot(
            *table[0, 0],
            marker="*",
            markersize=14,
            color="tab:green",
            linestyle="none",
            label="mutual cooperation",
        )
        ax.plot(
            *table[1, 1],
            marker="X",
            markersize=11,
            color="tab:red",
            linestyle="none",
            label="mutual defection",
        )
        low, high = table.min(), table.max()
        ax.plot(
            [low, high],
            [low, high],
            linestyle=":",
            color="0.6",
            linewidth=1,
            label="equal rewards",
        )
    for index, (label, values) in enumerate(outcomes.items()):
        values = np.asarray(values, np.float64)
        if values.ndim != 2 or values.shape[1] != 2:
            raise ValueError(
                f"outcome {label!r} must have shape [seeds, 2]; got {values.shape}"
            )
        values = values[np.all(np.isfinite(values), axis=1)]
        if not len(values):
            continue
        color = _color(index)
        ax.scatter(values[:, 0], values[:, 1], s=18, color=color, alpha=0.55)
        mean = values.mean(axis=0)
        ax.scatter(
            mean[0],
            mean[1],
            s=110,
            color=color,
            edgecolor="black",
            zorder=3,
            label=f"{label} (mean of {len(values)} seeds)",
        )
    ax.set_xlabel("row agent's reward per step")
    ax.set_ylabel("column agent's reward per step")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    fig.legend(fontsize="small", loc="outside lower center", ncols=2)
    ax.set_title(title or "Payoff space")
    return _save(fig, path)


def cooperation_heatmap(
    p: np.ndarray,
    agent_names: Sequence[str],
    path: str | Path | None = None,
    *,
    title: str | None = None,
    states: Sequence[str] = STATE_LABELS,
) -> Figure:
    """Heatmap of P(cooperate | state), agents x states, values annotated.

    Missing states (NaN: never visited) are grey and hatched.

    Args:
      p: ``[agents, 5]`` probabilities, NaN where missing.
      agent_names: one row label per agent.
      path: where to save the PNG.
      title: figure title.
      states: column labels.

    Raises:
      ValueError: shape mismatch between ``p``, ``agent_names`` and ``states``.
    """
    values = np.asarray(p, np.float64)
    if values.ndim != 2 or values.shape != (len(agent_names), len(states)):
        raise ValueError(
            f"p must have shape [{len(agent_names)} agents, {len(states)} states]; "
            f"got {values.shape}"
        )
    height = 1.4 + 0.55 * len(agent_names)
    fig = Figure(figsize=(6.4, height), layout="constrained")
    ax = fig.subplots()
    masked = np.ma.masked_invalid(values)
    cmap = colormaps["RdYlGn"].with_extremes(bad="0.85")
    image = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for row in range(values.shape[0]):
        for col in range(values.shape[1]):
            value = values[row, col]
            if np.isnan(value):
                ax.add_patch(
                    Rectangle(
                        (col - 0.5, row - 0.5),
                        1,
                        1,
                        fill=False,
                        hatch="///",
                        edgecolor="0.5",
                        linewidth=0,
                    )
                )
                ax.text(
                    col,
                    row,
                    "n/a",
                    ha="center",
                    va="center",
                    color="0.3",
                    fontsize="small",
                )
            else:
                color = "white" if value < 0.2 or value > 0.8 else "black"
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", color=color)
    ax.set_xticks(range(len(states)), list(states))
    ax.set_yticks(range(len(agent_names)), list(agent_names))
    ax.set_xlabel("state (own move first; s0 = first move)")
    ax.set_ylabel("agent")
    fig.colorbar(image, ax=ax, label="P(cooperate)")
    ax.set_title(title or "Conditional cooperation (mean over seeds)")
    return _save(fig, path)


def _suffix(name: str) -> str:
    """The quantity a series name ends with (``"meta reward"`` -> ``"reward"``)."""
    parts = re.split(r"[\s_]+", name.strip())
    return parts[-1] if parts else name


def profiles(
    series: Mapping[str, np.ndarray],
    path: str | Path | None = None,
    *,
    x: np.ndarray | None = None,
    xlabel: str = "inner episode",
    title: str | None = None,
    ncols: int = 2,
) -> Figure:
    """Per-episode profiles with seed bands, one panel per quantity.

    Series are grouped into panels by the last word of their names (``"meta
    reward"`` and ``"naive reward"`` share the ``reward`` panel).

    Args:
      series: name -> ``[seeds, M]`` values, NaN where undefined.
      path: where to save the PNG.
      x: ``[M]`` x positions; default ``1 .. M``.
      xlabel: x axis label.
      title: figure title; the band kind is appended.
      ncols: panels per row.

    Raises:
      ValueError: no series, or a series not of shape ``[seeds, M]``.
    """
    if not series:
        raise ValueError("profiles needs at least one series")
    panels: dict[str, list[str]] = {}
    for name in series:
        panels.setdefault(_suffix(name), []).append(name)
    fig = _new_figure(len(panels), ncols)
    kinds = set()
    for ax, (quantity, names) in zip(
        _grid_of_axes(fig, len(panels), ncols), panels.items(), strict=True
    ):
        for index, name in enumerate(names):
            values = np.asarray(series[name], np.float64)
            if values.ndim != 2:
                raise ValueError(
                    f"series {name!r} must have shape [seeds, M]; got {values.shape}"
                )
            positions = (
                np.arange(1, values.shape[1] + 1) if x is None else np.asarray(x)
            )
            kinds.add(_banded_line(ax, positions, values.T, name, _color(index)))
        ax.set_title(quantity)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(unit_label(quantity))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(
        f"{title or 'Within-meta-episode profiles'}\nmean over seeds; band: "
        f"{' / '.join(sorted(kinds))} over seeds"
    )
    return _save(fig, path)


def grid_panels(
    iterations: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    path: str | Path | None = None,
    *,
    title: str | None = None,
    ncols: int = 2,
) -> Figure:
    """Grid-game panels over training: cleaning, zapping, pollution, apples, coins.

    The metrics whose names contain ``cleaning``, ``zap``, ``pollution``,
    ``apple`` or ``coin`` are grouped one panel per family (every metric of the
    family as its own line, per agent where it has an agents axis); others are
    ignored.

    Args:
      iterations: ``[N]`` training iterations.
      metrics: name -> ``[N, seeds]`` or ``[N, seeds, agents]``.
      path: where to save the PNG.
      title: figure title; the band kind is appended.
      ncols: panels per row.

    Raises:
      ValueError: no grid metric among ``metrics``, or a metric of the wrong shape.
    """
    x = np.asarray(iterations)
    panels: dict[str, list[str]] = {}
    for _, panel in GRID_PANELS:
        names = [name for name in metrics if grid_panel(name) == panel]
        if names:
            panels[panel] = names
    if not panels:
        raise ValueError(
            "grid_panels found no cleaning / zap / pollution / apple / coin metric "
            f"among {sorted(metrics)}"
        )
    fig = _new_figure(len(panels), ncols)
    kinds = set()
    for ax, (panel, names) in zip(
        _grid_of_axes(fig, len(panels), ncols), panels.items(), strict=True
    ):
        line = 0
        for name in names:
            values = _check_series(name, metrics[name], len(x))
            if values.ndim == 2:
                kinds.add(_banded_line(ax, x, values, name, _color(line)))
                line += 1
                continue
            for agent in range(values.shape[2]):
                kinds.add(
                    _banded_line(
                        ax,
                        x,
                        values[:, :, agent],
                        f"{name} (agent {agent})",
                        _color(line),
                    )
                )
                line += 1
        ax.set_title(panel)
        ax.set_xlabel("iteration")
        ax.set_ylabel(unit_label(names[0]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(
        f"{title or 'Grid-game panels'}\nmean over seeds; band: "
        f"{' / '.join(sorted(kinds))} over seeds"
    )
    return _save(fig, path)
