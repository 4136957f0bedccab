"""The final evaluation of a co-player inference run (``evaluation.json``).

Every learner plays ``eval_episodes`` episodes against every other learner, every
entry of its training pool and, in 2x2 matrix games, the probe co-players of the
mechanism experiments (spec ``coplayer_inference.md`` §4, §10.2): AllC, AllD, TFT
and fresh random tabular agents. The record (``docs/run_directory.md``) holds

* ``pairs``: each pairing's reward and cooperation per round, per seed;
* ``memory_one``: the memory-one probe of each learner per co-player (and of
  frozen co-players against it), for the Press-Dyson fits of the report;
* ``within_episode``: per-round reward and cooperation of both sides, one panel
  per pairing; against fixed co-players also the per-round series of an
  algorithm with an ``eval_series(params, games) -> {name: [T]}`` method, as
  ``"learner NAME"`` (PPI: ``"learner prediction"``, its world model's probability
  of the co-player's actual move, which rises over an episode where the model
  infers its co-player in context);
* ``best_response_gap``: against random tabular co-players, the per-round gap
  ``V*_t(s_t) - E_pi Q*_t(s_t, a)`` between the exact finite-horizon best response
  (:func:`dilemmas.analysis.best_response.memory_one_best_response`) and the
  learner's policy in the states it reaches. The gaps of an episode sum, in
  expectation, to the best response's value minus the learner's return; an
  in-context learner's gap shrinks as the episode reveals its co-player.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.training.coplayer import Coplayer, CoplayerState, Fixed
from dilemmas.training.pool import RANDOM_TABULAR, FixedPool, PoolEntry

#: The probe co-players of the mechanism experiments (2x2 matrix games).
PROBES: tuple[str, ...] = (RANDOM_TABULAR, "allc", "alld", "tft")


def evaluation_entries(algo: Coplayer) -> tuple[PoolEntry, ...]:
    """The fixed co-players of the evaluation: the probes (matrix games), then the
    training pool's entries that are not probes."""
    entries = []
    if algo.is_matrix_game:
        for name in PROBES:
            kind = "random_tabular" if name == RANDOM_TABULAR else "memory_one"
            entries.append(PoolEntry(name, kind, 1.0))
    labels = {e.label for e in entries}
    entries += [e for e in algo.entries if e.label not in labels]
    return tuple(entries)


def _rollouts(algo: Coplayer, pool: FixedPool | None, state: CoplayerState, key):
    """One seed's evaluation games: learner pairs ``[P, E, ...]`` and learners vs
    each fixed entry ``[N, K, E, ...]`` (with each game's co-player tables)."""
    cfg = algo.cfg
    E = cfg.eval_episodes
    k_pairs, k_pool = jax.random.split(key)
    pairs = None
    if algo.pairs:
        z = jnp.zeros((E, 10)) if cfg.opponent_id else None
        first = jnp.asarray([i for i, _ in algo.pairs])
        second = jnp.asarray([j for _, j in algo.pairs])
        take = lambda idx: jax.tree.map(lambda x: x[idx], state.params)  # noqa: E731
        pairs = jax.vmap(
            lambda p0, p1, k: algo.play(
                algo.learner_side(p0, z), algo.learner_side(p1, z), k, E
            )
        )(take(first), take(second), jax.random.split(k_pairs, len(algo.pairs)))
    fixed = None
    if pool is not None:
        K = len(pool.entries)

        def games(params, entry, key):
            k_start, k_play = jax.random.split(key)
            start = pool.start(state.frozen, k_start, jnp.full((E,), entry, jnp.int32))
            z = pool.opponent_id(start) if cfg.opponent_id else None
            side1 = Fixed(pool, state.frozen, start)
            side0 = algo.learner_side(params, z)
            return algo.play(side0, side1, k_play, E), start.table

        def per_learner(params, key):
            keys = jax.random.split(key, K)
            return jax.vmap(games, (None, 0, 0))(params, jnp.arange(K), keys)

        keys = jax.random.split(k_pool, cfg.num_learners)
        fixed = jax.vmap(per_learner)(state.params, keys)
    return pairs, fixed


def _gap(algo: Coplayer, games, tables) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-round best-response gap ``[T]``, the best response's mean value and the
    learner's mean return, over episodes against random tabular agents."""
    from dilemmas.analysis.best_response import (
        best_response_gap,
        memory_one_best_response,
    )

    T = algo.cfg.episode_length
    payoffs = algo.env_params.payoffs
    best = jax.vmap(lambda p: memory_one_best_response(p, T, payoffs=payoffs))(tables)
    actions = games.actions  # [E, T, 2]
    previous = 1 + 2 * actions[:, :-1, 0] + actions[:, :-1, 1]
    states = jnp.concatenate([jnp.zeros_like(previous[:, :1]), previous], axis=1)
    coop = games.policy[:, :, 0, 0]  # learner's P(C) at each round
    gap = jax.vmap(best_response_gap)(best, states, coop)  # [E, T]
    returns = jnp.sum(games.rewards[..., 0], axis=1)
    return jnp.mean(gap, axis=0), jnp.mean(best.value), jnp.mean(returns)


def evaluate(algo: Coplayer, state: CoplayerState, seed: int = 12345) -> dict[str, Any]:
    """The ``evaluation.json`` record of a (seed-stacked) training state."""
    from dilemmas.analysis.metrics import memory_one_probe

    cfg = algo.cfg
    entries = evaluation_entries(algo)
    pool = FixedPool(entries, algo.frozen, algo.num_actions) if entries else None
    labels = [e.label for e in entries]
    random_k = labels.index(RANDOM_TABULAR) if RANDOM_TABULAR in labels else None

    series_of = getattr(algo, "eval_series", None)

    def one_seed(state, key):
        pairs, fixed = _rollouts(algo, pool, state, key)
        series = gap = None
        if fixed is not None and series_of is not None:
            per_entry = lambda p, g: jax.vmap(lambda gk: series_of(p, gk))(g)  # noqa: E731
            series = jax.vmap(per_entry)(state.params, fixed[0])  # {name: [N, K, T]}
        if fixed is not None and random_k is not None and algo.is_matrix_game:
            games, tables = fixed
            at = lambda x: x[:, random_k]  # noqa: E731
            gap = jax.vmap(lambda g, t: _gap(algo, g, t))(
                jax.tree.map(at, games), at(tables)
            )
        return pairs, fixed, gap, series

    keys = jax.random.split(jax.random.key(seed), cfg.num_seeds)
    run = jax.jit(jax.vmap(one_seed))
    pairs, fixed, gap, series = jax.device_get(run(state, keys))
    S, N = cfg.num_seeds, cfg.num_learners
    matrix = algo.is_matrix_game

    payoffs = np.asarray(algo.env_params.payoffs, np.float64) if matrix else None
    record: dict[str, Any] = {
        "game": {
            "id": cfg.env_id,
            "actions": ["C", "D"] if matrix else None,
            "payoffs": payoffs.tolist() if payoffs is not None else None,
        },
        "num_seeds": S,
        "pairs": [],
        "memory_one": {},
        "within_episode": {"x": "round", "panels": {}},
    }

    def probe(actions):  # [E, T, 2] -> [5] with None for unseen states
        result = memory_one_probe(jnp.asarray(actions))
        p, counts = np.asarray(result.p, np.float64), np.asarray(result.counts)
        return [float(x) if c > 0 else None for x, c in zip(p, counts, strict=True)]

    def add(row: str, col: str, rewards, actions, probe_col: bool = False, extra=None):
        """rewards, actions: [S, E, T, 2] with ``row`` as player 0; ``extra``: the
        learner's per-round series ``{name: [S, T]}``."""
        pair = {
            "row": row,
            "col": col,
            "reward": rewards.mean(axis=(1, 2)).tolist(),
        }
        panel = {
            "learner reward": rewards[..., 0].mean(axis=1).tolist(),
            "co-player reward": rewards[..., 1].mean(axis=1).tolist(),
        }
        if matrix:
            coop = (actions == 0).astype(np.float64)
            pair["cooperation"] = coop.mean(axis=(1, 2)).tolist()
            panel["learner cooperation"] = coop[..., 0].mean(axis=1).tolist()
            panel["co-player cooperation"] = coop[..., 1].mean(axis=1).tolist()
            record["memory_one"][f"{row} (vs {col})"] = [
                probe(actions[s]) for s in range(S)
            ]
            if probe_col:
                record["memory_one"][f"{col} (vs {row})"] = [
                    probe(actions[s][..., ::-1]) for s in range(S)
                ]
        for name, values in (extra or {}).items():
            panel[f"learner {name}"] = np.asarray(values, np.float64).tolist()
        record["pairs"].append(pair)
        record["within_episode"]["panels"][f"{row} vs {col}"] = panel

    if pairs is not None:
        for p, (i, j) in enumerate(algo.pairs):
            rewards = pairs.rewards[:, p]
            actions = pairs.actions[:, p]
            add(f"learner_{i}", f"learner_{j}", rewards, actions)
            add(f"learner_{j}", f"learner_{i}", rewards[..., ::-1], actions[..., ::-1])
    if fixed is not None:
        games, _ = fixed
        for i in range(N):
            for k, entry in enumerate(entries):
                add(
                    f"learner_{i}",
                    entry.label,
                    games.rewards[:, i, k],
                    games.actions[:, i, k],
                    probe_col=entry.kind == "frozen",
                    extra={n: v[:, i, k] for n, v in (series or {}).items()},
                )
    if gap is not None:
        per_round, value, returns = gap  # [S, N, T], [S, N], [S, N]
        record["best_response_gap"] = {
            "x": "round",
            "co_player": RANDOM_TABULAR,
            "episodes": cfg.eval_episodes,
            "series": {f"learner_{i}": per_round[:, i].tolist() for i in range(N)},
            "total": {
                f"learner_{i}": per_round[:, i].sum(axis=-1).tolist() for i in range(N)
            },
            "best_response_value": {
                f"learner_{i}": (value[:, i] / cfg.episode_length).tolist()
                for i in range(N)
            },
            "learner_return": {
                f"learner_{i}": (returns[:, i] / cfg.episode_length).tolist()
                for i in range(N)
            },
        }
    return record
