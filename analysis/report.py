"""Reports of training runs: ``dilemmas analyze RUN_DIR``.

:func:`load_run` reads one run directory (the format of ``docs/run_directory.md``,
the whole contract with the training side: this module never imports
``dilemmas.training``) into a :class:`Run`; :func:`write_report` turns one run or
a folder of runs into ``report.md`` plus PNG figures (and ``report.html``, the same
content as a page) with these sections:

* **Runs**: path, preset, kind, status, iterations, seeds, wall time, headline;
* **Learning curves**: every logged metric, mean over seeds with a seed band, and a
  table of final values (several groups: a **Comparison** overlay of the outcome
  metrics they share follows);
* **Training curves per pairing** (co-player inference runs): learner vs learner
  and learner vs fixed co-players, learner and co-player side by side;
* **Payoff space**: the feasible payoff polygon of the game with each evaluated
  agent pair's outcome (per seed and mean);
* **Conditional cooperation**: heatmap of P(C | s0, CC, CD, DC, DD) per agent;
* **Within-meta-episode profiles**: ``evaluation.json``'s profiles per inner
  episode;
* **Within-episode curves** (co-player inference runs): reward and cooperation per
  round against each co-player, and a table of selected rounds;
* **Best-response gap** (co-player inference runs): per round, the value given up
  against the exact best response to random memory-one co-players;
* **Extortion**: zero-determinant fits of every stored memory-one vector
  (:func:`dilemmas.analysis.extortion.zd_fit` and, for prisoner's dilemmas,
  :func:`~dilemmas.analysis.extortion.coala_zd_fit`);
* **Grid panels**: cleaning / zapping / pollution / apples, only when the metrics
  hold such keys (grid games);
* **Notes**: partial runs, undefined metrics, skipped fits, unreadable runs.

A section without data says so in one line, except Grid panels, which appear only
for grid games, and the co-player inference sections
(:mod:`~dilemmas.analysis.report_coplayer`), which appear only for runs of kind
``"coplayer"`` or runs holding their data.

Several runs: a path without ``config.json`` is a folder searched recursively for
run directories. Runs are grouped by preset and resolved config without ``seed``;
a group pools its runs' seeds (each run's metrics already have a seeds axis; the
runs are concatenated along it, aligned on iteration numbers). A run that is the
same seed of the same config as another (a copied run directory, a command run
twice: identical ``config.json`` and last iteration, or identical final metrics;
:func:`~dilemmas.analysis.report_runs.find_repeats`) is pooled once; the Runs table
lists it and Notes say so. Each group gets its own figures.

The work is split by responsibility: :mod:`~dilemmas.analysis.report_runs` reads,
finds and groups run directories, :mod:`~dilemmas.analysis.report_evaluation`
pools their ``evaluation.json`` records, :mod:`~dilemmas.analysis.report_sections`
writes the sections (:mod:`~dilemmas.analysis.report_coplayer` those of co-player
inference runs) and :mod:`~dilemmas.analysis.report_document` renders them as
Markdown and HTML; this module is the entry point and re-exports the public names.

Bad input: a missing ``config.json``, an unknown ``format_version``, or nothing to
analyse raise :class:`RunDirectoryError` naming what is missing. A run without
``summary.json`` (still running or killed) is analysed up to its last complete
``metrics.jsonl`` line, and the report says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from dilemmas.analysis.report_document import html_page, markdown
from dilemmas.analysis.report_evaluation import STATES
from dilemmas.analysis.report_runs import (
    INCOMPLETE,
    SUPPORTED_FORMAT_VERSIONS,
    Group,
    Repeat,
    Run,
    RunDirectoryError,
    find_repeats,
    find_runs,
    group_key,
    group_runs,
    load_run,
    pool,
    read_config,
    read_evaluation,
)
from dilemmas.analysis.report_sections import (
    OPTIONAL_SECTIONS,
    SECTIONS,
    ReportWriter,
)


def write_report(
    paths: str | Path | Sequence[str | Path],
    out_dir: str | Path | None = None,
    *,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` for runs.

    Args:
      paths: run directories and/or folders of runs (searched recursively for
        ``config.json``). A run directory named explicitly must load; a run found
        inside a folder that does not is listed under Notes instead.
      out_dir: output folder; default ``<RUN_DIR>/report`` for one path (a run or a
        folder), the common parent's ``report`` for several.
      echo: called with each note that changes what the numbers count (a run
        repeating another, counted once), besides the report's Notes.

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
    if echo is not None:
        for group in groups:
            for repeat in group.repeats:
                echo(f"{group.label}: {repeat.note}")
    title = (
        f"Report: {runs[0].name}"
        if len(runs) == 1
        else f"Report: {len(runs)} runs in {len(groups)} group(s)"
    )
    doc = ReportWriter(groups, out_dir, notes).build(title)
    report = out_dir / "report.md"
    _write_atomic(report, markdown(doc))
    _write_atomic(out_dir / "report.html", html_page(doc, title))
    return report


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


__all__ = [
    "INCOMPLETE",
    "OPTIONAL_SECTIONS",
    "SECTIONS",
    "STATES",
    "SUPPORTED_FORMAT_VERSIONS",
    "Group",
    "Repeat",
    "Run",
    "RunDirectoryError",
    "find_repeats",
    "find_runs",
    "group_key",
    "group_runs",
    "load_run",
    "pool",
    "read_config",
    "read_evaluation",
    "write_report",
]
