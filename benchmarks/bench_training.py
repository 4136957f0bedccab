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
   costs on top of playing. With a Hawk network, the same iteration is also
   compiled as issue #16 found it (*original*: the previous conv1d and
   block-diagonal kernels, one gradient per whole minibatch, the associative
   RG-LRU scan) and with only the previous meta update; the three are timed in
   turn within each repeat and the speed-ups are medians of per-repeat ratios.
   The FLOPs of one iteration are counted part by part (acting, naive updates,
   meta update, each loop body times its trip count) and set against a measured
   float32 matmul peak of the same machine (``--no-flops`` skips both).
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
import functools
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from dilemmas.agents import losses, networks
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


def _alternated_seconds(fns, args, repeats: int) -> list[list[float]]:
    """Times of each of ``fns`` (all compiled first), called in turn within each
    repeat, so that a change of machine load hits them alike."""
    for fn in fns:
        jax.block_until_ready(fn(*args))
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, fn_times in zip(fns, times, strict=True):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            fn_times.append(time.perf_counter() - start)
    return times


def _speedup(reference: list[float], current: list[float]) -> float:
    """Median of the per-repeat ratios (each pair ran back to back, so a change of
    load between repeats cancels)."""
    return statistics.median(r / c for r, c in zip(reference, current, strict=True))


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


@contextlib.contextmanager
def previous_update(*, unroll_recurrence: bool = False):
    """Trace the meta update as before gradient chunks and the sequential RG-LRU
    scan: one gradient over each whole minibatch and the associative scan (with
    ``unroll_recurrence``, a fully unrolled sequential recurrence instead: no
    loops, for counting FLOPs)."""
    saved = losses.grad_chunks, networks.linear_recurrence_sequence
    original = networks.linear_recurrence_sequence
    losses.grad_chunks = lambda sequences, samples: 1
    if unroll_recurrence:

        def recurrence(h0, a_seq, x_seq, reset_seq, method="auto"):
            a_seq = a_seq * jnp.logical_not(reset_seq)[..., None]

            def step(h, inputs):
                h = inputs[0] * h + inputs[1]
                return h, h

            return jax.lax.scan(step, h0, (a_seq, x_seq), unroll=True)

        networks.linear_recurrence_sequence = recurrence
    else:
        networks.linear_recurrence_sequence = functools.partial(
            original, method="associative"
        )
    try:
        yield
    finally:
        losses.grad_chunks, networks.linear_recurrence_sequence = saved


@contextlib.contextmanager
def original_implementation():
    """The shaping iteration as issue #16 found it: the previous Hawk kernels and
    the previous meta update."""
    with previous_hawk_kernels(), previous_update():
        yield


REFERENCES = {"original": original_implementation, "previous_update": previous_update}
REFERENCE_LABELS = {
    "original": "as issue #16 found it (previous kernels and meta update)",
    "previous_update": "previous meta update (whole-minibatch gradient, associative "
    "scan)",
}


def _flops(fn, *args) -> float:
    """XLA's FLOP count of ``fn(*args)`` (a program without loops)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0]
    return float(cost["flops"])


def iteration_flops(cfg) -> dict[str, float]:
    """FLOPs of one shaping iteration, counted part by part so that every loop body
    counts as often as it runs (XLA's cost analysis of the whole iteration counts a
    loop body once): the acting forward passes of meta agents and co-players at
    every step, the naive learners' A2C updates at every inner-episode boundary,
    and the meta agents' forward and backward passes in every PPO epoch and
    minibatch. Not counted: env steps, sampling, advantages and optimiser updates
    (elementwise work on far fewer numbers)."""
    algo = Shaping(cfg)
    n, e, b = cfg.pool_size, cfg.meta_batch, cfg.batch
    m, t = cfg.num_inner_episodes, cfg.inner_episode_length
    length = m * t
    rows = n * e * b
    params = algo.init_network(jax.random.key(0))
    net = algo.net
    obs, _ = jax.vmap(algo.env.reset, (0, None))(
        jax.random.split(jax.random.key(0), rows), algo.env_params
    )
    one_obs = obs[:, 0]

    def act(params, obs):
        _, out = net.apply(
            params, net.initial_state((rows,)), obs, jnp.zeros(rows, bool)
        )
        return out

    with previous_update(unroll_recurrence=True):
        acting = 2 * _flops(act, params, one_obs) * length
        naive_obs = jnp.broadcast_to(one_obs[:b], (t, b, *one_obs.shape[1:]))
        zeros = jnp.zeros((t, b), jnp.int32)
        opt = algo.naive.optimiser.init(params)

        def naive(params):
            return algo.naive.update(params, opt, naive_obs, zeros, zeros * 1.0)

        naive_updates = _flops(naive, params) * n * e * m
        sequences = e * b // cfg.minibatches
        seq_obs = jnp.broadcast_to(
            one_obs[:1, None], (sequences, length, *one_obs.shape[1:])
        )
        floats = jnp.zeros((sequences, length))
        ints = jnp.zeros((sequences, length), jnp.int32)

        def meta_grad(params):
            return jax.grad(
                lambda p: algo.meta_loss(
                    p, seq_obs, ints, floats, floats, floats, floats
                )[0]
            )(params)

        meta = _flops(meta_grad, params) * cfg.gradient_steps * n
    return {
        "acting": acting,
        "naive_updates": naive_updates,
        "meta_update": meta,
        "total": acting + naive_updates + meta,
    }


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Measured FLOP/s of a float32 ``[size, size] @ [size, size]`` matmul (median),
    the machine's practical peak for the same dtype."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    seconds, _ = _median_seconds(matmul, (a, a), repeats)
    return 2.0 * size**3 / seconds


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
    parser.add_argument(
        "--no-flops", action="store_true", help="skip the FLOP count and matmul peak"
    )
    args = parser.parse_args()
    if args.driver_iterations < 2:
        parser.error(
            "--driver-iterations must be >= 2: the time outside compiled code is "
            "measured after the first (compiling) chunk"
        )

    cfg = PRESETS[args.preset]
    if args.meta_batch is not None:
        cfg = cfg.replace(meta_batch=args.meta_batch)
    algo = Shaping(cfg)
    steps = cfg.steps_per_iteration
    state = algo.init(jax.random.key(0))

    update = jax.jit(algo.update)
    references = {}
    if cfg.network == "hawk":
        # Ahead-of-time compiled executables, so that no trace cache can hand one
        # version's kernels to the other.
        update = update.lower(state).compile()
        compiled = {}
        for name, context in REFERENCES.items():
            with context():
                jax.clear_caches()
                compiled[name] = jax.jit(Shaping(cfg).update).lower(state).compile()
        jax.clear_caches()
        times = _alternated_seconds(
            [update, *compiled.values()], (state,), args.repeats
        )
        train_times = times[0]
        train_s = statistics.median(train_times)
        for (name, _), ref_times in zip(REFERENCES.items(), times[1:], strict=True):
            references[name] = {
                "training_seconds_per_iteration": statistics.median(ref_times),
                "training_repeats": ref_times,
                "speedup": _speedup(ref_times, train_times),
            }
    else:
        train_s, train_times = _median_seconds(update, (state,), args.repeats)

    flops = peak = None
    if cfg.network == "hawk" and not args.no_flops:
        flops = iteration_flops(cfg)
        peak = matmul_peak()

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
        "references": references,
        "flops_per_iteration": flops,
        "flops_per_second": None if flops is None else flops["total"] / train_s,
        "matmul_peak_flops_per_second": peak,
        "share_of_matmul_peak": None
        if flops is None
        else flops["total"] / train_s / peak,
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
    for name, ref in references.items():
        print(
            f"| training, {REFERENCE_LABELS[name]} | "
            f"{steps / ref['training_seconds_per_iteration']:.3g} | "
            f"{ref['speedup']:.3f} (speed-up of today's code: median of "
            "back-to-back repeats) |"
        )
    if flops is not None:
        parts = ", ".join(
            f"{k} {v / 1e9:.1f}" for k, v in flops.items() if k != "total"
        )
        print(
            f"FLOPs per iteration: {flops['total'] / 1e9:.1f} G ({parts}); "
            f"{result['flops_per_second'] / 1e9:.1f} GFLOP/s = "
            f"{100 * result['share_of_matmul_peak']:.1f} % of the measured float32 "
            f"matmul peak ({peak / 1e9:.1f} GFLOP/s)"
        )
    print(driver_line(timing, args.driver_iterations))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
