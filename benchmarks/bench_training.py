"""Training throughput of the sampled co-player shaping loop, with same-run references.

Measured in one process, at the paper's IPD shapes by default (meta-batch 128,
B = 16, M = 20, T = 10, Hawk width 32, pure shaping, PPO 4 epochs x 2 minibatches;
409,600 meta-agent environment steps per iteration):

1. **Training**: one compiled iteration of :class:`dilemmas.training.shaping.Shaping`
   (opponent draws, rollouts of the meta agent and the naive learners with their
   A2C updates at every inner-episode boundary, COALA advantages, PPO update).
   Throughput is meta-agent environment steps per second, policy and updates
   included.
2. **References in the same run**, each timed on the same shapes:
   *rollout only* (the same meta-episodes, naive updates included, no meta
   update) and *env only* (the same number of IPD steps with uniformly random
   actions, no networks). The ratios training / reference say what the learning
   costs on top of playing.
3. **Time outside compiled code**: ``dilemmas.training.runner.run`` drives the same
   experiment for ``--driver-iterations`` iterations with one iteration per
   compiled chunk (the worst case for the driver: a metrics line, TensorBoard
   scalars and the progress bar after every iteration, a checkpoint every other
   iteration), and reports the ``timing`` of its ``summary.json``: the share of
   wall time after the first (compiling) chunk spent outside the compiled chunks.
   Target: < 5 %.

Every configuration gets an untimed warm-up (compilation), then ``--repeats``
timed repeats; figures are medians. Run ``python benchmarks/bench_training.py``
(about 5 minutes on 2 CPU cores at paper shapes; ``--meta-batch 16`` for a quick
look), ``--json PATH`` to keep the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from dilemmas.agents import networks
from dilemmas.envs import make
from dilemmas.training import runner
from dilemmas.training.shaping import Shaping
from dilemmas.training.shaping_presets import PRESETS

OUTSIDE_TARGET = 0.05


def _device() -> str:
    device = jax.devices()[0]
    if device.platform == "cpu":
        try:
            with open("/proc/cpuinfo") as cpuinfo:
                for line in cpuinfo:
                    if line.startswith("model name"):
                        return f"CPU: {line.split(':', 1)[1].strip()}"
        except OSError:
            pass
        return f"CPU: {platform.processor() or 'unknown'}"
    return f"{device.platform.upper()}: {device.device_kind}"


def _median_seconds(fn, args, repeats: int) -> tuple[float, list[float]]:
    jax.block_until_ready(fn(*args))  # warm-up: compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _paired_seconds(fn_a, fn_b, args, repeats: int):
    """Medians of ``fn_a`` and ``fn_b`` (both compiled) timed alternately, so a
    change of machine load hits both alike."""
    jax.block_until_ready(fn_a(*args))
    jax.block_until_ready(fn_b(*args))
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b), times_a, times_b


def _previous_conv1d_step(w, b, state, x, reset):
    """``networks.conv1d_step`` before the taps were written out: a reduce over a
    ``[..., K, D]`` window."""
    state = jnp.where(reset[..., None, None], 0.0, state)
    window = jnp.concatenate([state, x[..., None, :]], axis=-2)
    return window[..., 1:, :], jnp.sum(window * w, axis=-2) + b


def _previous_block_diagonal_linear(x, w, b):
    """``networks.block_diagonal_linear`` before the dense path: a per-head einsum."""
    heads, block, _ = w.shape
    xb = x.reshape(*x.shape[:-1], heads, block)
    return (jnp.einsum("...hi,hij->...hj", xb, w) + b).reshape(x.shape)


@contextlib.contextmanager
def previous_hawk_kernels():
    """Trace Hawk with the previous implementations of its conv and gates (the
    reference of the speed-up, kept here rather than in the library)."""
    saved = networks.conv1d_step, networks.block_diagonal_linear
    networks.conv1d_step = _previous_conv1d_step
    networks.block_diagonal_linear = _previous_block_diagonal_linear
    try:
        yield
    finally:
        networks.conv1d_step, networks.block_diagonal_linear = saved


def driver_line(timing: dict[str, float], iterations: int) -> str:
    """The run driver's time outside compiled code, against the target."""
    share = timing["share_outside_compiled_code"]
    return (
        f"driver, {iterations} iterations at one per chunk: "
        f"{timing['seconds_in_compiled_code']:.2f} s compiled, "
        f"{timing['seconds_outside_compiled_code']:.3f} s outside -> "
        f"{100 * share:.2f} % outside (target < {100 * OUTSIDE_TARGET:.0f} %: "
        f"{'met' if share < OUTSIDE_TARGET else 'NOT met'})"
    )


def _env_only(cfg) -> Any:
    """The same number of IPD steps as one iteration, random actions, no networks."""
    env, params = make(cfg.env_id, max_steps=cfg.inner_episode_length)
    episodes = cfg.pool_size * cfg.meta_batch * cfg.batch * cfg.num_inner_episodes

    def one(key):
        key, k_reset = jax.random.split(key)
        obs, state = env.reset(k_reset, params)

        def step(carry, key):
            state, total = carry
            k_act, k_env = jax.random.split(key)
            actions = jax.random.randint(k_act, (2,), 0, 2)
            ts = env.step(k_env, state, actions, params)
            return (ts.state, total + ts.reward[0] + ts.obs.sum()), None

        keys = jax.random.split(key, cfg.inner_episode_length)
        (_, total), _ = jax.lax.scan(step, (state, jnp.zeros(())), keys)
        return total

    run = jax.jit(lambda key: jax.vmap(one)(jax.random.split(key, episodes)).sum())
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="ipd-shaping")
    parser.add_argument("--meta-batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--driver-iterations", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    cfg = PRESETS[args.preset]
    if args.meta_batch is not None:
        cfg = cfg.replace(meta_batch=args.meta_batch)
    algo = Shaping(cfg)
    steps = cfg.steps_per_iteration
    state = algo.init(jax.random.key(0))

    update = jax.jit(algo.update)
    previous = None
    if cfg.network == "hawk":
        # Ahead-of-time compiled executables, so that no trace cache can hand one
        # version's kernels to the other.
        update = update.lower(state).compile()
        with previous_hawk_kernels():
            jax.clear_caches()
            old_update = jax.jit(Shaping(cfg).update).lower(state).compile()
        jax.clear_caches()
        train_s, old_s, train_times, old_times = _paired_seconds(
            update, old_update, (state,), args.repeats
        )
        previous = {
            "training_seconds_per_iteration": old_s,
            "training_repeats": old_times,
            # Median of the per-pair ratios: each pair ran back to back, so a
            # change of load between pairs cancels.
            "speedup": statistics.median(
                o / n for o, n in zip(old_times, train_times, strict=True)
            ),
        }
    else:
        train_s, train_times = _median_seconds(update, (state,), args.repeats)

    def rollout(state):
        is_naive, index = algo.draw_opponents(state.key)
        shape = (cfg.pool_size, cfg.meta_batch)
        keys = jax.random.split(state.key, shape[0] * shape[1]).reshape(shape)
        episodes = algo.play(state.params, state.naive_params, is_naive, index, keys)
        return jnp.sum(episodes.rewards), jnp.sum(episodes.log_prob)

    rollout_s, _ = _median_seconds(jax.jit(rollout), (state,), args.repeats)
    env_s, _ = _median_seconds(_env_only(cfg), (jax.random.key(1),), args.repeats)

    with tempfile.TemporaryDirectory() as tmp:
        experiment = cfg.replace(iterations=args.driver_iterations).experiment()
        summary = runner.run(
            experiment,
            Path(tmp) / "run",
            preset=args.preset,
            log_every=1,
            checkpoint_every=2,
            progress=True,
        )
    timing = summary["timing"]

    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": _device(),
        "jax": jax.__version__,
        "preset": args.preset,
        "shapes": {
            "pool_size": cfg.pool_size,
            "meta_batch": cfg.meta_batch,
            "batch": cfg.batch,
            "num_inner_episodes": cfg.num_inner_episodes,
            "inner_episode_length": cfg.inner_episode_length,
            "network": f"{cfg.network}-{cfg.hidden}",
        },
        "steps_per_iteration": steps,
        "training_seconds_per_iteration": train_s,
        "training_repeats": train_times,
        "training_steps_per_second": steps / train_s,
        "rollout_steps_per_second": steps / rollout_s,
        "env_only_steps_per_second": steps / env_s,
        "training_over_rollout": rollout_s / train_s,
        "training_over_env_only": env_s / train_s,
        "driver": timing,
        "previous_hawk_kernels": previous,
    }
    print()
    print(f"device: {result['device']}, jax {jax.__version__}")
    print(f"shapes: {result['shapes']}, {steps:,} meta-agent steps per iteration")
    print("| measure | steps/s | ratio training / this |")
    print("|---|---|---|")
    print(f"| training (one iteration) | {steps / train_s:.3g} | 1 |")
    print(
        f"| rollout only | {steps / rollout_s:.3g} | "
        f"{result['training_over_rollout']:.3f} |"
    )
    over_env = result["training_over_env_only"]
    print(f"| env only | {steps / env_s:.3g} | {over_env:.4f} |")
    if previous is not None:
        print(
            f"| training, previous conv1d_step and block-diagonal gates | "
            f"{steps / previous['training_seconds_per_iteration']:.3g} | "
            f"{previous['speedup']:.3f} (speed-up of the current kernels: median "
            "of back-to-back pairs) |"
        )
    print(driver_line(timing, args.driver_iterations))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
