"""Game-aware metrics of the shaping loop on the grid games (issue #12).

Expected numbers come from outside the code under test: CleanUp-lite's events are
recounted here in numpy from the recorded observations (positions, dirt, apples and
frozen flags before each step, in the layout of the module docstring), actions and
rewards, under params that make every event a function of those (no pollution, a
zap always lands, apples grow exactly when the river is clean); the Coin Game's
coin counts against its reward rule (+1 per coin picked up, -2 per own coin taken).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.analysis.plots import grid_panel
from dilemmas.training.shaping import Shaping, ShapingConfig
from dilemmas.training.shaping_eval import evaluate

TINY = dict(
    meta_batch=4,
    batch=3,
    num_inner_episodes=3,
    inner_episode_length=4,
    iterations=2,
    eval_meta_batch=2,
    network="mlp",
    hidden=8,
)
CLEANUP = dict(TINY, env_id="cleanup_lite-v0")

#: The CleanUp-lite metrics against naive learners and against meta agents.
VS_NAIVE = (
    "cleaning_vs_naive",
    "naive_cleaning",
    "cleaning_discrepancy_vs_naive",
    "zap_rate_vs_naive",
    "naive_zap_rate",
    "zapped_vs_naive",
    "naive_zapped",
    "apples_vs_naive",
    "naive_apples",
    "pollution_vs_naive",
    "apple_level_vs_naive",
)
VS_META = (
    "cleaning_vs_meta",
    "cleaning_discrepancy_vs_meta",
    "zap_rate_vs_meta",
    "zapped_vs_meta",
    "apples_vs_meta",
    "pollution_vs_meta",
    "apple_level_vs_meta",
)
ZAP = 4  # CleanUp-lite's zap action


def play_vs_naive(algo: Shaping, seed: int):
    """Meta-episodes of one fresh meta agent against fresh naive learners."""
    E = algo.cfg.meta_batch
    state = algo.init(jax.random.key(seed))
    is_naive = jnp.ones((1, E), bool)
    index = jnp.zeros((1, E), jnp.int32)
    keys = jax.random.split(jax.random.key(seed + 1), E).reshape(1, E)

    def run(params, naive_params, keys):
        episodes = algo.play(params, naive_params, is_naive, index, keys)
        return episodes, algo.play_metrics(episodes, is_naive)

    return jax.jit(run)(state.params, state.naive_params, keys)


def recount_cleanup(env, obs, actions, rewards):
    """CleanUp-lite events per step from observations before each step.

    With ``p_pollution = 0``, ``p_zap = 1``, ``zap_range`` covering the grid and
    ``dirt_threshold`` below 1 (an apple grows exactly when the river is clean and
    the orchard has room): an active agent (not frozen at the start of the step)
    cleans the dirt it stands on, eats what its reward says, fires when it chooses
    zap and is hit when the active co-player fires at it.

    Args:
      obs: ``[..., T, obs_dim]`` agent 0's observations.
      actions, rewards: ``[..., T, 2]``.

    Returns:
      dict of ``[..., T, 2]`` per-agent counts and ``[..., T]`` levels after each
      step.
    """
    H, W = env.height, env.width
    C = H * W
    pos = np.stack([obs[..., :C], obs[..., C : 2 * C]], axis=-2) > 0.5  # [..., 2, C]
    apples = obs[..., 2 * C : 3 * C] > 0.5
    dirt = obs[..., 3 * C : 4 * C] > 0.5
    active = obs[..., 5 * C : 5 * C + 2] < 0.5  # own, co-player's frozen flags
    on_dirt = (pos & dirt[..., None, :]).any(-1)
    cleaned = active & on_dirt
    fired = active & (actions == ZAP)
    received = fired[..., ::-1] & active
    cleaned_cells = (pos & active[..., None]).any(-2) & dirt
    dirt_after = dirt.sum(-1) - cleaned_cells.sum(-1)
    grows = (dirt.sum(-1) == 0) & (apples.sum(-1) < H)
    apples_after = apples.sum(-1) + grows - rewards.sum(-1)
    return {
        "cleaning": cleaned.astype(float),
        "zap_rate": fired.astype(float),
        "zapped": received.astype(float),
        "apples": rewards.astype(float),
        "pollution": dirt_after.astype(float),
        "apple_level": apples_after.astype(float),
    }


def test_cleanup_metrics_are_game_events_not_cooperation():
    cfg = ShapingConfig(**{**CLEANUP, "pool_size": 2, "p_naive": 0.5, "num_seeds": 2})
    exp = cfg.experiment()
    state = exp.init(jax.random.key(0))
    new_state, metrics = jax.jit(exp.update)(state)
    assert not [name for name in metrics if "cooperation" in name]
    assert set(VS_NAIVE) | set(VS_META) <= set(metrics)
    for name in (*VS_NAIVE, *VS_META, *exp.progress_metrics):
        assert metrics[name].shape == (2, 2), name
    # The report's grid panels pick every event metric up by its name.
    panels = {name: grid_panel(name) for name in (*VS_NAIVE, *VS_META)}
    assert None not in panels.values(), panels
    assert panels["cleaning_discrepancy_vs_naive"] == "cleaning"
    assert panels["zapped_vs_naive"] == "zapping"
    # Progress bar and headline: reward plus cleaning discrepancy and zap rate.
    assert exp.progress_metrics == (
        "reward_vs_naive",
        "naive_reward",
        "cleaning_discrepancy_vs_naive",
        "zap_rate_vs_naive",
        "reward_vs_meta",
    )
    summary = exp.summary(new_state, metrics)
    assert not [name for name in summary if "cooperation" in name]
    assert {"reward_vs_naive", "cleaning_discrepancy_vs_naive"} <= set(summary)
    assert {"zap_rate_vs_naive", "reward_vs_meta", "zap_rate_vs_meta"} <= set(summary)
    # The paper's Cleanup panels (Fig. 13): zapped, pollution, apple level.
    assert {"zapped_vs_naive", "pollution_vs_naive", "apple_level_vs_naive"} <= set(
        summary
    )
    shares = np.asarray(metrics["cleaning_vs_naive"])
    assert np.all((shares >= 0) & (shares <= 1))


def test_cleanup_event_metrics_equal_an_independent_recount():
    T, M = 8, 3
    algo = Shaping(ShapingConfig(**{**CLEANUP, "inner_episode_length": T}))
    algo.env_params = algo.env.make_params(
        max_steps=T,
        p_pollution=0.0,
        initial_dirt=1,
        dirt_threshold=0.5,
        p_zap=1.0,
        zap_range=7,  # the 5 x 4 grid's largest Manhattan distance
    )
    episodes, metrics = play_vs_naive(algo, seed=3)
    obs = np.asarray(episodes.obs)[0, :, :, :, 0]  # [E, B, M*T, obs_dim], agent 0
    actions = np.asarray(episodes.actions)[0]
    rewards = np.asarray(episodes.rewards)[0]
    counts = recount_cleanup(algo.env, obs, actions, rewards)
    E, B = obs.shape[:2]

    def per_episode(x, per_step):  # [E, B, M*T, ...] -> [E, B, M, ...]
        x = x.reshape(E, B, M, T, *x.shape[3:])
        return x.mean(axis=3) if per_step else x.sum(axis=3)

    per_step = {"cleaning": True, "pollution": True, "apple_level": True}
    expected = {
        stem: per_episode(x, per_step.get(stem, False)) for stem, x in counts.items()
    }
    # The data are not degenerate: every event happens, and the agents differ.
    for stem in ("cleaning", "zap_rate", "zapped", "apples"):
        assert expected[stem].sum() > 0, stem
    assert expected["apple_level"].sum() > 0
    assert expected["pollution"].sum() > 0
    cleaning = expected["cleaning"].mean(axis=(0, 1, 2))  # [2]: meta, naive
    assert cleaning[0] != cleaning[1]

    for stem, x in expected.items():
        np.testing.assert_allclose(
            np.asarray(episodes.events[stem])[0], x, atol=1e-6, err_msg=stem
        )
    for stem in ("cleaning", "zap_rate", "zapped", "apples"):
        mean = expected[stem].mean(axis=(0, 1, 2))
        np.testing.assert_allclose(metrics[f"{stem}_vs_naive"], [mean[0]], atol=1e-6)
        np.testing.assert_allclose(metrics[f"naive_{stem}"], [mean[1]], atol=1e-6)
    np.testing.assert_allclose(
        metrics["cleaning_discrepancy_vs_naive"],
        [cleaning[0] - cleaning[1]],
        atol=1e-6,
    )
    for stem in ("pollution", "apple_level"):
        np.testing.assert_allclose(
            metrics[f"{stem}_vs_naive"], [expected[stem].mean()], atol=1e-6
        )
    # CleanUp-lite pays +1 per apple: apples eaten per episode are T times the
    # reward per step.
    np.testing.assert_allclose(
        metrics["apples_vs_naive"], T * np.asarray(metrics["reward_vs_naive"]), 1e-5
    )


def test_a_meta_agent_that_always_zaps_has_a_zap_rate_of_its_active_steps():
    """Known answer: an agent fixed on zap fires in every step it is not frozen,
    and with a sure zap in range its co-player is hit whenever it is active."""
    T = 6
    algo = Shaping(ShapingConfig(**{**CLEANUP, "inner_episode_length": T}))
    algo.env_params = algo.env.make_params(max_steps=T, p_zap=1.0, zap_range=7)
    E = algo.cfg.meta_batch
    state = algo.init(jax.random.key(0))
    episodes = jax.jit(
        lambda p, n, k: algo.play(
            p,
            n,
            jnp.ones((1, E), bool),
            jnp.zeros((1, E), jnp.int32),
            k,
            ego_action=ZAP,
        )
    )(state.params, state.naive_params, jax.random.split(jax.random.key(1), E)[None])
    obs = np.asarray(episodes.obs)[0, :, :, :, 0]
    C = algo.env.height * algo.env.width
    active = obs[..., 5 * C : 5 * C + 2] < 0.5  # [E, B, M*T, 2]
    M = algo.cfg.num_inner_episodes
    active = active.reshape(*active.shape[:2], M, T, 2).sum(axis=3)
    events = {k: np.asarray(v)[0] for k, v in episodes.events.items()}
    np.testing.assert_array_equal(events["zap_rate"][..., 0], active[..., 0])
    # The meta agent acts first at t = 0, so it hits the co-player at once.
    assert np.all(events["zapped"][..., 1] >= 1)
    assert np.all(events["zapped"][..., 1] <= events["zap_rate"][..., 0])


def test_coin_game_metrics_count_coins_consistently_with_the_rewards():
    cfg = ShapingConfig(**{**TINY, "env_id": "coin_game-v0", "inner_episode_length": 8})
    algo = Shaping(cfg)
    _, metrics = play_vs_naive(algo, seed=0)
    assert not [name for name in metrics if "cooperation" in name]
    coins = {
        name: np.asarray(metrics[name])
        for name in (
            "own_coins_vs_naive",
            "other_coins_vs_naive",
            "naive_own_coins",
            "naive_other_coins",
        )
    }
    assert sum(x.sum() for x in coins.values()) > 0
    T = cfg.inner_episode_length
    # reward = +1 per coin picked up, -2 per own coin the co-player picks up.
    meta = coins["own_coins_vs_naive"] + coins["other_coins_vs_naive"]
    meta -= 2 * coins["naive_other_coins"]
    naive = coins["naive_own_coins"] + coins["naive_other_coins"]
    naive -= 2 * coins["other_coins_vs_naive"]
    np.testing.assert_allclose(T * np.asarray(metrics["reward_vs_naive"]), meta, 1e-5)
    np.testing.assert_allclose(T * np.asarray(metrics["naive_reward"]), naive, 1e-5)


def test_ipd_metrics_keep_cooperation_and_no_grid_events():
    cfg = ShapingConfig(**{**TINY, "network": "tabular"})
    exp = cfg.experiment()
    state = exp.init(jax.random.key(0))
    new_state, metrics = jax.jit(exp.update)(state)
    assert {"cooperation_vs_naive", "naive_cooperation"} <= set(metrics)
    assert not [name for name in metrics if grid_panel(name)]
    assert exp.progress_metrics == ("reward_vs_naive", "naive_reward")
    assert list(exp.summary(new_state, metrics)) == [
        "reward_vs_naive",
        "naive_reward",
        "last_episode_reward_vs_naive",
        "last_episode_naive_reward",
        "cooperation_vs_naive",
        "naive_cooperation",
    ]


def test_cleanup_evaluation_record_has_grid_panels_and_no_cooperation():
    cfg = ShapingConfig(**{**CLEANUP, "num_seeds": 2})
    exp = cfg.experiment()
    record = evaluate(exp.algo, exp.init(jax.random.key(0)))
    text = json.dumps(record)
    assert "cooperation" not in text
    assert record["memory_one"] == {}
    assert [(p["row"], p["col"]) for p in record["pairs"]] == [("meta_0", "naive")]
    assert np.asarray(record["pairs"][0]["reward"]).shape == (2, 2)
    assert set(record["profiles"]["series"]) == {"meta reward", "naive reward"}
    grid = record["grid"]
    assert grid["x"] == "inner episode"
    series = grid["series"]
    assert set(series) == {
        "meta cleaning",
        "naive cleaning",
        "meta zaps",
        "naive zaps",
        "meta zapped",
        "naive zapped",
        "meta apples",
        "naive apples",
        "pollution",
        "apple-level",
    }
    M, T = cfg.num_inner_episodes, cfg.inner_episode_length
    for values in series.values():
        assert np.asarray(values).shape == (2, M)
    cleaning = np.asarray(series["meta cleaning"])
    assert np.all((cleaning >= 0) & (cleaning <= 1))
    # One apple is +1: apples eaten per inner episode are T times the reward per step.
    profiles = record["profiles"]["series"]
    for who in ("meta", "naive"):
        np.testing.assert_allclose(
            series[f"{who} apples"], T * np.asarray(profiles[f"{who} reward"]), 1e-5
        )
