"""Throughput of the iterated prisoner's dilemma, against references in the same run.

Two faces of ``ipd-v0`` are timed, each against references measured in the same
process, so the ratios survive a noisy machine better than absolute speeds:

1. The JAX core (:class:`dilemmas.envs.matrix_games.MatrixGame`): a jitted function
   vmaps over a batch of keys, resets, and scans one 100-step episode with uniformly
   random actions, summing the rewards. The reference is a hand-minimal vmapped IPD
   whose state is the previous actions and whose step is the payoff lookup
   ``payoffs[a0, a1]`` and nothing else, run by the same random-action scan.
2. The PettingZoo face (``dilemmas.envs.pettingzoo.parallel_env``), stepped from a
   Python loop with pre-generated random actions, against PettingZoo's own
   ``rps_v2`` and a minimal pure-numpy ``ParallelEnv`` IPD defined below.

A step is one joint step of one env (both agents act). Every configuration gets one
untimed warm-up, then ``--repeats`` timed repeats (each long enough to dwarf timer
noise); figures are medians over repeats. Ours and its reference alternate within
each repeat, so drift in machine load hits both alike.

Run ``python benchmarks/bench_envs.py`` (about 2 minutes on 2 cores),
``--quick`` for a smoke run, ``--json PATH`` to keep every figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import gymnasium.spaces
import jax
import jax.numpy as jnp
import numpy as np
import pettingzoo
from pettingzoo.classic import rps_v2

import dilemmas.envs
from dilemmas.envs.pettingzoo import parallel_env

ENV_ID = "ipd-v0"
EPISODE_STEPS = 100
CORE_TARGET = 0.8  # ours / reference, at batch >= TARGET_MIN_BATCH
TARGET_MIN_BATCH = 8192
PZ_TARGET = 1.0  # ours / rps_v2
PZ_MAX_STEPS = 10**7  # no episode ends inside a timed loop


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "jax": version("jax"),
        "jaxlib": version("jaxlib"),
        "jax_backend": jax.default_backend(),
        "numpy": np.__version__,
        "pettingzoo": version("pettingzoo"),
        "date": datetime.date.today().isoformat(),
    }


# --------------------------------------------------------------------------- timing


def _timed(run: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return time.perf_counter() - start


def calls_for(run: Callable[[], Any], min_seconds: float) -> int:
    """How many back-to-back calls of ``run`` take at least ``min_seconds``."""
    calls = 1
    while True:
        elapsed = _timed(run, calls)
        if elapsed >= min_seconds:
            return calls
        calls = max(calls + 1, int(calls * 1.2 * min_seconds / max(elapsed, 1e-9)))


def paired_rates(
    runs: dict[str, Callable[[], Any]],
    steps_per_call: dict[str, int],
    repeats: int,
    min_seconds: float,
) -> dict[str, list[float]]:
    """Steps/s of each run per repeat; the runs alternate inside every repeat.

    Each run is called once untimed (warm-up), then sized so a repeat of it lasts
    ``min_seconds``. The order of the runs flips from one repeat to the next.
    """
    calls = {}
    for name, run in runs.items():
        run()
        calls[name] = calls_for(run, min_seconds)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            elapsed = _timed(runs[name], calls[name])
            rates[name].append(calls[name] * steps_per_call[name] / elapsed)
    return rates


def summary(rates: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "repeats": rates,
    }


def ratio_summary(ours: list[float], ref: list[float]) -> dict[str, Any]:
    """Median ratio, plus the spread of the per-repeat (paired) ratios."""
    paired = [a / b for a, b in zip(ours, ref, strict=True)]
    return {
        "ratio": statistics.median(ours) / statistics.median(ref),
        "paired_min": min(paired),
        "paired_max": max(paired),
    }


# --------------------------------------------------------------------------- JAX core


def core_rollout(env, params) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """Batched episodes of ``env``: keys ``[B]`` -> (reward sums ``[B, 2]``, ``[B]``).

    The second output, the sum of the final observation, keeps the observation
    computation alive under XLA's dead-code elimination.
    """

    def episode(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        key, key_reset = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(carry, _):
            key, state, obs, total = carry
            key, key_act, key_step = jax.random.split(key, 3)
            actions = jax.random.randint(key_act, (2,), 0, 2, jnp.int32)
            ts = env.step(key_step, state, actions, params)
            return (key, ts.state, ts.obs, total + ts.reward), None

        init = (key, state, obs, jnp.zeros((2,), jnp.float32))
        (_, _, obs, total), _ = jax.lax.scan(body, init, length=EPISODE_STEPS)
        return total, obs.sum()

    return jax.vmap(episode)


def reference_rollout(
    payoffs: jax.Array,
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """The hand-minimal IPD: state = previous actions, step = ``payoffs[a0, a1]``."""

    def episode(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        key, _ = jax.random.split(key)  # the reset key, as in core_rollout
        last_actions = jnp.zeros((2,), jnp.int32)

        def body(carry, _):
            key, last_actions, total = carry
            del last_actions  # the lookup needs only this round's actions
            key, key_act, _ = jax.random.split(key, 3)
            actions = jax.random.randint(key_act, (2,), 0, 2, jnp.int32)
            reward = payoffs[actions[0], actions[1]]
            return (key, actions, total + reward), None

        init = (key, last_actions, jnp.zeros((2,), jnp.float32))
        (_, last_actions, total), _ = jax.lax.scan(body, init, length=EPISODE_STEPS)
        return total, last_actions.sum()

    return jax.vmap(episode)


def _compile(rollout: Callable, keys: jax.Array) -> tuple[Callable, float]:
    start = time.perf_counter()
    compiled = jax.jit(rollout).lower(keys).compile()
    return compiled, time.perf_counter() - start


def bench_core(
    batches: list[int], repeats: int, min_seconds: float
) -> list[dict[str, Any]]:
    env, params = dilemmas.envs.make(ENV_ID)
    if int(params.max_steps) != EPISODE_STEPS:
        raise RuntimeError(f"{ENV_ID} episodes are {int(params.max_steps)} steps")
    rows = []
    for batch in batches:
        keys = jax.random.split(jax.random.key(batch), batch)
        ours, ours_compile = _compile(core_rollout(env, params), keys)
        ref, ref_compile = _compile(reference_rollout(params.payoffs), keys)
        ours_total, _ = ours(keys)
        ref_total, _ = ref(keys)
        if not np.allclose(np.asarray(ours_total), np.asarray(ref_total)):
            raise RuntimeError("ours and the reference disagree on the rewards")
        rates = paired_rates(
            {
                "ours": lambda f=ours, k=keys: jax.block_until_ready(f(k)),
                "reference": lambda f=ref, k=keys: jax.block_until_ready(f(k)),
            },
            dict.fromkeys(("ours", "reference"), batch * EPISODE_STEPS),
            repeats,
            min_seconds,
        )
        row = {
            "batch": batch,
            "ours_steps_per_s": summary(rates["ours"]),
            "reference_steps_per_s": summary(rates["reference"]),
            "ours_compile_s": ours_compile,
            "reference_compile_s": ref_compile,
            **ratio_summary(rates["ours"], rates["reference"]),
        }
        rows.append(row)
        print(
            f"  core batch {batch:>6}: ours {row['ours_steps_per_s']['median']:.3g} "
            f"steps/s, reference {row['reference_steps_per_s']['median']:.3g}, "
            f"ratio {row['ratio']:.2f}",
            flush=True,
        )
    return rows


# --------------------------------------------------------------------------- PettingZoo


class NumpyIPD(pettingzoo.ParallelEnv):
    """A minimal pure-numpy iterated prisoner's dilemma with the same outputs as ours.

    One-hot first-person observations over (start, CC, CD, DC, DD), rewards looked up
    in a ``[2, 2, 2]`` numpy table, truncation after ``max_steps`` rounds.
    """

    metadata = {"name": "numpy_ipd", "render_modes": [], "is_parallelizable": True}

    def __init__(self, payoffs: np.ndarray, max_steps: int):
        self.payoffs = np.asarray(payoffs, np.float32)
        self.max_steps = max_steps
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        self._obs_space = gymnasium.spaces.Box(0.0, 1.0, (5,), np.float32)
        self._action_space = gymnasium.spaces.Discrete(2)
        self._eye = np.eye(5, dtype=np.float32)
        self._t = 0

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        return self._action_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        del seed, options
        self.agents = list(self.possible_agents)
        self._t = 0
        start = self._eye[0]
        return (
            {"player_0": start.copy(), "player_1": start.copy()},
            {"player_0": {}, "player_1": {}},
        )

    def step(self, actions: dict):
        a0, a1 = int(actions["player_0"]), int(actions["player_1"])
        reward = self.payoffs[a0, a1]
        self._t += 1
        truncated = self._t >= self.max_steps
        obs = {
            "player_0": self._eye[1 + 2 * a0 + a1].copy(),
            "player_1": self._eye[1 + 2 * a1 + a0].copy(),
        }
        result = (
            obs,
            {"player_0": float(reward[0]), "player_1": float(reward[1])},
            {"player_0": False, "player_1": False},
            {"player_0": truncated, "player_1": truncated},
            {"player_0": {}, "player_1": {}},
        )
        if truncated:
            self.agents = []
        return result


def _pz_loop(env: pettingzoo.ParallelEnv, actions: list[list[int]]) -> Callable:
    agent_0, agent_1 = env.possible_agents

    def run() -> None:
        env.reset(seed=0)
        step = env.step
        for a0, a1 in actions:
            step({agent_0: a0, agent_1: a1})

    return run


def bench_pettingzoo(steps: int, repeats: int, min_seconds: float) -> dict[str, Any]:
    """Steps/s of our ParallelEnv, rps_v2 and the numpy IPD, looped from Python."""
    rng = np.random.default_rng(0)
    ours = parallel_env(ENV_ID, max_steps=PZ_MAX_STEPS)
    numpy_ipd = NumpyIPD(np.asarray(ours.params.payoffs), PZ_MAX_STEPS)
    rps = rps_v2.parallel_env(max_cycles=PZ_MAX_STEPS)
    ipd_actions = rng.integers(0, 2, size=(steps, 2)).tolist()
    rps_actions = rng.integers(0, 3, size=(steps, 2)).tolist()
    runs = {
        "ours": _pz_loop(ours, ipd_actions),
        "rps_v2": _pz_loop(rps, rps_actions),
        "numpy_ipd": _pz_loop(numpy_ipd, ipd_actions),
    }
    # each call also does one reset, which is timed but not counted as a step
    rates = paired_rates(runs, dict.fromkeys(runs, steps), repeats, min_seconds)
    result: dict[str, Any] = {
        "steps_per_call": steps,
        **{f"{name}_steps_per_s": summary(rates[name]) for name in runs},
        "vs_rps_v2": ratio_summary(rates["ours"], rates["rps_v2"]),
        "vs_numpy_ipd": ratio_summary(rates["ours"], rates["numpy_ipd"]),
    }
    print(
        f"  pettingzoo: ours {result['ours_steps_per_s']['median']:.3g} steps/s, "
        f"ours/rps_v2 {result['vs_rps_v2']['ratio']:.2f}, "
        f"ours/numpy {result['vs_numpy_ipd']['ratio']:.2f}",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------- report


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable); "
        f"jax {m['jax']} / jaxlib {m['jaxlib']} ({m['jax_backend']} backend), "
        f"numpy {m['numpy']}, pettingzoo {m['pettingzoo']}, Python {m['python']}; "
        f"{m['date']}.",
        f"Medians of {results['repeats']} timed repeats after a warm-up; "
        "ratio = median(ours) / median(reference), range = min-max of the "
        "per-repeat paired ratios.",
        "",
        f"JAX core, `{ENV_ID}`, one {EPISODE_STEPS}-step episode per env, random "
        "actions (steps/s = joint env steps per second):",
        "",
        "| batch | ours steps/s | reference steps/s | ours / ref | range "
        "| compile ours (s) | compile ref (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["core"]:
        lines.append(
            f"| {row['batch']} | {row['ours_steps_per_s']['median']:.3g} "
            f"| {row['reference_steps_per_s']['median']:.3g} "
            f"| {row['ratio']:.2f} "
            f"| {row['paired_min']:.2f}-{row['paired_max']:.2f} "
            f"| {row['ours_compile_s']:.2f} | {row['reference_compile_s']:.2f} |"
        )
    pz = results["pettingzoo"]
    lines += [
        "",
        f"PettingZoo `ParallelEnv.step` from a Python loop "
        f"({pz['steps_per_call']} steps per call):",
        "",
        "| env | steps/s | us/step | ours / this | range |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label, versus in (
        ("ours", f"ours (`parallel_env('{ENV_ID}')`)", None),
        ("rps_v2", "`pettingzoo.classic.rps_v2`", "vs_rps_v2"),
        ("numpy_ipd", "numpy `ParallelEnv` IPD", "vs_numpy_ipd"),
    ):
        rate = pz[f"{name}_steps_per_s"]["median"]
        if versus is None:
            ratio, spread = "1.00", "-"
        else:
            r = pz[versus]
            ratio = f"{r['ratio']:.2f}"
            spread = f"{r['paired_min']:.2f}-{r['paired_max']:.2f}"
        lines.append(
            f"| {label} | {rate:.3g} | {1e6 / rate:.1f} | {ratio} | {spread} |"
        )
    lines += ["", "Targets:", ""]
    for target in results["targets"]:
        lines.append(
            f"- {target['name']}: {target['value']:.2f} ({_met(target['met'])})"
        )
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = [
        {
            "name": f"core ours/ref >= {CORE_TARGET} at batch {row['batch']}",
            "value": row["ratio"],
            "met": row["ratio"] >= CORE_TARGET,
        }
        for row in results["core"]
        if row["batch"] >= TARGET_MIN_BATCH
    ]
    vs_rps = results["pettingzoo"]["vs_rps_v2"]["ratio"]
    checks.append(
        {
            "name": f"pettingzoo ours/rps_v2 >= {PZ_TARGET}",
            "value": vs_rps,
            "met": vs_rps >= PZ_TARGET,
        }
    )
    return checks


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3 repeats, largest batch 8192, shorter repeats",
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument(
        "--repeats", type=int, help="timed repeats per configuration (default 7)"
    )
    args = parser.parse_args(argv)

    repeats = args.repeats or (3 if args.quick else 7)
    if repeats < 1:
        parser.error("--repeats must be positive")
    batches = [1, 64, 1024, 8192] if args.quick else [1, 64, 1024, 8192, 65536]
    min_seconds = 0.05 if args.quick else 0.5
    pz_steps = 2_000 if args.quick else 10_000

    results: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "repeats": repeats,
        "min_seconds_per_repeat": min_seconds,
        "episode_steps": EPISODE_STEPS,
    }
    start = time.perf_counter()
    print(f"{ENV_ID} throughput, {repeats} repeats per configuration", flush=True)
    results["core"] = bench_core(batches, repeats, min_seconds)
    results["pettingzoo"] = bench_pettingzoo(pz_steps, repeats, min_seconds)
    results["targets"] = targets(results)
    results["wall_s"] = time.perf_counter() - start

    print()
    print(markdown(results))
    print(f"\n(wall time {results['wall_s']:.0f} s)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return results


if __name__ == "__main__":
    main()
