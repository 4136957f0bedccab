"""Throughput of the shaping loop on CleanUp-lite, next to the IPD and the bare envs.

Measured in one process (issue #12), each on the same number of meta-agent
environment steps per call:

1. **CleanUp-lite loop**: one compiled iteration of
   :class:`dilemmas.training.shaping.Shaping` (``update``: opponent draws, the meta
   agent's and the naive learners' rollouts with the naive A2C updates at every
   inner-episode boundary, COALA advantages, the PPO update) with the
   ``cleanup_lite-shaping`` preset's settings (``cleanup_lite-v0``, T = 64, Hawk
   width 32) at ``--meta-batch``, ``--batch`` and ``--inner-episodes`` (default
   4, 8, 10: a CPU shape; the paper's is 512, 32, 100). Throughput is meta-agent
   environment steps per second, ``meta_batch * B * M * T`` over the iteration's
   time, policy and updates included.
2. **IPD loop**: the same loop on ``ipd-v0`` (T = 10, the paper's IPD settings)
   with the same meta-batch and B, and ``M * 64 / 10`` inner episodes
   (``--ipd-inner-episodes``), so an iteration plays the same number of steps.
3. **Envs alone**: each game's pure JAX core with uniformly random actions,
   vmapped over the same ``meta_batch * B`` envs, each playing M (IPD: its M)
   episodes of T steps from a reset in a ``lax.scan``; the summed rewards and
   observations are returned so XLA keeps both. The ratio loop / env alone is the
   share of the env's own speed the training loop keeps.

Every function is compiled ahead of time (compile time reported), called once
untimed, then sized to last at least ``--min-seconds`` per measurement. The four
alternate inside each of ``--repeats`` repeats, the order reversed every other
repeat, so a change of machine load hits all of them; figures are medians, and
each ratio is the median of the per-repeat ratios with their range.

``python benchmarks/bench_shaping.py`` (about 2-3 minutes on 2 CPU cores;
``--json PATH`` keeps every figure). On an accelerator, the paper's CleanUp-lite
shape: ``--meta-batch 512 --batch 32 --inner-episodes 100``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from bench_training import _device

from dilemmas.envs import make
from dilemmas.training.shaping import Shaping, ShapingConfig

#: The ``cleanup_lite-shaping`` preset's settings (COALA estimator), shapes aside.
CLEANUP_LITE = dict(
    env_id="cleanup_lite-v0",
    inner_episode_length=64,
    normalize_advantages=True,
    reward_scale=0.1,
    lr=1e-3,
    naive_reward_scale=0.1,
)
IPD_LENGTH = 10


def configs(args: argparse.Namespace) -> dict[str, ShapingConfig]:
    """The CleanUp-lite and IPD loops' configs at the requested shapes."""
    shape = dict(meta_batch=args.meta_batch, batch=args.batch)
    lite = ShapingConfig(
        name="bench-cleanup_lite",
        num_inner_episodes=args.inner_episodes,
        **shape,
        **CLEANUP_LITE,
    )
    ipd_episodes = args.ipd_inner_episodes or max(
        1, round(args.inner_episodes * lite.inner_episode_length / IPD_LENGTH)
    )
    ipd = ShapingConfig(
        name="bench-ipd",
        env_id="ipd-v0",
        inner_episode_length=IPD_LENGTH,
        num_inner_episodes=ipd_episodes,
        **shape,
    )
    return {"cleanup_lite": lite, "ipd": ipd}


def env_alone(cfg: ShapingConfig) -> Callable[[jax.Array], jax.Array]:
    """``key -> scalar``: the loop's envs alone, random actions, no networks."""
    env, params = make(cfg.env_id, max_steps=cfg.inner_episode_length)
    num_actions = int(env.action_space().n)
    envs = cfg.pool_size * cfg.meta_batch * cfg.batch

    def episode(total, key):
        key, key_reset = jax.random.split(key)
        _, state = env.reset(key_reset, params)

        def step(carry, key):
            state, total = carry
            key_act, key_env = jax.random.split(key)
            actions = jax.random.randint(key_act, (env.num_agents,), 0, num_actions)
            ts = env.step(key_env, state, actions, params)
            return (ts.state, total + ts.reward.sum() + ts.obs.sum()), None

        keys = jax.random.split(key, cfg.inner_episode_length)
        (_, total), _ = jax.lax.scan(step, (state, total), keys)
        return total, None

    def one(key):
        keys = jax.random.split(key, cfg.num_inner_episodes)
        total, _ = jax.lax.scan(episode, jnp.zeros(()), keys)
        return total

    return lambda key: jax.vmap(one)(jax.random.split(key, envs)).sum()


def compiled(fn: Callable, arg: Any) -> tuple[Callable, float]:
    """``fn`` jitted and compiled ahead of time for ``arg``, and the seconds it took."""
    start = time.perf_counter()
    executable = jax.jit(fn).lower(arg).compile()
    return executable, time.perf_counter() - start


def _timed(fn: Callable, arg: Any, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(fn(arg))
    return time.perf_counter() - start


def calls_for(fn: Callable, arg: Any, min_seconds: float) -> int:
    """How many back-to-back calls of ``fn(arg)`` last at least ``min_seconds``."""
    calls = 1
    while True:
        elapsed = _timed(fn, arg, calls)
        if elapsed >= min_seconds:
            return calls
        calls = max(calls + 1, int(calls * 1.2 * min_seconds / max(elapsed, 1e-9)))


def alternating_rates(
    runs: dict[str, tuple[Callable, Any, int]], repeats: int, min_seconds: float
) -> dict[str, list[float]]:
    """Steps/s of each ``name: (fn, arg, steps per call)`` per repeat; the runs
    alternate inside every repeat, in reversed order every other repeat."""
    calls = {}
    for name, (fn, arg, _) in runs.items():
        jax.block_until_ready(fn(arg))  # warm-up
        calls[name] = calls_for(fn, arg, min_seconds)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            fn, arg, steps = runs[name]
            rates[name].append(calls[name] * steps / _timed(fn, arg, calls[name]))
    return rates


def ratio(rates: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    """Median and range of the per-repeat ratios ``num / den``."""
    paired = [a / b for a, b in zip(rates[num], rates[den], strict=True)]
    return {
        "median": statistics.median(paired),
        "min": min(paired),
        "max": max(paired),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inner-episodes", type=int, default=10)
    parser.add_argument(
        "--ipd-inner-episodes",
        type=int,
        default=None,
        help="default: as many steps per iteration as CleanUp-lite",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    cfgs = configs(args)
    runs, compile_s, steps = {}, {}, {}
    for game, cfg in cfgs.items():
        algo = Shaping(cfg)
        state = algo.init(jax.random.key(0))
        steps[game] = cfg.steps_per_iteration
        update, compile_s[f"{game} loop"] = compiled(algo.update, state)
        runs[f"{game} loop"] = (update, state, steps[game])
        key = jax.random.key(1)
        bare, compile_s[f"{game} env alone"] = compiled(env_alone(cfg), key)
        runs[f"{game} env alone"] = (bare, key, steps[game])
    rates = alternating_rates(runs, args.repeats, args.min_seconds)

    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": _device(),
        "jax": jax.__version__,
        "shapes": {
            game: {
                "meta_batch": cfg.meta_batch,
                "batch": cfg.batch,
                "num_inner_episodes": cfg.num_inner_episodes,
                "inner_episode_length": cfg.inner_episode_length,
                "network": f"{cfg.network}-{cfg.hidden}",
                "steps_per_iteration": cfg.steps_per_iteration,
            }
            for game, cfg in cfgs.items()
        },
        "repeats": args.repeats,
        "steps_per_second": {
            name: {"median": statistics.median(r), "repeats": r}
            for name, r in rates.items()
        },
        "seconds_per_iteration": {
            game: steps[game] / statistics.median(rates[f"{game} loop"])
            for game in cfgs
        },
        "compile_seconds": compile_s,
        "ratios": {
            "cleanup_lite loop / cleanup_lite env alone": ratio(
                rates, "cleanup_lite loop", "cleanup_lite env alone"
            ),
            "ipd loop / ipd env alone": ratio(rates, "ipd loop", "ipd env alone"),
            "cleanup_lite loop / ipd loop": ratio(
                rates, "cleanup_lite loop", "ipd loop"
            ),
            "cleanup_lite env alone / ipd env alone": ratio(
                rates, "cleanup_lite env alone", "ipd env alone"
            ),
        },
    }
    print()
    print(f"device: {result['device']}, jax {jax.__version__}")
    for game, shape in result["shapes"].items():
        print(f"{game}: {shape}")
    print()
    print("| measure | steps/s (median) | range | s/call | compile (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rates.items():
        game = name.split()[0]
        print(
            f"| {name} | {statistics.median(r):.3g} | {min(r):.3g}-{max(r):.3g} | "
            f"{steps[game] / statistics.median(r):.3g} | {compile_s[name]:.1f} |"
        )
    print()
    print("| ratio | median | range over repeats |")
    print("|---|---:|---:|")
    for name, r in result["ratios"].items():
        print(f"| {name} | {r['median']:.3g} | {r['min']:.3g}-{r['max']:.3g} |")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
