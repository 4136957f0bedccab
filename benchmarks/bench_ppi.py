"""Throughput of Predictive Policy Improvement (PPI): the improved policy's model
rollouts, the data collection, and the model fit, with a same-run reference.

Measured in one process, for two shapes: the paper's (``ppi-mixed``: GRU 128,
embeddings 32, K = 32 rollouts of H = 15 rounds per action) and the CPU preset's
(``ppi-mixed-cpu``: GRU 32, embeddings 16, K = 8, H = 15):

1. **Rollouts**: one decision of the improved policy (``agents.ppi.decide``) for
   ``--decisions`` histories at once; throughput is model-simulated rounds per
   second (``decisions * 2 actions * K * H`` per call).
2. **Reference in the same run**: the same rollouts with
   :class:`dilemmas.agents.ppi.MemoryOneModel`, a memory-one table in place of the
   GRU: what the rollout loop costs without the sequence model.
3. **Collection**: one phase's games (:meth:`dilemmas.training.ppi.PPI.collect`:
   learner pairs and games against fresh random tabular agents, 100 rounds, the
   improved policy at every decision) for ``--episodes`` episodes per learner; real
   environment steps (learner rounds) per second.
4. **Fit**: gradient steps of the next-token loss on minibatches of the preset's
   size; trajectories per second.

Every measurement gets an untimed warm-up (compilation), then ``--repeats`` timed
repeats; figures are medians. ``python benchmarks/bench_ppi.py`` (``--json PATH``
keeps the figures; ``--skip-paper`` leaves out the paper shape).
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_training import _device, _median_seconds

from dilemmas.agents.ppi import MemoryOneModel, decide
from dilemmas.training.ppi import PPI, PRESETS, tabular_pairs


def _rollouts(algo: PPI, model, params, decisions: int, repeats: int) -> float:
    """Seconds per decision batch of ``decisions`` histories at round 0."""
    h = model.initial_state((decisions,))
    h = model.feed_obs(params, h, jnp.zeros((decisions,), jnp.int32))
    h = model.feed_reward(params, h, jnp.zeros((decisions,)))
    t = jnp.zeros((decisions,), jnp.int32)
    fn = jax.jit(lambda k: decide(model, params, h, t, k, algo.planner).logits)
    seconds, _ = _median_seconds(fn, (jax.random.key(0),), repeats)
    return seconds


def _collect(algo: PPI, params, repeats: int) -> float:
    seconds, _ = _median_seconds(
        jax.jit(algo.collect), (params, jax.random.key(1)), repeats
    )
    return seconds


def _fit_steps(algo: PPI, params, repeats: int, steps: int = 8) -> float:
    """Seconds per gradient step (``steps`` steps on fixed minibatches)."""
    cfg = algo.ppi
    codes, _ = tabular_pairs(jax.random.key(2), cfg.minibatch, cfg.episode_length)
    weights = jnp.ones((cfg.minibatch,))
    grad = jax.grad(algo.batch_loss, has_aux=True)

    def run(params):
        def step(params, _):
            g, _ = grad(params, codes, None, weights)
            return jax.tree.map(lambda p, d: p - 1e-4 * d, params, g), None

        return jax.lax.scan(step, params, None, length=steps)[0]

    seconds, _ = _median_seconds(jax.jit(run), (params,), repeats)
    return seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=256)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    names = ["ppi-mixed-cpu"]
    if not args.skip_paper:
        names.append("ppi-mixed")
    rows = []
    for name in names:
        cfg = PRESETS[name].replace(
            episodes=args.episodes, collect_chunks=1, num_seeds=1
        )
        algo = PPI(cfg)
        params = algo.model.init(jax.random.key(3))
        simulated = args.decisions * algo.num_actions * cfg.rollouts * cfg.horizon
        gru_s = _rollouts(algo, algo.model, params, args.decisions, args.repeats)
        rng = np.random.default_rng(0)
        table = MemoryOneModel(rng.uniform(size=5), rng.uniform(size=5), algo.payoffs)
        table_s = _rollouts(algo, table, None, args.decisions, args.repeats)
        learners = jax.vmap(algo.model.init)(
            jax.random.split(jax.random.key(4), cfg.num_learners)
        )
        collect_s = _collect(algo, learners, args.repeats)
        env_steps = cfg.num_learners * cfg.episodes * cfg.episode_length
        fit_s = _fit_steps(algo, params, args.repeats)
        rows.append(
            {
                "preset": name,
                "hidden": cfg.hidden,
                "rollouts": cfg.rollouts,
                "horizon": cfg.horizon,
                "decisions": args.decisions,
                "simulated_rounds_per_call": simulated,
                "gru_rollout_seconds": gru_s,
                "gru_simulated_rounds_per_second": simulated / gru_s,
                "table_simulated_rounds_per_second": simulated / table_s,
                "gru_over_table": table_s / gru_s,
                "collect_episodes_per_learner": cfg.episodes,
                "collect_seconds": collect_s,
                "collect_env_steps_per_second": env_steps / collect_s,
                "fit_minibatch": cfg.minibatch,
                "fit_seconds_per_step": fit_s,
                "fit_trajectories_per_second": cfg.minibatch / fit_s,
            }
        )

    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": _device(),
        "jax": jax.__version__,
        "rows": rows,
    }
    print()
    print(f"device: {result['device']}, jax {jax.__version__}")
    print(
        "| preset | GRU | K x H | simulated rounds/s, GRU | simulated rounds/s, "
        "table | GRU / table | collection env steps/s | fit trajectories/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['preset']} | {row['hidden']} | {row['rollouts']} x "
            f"{row['horizon']} | {row['gru_simulated_rounds_per_second']:.3g} | "
            f"{row['table_simulated_rounds_per_second']:.3g} | "
            f"{row['gru_over_table']:.3f} | "
            f"{row['collect_env_steps_per_second']:.3g} | "
            f"{row['fit_trajectories_per_second']:.3g} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
