"""The sections of a report: what each one shows, as text, tables and figures.

:class:`ReportWriter` turns groups of runs (:mod:`dilemmas.analysis.report_runs`)
into a :class:`~dilemmas.analysis.report_document.Document` plus PNG figures, one
method per section of :data:`SECTIONS` (the co-player inference sections are
functions of :mod:`dilemmas.analysis.report_coplayer`). Figures come from
:mod:`dilemmas.analysis.plots`, imported when a writer is made (matplotlib is not
needed to read run directories).
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dilemmas.analysis import report_coplayer
from dilemmas.analysis.report_document import Document, fmt
from dilemmas.analysis.report_evaluation import (
    STATES,
    PooledEvaluation,
    agent_mean,
    missing_states,
    nanmean,
    payoff_table,
    pool_evaluation,
)
from dilemmas.analysis.report_runs import Group, Run, is_number, package_version
from dilemmas.analysis.verdict import shaping_verdict

#: Section headings of ``report.md``, in order (those of :data:`OPTIONAL_SECTIONS`
#: only for the runs they concern; a Comparison of the groups follows Learning
#: curves when there are several).
SECTIONS: tuple[str, ...] = (
    "Runs",
    "Verdict",
    "Learning curves",
    "Training curves per pairing",
    "Payoff space",
    "Conditional cooperation",
    "Within-meta-episode profiles",
    "Within-episode curves",
    "Best-response gap",
    "Extortion",
    "Grid panels",
    "Notes",
)
#: Sections that appear only for some kinds of run: Verdict for shaping runs of a
#: prisoner's dilemma, Grid panels for grid games, the others for co-player
#: inference runs (:mod:`dilemmas.analysis.report_coplayer`).
OPTIONAL_SECTIONS: tuple[str, ...] = (
    "Verdict",
    "Training curves per pairing",
    "Within-episode curves",
    "Best-response gap",
    "Grid panels",
)


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
        f"{key} = {fmt(value) if is_number(value) else value}"
        for key, value in headline.items()
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "group"


class ReportWriter:
    """Builds the document and figures of a report on ``groups`` in ``out_dir``.

    :meth:`build` adds the sections of :data:`SECTIONS` in order (plus the
    Comparison of several groups) to :attr:`doc` and draws the figures into
    ``out_dir/figures``; notes about skipped data collect in :attr:`notes`.
    """

    def __init__(self, groups: list[Group], out_dir: Path, notes: list[str]):
        from dilemmas.analysis import plots

        self.plots = plots
        self.groups = groups
        self.out_dir = out_dir
        self.figures = out_dir / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        self.notes = list(notes)
        self.doc = Document()
        self.evaluations = [pool_evaluation(group) for group in groups]
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
            repeated = {id(r.run): r.original for r in group.repeats}
            for run in [*group.runs, *(r.run for r in group.repeats)]:
                link = Path(os.path.relpath(run.path, self.out_dir)).as_posix()
                planned = run.planned_iterations
                iterations = str(run.last_iteration)
                if planned is not None and planned != run.last_iteration:
                    iterations += f" / {planned}"
                seeds = str(run.num_seeds)
                if id(run) in repeated:
                    seeds += f" (repeat of {repeated[id(run)].name}: not pooled)"
                rows.append(
                    [
                        f"[{run.name}]({link})",
                        group.label,
                        run.kind,
                        run.status,
                        iterations,
                        seeds,
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
        runs = sum(len(g.runs) + len(g.repeats) for g in self.groups)
        repeats = sum(len(g.repeats) for g in self.groups)
        self.doc.text(
            f"{runs} run(s) in {len(self.groups)} group(s); runs with the same preset "
            "and config (seed aside) are one group, their seeds pooled"
            + (
                f"; {repeats} run(s) repeating another run (the same seed of the "
                "same config, see Notes) are counted once."
                if repeats
                else "."
            )
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
                    g.iterations,
                    g.metrics,
                    path,
                    title=f"Learning curves: {g.label}",
                    agent_names=_agent_names(g),
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
                group.label: (group.iterations, agent_mean(group.metrics[name]))
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
                # Iterations without a value (e.g. no fixed co-player drawn) do
                # not count towards the last 10%.
                defined = values[np.any(np.isfinite(values), axis=1)]
                per_seed = nanmean(defined[-max(1, len(defined) // 10) :], axis=0)
                finite = per_seed[np.isfinite(per_seed)]
                if not len(finite):
                    continue
                rows.append(
                    [
                        name,
                        label,
                        str(len(finite)),
                        fmt(float(np.mean(finite))),
                        f"{fmt(float(np.min(finite)))} to {fmt(float(np.max(finite)))}",
                    ]
                )
        self.doc.text(
            "Final values: per seed, the mean over the last 10% of the iterations "
            "where the metric is defined; then the mean and range over seeds."
        )
        self.doc.table(["metric", "group", "seeds", "mean", "range over seeds"], rows)

    def final_values(self, group: Group) -> None:
        rows = []
        names = _agent_names(group)
        for name, values in group.metrics.items():
            agents = [None] if values.ndim == 2 else list(range(values.shape[2]))
            for agent in agents:
                series = values if agent is None else values[:, :, agent]
                defined = np.flatnonzero(np.any(np.isfinite(series), axis=1))
                total = series.size
                undefined = int(np.sum(np.isnan(series)))
                label = "" if agent is None else names[agent]
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
                        fmt(mean[0]),
                        f"{fmt(low[0])} to {fmt(high[0])}",
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
            table = payoff_table({"game": ev.game} if ev.game else None)
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
                    + [fmt(nanmean(reward[:, i])) for i in range(2)]
                    + [fmt(nanmean(coop[:, i])) for i in range(2)]
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
            p = np.stack([nanmean(ev.memory_one[a][0], axis=0) for a in agents])
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
                f"{agent}: {', '.join(missing_states(row))}"
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

    def verdict(self) -> None:
        """Each group's :func:`~dilemmas.analysis.verdict.shaping_verdict`, the
        lines ``dilemmas train`` prints at the end of a shaping run."""
        verdicts = [
            shaping_verdict(
                {
                    "game": ev.game,
                    "pairs": [
                        {"row": row, "col": col, "reward": pair["reward"]}
                        for (row, _, col), pair in (
                            (name.partition(" vs "), pair)
                            for name, pair in ev.pairs.items()
                            if "reward" in pair
                        )
                    ],
                }
            )
            if ev.game
            else None
            for ev in self.evaluations
        ]
        if not any(v is not None for v in verdicts):
            return
        self.doc.heading(2, "Verdict")
        self.doc.text(
            "The learning-aware agent (`meta_0`) against fresh naive learners, per "
            "seed of the evaluation, tested by "
            "`dilemmas.analysis.verdict.shaping_verdict` (the lines `dilemmas train` "
            "prints): it *shapes* them when it earns more from them than an "
            "always-defector earns from the same learners (same initialisations "
            "and keys), and *extorts* them when it earns more than mutual "
            "cooperation while they earn less than mutual defection."
        )
        for index, verdict in enumerate(verdicts):
            if verdict is None:
                continue
            self.group_heading(index)
            self.doc.bullets(verdict.lines())

    def extortion(self) -> None:
        self.doc.heading(2, "Extortion")
        if not any(ev.memory_one for ev in self.evaluations):
            self.doc.text(self.missing("memory_one", "memory-one vectors to fit"))
            return
        self.doc.text(
            "Zero-determinant fits of each stored memory-one vector (spec "
            "matrix_games.md §5.6): `zd_fit`, least squares with the punishment "
            "baseline, gives chi (extortion factor), phi (Press-Dyson scale) and "
            "the residual (0 for an exact ZD strategy; a ZD extortioner: residual "
            "~ 0, phi > 0, chi > 1); `coala_zd_fit` gives the nearest extortionate "
            "ZD vector (chi >= 1) and its squared distance (COALA-PG's loss). The "
            "first move (s0) is not used by either fit. A learned policy is rarely "
            "an exact ZD strategy: the COALA loss (and, for shaping runs, the "
            "Verdict section's payoff test) say more than the yes/no column."
        )
        if any(" (vs " in agent for ev in self.evaluations for agent in ev.memory_one):
            self.doc.text(
                "An entry `X (vs Y)` is X's play against co-player Y: e.g. a "
                "learner trained to exploit frozen agents extorts them when its "
                "vector against them fits with residual ~ 0, phi > 0 and chi > 1."
            )
        for index, (group, ev) in enumerate(
            zip(self.groups, self.evaluations, strict=True)
        ):
            self.group_heading(index)
            if not ev.memory_one:
                self.doc.text("No memory-one vectors for this group.")
                continue
            self.extortion_table(group, ev)

    def extortion_table(self, group: Group, ev: PooledEvaluation) -> None:
        from dilemmas.analysis import extortion

        table = payoff_table({"game": ev.game} if ev.game else None)
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
            probs = [fmt(x) for x in vector]
            if i not in complete:
                missing = ", ".join(missing_states(vector, first=1))
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
                fmt(float(zd.chi[k])),
                fmt(float(zd.phi[k])),
                fmt(float(zd.residual[k])),
                "yes" if bool(zd.is_extortionate[k]) else "no",
            ]
            if coala is None:
                row += ["n/a", "n/a"]
            else:
                row += [fmt(float(coala.chi[k])), fmt(float(coala.loss[k]))]
            rows.append([agent, label, *probs, *row])
        self.doc.table(
            [
                "agent",
                "seed",
                *STATES,
                "chi",
                "phi",
                "residual",
                "ZD extortioner",
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
                f"policies has median {fmt(float(np.median(baseline)))} (min "
                f"{fmt(float(np.min(baseline)))})."
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
            for run in [*group.runs, *(r.run for r in group.repeats)]:
                notes += [f"{run.name}: {note}" for note in run.notes]
        if notes:
            self.doc.bullets(notes)
        else:
            self.doc.text("Nothing to report.")

    def build(self, title: str) -> Document:
        self.doc.heading(1, title)
        self.doc.text(
            f"Written by dilemmas {package_version()} on "
            f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}."
        )
        self.runs()
        self.verdict()
        self.learning_curves()
        self.comparison()
        report_coplayer.pairing_curves(self)
        self.payoff_space()
        self.conditional_cooperation()
        self.profiles()
        report_coplayer.within_episode(self)
        report_coplayer.best_response_gap(self)
        self.extortion()
        self.grid()
        self.notes_section()
        return self.doc


def _agent_names(group: Group) -> list[str]:
    """Labels of the agents axis of ``group``'s metrics, as in evaluation.json:
    ``learner_<i>`` for co-player inference runs, ``meta_<i>`` for shaping and
    analytic runs (whose naive learners' metrics are per meta agent they face;
    ``meta_<i> (<estimator>)`` in a pool of several estimators), else
    ``agent <i>``."""
    count = max((v.shape[2] for v in group.metrics.values() if v.ndim == 3), default=0)
    if report_coplayer.is_coplayer(group):
        return [report_coplayer.learner_name(i) for i in range(count)]
    if all(run.kind in ("shaping", "analytic") for run in group.runs):
        config = group.runs[0].config.get("config")
        estimators = (
            config.get("pool_estimators") if isinstance(config, Mapping) else ""
        )
        names = [e.strip() for e in estimators.split(",")] if estimators else []
        if len(names) == count and len(set(names)) > 1:
            return [f"meta_{i} ({name})" for i, name in enumerate(names)]
        return [f"meta_{i}" for i in range(count)]
    return [f"agent {i}" for i in range(count)]


_DIAGNOSTIC = ("loss", "kl", "clip", "grad_norm", "entropy")


def _is_diagnostic(name: str) -> bool:
    """Optimisation diagnostics (losses, KL, clipping) rather than outcomes."""
    return any(part in name for part in _DIAGNOSTIC)
