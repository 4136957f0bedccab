"""Training throughput of the in-context co-player inference loop (A2C), with a
same-run reference.

Measured in one process, for each of two shapes: the paper's mixed pool
(``coplayer-a2c-mixed``: 2 GRU-128 learners, 4,096 episodes of 100 rounds per
learner and iteration, half against each other) and its CPU sibling
(``coplayer-a2c-mixed-cpu``, 256 episodes):

1. **Training**: one compiled iteration of
   :class:`dilemmas.training.coplayer.Coplayer` (the learner-pair games and the
   games against fresh random tabular agents, GAE, one A2C step per learner).
   Throughput is learner environment steps (rounds) per second, policy and
   updates included.
2. **Reference in the same run**: the same loop with the GRU replaced by a
   memory-one table (``network=tabular``): what the games, the pool and the update
   cost without the sequence model, an upper bound on the loop's speed.
3. **Time outside compiled code**: ``dilemmas.training.runner.run`` drives the CPU
   shape for ``--driver-iterations`` iterations with one iteration per compiled
   chunk (a metrics line, TensorBoard scalars and the progress bar after every
   iteration, a checkpoint every other one) and reports the share of wall time
   after the first (compiling) chunk spent outside the compiled chunks. Target:
   < 5 %.

Every configuration gets an untimed warm-up (compilation), then ``--repeats``
timed repeats; figures are medians. ``python benchmarks/bench_coplayer.py``
(``--json PATH`` keeps the figures; ``--skip-paper`` leaves out the paper shape,
whose iteration takes tens of seconds on two CPU cores).
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import jax
from bench_training import _device, _median_seconds, driver_line

from dilemmas.training import runner
from dilemmas.training.coplayer import PRESETS, Coplayer


def _iteration_seconds(cfg, repeats: int) -> tuple[float, list[float]]:
    algo = Coplayer(cfg)
    state = algo.init(jax.random.key(0))
    return _median_seconds(jax.jit(algo.update), (state,), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--driver-iterations", type=int, default=8)
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    names = ["coplayer-a2c-mixed-cpu"]
    if not args.skip_paper:
        names.append("coplayer-a2c-mixed")
    rows = []
    for name in names:
        cfg = PRESETS[name]
        steps = cfg.steps_per_iteration
        gru_s, gru_times = _iteration_seconds(cfg, args.repeats)
        table_s, _ = _iteration_seconds(cfg.replace(network="tabular"), args.repeats)
        rows.append(
            {
                "preset": name,
                "batch": cfg.batch,
                "num_learners": cfg.num_learners,
                "episode_length": cfg.episode_length,
                "hidden": cfg.hidden,
                "steps_per_iteration": steps,
                "gru_seconds_per_iteration": gru_s,
                "gru_repeats": gru_times,
                "gru_steps_per_second": steps / gru_s,
                "tabular_steps_per_second": steps / table_s,
                "gru_over_tabular": table_s / gru_s,
            }
        )

    with tempfile.TemporaryDirectory() as tmp:
        cfg = PRESETS["coplayer-a2c-mixed-cpu"].replace(
            iterations=args.driver_iterations, num_seeds=1
        )
        summary = runner.run(
            cfg.experiment(),
            Path(tmp) / "run",
            preset="coplayer-a2c-mixed-cpu",
            log_every=1,
            checkpoint_every=2,
            progress=True,
        )
    timing = summary["timing"]
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": _device(),
        "jax": jax.__version__,
        "rows": rows,
        "driver": timing,
    }
    print()
    print(f"device: {result['device']}, jax {jax.__version__}")
    print(
        "| preset | learner steps / iteration | s / iteration | GRU steps/s | "
        "tabular steps/s | GRU / tabular |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['preset']} | {row['steps_per_iteration']:,} | "
            f"{row['gru_seconds_per_iteration']:.3g} | "
            f"{row['gru_steps_per_second']:.3g} | "
            f"{row['tabular_steps_per_second']:.3g} | "
            f"{row['gru_over_tabular']:.3f} |"
        )
    print(driver_line(timing, args.driver_iterations))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
