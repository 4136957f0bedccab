"""``dilemmas sweep``: a grid of configs trained as few compiled programs as shapes
allow, one run directory per grid point.

``dilemmas sweep PRESET --grid lr=1e-3,3e-3 --grid p_naive=0.5,1 --seeds 4`` trains
every point of the grid (the product of the ``--grid`` values, in order) with
``num_seeds = 4``, each from the same seed as a ``dilemmas train PRESET --set ...``
run of that point. Before anything is compiled every point's config is built and
validated (an unknown key, a value of the wrong type or one the config rejects is
an error naming it).

How the points are batched (:func:`plan`):

* a float field whose value the experiment only uses inside JAX (learning rates,
  ``p_naive``, reward scales, discounts, loss weights, ...) is **vmapped**: the
  experiment is built with the field as a traced scalar and the points differ only
  in that array;
* every other field is **static**: ints and strings (they size arrays or pick
  code), booleans, and a float field the experiment turns into a Python value
  (found by tracing the experiment once with it traced; ``sweep.json`` lists each
  field's role). Points with the same static values form a shape group.

Each group is one program (:class:`SweepExperiment`): its state stacks the
points' states along the seed axis (``[points * num_seeds, ...]``), so the run
driver compiles one chunk for the whole group and, on several devices or
processes, splits that axis over all of them
(:mod:`dilemmas.training.distributed`). The groups run one after another, each
into ``SWEEP_DIR/programs/<group>/`` (an ordinary run directory of kind
``"sweep"``, checkpointed as any run); when a group ends, every point gets its own
run directory ``SWEEP_DIR/runs/<index>-<key=value,...>/`` (``config.json`` with the
point's config and the preset, its columns of ``metrics.jsonl``, its final
checkpoint, ``evaluation.json`` and ``summary.json`` from its own experiment,
policies), which ``dilemmas analyze SWEEP_DIR/runs`` groups by config as it groups
any runs. A vmapped point computes in float32 what a separate run computes partly
in Python floats (e.g. ``1 - gamma``), so it matches that run to float32 rounding,
not bit for bit.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.training import distributed
from dilemmas.training.configs import (
    config_to_json,
    parse_overrides,
    replace_values,
    to_json_value,
)
from dilemmas.training.experiment import Experiment
from dilemmas.training.run_dir import (
    FORMAT_VERSION,
    METRICS_FILE,
    _check_new_directory,
    _dilemmas_version,
    _write_config,
    _write_json,
    load_checkpoint,
    save_checkpoint,
    write_policies,
)

#: The file of a sweep directory that records what it runs.
SWEEP_FILE = "sweep.json"
RUNS_DIR = "runs"
PROGRAMS_DIR = "programs"
#: Grid keys that are not config fields to sweep.
_NOT_GRID = ("seed", "num_seeds", "iterations")
#: What a field the experiment turns into a Python value raises when traced.
_TRACE_ERRORS = (
    TypeError,
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
)


def parse_grid(config: Any, grid: Iterable[str]) -> dict[str, list[Any]]:
    """Typed values of ``"key=v1,v2,..."`` strings, keyed by (dotted) key.

    Values are separated by commas, or by semicolons when one of them holds commas
    (``payoffs=1,-1,2,0;1,-1,3,0``).

    Raises:
      ValueError: a malformed item, a key given twice, ``seed``, ``num_seeds`` or
        ``iterations`` (use ``--seeds`` and ``--set``), an unknown key or a value
        that does not parse (as ``--set``).
    """
    parsed: dict[str, list[Any]] = {}
    for item in grid:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ValueError(f"--grid {item!r}: expected KEY=VALUE,VALUE,...")
        if key in parsed:
            raise ValueError(f"--grid {key} is given twice; list its values once")
        if key in _NOT_GRID:
            raise ValueError(
                f"--grid {key}: not a swept field (--seeds sets num_seeds; the seed "
                "and iterations are the same for every point: --set them)"
            )
        texts = text.split(";") if ";" in text else text.split(",")
        values = [
            parse_overrides(config, [f"{key}={value.strip()}"])[key] for value in texts
        ]
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"--grid {key} lists a value twice: {text!r}")
        parsed[key] = values
    if not parsed:
        raise ValueError("a sweep needs at least one --grid KEY=VALUE,VALUE,...")
    return parsed


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*grid.values())
    ]


def _get(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _with_values(config: Any, values: Mapping[str, Any]) -> Any:
    """A copy of a validated config with fields set without validation (traced
    scalars, whose concrete values were validated point by point)."""
    config = copy.copy(config)
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if rest:
            value = _with_values(getattr(config, head), {rest: value})
        object.__setattr__(config, head, value)
    return config


class SweepExperiment:
    """The points of one shape group as one :class:`Experiment`.

    Its state is the points' states stacked along the seed axis,
    ``[len(configs) * num_seeds, ...]`` (point ``g`` holds rows ``g * num_seeds``
    to ``(g + 1) * num_seeds``), its metrics likewise; ``update`` vmaps the points'
    experiments, each built with its ``vmapped`` fields as traced scalars.

    Args:
      configs: the group's validated configs; they differ only in ``vmapped``.
      vmapped: the (dotted) float fields that differ.
    """

    kind = "sweep"

    def __init__(self, configs: Sequence[Any], vmapped: Sequence[str]):
        self.configs = list(configs)
        self.vmapped = tuple(vmapped)
        first = self.configs[0]
        self.points = len(self.configs)
        self.num_seeds = int(first.num_seeds)
        base = first.experiment()
        self.iterations = base.iterations
        self.loss_metrics = tuple(base.loss_metrics)
        self.progress_metrics = tuple(base.progress_metrics)
        # what the run driver validates and records (memory: all the group's seeds)
        self.config = replace_values(first, {"num_seeds": self.points * self.num_seeds})
        self.values = jnp.asarray(
            [[float(_get(c, k)) for k in self.vmapped] for c in self.configs],
            jnp.float32,
        ).reshape(self.points, len(self.vmapped))

    def _experiment(self, values: jax.Array) -> Experiment:
        traced = {key: values[i] for i, key in enumerate(self.vmapped)}
        return _with_values(self.configs[0], traced).experiment()

    def _split(self, tree: Any) -> Any:
        return jax.tree.map(
            lambda x: x.reshape(self.points, self.num_seeds, *x.shape[1:]), tree
        )

    def _join(self, tree: Any) -> Any:
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), tree)

    def init(self, key: jax.Array) -> Any:
        states = jax.vmap(lambda v: self._experiment(v).init(key))(self.values)
        return self._join(states)

    def update(self, state: Any) -> tuple[Any, dict[str, jax.Array]]:
        def one(values, point_state):
            return self._experiment(values).update(point_state)

        state, metrics = jax.vmap(one)(self.values, self._split(state))
        return self._join(state), self._join(metrics)

    def point_state(self, state: Any, index: int) -> Any:
        """Point ``index``'s rows of a group state."""
        rows = slice(index * self.num_seeds, (index + 1) * self.num_seeds)
        return jax.tree.map(lambda x: x[rows], state)

    def evaluate(self, state: Any) -> dict[str, Any]:
        del state  # each point's own evaluation.json is written by the sweep
        return {"sweep_points": self.points, "vmapped": list(self.vmapped)}

    def summary(self, state: Any, metrics: Mapping[str, Any]) -> dict[str, Any]:
        del state, metrics
        return {}

    def params(self, state: Any) -> Any:
        return state


def _traceable(config: Any, keys: Sequence[str]) -> bool:
    """Whether the experiment traces with ``keys`` as traced scalars (init and one
    update, abstractly: nothing is compiled)."""
    group = SweepExperiment([config, config], keys)
    try:
        jax.eval_shape(lambda k: group.update(group.init(k)), jax.random.key(0))
    except _TRACE_ERRORS:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a sweep runs: its points, how they group into programs, each grid
    key's role."""

    points: list[dict[str, Any]]  # grid values of each point
    configs: list[Any]  # each point's validated config
    groups: list[list[int]]  # point indices of each program
    vmapped: tuple[str, ...]
    static: dict[str, str]  # static key -> why


def plan(
    base: Any, grid: Mapping[str, Sequence[Any]], seeds: int | None = None
) -> Plan:
    """Validate every point of the grid and split the keys into vmapped and static.

    Raises:
      ValueError: a point the config rejects (naming its values).
    """
    common = {} if seeds is None else {"num_seeds": seeds}
    points = grid_points(grid)
    configs = [replace_values(base, {**common, **point}) for point in points]
    static: dict[str, str] = {}
    floats = []
    for key, values in grid.items():
        if all(isinstance(v, float) for v in values):
            floats.append(key)
        else:
            static[key] = "not a float field"
    # one trace for all of them; one per field only when that fails
    vmapped = floats if floats and _traceable(configs[0], floats) else []
    if floats and not vmapped:
        for key in floats:
            if _traceable(configs[0], [key]):
                vmapped.append(key)
            else:
                static[key] = "the experiment needs its value in Python"
    static = {key: static[key] for key in grid if key in static}
    groups: dict[tuple, list[int]] = {}
    for index, point in enumerate(points):
        signature = tuple(repr(point[key]) for key in static)
        groups.setdefault(signature, []).append(index)
    return Plan(points, configs, list(groups.values()), tuple(vmapped), static)


def _point_name(index: int, point: Mapping[str, Any]) -> str:
    shown = ",".join(f"{k}={to_json_value(v)}" for k, v in point.items())
    return f"{index:03d}-" + re.sub(r"[^A-Za-z0-9._=,+-]", "_", shown)[:120]


def run_sweep(
    preset: str,
    grid: Sequence[str],
    out: str | Path,
    *,
    seeds: int | None = None,
    overrides: Sequence[str] = (),
    log_every: int | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Train every point of ``grid`` on ``preset`` into ``out``; the points' run
    directories, in grid order.

    Args:
      preset: a preset name (``dilemmas presets``).
      grid: ``"key=v1,v2,..."`` strings (:func:`parse_grid`).
      out: a new or empty directory.
      seeds: ``num_seeds`` of every point (default: the preset's).
      overrides: ``"key=value"`` strings applied to every point (``--set``).
      log_every, checkpoint_every: as ``dilemmas train``.
      progress: progress bars.

    Raises:
      ValueError: an unknown preset, key or value, or a point the config rejects:
        all before anything is compiled or created.
      dilemmas.training.run_dir.RunDirectoryError: ``out`` is not new or empty.
    """
    from dilemmas.training import runner
    from dilemmas.training.presets import get_preset

    base = get_preset(preset)
    set_values = parse_overrides(base, overrides)
    base = replace_values(base, set_values)
    parsed = parse_grid(base, grid)
    if seeds is not None and (not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"--seeds must be an integer >= 1, got {seeds!r}")
    out = Path(out)
    _check_new_directory(out)
    the_plan = plan(base, parsed, seeds)
    writer = distributed.is_writer()
    names = [_point_name(i, p) for i, p in enumerate(the_plan.points)]
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        record = {
            "preset": preset,
            "set": to_json_value(set_values),
            "grid": to_json_value(parsed),
            "seeds": seeds,
            "vmapped": list(the_plan.vmapped),
            "static": the_plan.static,
            "programs": [
                {"points": [names[i] for i in group]} for group in the_plan.groups
            ],
        }
        _write_json(out / SWEEP_FILE, record)
    common = to_json_value(set_values) | ({} if seeds is None else {"num_seeds": seeds})
    written = []
    for number, group in enumerate(the_plan.groups):
        experiment = SweepExperiment(
            [the_plan.configs[i] for i in group], the_plan.vmapped
        )
        program_dir = out / PROGRAMS_DIR / str(number)
        runner.run(
            experiment,
            program_dir,
            log_every=log_every,
            checkpoint_every=checkpoint_every,
            progress=progress,
        )
        for position, index in enumerate(group):
            point_dir = out / RUNS_DIR / names[index]
            if writer:
                _write_point(
                    point_dir,
                    program_dir,
                    experiment,
                    position,
                    preset=preset,
                    overrides=common | to_json_value(the_plan.points[index]),
                )
            written.append(point_dir)
        distributed.barrier(f"dilemmas:sweep:{number}")
    return written


def _write_point(
    point_dir: Path,
    program_dir: Path,
    group: SweepExperiment,
    position: int,
    *,
    preset: str,
    overrides: Mapping[str, Any],
) -> None:
    """The run directory of point ``position`` of a finished group."""
    from dilemmas.training.runner import _headline, _now

    program = json.loads((program_dir / "config.json").read_text())
    iteration, state = load_checkpoint(program_dir, group)
    state = group.point_state(state, position)
    config = group.configs[position]
    experiment = config.experiment()
    rows = slice(position * group.num_seeds, (position + 1) * group.num_seeds)
    lines, last = [], {}
    for line in (program_dir / METRICS_FILE).read_text().splitlines():
        record = json.loads(line)
        point = {"iteration": record["iteration"], "wall_time": record["wall_time"]}
        point.update({k: v[rows] for k, v in record.items() if k not in point})
        lines.append(json.dumps(point, allow_nan=False))
        last = point
    metrics = ("\n".join(lines) + "\n").encode() if lines else b""
    point_dir.mkdir(parents=True)
    _write_config(
        point_dir,
        {
            "format_version": FORMAT_VERSION,
            "dilemmas_version": _dilemmas_version(),
            "kind": experiment.kind,
            "preset": preset,
            "overrides": dict(overrides),
            "config": config_to_json(config),
            "run": program["run"],
            "num_seeds": group.num_seeds,
            "created": _now(),
            "sweep": {"program": str(program_dir), "position": position},
        },
    )
    (point_dir / METRICS_FILE).write_bytes(metrics)
    save_checkpoint(
        point_dir,
        iteration,
        state,
        1,
        metrics=(len(metrics), hashlib.sha256(metrics).hexdigest()),
    )
    _write_json(point_dir / "evaluation.json", experiment.evaluate(state))
    write_policies(point_dir, experiment, state)
    last_metrics = {
        k: np.asarray([np.nan if x is None else x for x in np.ravel(v)]).reshape(
            np.shape(v)
        )
        for k, v in last.items()
        if k not in ("iteration", "wall_time")
    }
    means, per_seed = _headline(experiment.summary(state, last_metrics))
    summary = json.loads((program_dir / "summary.json").read_text())
    _write_json(
        point_dir / "summary.json",
        {
            "status": "completed",
            "message": "",
            "iterations_completed": iteration,
            "wall_time": summary["wall_time"],
            "headline": means,
            **({"headline_per_seed": per_seed} if per_seed else {}),
        },
    )


__all__ = [
    "PROGRAMS_DIR",
    "RUNS_DIR",
    "SWEEP_FILE",
    "Plan",
    "SweepExperiment",
    "grid_points",
    "parse_grid",
    "plan",
    "run_sweep",
]
