"""Throughput of the grid games, and our Coin Game against JaxMARL's.

1. Every grid game's JAX core: a jitted function vmaps over a batch of keys, resets,
   and scans 128 steps with uniformly random actions (summing rewards and the final
   observation so XLA keeps both alive), at batch sizes 1, 64, 1024 and 8192;
   compile time is reported separately.
2. Our two-coin Coin Game (``coin_game_two_coins-v0``: 3x3 torus, one red and one
   blue coin at all times, 5 actions) against JaxMARL's ``coin_game`` with matching
   settings: 128-step episodes (JaxMARL ``num_inner_steps=128, num_outer_steps=1``),
   flat observations, and auto-reset on both sides (JaxMARL's ``step`` always
   auto-resets, so ours runs under :class:`dilemmas.envs.AutoReset`). Both scan
   128 steps per episode from a reset, random actions. Target: ours >= 2.0x JaxMARL
   at every batch size >= 64.
3. The compact observation format (``obs_format="compact"``, issue #16: one uint8
   code per cell instead of one-hot planes) against the default planes, per grid
   game with that option, at batch 1024 (``--compact-batch``): the same rollout as
   in 1., the two formats alternating within each repeat; both must give the same
   rewards (the format does not touch the rules).
4. Harvest's apple regrowth (issue #16): the neighbour counts are integer sums of
   the padded apple map shifted by the 24 offsets within 2 cells
   (``harvest.neighbour_counts``); before, they were a one-channel float
   convolution, kept here as :func:`conv_neighbour_counts`. At batch 1024
   (``--regrowth-batch``): the same rollout as in 1. with each, alternating within
   each repeat (both must give the same rewards and observations), and the counts
   alone on random apple maps of the default map's size.
5. Our Cleanup and Harvest against SocialJax's ``clean_up`` and
   ``harvest_common_open`` (its Commons Harvest), built on our maps (converted to
   SocialJax's ASCII legend), with our number of agents and 11 x 11 windows, at batch
   sizes 1, 64 and 1024: a vmapped step without auto-reset on both sides (ours:
   ``env.step``; SocialJax: ``env.step_env``, which skips the base class's auto-reset
   but still computes its own end-of-episode reset inside every step), the same
   reset-plus-128-step scan with uniformly random actions, alternating in each repeat.
6. Throughput against the batch size for one game (``--sweep-env``, default
   ``harvest-v0``): the rollout of part 1 at batch sizes 1 to 4096, every size
   alternating within each repeat, each set against the fastest.

JaxMARL and SocialJax are not dependencies of ours. Install JaxMARL in the
benchmark's own environment (``pip install -e . jaxmarl pygame``); without it, part 2
is skipped. SocialJax has no package on PyPI: give the root of its source checkout
with ``--socialjax PATH`` (or ``SOCIALJAX_PATH``), which is put on ``sys.path`` for
this run only (it needs jax, flax, chex, numpy and pillow, all present with ours);
without it, part 5 is skipped. Timing helpers (alternating paired repeats, medians)
are shared with ``bench_envs.py``.

Run ``python benchmarks/bench_grid.py`` (``--quick`` for a smoke run,
``--compact-only``, ``--regrowth-only``, ``--socialjax-only`` or ``--sweep-only`` for
part 3, 4, 5 or 6 alone, ``--json PATH`` to keep every figure).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_envs import _compile, machine, paired_rates, ratio_summary, summary  # noqa: E402

import dilemmas.envs  # noqa: E402
from dilemmas.envs import harvest  # noqa: E402

GRID_IDS = (
    "coin_game-v0",
    "coin_game_two_coins-v0",
    "cleanup_lite-v0",
    "cleanup-v0",
    "harvest-v0",
)
#: The grid games with an ``obs_format`` option (part 3).
COMPACT_IDS = (
    "coin_game-v0",
    "coin_game_two_coins-v0",
    "cleanup-v0",
    "harvest-v0",
)
COMPACT_BATCH = 1024
REGROWTH_BATCH = 1024
#: Our games and SocialJax's versions of the same Melting Pot substrates (part 5).
SOCIALJAX_IDS = (("cleanup-v0", "clean_up"), ("harvest-v0", "harvest_common_open"))
SOCIALJAX_BATCHES = (1, 64, 1024)
SWEEP_ENV = "harvest-v0"
SWEEP_BATCHES = (1, 16, 64, 256, 1024, 4096)
STEPS = 128
BATCHES = (1, 64, 1024, 8192)
JAXMARL_TARGET = 2.0


def ours_rollout(env, params, steps: int = STEPS) -> Callable:
    """keys ``[B]`` -> (reward sums ``[B, A]``, final-observation sums ``[B]``)."""
    num_agents, num_actions = env.num_agents, env.num_actions

    def episode(key: jax.Array):
        key, key_reset = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(carry, _):
            key, state, obs, total = carry
            key, key_act, key_step = jax.random.split(key, 3)
            actions = jax.random.randint(
                key_act, (num_agents,), 0, num_actions, jnp.int32
            )
            ts = env.step(key_step, state, actions, params)
            return (key, ts.state, ts.obs, total + ts.reward), None

        init = (key, state, obs, jnp.zeros((num_agents,), jnp.float32))
        (_, _, obs, total), _ = jax.lax.scan(body, init, length=steps)
        return total, obs.sum()

    return jax.vmap(episode)


def jaxmarl_rollout(env, steps: int = STEPS) -> Callable:
    """The same random-action episode through JaxMARL's dict API."""
    agents = env.agents

    def episode(key: jax.Array):
        key, key_reset = jax.random.split(key)
        obs, state = env.reset(key_reset)

        def body(carry, _):
            key, state, obs, total = carry
            key, key_act, key_step = jax.random.split(key, 3)
            raw = jax.random.randint(key_act, (len(agents),), 0, 5, jnp.int32)
            actions = {agent: raw[i] for i, agent in enumerate(agents)}
            obs, state, rewards, _, _ = env.step(key_step, state, actions)
            reward = jnp.stack([rewards[agent] for agent in agents])
            return (key, state, obs, total + reward), None

        init = (key, state, obs, jnp.zeros((len(agents),), jnp.float32))
        (_, _, obs, total), _ = jax.lax.scan(body, init, length=steps)
        return total, sum(o.sum() for o in obs.values())

    return jax.vmap(episode)


def _timed_pair(
    runs: dict[str, Callable], batch: int, repeats: int, min_seconds: float
) -> dict[str, list[float]]:
    return paired_rates(
        {name: (lambda f=f: jax.block_until_ready(f())) for name, f in runs.items()},
        dict.fromkeys(runs, batch * STEPS),
        repeats,
        min_seconds,
    )


def bench_games(batches, repeats: int, min_seconds: float) -> list[dict[str, Any]]:
    rows = []
    for env_id in GRID_IDS:
        env, params = dilemmas.envs.make(env_id)
        for batch in batches:
            keys = jax.random.split(jax.random.key(batch), batch)
            compiled, compile_s = _compile(ours_rollout(env, params), keys)
            rates = _timed_pair(
                {"ours": lambda c=compiled, k=keys: c(k)}, batch, repeats, min_seconds
            )
            row = {
                "env_id": env_id,
                "batch": batch,
                "steps_per_s": summary(rates["ours"]),
                "compile_s": compile_s,
            }
            rows.append(row)
            print(
                f"  {env_id:<24} batch {batch:>5}: "
                f"{row['steps_per_s']['median']:.3g} steps/s "
                f"(compile {compile_s:.2f} s)",
                flush=True,
            )
    return rows


def bench_compact(batch: int, repeats: int, min_seconds: float) -> list[dict]:
    """Compact codes vs one-hot planes, per game, paired in one run."""
    rows = []
    keys = jax.random.split(jax.random.key(batch), batch)
    for env_id in COMPACT_IDS:
        compiled, compile_s, totals = {}, {}, {}
        for obs_format in ("planes", "compact"):
            env, params = dilemmas.envs.make(env_id, obs_format=obs_format)
            compiled[obs_format], compile_s[obs_format] = _compile(
                ours_rollout(env, params), keys
            )
            totals[obs_format] = np.asarray(compiled[obs_format](keys)[0])
        if not np.array_equal(totals["planes"], totals["compact"]):
            raise RuntimeError(f"{env_id}: the two formats gave different rewards")
        rates = _timed_pair(
            {name: (lambda c=c, k=keys: c(k)) for name, c in compiled.items()},
            batch,
            repeats,
            min_seconds,
        )
        row = {
            "env_id": env_id,
            "batch": batch,
            "planes_steps_per_s": summary(rates["planes"]),
            "compact_steps_per_s": summary(rates["compact"]),
            "planes_compile_s": compile_s["planes"],
            "compact_compile_s": compile_s["compact"],
            **ratio_summary(rates["compact"], rates["planes"]),
        }
        rows.append(row)
        print(
            f"  {env_id:<24} batch {batch:>5}: planes "
            f"{row['planes_steps_per_s']['median']:.3g}, compact "
            f"{row['compact_steps_per_s']['median']:.3g} steps/s, ratio "
            f"{row['ratio']:.2f}",
            flush=True,
        )
    return rows


def conv_neighbour_counts(apples: jax.Array, radius_sq: jax.Array) -> jax.Array:
    """Harvest's neighbour counts before issue #16: a one-channel float convolution
    with the 5 x 5 kernel of the offsets at squared distance ``1 .. radius_sq``
    (``SAME`` padding: cells outside the map hold no apple), rounded to int32."""
    offsets = jnp.arange(-2, 3)
    distance_sq = offsets[:, None] ** 2 + offsets[None, :] ** 2
    kernel = ((distance_sq >= 1) & (distance_sq <= radius_sq)).astype(jnp.float32)
    counts = jax.lax.conv_general_dilated(
        apples.astype(jnp.float32)[None, None],
        kernel[None, None],
        window_strides=(1, 1),
        padding="SAME",
    )[0, 0]
    return jnp.round(counts).astype(jnp.int32)


class ConvRegrowthHarvest(harvest.Harvest):
    """Harvest compiled with :func:`conv_neighbour_counts` (a class of its own, so
    that its compiled steps are not shared with the library's Harvest)."""


@contextlib.contextmanager
def _conv_regrowth():
    """Trace Harvest's step with the previous counts while inside."""
    current = harvest.neighbour_counts
    harvest.neighbour_counts = conv_neighbour_counts
    try:
        yield
    finally:
        harvest.neighbour_counts = current


def bench_regrowth(batch: int, repeats: int, min_seconds: float) -> dict[str, Any]:
    """Shifted integer adds (after) vs the float convolution (before), paired."""
    env, params = dilemmas.envs.make("harvest-v0")
    if type(env) is not harvest.Harvest:
        raise RuntimeError(f"harvest-v0 is a {type(env).__name__}, not a Harvest")
    before_env = ConvRegrowthHarvest()
    if before_env.static_config() != env.static_config():
        raise RuntimeError("harvest-v0 is not Harvest() with its defaults")
    keys = jax.random.split(jax.random.key(batch), batch)
    after, after_compile = _compile(ours_rollout(env, params), keys)
    with _conv_regrowth():
        before, before_compile = _compile(ours_rollout(before_env, params), keys)
    for got, want in zip(after(keys), before(keys), strict=True):
        if not np.array_equal(np.asarray(got), np.asarray(want)):
            raise RuntimeError("the two regrowth counts gave different rollouts")
    rates = _timed_pair(
        {
            "after": lambda c=after, k=keys: c(k),
            "before": lambda c=before, k=keys: c(k),
        },
        batch,
        repeats,
        min_seconds,
    )
    rollout = {
        "after_steps_per_s": summary(rates["after"]),
        "before_steps_per_s": summary(rates["before"]),
        "after_compile_s": after_compile,
        "before_compile_s": before_compile,
        **ratio_summary(rates["after"], rates["before"]),
    }
    print(
        f"  harvest-v0 rollout batch {batch:>5}: before "
        f"{rollout['before_steps_per_s']['median']:.3g}, after "
        f"{rollout['after_steps_per_s']['median']:.3g} steps/s, after / before "
        f"{rollout['ratio']:.2f}",
        flush=True,
    )

    rng = np.random.default_rng(0)
    maps = jnp.asarray(rng.random((batch, env.height, env.width)) < 0.5)
    radius_sq = params.regrowth_radius_sq
    counts = {
        "after": jax.jit(jax.vmap(harvest.neighbour_counts, in_axes=(0, None))),
        "before": jax.jit(jax.vmap(conv_neighbour_counts, in_axes=(0, None))),
    }
    compiled = {
        name: fn.lower(maps, radius_sq).compile() for name, fn in counts.items()
    }
    if not np.array_equal(
        compiled["after"](maps, radius_sq), compiled["before"](maps, radius_sq)
    ):
        raise RuntimeError("the two regrowth counts differ on random apple maps")
    count_rates = paired_rates(
        {
            name: (lambda c=c: jax.block_until_ready(c(maps, radius_sq)))
            for name, c in compiled.items()
        },
        dict.fromkeys(compiled, batch),
        repeats,
        min_seconds,
    )
    counts_row = {
        "after_maps_per_s": summary(count_rates["after"]),
        "before_maps_per_s": summary(count_rates["before"]),
        **ratio_summary(count_rates["after"], count_rates["before"]),
    }
    print(
        f"  harvest-v0 counts alone batch {batch:>5}: before "
        f"{counts_row['before_maps_per_s']['median']:.3g}, after "
        f"{counts_row['after_maps_per_s']['median']:.3g} maps/s, after / before "
        f"{counts_row['ratio']:.2f}",
        flush=True,
    )
    return {"batch": batch, "rollout": rollout, "counts": counts_row}


def bench_jaxmarl(batches, repeats: int, min_seconds: float):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import jaxmarl
    except ImportError:
        print("  jaxmarl is not installed: skipping the JaxMARL comparison")
        return None
    theirs_env = jaxmarl.make(
        "coin_game",
        num_inner_steps=STEPS,
        num_outer_steps=1,
        cnn=False,
        egocentric=False,
    )
    env, params = dilemmas.envs.make("coin_game_two_coins-v0")
    params = params.replace(max_steps=jnp.asarray(STEPS, jnp.int32))
    ours_env = dilemmas.envs.AutoReset(env)
    return [
        _compare_rollouts(
            ours_rollout(ours_env, params),
            jaxmarl_rollout(theirs_env),
            "jaxmarl",
            batch,
            repeats,
            min_seconds,
            "coin game",
        )
        for batch in batches
    ]


def _compare_rollouts(
    ours_fn, theirs_fn, theirs: str, batch: int, repeats: int, min_seconds, label
) -> dict:
    """Our rollout against another library's (``theirs`` names it in the row), both
    compiled on the same keys and timed alternating: one row, printed."""
    keys = jax.random.split(jax.random.key(batch), batch)
    ours, ours_compile = _compile(ours_fn, keys)
    other, theirs_compile = _compile(theirs_fn, keys)
    rates = _timed_pair(
        {
            "ours": lambda c=ours, k=keys: c(k),
            theirs: lambda c=other, k=keys: c(k),
        },
        batch,
        repeats,
        min_seconds,
    )
    row = {
        "batch": batch,
        "ours_steps_per_s": summary(rates["ours"]),
        f"{theirs}_steps_per_s": summary(rates[theirs]),
        "ours_compile_s": ours_compile,
        f"{theirs}_compile_s": theirs_compile,
        **ratio_summary(rates["ours"], rates[theirs]),
    }
    print(
        f"  {label} batch {batch:>5}: ours "
        f"{row['ours_steps_per_s']['median']:.3g}, {theirs} "
        f"{row[f'{theirs}_steps_per_s']['median']:.3g} steps/s, ratio "
        f"{row['ratio']:.2f}",
        flush=True,
    )
    return row


def load_socialjax(path: Path | None):
    """SocialJax's package from the source checkout at ``path``, or None."""
    if path is None:
        print(
            "  no SocialJax source given (--socialjax PATH or SOCIALJAX_PATH): "
            "skipping the SocialJax comparison"
        )
        return None
    path = path.expanduser().resolve()
    if not (path / "socialjax" / "__init__.py").is_file():
        raise SystemExit(
            f"--socialjax {path}: no socialjax/__init__.py there; give the root "
            "of a SocialJax source checkout"
        )
    sys.path.insert(0, str(path))
    with contextlib.redirect_stdout(io.StringIO()):
        import socialjax
    return socialjax


def socialjax_map(env, params) -> list[str]:
    """Our map in SocialJax's ASCII legend: ``W`` wall, ``P`` spawn (our ground),
    ``A`` apple (Harvest's grass); for Cleanup ``B`` orchard and river cells as ``F``
    (dirt at the start: ``round(initial_dirt_fraction * river cells)`` of them,
    a fixed random choice, since SocialJax's start dirt is set by the map) or ``H``
    (clean, can get dirty)."""
    layout = np.array([list(row) for row in env.layout.split("\n")])
    chars = np.full(layout.shape, " ")
    chars[layout == "#"] = "W"
    chars[layout == "."] = "P"
    chars[layout == "A"] = "A"
    chars[layout == "o"] = "B"
    river = np.argwhere(layout == "~")
    if len(river):
        chars[layout == "~"] = "H"
        dirty = round(float(params.initial_dirt_fraction) * len(river))
        chosen = np.random.default_rng(0).permutation(len(river))[:dirty]
        chars[tuple(river[chosen].T)] = "F"
    return ["".join(row) for row in chars]


def make_socialjax(socialjax, socialjax_id: str, env, params):
    """SocialJax's env on our map, with our number of agents and window size."""
    forward, backward, left, right = env.view
    if forward + backward != left + right:
        raise ValueError(f"SocialJax's windows are square, ours is {env.view}")
    rows = socialjax_map(env, params)
    kwargs = {
        "num_agents": env.num_agents,
        "num_inner_steps": int(params.max_steps),
        "shared_rewards": False,
        "obs_size": forward + backward + 1,
        "cnn": True,
        "map_ASCII": rows,
    }
    if socialjax_id == "harvest_common_open":
        kwargs["grid_size"] = (env.height, env.width)
    theirs = socialjax.make(socialjax_id, **kwargs)
    if theirs.action_space(0).n != env.num_actions:
        raise RuntimeError(
            f"SocialJax's {socialjax_id} has {theirs.action_space(0).n} actions, "
            f"ours {env.num_actions}"
        )
    return theirs


def socialjax_rollout(env, steps: int = STEPS) -> Callable:
    """The random-action episode of :func:`ours_rollout` through SocialJax's
    ``step_env`` (no auto-reset by the base class)."""
    num_agents, num_actions = env.num_agents, env.action_space(0).n

    def episode(key: jax.Array):
        key, key_reset = jax.random.split(key)
        obs, state = env.reset(key_reset)

        def body(carry, _):
            key, state, obs, total = carry
            key, key_act, key_step = jax.random.split(key, 3)
            actions = jax.random.randint(
                key_act, (num_agents,), 0, num_actions, jnp.int32
            )
            obs, state, reward, _, _ = env.step_env(key_step, state, actions)
            return (key, state, obs, total + reward), None

        init = (key, state, obs, jnp.zeros((num_agents,), jnp.float32))
        (_, _, obs, total), _ = jax.lax.scan(body, init, length=steps)
        return total, obs.sum()

    return jax.vmap(episode)


def bench_socialjax(socialjax, batches, repeats: int, min_seconds: float):
    rows = []
    for env_id, socialjax_id in SOCIALJAX_IDS:
        env, params = dilemmas.envs.make(env_id)
        with contextlib.redirect_stdout(io.StringIO()):
            theirs_env = make_socialjax(socialjax, socialjax_id, env, params)
        for batch in batches:
            row = _compare_rollouts(
                ours_rollout(env, params),
                socialjax_rollout(theirs_env),
                "socialjax",
                batch,
                repeats,
                min_seconds,
                f"{env_id} vs {socialjax_id}",
            )
            rows.append({"env_id": env_id, "socialjax_id": socialjax_id, **row})
    return rows


def bench_sweep(env_id: str, batches, repeats: int, min_seconds: float):
    """One game's rollout at every batch size, all alternating in each repeat."""
    env, params = dilemmas.envs.make(env_id)
    runs, steps = {}, {}
    for batch in batches:
        keys = jax.random.split(jax.random.key(batch), batch)
        compiled, _ = _compile(ours_rollout(env, params), keys)
        runs[batch] = lambda c=compiled, k=keys: jax.block_until_ready(c(k))
        steps[batch] = batch * STEPS
    rates = paired_rates(runs, steps, repeats, min_seconds)
    best = max(batches, key=lambda b: summary(rates[b])["median"])
    rows = []
    for batch in batches:
        row = {
            "env_id": env_id,
            "batch": batch,
            "steps_per_s": summary(rates[batch]),
            "best_batch": best,
            **ratio_summary(rates[batch], rates[best]),
        }
        rows.append(row)
        print(
            f"  {env_id} batch {batch:>5}: {row['steps_per_s']['median']:.3g} "
            f"steps/s, {row['ratio']:.2f} of batch {best}",
            flush=True,
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores ({info['cores_usable']} "
        f"usable); jax {info['jax']} ({info['jax_backend']}), jaxmarl "
        f"{results['jaxmarl_version']}, SocialJax {results['socialjax_version']}, "
        f"Python {info['python']}; {info['date']}.",
    ]
    if results["games"]:
        lines += [
            "",
            f"Grid games, random actions, {STEPS}-step scans (steps/s = joint env "
            "steps per second):",
            "",
            "| env | "
            + " | ".join(f"batch {b}" for b in results["batches"])
            + " | compile (s) |",
            "|---|" + "---:|" * (len(results["batches"]) + 1),
        ]
    for env_id in GRID_IDS if results["games"] else ():
        rows = [r for r in results["games"] if r["env_id"] == env_id]
        rates = " | ".join(f"{r['steps_per_s']['median']:.3g}" for r in rows)
        compile_s = max(r["compile_s"] for r in rows)
        lines.append(f"| `{env_id}` | {rates} | <= {compile_s:.2f} |")
    if results["compact"]:
        lines += [
            "",
            'Compact observations (`obs_format="compact"`) vs one-hot planes, '
            f"batch {results['compact'][0]['batch']}, {STEPS}-step scans:",
            "",
            "| env | planes steps/s | compact steps/s | compact / planes | range |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in results["compact"]:
            lines.append(
                f"| `{r['env_id']}` | {r['planes_steps_per_s']['median']:.3g} | "
                f"{r['compact_steps_per_s']['median']:.3g} | {r['ratio']:.2f} | "
                f"{r['paired_min']:.2f}-{r['paired_max']:.2f} |"
            )
    if results["regrowth"]:
        r = results["regrowth"]
        roll, counts = r["rollout"], r["counts"]
        lines += [
            "",
            "Harvest regrowth, shifted integer adds (after) vs the float convolution "
            f"(before), `harvest-v0`, batch {r['batch']}:",
            "",
            "| measure | before | after | after / before | range |",
            "|---|---:|---:|---:|---:|",
            f"| rollout ({STEPS}-step scans), steps/s | "
            f"{roll['before_steps_per_s']['median']:.3g} | "
            f"{roll['after_steps_per_s']['median']:.3g} | {roll['ratio']:.2f} | "
            f"{roll['paired_min']:.2f}-{roll['paired_max']:.2f} |",
            f"| neighbour counts alone, maps/s | "
            f"{counts['before_maps_per_s']['median']:.3g} | "
            f"{counts['after_maps_per_s']['median']:.3g} | {counts['ratio']:.2f} | "
            f"{counts['paired_min']:.2f}-{counts['paired_max']:.2f} |",
        ]
    if results["socialjax"]:
        lines += [
            "",
            "Cleanup and Harvest, ours vs SocialJax on our maps (step without "
            f"auto-reset, {STEPS}-step scans):",
            "",
            "| ours | SocialJax | batch | ours steps/s | SocialJax steps/s "
            "| ours / SocialJax | range |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in results["socialjax"]:
            lines.append(
                f"| `{r['env_id']}` | `{r['socialjax_id']}` | {r['batch']} | "
                f"{r['ours_steps_per_s']['median']:.3g} | "
                f"{r['socialjax_steps_per_s']['median']:.3g} | {r['ratio']:.2f} | "
                f"{r['paired_min']:.2f}-{r['paired_max']:.2f} |"
            )
    if results["sweep"]:
        rows = results["sweep"]
        lines += [
            "",
            f"`{rows[0]['env_id']}` against the batch size ({STEPS}-step scans, all "
            "sizes alternating in each repeat):",
            "",
            f"| batch | steps/s | / batch {rows[0]['best_batch']} | range |",
            "|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['batch']} | {r['steps_per_s']['median']:.3g} | "
                f"{r['ratio']:.2f} | {r['paired_min']:.2f}-{r['paired_max']:.2f} |"
            )
    if results["jaxmarl"]:
        lines += [
            "",
            "Coin Game, ours (`coin_game_two_coins-v0` under `AutoReset`) vs JaxMARL "
            "`coin_game` (matching settings):",
            "",
            "| batch | ours steps/s | JaxMARL steps/s | ours / JaxMARL | range |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in results["jaxmarl"]:
            lines.append(
                f"| {r['batch']} | {r['ours_steps_per_s']['median']:.3g} | "
                f"{r['jaxmarl_steps_per_s']['median']:.3g} | {r['ratio']:.2f} | "
                f"{r['paired_min']:.2f}-{r['paired_max']:.2f} |"
            )
        worst = min(r["ratio"] for r in results["jaxmarl"] if r["batch"] >= 64)
        met = "met" if worst >= JAXMARL_TARGET else "NOT met"
        lines += [
            "",
            f"Target ours/JaxMARL >= {JAXMARL_TARGET} at batch >= 64: "
            f"worst {worst:.2f} ({met}).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write figures here")
    parser.add_argument(
        "--compact-only", action="store_true", help="only part 3 (compact vs planes)"
    )
    parser.add_argument("--compact-batch", type=int, default=COMPACT_BATCH)
    parser.add_argument(
        "--regrowth-only",
        action="store_true",
        help="only part 4 (Harvest regrowth, before vs after)",
    )
    parser.add_argument("--regrowth-batch", type=int, default=REGROWTH_BATCH)
    parser.add_argument(
        "--socialjax",
        type=Path,
        default=os.environ.get("SOCIALJAX_PATH") or None,
        help="root of a SocialJax source checkout (default: $SOCIALJAX_PATH)",
    )
    parser.add_argument(
        "--socialjax-only", action="store_true", help="only part 5 (SocialJax)"
    )
    parser.add_argument(
        "--sweep-only", action="store_true", help="only part 6 (batch sizes)"
    )
    parser.add_argument("--sweep-env", default=SWEEP_ENV)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    min_seconds = 0.05 if args.quick else 0.3
    batches = list(BATCHES[:3] if args.quick else BATCHES)
    try:
        jaxmarl_version = version("jaxmarl")
    except PackageNotFoundError:
        jaxmarl_version = "not installed"
    only = (args.compact_only, args.regrowth_only, args.socialjax_only, args.sweep_only)
    everything = not any(only)
    socialjax = (
        load_socialjax(args.socialjax) if everything or args.socialjax_only else None
    )
    results = {
        "machine": machine(),
        "jaxmarl_version": jaxmarl_version,
        "socialjax_version": "not given"
        if socialjax is None
        else f"{socialjax.__version__} from {Path(socialjax.__file__).parent.parent}",
        "batches": batches,
        "games": bench_games(batches, repeats, min_seconds) if everything else [],
        "jaxmarl": bench_jaxmarl(batches, repeats, min_seconds) if everything else None,
        "compact": bench_compact(args.compact_batch, repeats, min_seconds)
        if everything or args.compact_only
        else [],
        "regrowth": bench_regrowth(args.regrowth_batch, repeats, min_seconds)
        if everything or args.regrowth_only
        else None,
        "socialjax": None
        if socialjax is None
        else bench_socialjax(
            socialjax,
            SOCIALJAX_BATCHES[:2] if args.quick else SOCIALJAX_BATCHES,
            repeats,
            min_seconds,
        ),
        "sweep": bench_sweep(
            args.sweep_env,
            SWEEP_BATCHES[:3] if args.quick else SWEEP_BATCHES,
            repeats,
            min_seconds,
        )
        if everything or args.sweep_only
        else None,
    }
    print()
    print(markdown(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
