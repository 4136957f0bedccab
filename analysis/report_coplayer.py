"""Report sections of co-player inference runs (``config.json`` kind ``"coplayer"``,
independent A2C, or ``"ppi"``, Predictive Policy Improvement).

A coplayer run trains a pool of sequence-model learners (``learner_0``,
``learner_1``, ...), each episode against another learner or a fixed co-player
(random memory-one "tabular" agents, named strategies, frozen trained agents); see
``docs/run_directory.md`` for its metrics and ``evaluation.json`` entries. Three
sections of :data:`~dilemmas.analysis.report_sections.SECTIONS` show them:

* **Training curves per pairing** (:func:`pairing_curves`): the learning curves
  grouped by pairing, learner vs learner and learner vs fixed co-players, learner
  and co-player side by side;
* **Within-episode curves** (:func:`within_episode`): reward and cooperation per
  round of the evaluation episodes, one panel per co-player, and a table of
  selected rounds;
* **Best-response gap** (:func:`best_response_gap`): per round, the value the
  learner gives up against the exact best response to a random memory-one
  co-player.

Each appears when a group is of one of these kinds or holds its data (so the
sections of other kinds of run are unchanged); a group without the data says so in
one line. A2C and PPI runs analysed together share every section, one group each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dilemmas.analysis.report_document import fmt
from dilemmas.analysis.report_evaluation import (
    ALL_LEARNERS,
    PooledEvaluation,
    agent_mean,
    nanmean,
)
from dilemmas.analysis.report_runs import Group

if TYPE_CHECKING:
    from dilemmas.analysis.report_sections import ReportWriter

#: The ``kind`` values of ``config.json`` of co-player inference runs.
KINDS = ("coplayer", "ppi")
#: Pairings of the training metrics: (metric infix, heading). A pairing ``X`` logs
#: the learners' ``reward_vs_X`` / ``cooperation_vs_X`` and their co-players'
#: ``X_reward`` / ``X_cooperation``.
PAIRINGS: tuple[tuple[str, str], ...] = (
    ("learner", "learner vs learner"),
    ("fixed", "learner vs fixed co-players"),
)
#: Quantities of a pairing, one panel each.
QUANTITIES: tuple[str, ...] = ("reward", "cooperation")
#: Up to this many learners, the pairing curves have a line per learner; beyond,
#: one line for the mean over learners.
PER_LEARNER_MAX = 4
#: Rounds of the within-episode table (plus the last round).
SELECTED_ROUNDS: tuple[int, ...] = (1, 2, 3, 5, 10, 20, 50)

_LINESTYLES = ("-", "--", ":", "-.")


def is_coplayer(group: Group) -> bool:
    """Whether any run of ``group`` is of a kind in :data:`KINDS`."""
    return any(run.kind in KINDS for run in group.runs)


def learner_name(index: int) -> str:
    """The name of pool member ``index`` (``learner_0``, ...), as in evaluation.json."""
    return f"learner_{index}"


def pairing_metrics(group: Group) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The pairing metrics a group logs.

    Returns:
      pairing infix -> quantity -> ``"learner"`` / ``"co-player"`` -> ``[N, seeds]``
      or ``[N, seeds, learners]`` (only the metrics that are there).
    """
    found: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for infix, _ in PAIRINGS:
        for quantity in QUANTITIES:
            sides = {
                side: group.metrics[name]
                for side, name in (
                    ("learner", f"{quantity}_vs_{infix}"),
                    ("co-player", f"{infix}_{quantity}"),
                )
                if name in group.metrics
            }
            if sides:
                found.setdefault(infix, {})[quantity] = sides
    return found


def _last_defined_mean(values: np.ndarray) -> tuple[float, int | None]:
    """Mean over learners, then over seeds, at the last iteration where defined."""
    per_seed = agent_mean(values)
    defined = np.flatnonzero(np.any(np.isfinite(per_seed), axis=1))
    if not len(defined):
        return float("nan"), None
    return float(nanmean(per_seed[defined[-1]])), int(defined[-1])


def _pairing_lines(group: Group, sides: dict[str, np.ndarray]) -> dict:
    """Line label -> :class:`~dilemmas.analysis.plots.Line` of one panel."""
    from dilemmas.analysis.plots import Line

    x = group.iterations
    learners = max(
        (values.shape[2] for values in sides.values() if values.ndim == 3), default=1
    )
    lines = {}
    for offset, (side, values) in enumerate(sides.items()):
        style = _LINESTYLES[offset % len(_LINESTYLES)]
        prefix = "" if side == "learner" else "co-player of "
        if values.ndim == 3 and learners <= PER_LEARNER_MAX:
            for i in range(values.shape[2]):
                lines[prefix + learner_name(i)] = Line(x, values[:, :, i], i, style)
        else:
            label = "learners" if side == "learner" else "co-players"
            mean = "" if values.ndim == 2 else " (mean over learners)"
            lines[label + mean] = Line(x, agent_mean(values), offset, style)
    return lines


def pairing_curves(writer: ReportWriter) -> None:
    """Section "Training curves per pairing"."""
    found = [pairing_metrics(group) for group in writer.groups]
    if not any(found) and not any(is_coplayer(g) for g in writer.groups):
        return
    writer.doc.heading(2, "Training curves per pairing")
    if not any(found):
        writer.doc.text(
            "No pairing metrics logged (reward_vs_learner, reward_vs_fixed, ...)."
        )
        return
    headings = dict(PAIRINGS)
    for index, (group, pairings) in enumerate(zip(writer.groups, found, strict=True)):
        writer.group_heading(index)
        if not pairings:
            writer.doc.text("No pairing metrics logged for this group.")
            continue
        panels = {
            f"{headings[infix]}: {quantity}": _pairing_lines(group, sides)
            for infix, quantities in pairings.items()
            for quantity, sides in quantities.items()
        }
        kind = writer.plots.band_kind(group.num_seeds)
        writer.save(
            index,
            "pairing_curves",
            lambda path, p=panels, g=group: writer.plots.line_panels(
                p, path, title=f"Training curves per pairing: {g.label}", ncols=2
            ),
            f"Training curves of {group.label} by pairing: solid lines are the "
            "learners, dashed lines their co-players (the same colour for a learner "
            f"and its co-players; up to {PER_LEARNER_MAX} learners one line each, "
            f"beyond that the mean over learners); mean over {group.num_seeds} "
            f"seeds, band = {kind} over seeds. Rewards are per step.",
        )
        rows = []
        for infix, quantities in pairings.items():
            cells = [headings[infix], str(group.num_seeds)]
            for quantity in QUANTITIES:
                for side in ("learner", "co-player"):
                    values = quantities.get(quantity, {}).get(side)
                    mean = None if values is None else _last_defined_mean(values)[0]
                    cells.append(fmt(mean))
            rows.append(cells)
        writer.doc.text(
            "Final values per pairing (last iteration with a defined value; mean "
            "over learners, then over seeds; in learner-vs-learner games the "
            "co-players are the learners themselves, so their columns are n/a):"
        )
        writer.doc.table(
            [
                "pairing",
                "seeds",
                "learner reward",
                "co-player reward",
                "learner cooperation",
                "co-player cooperation",
            ],
            rows,
        )


def _series_style(names: list[str]) -> dict[str, tuple[int, str]]:
    """Colour by role (``"learner"``, ``"co-player"``), line style by quantity."""
    roles: list[str] = []
    quantities: list[str] = []
    styles = {}
    for name in names:
        role, _, quantity = name.strip().rpartition(" ")
        roles += [role] if role not in roles else []
        quantities += [quantity] if quantity not in quantities else []
        styles[name] = (
            roles.index(role),
            _LINESTYLES[quantities.index(quantity) % len(_LINESTYLES)],
        )
    return styles


def selected_rounds(length: int) -> list[int]:
    """The rounds (from 1) of the within-episode table for episodes of ``length``."""
    rounds = [r for r in SELECTED_ROUNDS if r <= length]
    return rounds + ([length] if length and length not in rounds else [])


def within_episode(writer: ReportWriter) -> None:
    """Section "Within-episode curves"."""
    from dilemmas.analysis.plots import Line

    evaluations = writer.evaluations
    if not any(ev.within_episode for ev in evaluations) and not any(
        is_coplayer(g) for g in writer.groups
    ):
        return
    writer.doc.heading(2, "Within-episode curves")
    if not any(ev.within_episode for ev in evaluations):
        writer.doc.text(writer.missing("within_episode", "within-episode curves"))
        return
    for index, (group, ev) in enumerate(zip(writer.groups, evaluations, strict=True)):
        writer.group_heading(index)
        if not ev.within_episode:
            writer.doc.text("No within-episode curves for this group.")
            continue
        panels = {}
        for panel, series in ev.within_episode.items():
            styles = _series_style(list(series))
            panels[panel] = {
                name: Line(np.arange(1, values.shape[1] + 1), values.T, *styles[name])
                for name, values in series.items()
            }
        seeds = max(v.shape[0] for s in ev.within_episode.values() for v in s.values())
        writer.save(
            index,
            "within_episode",
            lambda path, p=panels, g=group, x=ev.within_episode_x: (
                writer.plots.line_panels(
                    p,
                    path,
                    title=f"Within-episode curves: {g.label}",
                    xlabel=x,
                    ylabel="reward per step / P(cooperate)",
                )
            ),
            f"Per {ev.within_episode_x} of the evaluation episodes, one panel per "
            "pairing: colour = player (learner, co-player), solid = reward per "
            "step, dashed = P(cooperate)"
            + (
                ", dotted = the learner's world-model probability of the "
                "co-player's actual move (PPI)"
                if any("learner prediction" in s for s in ev.within_episode.values())
                else ""
            )
            + f"; mean over {seeds} seeds, band = "
            f"{writer.plots.band_kind(seeds)} over seeds.",
        )
        length = max(v.shape[1] for s in ev.within_episode.values() for v in s.values())
        rounds = selected_rounds(length)
        rows = []
        for panel, series in ev.within_episode.items():
            for name, values in series.items():
                rows.append(
                    [panel, name, str(values.shape[0])]
                    + [
                        fmt(nanmean(values[:, r - 1]))
                        if r <= values.shape[1]
                        else "n/a"
                        for r in rounds
                    ]
                )
        writer.doc.text(
            f"Selected {ev.within_episode_x}s (mean over seeds; n/a where no seed "
            "has a value):"
        )
        writer.doc.table(
            [
                "pairing",
                "series",
                "seeds",
                *(f"{ev.within_episode_x} {r}" for r in rounds),
            ],
            rows,
        )


def best_response_gap(writer: ReportWriter) -> None:
    """Section "Best-response gap"."""
    from dilemmas.analysis.plots import Line

    evaluations = writer.evaluations
    has = [bool(ev.best_response_gap or ev.best_response_total) for ev in evaluations]
    if not any(has) and not any(is_coplayer(g) for g in writer.groups):
        return
    writer.doc.heading(2, "Best-response gap")
    if not any(has):
        writer.doc.text(writer.missing("best_response_gap", "best-response gap"))
        return
    writer.doc.text(
        "The best-response gap at round t is `V*_t(s_t) - E_{a ~ pi} Q*_t(s_t, a)`: "
        "the value the learner gives up in that round, against a random memory-one "
        "co-player drawn per episode, compared with the exact best response to that "
        "co-player (dynamic programming over the remaining rounds, knowing the "
        "co-player's strategy). It is 0 for a best response; a learner that infers "
        "its co-player in context plays closer to the best response as the episode "
        "goes on, so its gap shrinks with the round. Summed over the rounds it is "
        "the learner's expected regret: the best response's expected return "
        "minus the learner's (undiscounted)."
    )
    for index, (group, ev) in enumerate(zip(writer.groups, evaluations, strict=True)):
        writer.group_heading(index)
        if not has[index]:
            writer.doc.text("No best-response gap for this group.")
            continue
        against = ", ".join(ev.best_response_co_players) or "random memory-one"
        if ev.best_response_gap:
            seeds = max(v.shape[0] for v in ev.best_response_gap.values())
            panel = {
                f"best-response gap per {ev.best_response_x}": {
                    learner: Line(np.arange(1, values.shape[1] + 1), values.T)
                    for learner, values in ev.best_response_gap.items()
                }
            }
            writer.save(
                index,
                "best_response_gap",
                lambda path, p=panel, g=group, x=ev.best_response_x: (
                    writer.plots.line_panels(
                        p,
                        path,
                        title=f"Best-response gap: {g.label}",
                        xlabel=x,
                        ylabel="value given up (reward)",
                    )
                ),
                f"Best-response gap per {ev.best_response_x} against {against} "
                f"co-players, one line per learner: mean over {seeds} seeds, band = "
                f"{writer.plots.band_kind(seeds)} over seeds.",
            )
        _gap_table(writer, ev, against)
    _compare_gaps(writer)


def _range(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return "n/a"
    return f"{fmt(float(finite.min()))} to {fmt(float(finite.max()))}"


def _gap_table(writer: ReportWriter, ev: PooledEvaluation, against: str) -> None:
    """Per learner: total gap, first- and last-round gap, value and return."""
    x = ev.best_response_x
    learners = [
        learner
        for learner in dict.fromkeys(
            [
                *ev.best_response_gap,
                *ev.best_response_total,
                *ev.best_response_value,
                *ev.learner_return,
            ]
        )
        if learner != ALL_LEARNERS
    ]
    per_learner = [
        (name, record)
        for name, record in (
            ("best-response value per step", ev.best_response_value),
            ("learner return per step", ev.learner_return),
        )
        if any(learner in record for learner in learners)
    ]
    rows = []
    for learner in learners:
        total = ev.best_response_total.get(learner, np.zeros(0))
        series = ev.best_response_gap.get(learner, np.zeros((0, 0)))
        first = series[:, 0] if series.shape[1] else np.zeros(0)
        last = series[:, -1] if series.shape[1] else np.zeros(0)
        seeds = max(len(total), series.shape[0])
        rows.append(
            [
                learner,
                str(seeds),
                fmt(nanmean(total)),
                _range(total),
                fmt(nanmean(first)),
                fmt(nanmean(last)),
                *(
                    fmt(nanmean(record.get(learner, np.zeros(0))))
                    for _, record in per_learner
                ),
            ]
        )
    text = "Per learner, mean over seeds"
    if per_learner:
        text += (
            "; values and returns are per step, so in expectation the total gap is "
            "the number of rounds times (best-response value - learner return)"
        )
    writer.doc.text(text + ":")
    writer.doc.table(
        [
            "learner",
            "seeds",
            "total gap (sum over rounds)",
            "range over seeds",
            f"gap in {x} 1",
            f"gap in last {x}",
            *(name for name, _ in per_learner),
        ],
        rows,
    )
    value = ev.best_response_value.get(ALL_LEARNERS)
    if value is not None and np.any(np.isfinite(value)):
        writer.doc.text(
            f"Value per step of the exact best response against {against} "
            f"co-players (mean over {len(value)} seeds): {fmt(nanmean(value))}."
        )


def _compare_gaps(writer: ReportWriter) -> None:
    """Overlay of the groups' gaps (mean over learners), for several groups."""
    from dilemmas.analysis.plots import Line

    lines = {}
    for group, ev in zip(writer.groups, writer.evaluations, strict=True):
        if not ev.best_response_gap:
            continue
        series = list(ev.best_response_gap.values())
        seeds = max(v.shape[0] for v in series)
        width = max(v.shape[1] for v in series)
        stacked = np.stack(  # [T, seeds, learners]
            [
                np.pad(
                    v,
                    ((0, seeds - v.shape[0]), (0, width - v.shape[1])),
                    constant_values=np.nan,
                ).T
                for v in series
            ],
            axis=2,
        )
        lines[group.label] = Line(np.arange(1, width + 1), agent_mean(stacked))
    if len(lines) < 2:
        return
    writer.doc.heading(3, "Best-response gap of the groups")
    path = writer.figures / "best_response_gap_comparison.png"
    writer.plots.line_panels(
        {"best-response gap per round (mean over learners)": lines},
        path,
        title="Best-response gap of the groups",
        xlabel="round",
        ylabel="value given up (reward)",
    )
    writer.doc.image(
        "figures/best_response_gap_comparison.png",
        "Best-response gap per round of every group that has one: per seed the "
        "mean over learners, then the mean over seeds with a band over seeds.",
    )
