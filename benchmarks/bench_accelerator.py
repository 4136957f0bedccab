"""Accelerator readiness (issue #13): one script, one JSON file, < 10 minutes on a GPU.

Three sections, run in order, each item started only while the wall-clock budget
(``--budget-s``, default 540 s, counted from the start of the script) is not spent;
an item that would start past it is recorded as skipped, with the reason:

1. **env**: each game's pure JAX core (``ipd-v0``, ``coin_game-v0``,
   ``cleanup_lite-v0``, ``cleanup-v0``, ``harvest-v0``) stepped with uniformly random
   actions in a vmapped ``lax.scan`` (``bench_shaping.env_alone``: one episode of
   ``--env-steps`` steps from a reset per env, ``--env-batch`` envs, default 4096);
   compile time and joint env steps per second (median of ``--repeats`` calls).
2. **training**: one compiled iteration (``experiment.update``, all seeds) of every
   experiment kind at the paper's shapes: the shaping loop (``ipd-shaping``,
   ``cleanup_lite-shaping``), the analytic experiment (``analytic-shaping``),
   co-player inference (``coplayer-a2c-mixed``) and PPI (``ppi-mixed``). Compile
   time, the median seconds per iteration over ``--repeats`` calls, and env steps
   per second where the config has ``steps_per_iteration`` (times ``num_seeds``).
3. **run**: a short training run of ``ipd-shaping`` (``--run-iterations``) through
   the real run driver, ``dilemmas.training.runner.run``, into a temporary
   directory: wall time, the driver's timing and the summary's headline.

``--quick`` shrinks every shape (``QUICK_SHAPES``, ``--env-batch 64``) so the whole
run takes a few minutes on a 2-core CPU; it checks the script, not the figures.

``python benchmarks/bench_accelerator.py --out gpu.json`` on the accelerator;
``python benchmarks/bench_accelerator.py --quick --out cpu.json`` on a CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

# Before any JAX backend starts (bench_training's imports start one): adds the
# XLA CPU flag that keeps a compiled PPI phase from deadlocking on a CPU.
import dilemmas.training  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_shaping import compiled, env_alone  # noqa: E402
from bench_training import _device, _median_seconds  # noqa: E402

from dilemmas.training import runner  # noqa: E402
from dilemmas.training.presets import get_preset  # noqa: E402

SECTIONS = ("env", "training", "run")
ENV_IDS = ("ipd-v0", "coin_game-v0", "cleanup_lite-v0", "cleanup-v0", "harvest-v0")
#: One preset per experiment kind, at the paper's shapes (the slowest last).
TRAINING_PRESETS = (
    "ipd-shaping",
    "analytic-shaping",
    "coplayer-a2c-mixed",
    "cleanup_lite-shaping",
    "ppi-mixed",
)
RUN_PRESET = "ipd-shaping"
#: ``--quick``: the shapes each preset is shrunk to (``config.replace``).
QUICK_SHAPES: dict[str, dict[str, Any]] = {
    "ipd-shaping": dict(meta_batch=2, batch=2, num_inner_episodes=2, eval_meta_batch=2),
    "cleanup_lite-shaping": dict(
        meta_batch=1,
        batch=2,
        num_inner_episodes=1,
        inner_episode_length=16,
        eval_meta_batch=1,
    ),
    "analytic-shaping": dict(meta_batch=2, num_naive_steps=2),
    "coplayer-a2c-mixed": dict(batch=8, hidden=16, embed=8, eval_episodes=8),
    "ppi-mixed": dict(
        pretrain_episodes=32,
        episodes=8,
        collect_chunks=1,
        epochs=1,
        minibatch=8,
        hidden=8,
        embed=4,
        rollouts=2,
        horizon=2,
        inner_rollouts=1,
        inner_horizon=1,
        eval_episodes=8,
    ),
}


class Budget:
    """The wall-clock budget of the whole script."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter):
        self.seconds = seconds
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def skip_reason(self) -> str | None:
        """Why the next item must not start, or ``None`` if it may."""
        elapsed = self.elapsed()
        if elapsed >= self.seconds:
            return (
                f"budget spent: {elapsed:.1f} s elapsed of --budget-s "
                f"{self.seconds:g} before this item would start"
            )
        return None


def bench_env(env_id: str, batch: int, steps: int, repeats: int) -> dict[str, Any]:
    """The core of ``env_id``, ``batch`` envs, one ``steps``-step random episode each
    (``bench_shaping.env_alone`` on a config of those shapes)."""
    shape = types.SimpleNamespace(
        env_id=env_id,
        inner_episode_length=steps,
        pool_size=1,
        meta_batch=1,
        batch=batch,
        num_inner_episodes=1,
    )
    key = jax.random.key(0)
    fn, compile_s = compiled(env_alone(shape), key)
    seconds, times = _median_seconds(fn, (key,), repeats)
    return {
        "batch": batch,
        "steps_per_episode": steps,
        "compile_seconds": compile_s,
        "seconds_per_call": seconds,
        "repeats": times,
        "steps_per_second": batch * steps / seconds,
    }


def _shapes(config: Any) -> dict[str, Any]:
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if isinstance(getattr(config, f.name), int | float | str | bool)
    }


def preset_config(name: str, quick: bool) -> Any:
    config = get_preset(name)
    if quick:
        config = config.replace(**QUICK_SHAPES[name])
    return config


def bench_training(name: str, quick: bool, repeats: int) -> dict[str, Any]:
    """Compile time and median seconds of one ``experiment.update`` of ``name``."""
    config = preset_config(name, quick)
    experiment = config.experiment()
    start = time.perf_counter()
    state = experiment.init(jax.random.key(0))
    jax.block_until_ready(state)
    init_s = time.perf_counter() - start
    update, compile_s = compiled(experiment.update, state)
    seconds, times = _median_seconds(update, (state,), repeats)
    row: dict[str, Any] = {
        "preset": name,
        "kind": type(config).__name__,
        "shapes": _shapes(config),
        "init_seconds": init_s,
        "compile_seconds": compile_s,
        "seconds_per_iteration": seconds,
        "repeats": times,
        "env_steps_per_iteration": None,
        "env_steps_per_second": None,
    }
    per_seed = getattr(config, "steps_per_iteration", None)
    if per_seed is not None:
        steps = per_seed * getattr(config, "num_seeds", 1)
        row["env_steps_per_iteration"] = steps
        row["env_steps_per_second"] = steps / seconds
    return row


def bench_run(name: str, quick: bool, iterations: int) -> dict[str, Any]:
    """A short training run of ``name`` through the run driver."""
    config = preset_config(name, quick).replace(iterations=iterations)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = runner.run(
            config.experiment(), Path(tmp) / "run", preset=name, progress=False
        )
        wall = time.perf_counter() - start
    return {
        "preset": name,
        "iterations": iterations,
        "shapes": _shapes(config),
        "wall_seconds": wall,
        "status": summary.get("status"),
        "iterations_completed": summary.get("iterations_completed"),
        "summary_wall_time": summary.get("wall_time"),
        "timing": summary.get("timing"),
        "headline": summary.get("headline"),
    }


def _items(args: argparse.Namespace) -> list[tuple[str, str, Callable[[], dict]]]:
    """(section, name, thunk) for every item to run, in order."""
    items: list[tuple[str, str, Callable[[], dict]]] = []
    if "env" in args.sections:
        for env_id in args.envs:
            items.append(
                (
                    "env",
                    env_id,
                    lambda e=env_id: bench_env(
                        e, args.env_batch, args.env_steps, args.repeats
                    ),
                )
            )
    if "training" in args.sections:
        for name in args.presets:
            items.append(
                (
                    "training",
                    name,
                    lambda n=name: bench_training(n, args.quick, args.repeats),
                )
            )
    if "run" in args.sections:
        items.append(
            (
                "run",
                RUN_PRESET,
                lambda: bench_run(RUN_PRESET, args.quick, args.run_iterations),
            )
        )
    return items


def device_info() -> dict[str, Any]:
    devices = jax.devices()
    return {
        "description": _device(),
        "devices": [str(d) for d in devices],
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "count": len(devices),
        "jax": jax.__version__,
    }


def _headline(headline: dict[str, Any] | None) -> str:
    if not headline:
        return "-"
    return ", ".join(f"{k} {v:.3g}" for k, v in headline.items())


def table(result: dict[str, Any]) -> str:
    lines = [
        f"device: {result['device']['description']} "
        f"({result['device']['platform']}), jax {result['device']['jax']}; "
        f"{'quick' if result['quick'] else 'full'} run, "
        f"{result['total_wall_seconds']:.1f} s",
        "| section | item | compile (s) | s / call | steps/s | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in result["env"]:
        lines.append(
            f"| env | {row['name']} (batch {row.get('batch', '-')}) | "
            + (
                f"{row['compile_seconds']:.2f} | {row['seconds_per_call']:.3g} | "
                f"{row['steps_per_second']:.3g} | |"
                if not row.get("skipped")
                else f"- | - | - | skipped: {row['reason']} |"
            )
        )
    for row in result["training"]:
        if row.get("skipped"):
            lines.append(
                f"| training | {row['name']} | - | - | - | skipped: {row['reason']} |"
            )
            continue
        rate = row["env_steps_per_second"]
        lines.append(
            f"| training | {row['name']} | {row['compile_seconds']:.2f} | "
            f"{row['seconds_per_iteration']:.3g} | "
            f"{'-' if rate is None else f'{rate:.3g}'} | s / iteration |"
        )
    for row in result["run"]:
        if row.get("skipped"):
            lines.append(
                f"| run | {row['name']} | - | - | - | skipped: {row['reason']} |"
            )
            continue
        lines.append(
            f"| run | {row['name']} x {row['iterations']} | - | "
            f"{row['wall_seconds']:.3g} | - | wall time; {row['status']}, "
            f"headline {_headline(row['headline'])} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_accelerator.json"))
    parser.add_argument("--budget-s", type=float, default=540.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--env-batch", type=int, default=None)
    parser.add_argument("--env-steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--run-iterations", type=int, default=None)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--envs", nargs="+", default=list(ENV_IDS))
    parser.add_argument(
        "--presets",
        nargs="+",
        choices=TRAINING_PRESETS,
        default=list(TRAINING_PRESETS),
    )
    args = parser.parse_args(argv)
    if args.env_batch is None:
        args.env_batch = 64 if args.quick else 4096
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.run_iterations is None:
        args.run_iterations = 3 if args.quick else 10
    if args.quick:
        args.env_steps = min(args.env_steps, 32)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device_info(),
        "quick": args.quick,
        "budget_seconds": args.budget_s,
        "settings": {
            "env_batch": args.env_batch,
            "env_steps": args.env_steps,
            "repeats": args.repeats,
            "run_iterations": args.run_iterations,
            "sections": list(args.sections),
        },
        **{section: [] for section in SECTIONS},
        "skipped": [],
    }
    for section, name, thunk in _items(args):
        reason = budget.skip_reason()
        if reason is not None:
            row = {"name": name, "skipped": True, "reason": reason}
            result["skipped"].append({"section": section, **row})
        else:
            start = time.perf_counter()
            row = {"name": name, "skipped": False, **thunk()}
            row["section_item_seconds"] = time.perf_counter() - start
        result[section].append(row)
        print(
            f"[{budget.elapsed():7.1f} s] {section} {name}: "
            f"{'skipped' if row['skipped'] else 'done'}",
            flush=True,
        )
    result["total_wall_seconds"] = budget.elapsed()
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(table(result))
    return result


if __name__ == "__main__":
    main()
