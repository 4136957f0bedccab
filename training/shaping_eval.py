"""The final evaluation of a shaping run (``evaluation.json``; format in
``docs/run_directory.md``).

Each meta agent plays ``eval_meta_batch`` meta-episodes against fresh naive learners
(the iteration's naive initialisations: static, or copies of the meta agents with
dynamic naive agents) and, in a pool, against every other meta agent; in a 2x2
matrix game an always-defector also plays the naive learners that ``meta_0`` meets,
with the same random draws (the reference of :mod:`dilemmas.analysis.verdict`). The
record holds every pair's reward (and cooperation in a matrix game), memory-one
probes, within-meta-episode profiles and, in grid games, the games' events per inner
episode.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.training.shaping import (
    MetaEpisode,
    Shaping,
    ShapingState,
    is_matrix_game,
)


def _evaluation_rollouts(algo: Shaping, state: ShapingState, key: jax.Array):
    """Each meta agent against ``eval_meta_batch`` fresh naive learners and, in a
    pool, against every other meta agent: episodes ``[N, E, ...]`` per kind; in a
    2x2 matrix game also the reference, an always-defector against the naive
    learners that ``meta_0`` meets, with the same keys (``[1, E, ...]``)."""
    cfg = algo.cfg
    N, E = cfg.pool_size, cfg.eval_meta_batch
    k_naive, k_meta, k_index = jax.random.split(key, 3)
    naive_index = jax.random.randint(k_index, (N, E), 0, cfg.naive_pool_size)
    keys = jax.random.split(k_naive, N * E).reshape(N, E)
    naive_params = algo.naive_inits(state)
    vs_naive = algo.play(
        state.params,
        naive_params,
        jnp.ones((N, E), bool),
        naive_index.astype(jnp.int32),
        keys,
        shard=False,
    )
    vs_alld = None
    if is_matrix_game(algo):
        vs_alld = algo.play(
            jax.tree.map(lambda x: x[:1], state.params),
            naive_params,
            jnp.ones((1, E), bool),
            naive_index[:1].astype(jnp.int32),
            keys[:1],
            shard=False,
            ego_action=1,  # D
        )
    vs_meta = None
    if N > 1:
        # every ordered pair (i, j != i), E // (N - 1) meta-episodes each
        per_pair = max(E // (N - 1), 1)
        index = (jnp.arange(N)[:, None] + 1 + jnp.arange(N - 1)[None]) % N
        index = jnp.repeat(index, per_pair, axis=1).astype(jnp.int32)
        keys = jax.random.split(k_meta, N * index.shape[1]).reshape(index.shape)
        episodes = algo.play(
            state.params,
            naive_params,
            jnp.zeros(index.shape, bool),
            index,
            keys,
            shard=False,
        )
        vs_meta = episodes, index
    return vs_naive, vs_meta, vs_alld


def evaluate(algo: Shaping, state: ShapingState, seed: int = 12345) -> dict[str, Any]:
    """The ``evaluation.json`` record of a (seed-stacked) training state."""
    from dilemmas.analysis.metrics import memory_one_probe

    cfg = algo.cfg
    M, T = cfg.num_inner_episodes, cfg.inner_episode_length
    rollouts = jax.jit(jax.vmap(lambda s, k: _evaluation_rollouts(algo, s, k)))
    keys = jax.random.split(jax.random.key(seed), cfg.num_seeds)
    vs_naive, vs_meta, vs_alld = jax.device_get(rollouts(state, keys))

    def probe(actions):  # [..., L, 2] -> [5] list with None for unseen states
        result = memory_one_probe(jnp.asarray(actions), episode_length=T)
        p = np.asarray(result.p, np.float64)
        counts = np.asarray(result.counts)
        return [float(x) if c > 0 else None for x, c in zip(p, counts, strict=True)]

    payoffs = (
        np.asarray(algo.env_params.payoffs, np.float64)
        if hasattr(algo.env_params, "payoffs")
        else None
    )
    record: dict[str, Any] = {
        "game": {
            "id": cfg.env_id,
            "actions": ["C", "D"] if algo.num_actions == 2 else None,
            "payoffs": payoffs.tolist() if payoffs is not None else None,
        },
        "num_seeds": cfg.num_seeds,
        "estimators": list(cfg.agent_estimators),  # of meta_0, meta_1, ...
        "pairs": [],
        "memory_one": {},
    }
    seeds = range(cfg.num_seeds)
    N = cfg.pool_size
    matrix_game = payoffs is not None and algo.num_actions == 2

    def pair(row, col, rewards, actions):  # [S, E, B, L, 2] -> per seed [row, col]
        entry = {
            "row": row,
            "col": col,
            "reward": rewards.mean(axis=(1, 2, 3)).tolist(),
        }
        if matrix_game:  # cooperation is action 0 of a 2x2 matrix game only
            entry["cooperation"] = (actions == 0).mean(axis=(1, 2, 3)).tolist()
        return entry

    for i in range(N):
        rewards = vs_naive.rewards[:, i]  # [S, E, B, L, 2]
        actions = vs_naive.actions[:, i]
        record["pairs"].append(pair(f"meta_{i}", "naive", rewards, actions))
        if matrix_game:
            record["memory_one"][f"meta_{i} (vs naive)"] = [
                probe(actions[s]) for s in seeds
            ]
            record["memory_one"][f"naive (vs meta_{i})"] = [
                probe(actions[s][..., ::-1]) for s in seeds
            ]
    if vs_alld is not None:
        record["pairs"].append(
            pair("alld", "naive", vs_alld.rewards[:, 0], vs_alld.actions[:, 0])
        )
    if vs_meta is not None:
        episodes, index = vs_meta
        index = np.asarray(index)[0]  # [N, E'], the same for every seed
        for i in range(N):
            for j in range(N):
                if i == j:
                    continue
                cols = index[i] == j
                rewards = episodes.rewards[:, i][:, cols]
                actions = episodes.actions[:, i][:, cols]
                record["pairs"].append(pair(f"meta_{i}", f"meta_{j}", rewards, actions))
            if matrix_game:
                record["memory_one"][f"meta_{i} (vs meta)"] = [
                    probe(episodes.actions[s, i]) for s in seeds
                ]

    # Within-meta-episode profiles against naive learners, averaged over the pool.
    def by_episode(x):  # [S, N, E, B, L] -> [S, M]
        x = x.reshape(*x.shape[:4], M, T)
        return x.mean(axis=(1, 2, 3, 5)).tolist()

    series = {
        "meta reward": by_episode(vs_naive.rewards[..., 0]),
        "naive reward": by_episode(vs_naive.rewards[..., 1]),
    }
    if matrix_game:
        series["meta cooperation"] = by_episode((vs_naive.actions[..., 0] == 0) * 1.0)
        series["naive cooperation"] = by_episode((vs_naive.actions[..., 1] == 0) * 1.0)
    record["profiles"] = {"x": "inner episode", "series": series}
    if algo.events or algo.levels:
        record["grid"] = {"x": "inner episode", "series": _grid_series(algo, vs_naive)}
    return record


#: Series names of the evaluation's grid panels (``record["grid"]``), per metric
#: stem; the report groups series by their last word (one panel per quantity).
GRID_SERIES = {
    "cleaning": "cleaning",
    "zap_rate": "zaps",
    "zapped": "zapped",
    "apples": "apples",
    "own_coins": "own-coins",
    "other_coins": "other-coins",
    "pollution": "pollution",
    "apple_level": "apple-level",
}


def _grid_series(algo: Shaping, vs_naive: MetaEpisode) -> dict[str, list]:
    """Per inner episode against naive learners, means over the pool, meta-batch and
    games: ``"meta <quantity>"`` and ``"naive <quantity>"`` for each event of the
    game, the level of each map; ``[[M values] per seed]``."""
    series = {}
    for _, stem, _ in algo.events:
        x = np.asarray(vs_naive.events[stem], np.float64)  # [S, N, E, B, M, 2]
        x = x.mean(axis=(1, 2, 3))  # [S, M, 2]
        name = GRID_SERIES.get(stem, stem)
        series[f"meta {name}"] = x[..., 0].tolist()
        series[f"naive {name}"] = x[..., 1].tolist()
    for _, stem in algo.levels:
        x = np.asarray(vs_naive.events[stem], np.float64)  # [S, N, E, B, M]
        series[GRID_SERIES.get(stem, stem)] = x.mean(axis=(1, 2, 3)).tolist()
    return series
