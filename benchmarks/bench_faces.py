"""The PettingZoo and Gymnasium faces, before and after, timed in one run.

Each face is stepped from a Python loop with pre-generated random actions (the way
a user's training loop or SuperSuit drives it). The *previous* faces are read from
git (``--before``, default the last commit before the packed single-transfer step)
and imported beside the current ones, so both are timed in the same process and
alternate inside every repeat; figures are medians over repeats and the speedup is
the median of the per-repeat ratios (before / after). For ``ipd-v0`` the floor is
also timed: a jitted identity over the core's state, called once per step and
waited for (the issue's floor: one compiled call, no transfer).

Run ``python benchmarks/bench_faces.py`` from a git checkout (a few minutes on 2
cores), ``--quick`` for a smoke run, ``--json PATH`` to keep every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import numpy as np

import dilemmas.agents  # noqa: F401  (registers the co-players the Gymnasium face uses)
from dilemmas.envs import gymnasium as gymnasium_face
from dilemmas.envs import make
from dilemmas.envs import pettingzoo as pettingzoo_face

BEFORE = "332acd8"  # the faces with one compiled call and several transfers a step
GAMES = {  # env id: steps per timed loop
    "ipd-v0": 3000,
    "coin_game-v0": 1000,
    "cleanup_lite-v0": 1000,
    "harvest-v0": 300,
}
ROOT = Path(__file__).resolve().parent.parent


def previous_faces(revision: str, folder: Path) -> tuple[ModuleType, ModuleType]:
    """The PettingZoo and Gymnasium faces at ``revision``, imported as modules
    ``before_pettingzoo`` and ``before_gymnasium``."""
    modules = []
    for face in ("pettingzoo", "gymnasium"):
        try:
            source = subprocess.run(
                ["git", "show", f"{revision}:envs/{face}.py"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            raise SystemExit(
                f"bench_faces: cannot read envs/{face}.py at {revision} from git "
                f"({err}); run it from a git checkout or pass --before REVISION"
            ) from None
        path = folder / f"before_{face}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"before_{face}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0], modules[1]


def pettingzoo_loop(face: ModuleType, env_id: str, steps: int) -> Callable[[], None]:
    kwargs = {"max_steps": 10**6} if env_id == "ipd-v0" else {}
    env = face.parallel_env(env_id, **kwargs)
    env.reset(seed=0)
    agents = list(env.possible_agents)
    n = env.action_space(agents[0]).n
    actions = np.random.default_rng(0).integers(0, n, size=(steps, len(agents)))
    joint = [{a: int(row[i]) for i, a in enumerate(agents)} for row in actions]

    def run() -> None:
        env.reset(seed=0)
        for step in joint:
            env.step(step)
            if not env.agents:
                env.reset(seed=0)

    return run


def gymnasium_loop(face: ModuleType, env_id: str, steps: int) -> Callable[[], None]:
    kwargs = {"co_player": "tft", "max_steps": 10**6} if env_id == "ipd-v0" else {}
    env = face.SingleAgentEnv(env_id, **kwargs)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, size=steps)
    actions = [int(a) for a in actions]

    def run() -> None:
        env.reset(seed=0)
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset(seed=0)

    return run


def identity_loop(steps: int) -> Callable[[], None]:
    """One compiled call per step over the IPD core's state (no transfer)."""
    env, params = make("ipd-v0")
    _, state = env.reset(jax.random.key(0), params)
    identity = jax.jit(lambda s: s)

    def run() -> None:
        for _ in range(steps):
            jax.block_until_ready(identity(state))

    return run


def paired(
    loops: dict[str, Callable[[], None]], steps: int, repeats: int
) -> dict[str, Any]:
    """Microseconds per step of each loop (median over repeats) and each loop's
    per-repeat ratio to ``after`` (median and range)."""
    for run in loops.values():
        run()  # compile and warm up
    times: dict[str, list[float]] = {name: [] for name in loops}
    order = list(loops)
    for repeat in range(repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            loops[name]()
            times[name].append((time.perf_counter() - start) / steps * 1e6)
    result: dict[str, Any] = {
        name: {"us_per_step": statistics.median(t), "repeats": t}
        for name, t in times.items()
    }
    for name in loops:
        if name == "after":
            continue
        ratios = [b / a for b, a in zip(times[name], times["after"], strict=True)]
        result[name]["over_after"] = {
            "median": statistics.median(ratios),
            "range": [min(ratios), max(ratios)],
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git revision of the faces")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--games", nargs="+", choices=list(GAMES), default=list(GAMES), metavar="ID"
    )
    parser.add_argument(
        "--faces",
        nargs="+",
        choices=["pettingzoo", "gymnasium"],
        default=["pettingzoo", "gymnasium"],
    )
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    scale = 0.05 if args.quick else 1.0
    results: dict[str, Any] = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "jax": jax.__version__,
        },
        "before": args.before,
    }
    with tempfile.TemporaryDirectory() as folder:
        before_pz, before_gym = previous_faces(args.before, Path(folder))
        rows = []
        for face, (old, new, make_loop) in {
            "pettingzoo": (before_pz, pettingzoo_face, pettingzoo_loop),
            "gymnasium": (before_gym, gymnasium_face, gymnasium_loop),
        }.items():
            if face not in args.faces:
                continue
            for env_id in args.games:
                full = GAMES[env_id]
                if face == "gymnasium" and env_id == "harvest-v0":
                    continue
                steps = max(20, int(full * scale))
                loops = {
                    "before": make_loop(old, env_id, steps),
                    "after": make_loop(new, env_id, steps),
                }
                if env_id == "ipd-v0":
                    loops["identity"] = identity_loop(steps)
                result = paired(loops, steps, repeats)
                results[f"{face}/{env_id}"] = result
                speedup = result["before"]["over_after"]
                row = (
                    f"| {face} | `{env_id}` | {result['before']['us_per_step']:.0f} | "
                    f"{result['after']['us_per_step']:.0f} | "
                    f"{speedup['median']:.2f} ({speedup['range'][0]:.2f}-"
                    f"{speedup['range'][1]:.2f}) |"
                )
                if "identity" in result:
                    floor = 1 / result["identity"]["over_after"]["median"]
                    identity = result["identity"]["us_per_step"]
                    row += f" {identity:.0f} us; after / floor {floor:.2f} |"
                else:
                    row += " |"
                rows.append(row)
                print(row, flush=True)
    print(
        "\n| face | game | before, us/step | after, us/step | speedup (range) | "
        "floor (identity call) |\n|---|---|---|---|---|---|"
    )
    print("\n".join(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
