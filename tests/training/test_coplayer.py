"""In-context co-player inference (A2C): pools, games, updates, runs, evaluation.

Numbers come from outside the code under test: the COALA payoff table, the
uniform initial policy (zero read-outs) against fixed strategies, U(0, 1) moments,
the spec's Opponent-ID layout and the pool's weights.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents.sequence import SequenceInputs
from dilemmas.training import runner
from dilemmas.training.coplayer import (
    PRESETS,
    Coplayer,
    CoplayerConfig,
    Fixed,
    Learner,
    make_train,
    swap_players,
)
from dilemmas.training.pool import FixedPool, parse_pool

COALA = np.array([[[1, 1], [-1, 2]], [[2, -1], [0, 0]]], np.float32)
TINY = CoplayerConfig(
    hidden=8, embed=4, batch=64, episode_length=20, iterations=2, eval_episodes=16
)


def _play_fixed(cfg: CoplayerConfig, params=None, key=0):
    """A learner's games against its pool, and the pool's start state (jitted)."""
    algo = Coplayer(cfg)
    if params is None:
        params = algo.init_network(jax.random.key(1))
    pool = algo.pool

    @jax.jit
    def play(params, key):
        k_draw, k_start, k_play = jax.random.split(key, 3)
        entry = pool.draw(k_draw, cfg.batch)
        start = pool.start((), k_start, entry)
        z = pool.opponent_id(start) if cfg.opponent_id else None
        side1 = Fixed(pool, (), start)
        return algo.play(Learner(params, z), side1, k_play, cfg.batch), start

    games, start = play(params, jax.random.key(key))
    return algo, games, start


# ---- configs and pools -----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pool": "random_tabular=0"}, "weight must be a finite number > 0"),
        ({"pool": "random_tabular=-1"}, "weight must be a finite number > 0"),
        ({"pool": "random_tabular=x"}, "is not a number"),
        ({"pool": "tft,nosuch"}, "unknown pool entry 'nosuch'"),
        ({"pool": "tft,tft"}, "appears twice"),
        ({"pool": "tft,,alld"}, "empty entry"),
        ({"pool": "frozen:"}, "needs a run directory"),
        ({"pool": "", "learner_share": 0.5}, "needs co-players in pool"),
        ({"num_learners": 1}, "needs num_learners >= 2"),
        ({"num_learners": 3, "batch": 66}, "split evenly"),
        ({"opponent_id": True, "pool": "grim"}, "memory-one co-players"),
        ({"learner_share": 1.5}, "learner_share must be a number in [0, 1]"),
        ({"lr": math.inf}, "lr must be a finite number > 0"),
        ({"env_id": "nosuch-v0"}, "unknown env_id"),
    ],
)
def test_bad_configs_are_rejected_naming_the_problem(changes, message):
    with pytest.raises(ValueError, match=re_escape(message)):
        TINY.replace(**changes)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_frozen_entries_are_checked_before_anything_compiles(tmp_path):
    missing = TINY.replace(
        pool=f"frozen:{tmp_path / 'nope'}", num_learners=1, learner_share=0.0
    )
    with pytest.raises(ValueError, match="does not exist"):
        missing.experiment()
    other = tmp_path / "shaping"
    other.mkdir()
    (other / "config.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "kind": "shaping",
                "config": {},
                "run": {"log_every": 1, "checkpoint_every": 1, "keep_checkpoints": 1},
            }
        )
    )
    with pytest.raises(ValueError, match="not a co-player inference run"):
        missing.replace(pool=f"frozen:{other}").experiment()
    with pytest.raises(ValueError, match="plays 2x2 matrix games only"):
        TINY.replace(env_id="coin_game-v0", pool="tft").experiment()


def test_pool_draws_follow_the_weights():
    pool = FixedPool(parse_pool("allc=3,alld,tft=4"), (), 2)
    entry = np.asarray(pool.draw(jax.random.key(0), 40_000))
    freq = np.bincount(entry, minlength=3) / entry.size
    expected = np.array([3, 1, 4]) / 8
    se = np.sqrt(expected * (1 - expected) / entry.size)
    assert np.all(np.abs(freq - expected) < 4 * se), freq


def test_random_tabular_agents_are_fresh_every_episode():
    pool = FixedPool(parse_pool("random_tabular,tft"), (), 2)
    entry = jnp.asarray([0] * 5000 + [1] * 10, jnp.int32)
    start = pool.start((), jax.random.key(3), entry)
    table = np.asarray(start.table)
    random_rows = table[:5000]
    # U(0, 1): mean 1/2, variance 1/12, all rows distinct
    assert abs(random_rows.mean() - 0.5) < 4 * np.sqrt(1 / 12 / random_rows.size)
    assert abs(random_rows.var() - 1 / 12) < 0.005
    assert len({tuple(r) for r in random_rows}) == 5000
    np.testing.assert_array_equal(table[5000:], [[1, 1, 0, 1, 0]] * 10)


def test_opponent_id_is_the_spec_log_probability_table():
    pool = FixedPool(parse_pool("random_tabular"), (), 2)
    start = pool.start((), jax.random.key(0), jnp.zeros(4, jnp.int32))
    p = np.asarray(start.table, np.float64)  # (s0, CC, CD, DC, DD)
    z = np.asarray(pool.opponent_id(start), np.float64)
    order = p[:, [1, 2, 3, 4, 0]]  # spec order: CC, CD, DC, DD, Start
    expected = np.stack([np.log(order), np.log(1 - order)], -1).reshape(4, 10)
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-5)


# ---- games ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "reward", "co_reward"),
    # a uniform learner: vs allc (1 + 2) / 2 and (1 - 1) / 2;
    # vs alld (-1 + 0) / 2 and (2 + 0) / 2
    [("allc", 1.5, 0.0), ("alld", -0.5, 1.0)],
)
def test_a_fresh_learner_plays_uniformly_against_fixed_strategies(
    pool, reward, co_reward
):
    cfg = TINY.replace(num_learners=1, learner_share=0.0, pool=pool, batch=512)
    _, games, _ = _play_fixed(cfg)
    rewards = np.asarray(games.rewards)
    actions = np.asarray(games.actions)
    n = rewards[..., 0].size
    assert abs(rewards[..., 0].mean() - reward) < 4 * 1.5 / np.sqrt(n)
    assert abs(rewards[..., 1].mean() - co_reward) < 4 * 1.5 / np.sqrt(n)
    assert np.all(actions[..., 1] == (0 if pool == "allc" else 1))
    np.testing.assert_allclose(np.asarray(games.policy)[..., 0, :], 0.5)
    # every reward is the COALA table's entry for the joint action
    np.testing.assert_array_equal(rewards, COALA[actions[..., 0], actions[..., 1]])


def test_tft_in_the_pool_copies_the_learner():
    cfg = TINY.replace(num_learners=1, learner_share=0.0, pool="tft", batch=64)
    _, games, _ = _play_fixed(cfg)
    actions = np.asarray(games.actions)
    assert np.all(actions[:, 0, 1] == 0)
    np.testing.assert_array_equal(actions[:, 1:, 1], actions[:, :-1, 0])


def test_observations_are_first_person_histories():
    cfg = TINY.replace(num_learners=1, learner_share=0.0, pool="random_tabular")
    _, games, _ = _play_fixed(cfg)
    obs = np.asarray(games.obs)  # [B, T, 2, 5]
    actions = np.asarray(games.actions)
    assert np.all(obs[:, 0, :, 0] == 1)
    own, co = actions[:, :-1, 0], actions[:, :-1, 1]
    np.testing.assert_array_equal(obs[:, 1:, 0].argmax(-1), 1 + 2 * own + co)
    np.testing.assert_array_equal(obs[:, 1:, 1].argmax(-1), 1 + 2 * co + own)


def test_each_learner_trains_on_its_own_side_of_the_pair_games():
    cfg = TINY.replace(num_learners=3, learner_share=0.5, batch=16)
    algo = Coplayer(cfg)
    state = algo.init(jax.random.key(0))

    @jax.jit
    def games(params):
        vs_learners = algo.learner_games(params, jax.random.key(1))
        vs_pool, _ = algo.pool_games(params, (), jax.random.key(2))
        return vs_learners, vs_pool, algo.learner_data(vs_learners, vs_pool)

    vs_learners, vs_pool, data = games(state.params)
    assert data.actions.shape == (3, 16, cfg.episode_length, 2)
    # pairs (0,1), (0,2), (1,2), 4 games each; learner 2 is player 1 in both
    rewards = np.asarray(vs_learners.rewards)
    np.testing.assert_array_equal(data.rewards[2, :4, :, 0], rewards[1, :, :, 1])
    np.testing.assert_array_equal(data.rewards[2, 4:8, :, 0], rewards[2, :, :, 1])
    np.testing.assert_array_equal(data.rewards[0, 4:8], rewards[1])
    np.testing.assert_array_equal(data.rewards[:, 8:], vs_pool.rewards)
    swapped = swap_players(jax.tree.map(lambda x: x[0], vs_learners))
    np.testing.assert_array_equal(swapped.obs[:, :, 0], vs_learners.obs[0, :, :, 1])


def test_opponent_id_token_reaches_the_learner():
    cfg = TINY.replace(
        num_learners=1, learner_share=0.0, pool="allc,alld", opponent_id=True
    )
    algo, games, start = _play_fixed(cfg)
    z = np.asarray(games.z)
    np.testing.assert_allclose(z[:, 0], np.asarray(algo.pool.opponent_id(start)))
    assert np.all(z[:, 1] == 0)
    inputs = SequenceInputs((5,), 2, opponent_id=True)
    token = np.asarray(inputs.z_token(jnp.ones((1, 10))))
    np.testing.assert_array_equal(token, [[0] * 5 + [1] * 10])


# ---- learning ---------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["allc", "alld"])
def test_a_learner_learns_to_defect_against_unconditional_strategies(pool):
    cfg = PRESETS["coplayer-a2c-step1"].replace(
        pool=pool, hidden=16, embed=8, batch=32, episode_length=10, iterations=60
    )
    keys = jax.random.split(jax.random.key(0), 5)  # 5 seeds, each must learn
    _, metrics = jax.jit(jax.vmap(make_train(cfg)))(keys)
    coop = np.asarray(metrics["cooperation_vs_fixed"])[..., 0]  # [seeds, iterations]
    assert np.all(coop[:, :5].mean(axis=1) > 0.35)
    assert np.all(coop[:, -5:].mean(axis=1) < 0.1)
    best = 2.0 if pool == "allc" else 0.0
    reward = np.asarray(metrics["reward_vs_fixed"])[:, -5:, 0].mean(axis=1)
    assert np.all(np.abs(reward - best) < 0.15)


def test_the_update_moves_only_learners_and_metrics_fit_the_contract():
    exp = TINY.experiment()
    state = exp.init(jax.random.key(0))
    new, metrics = jax.jit(exp.update)(state)
    for name in (
        "reward_vs_learner",
        "reward_vs_fixed",
        "fixed_reward",
        "cooperation_vs_learner",
        "cooperation_vs_fixed",
        "fixed_cooperation",
        "total_loss",
    ):
        assert metrics[name].shape == (1, 2), name
        assert np.all(np.isfinite(metrics[name]))
    moved = jax.tree.map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), state.params, new.params
    )
    assert max(jax.tree.leaves(moved)) > 0
    assert int(new.iteration[0]) == 1


def test_make_train_is_deterministic():
    cfg = TINY.replace(iterations=2, batch=8)
    train = jax.jit(make_train(cfg))
    (a, metrics_a), (b, metrics_b) = train(jax.random.key(4)), train(jax.random.key(4))
    jax.tree.map(
        np.testing.assert_array_equal, (a.params, metrics_a), (b.params, metrics_b)
    )
    np.testing.assert_array_equal(
        jax.random.key_data(a.key), jax.random.key_data(b.key)
    )


# ---- runs, frozen agents, init_from, evaluation ------------------------------------


@pytest.fixture(scope="module")
def step1_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "step1"
    cfg = PRESETS["coplayer-a2c-step1"].replace(
        hidden=8,
        embed=4,
        batch=16,
        episode_length=12,
        iterations=4,
        num_seeds=2,
        eval_episodes=8,
    )
    runner.run(
        cfg.experiment(),
        run_dir,
        preset="coplayer-a2c-step1",
        progress=False,
        log_every=2,
    )
    return run_dir, cfg


def test_frozen_agents_and_init_from_load_the_run_parameters(step1_run):
    run_dir, cfg = step1_run
    _, trained = runner.load_checkpoint(run_dir, cfg.experiment())
    step2 = cfg.replace(pool=f"frozen:{run_dir}", num_seeds=3, iterations=2)
    exp = step2.experiment()
    state = exp.init(jax.random.key(0))
    for seed in range(3):  # seed s plays seed s mod 2 of the source, learner 0
        got = jax.tree.map(lambda x, s=seed: x[s], state.frozen[0])
        want = jax.tree.map(lambda x, s=seed: x[s % 2, 0], trained.params)
        jax.tree.map(np.testing.assert_array_equal, got, want)
    step3 = cfg.replace(
        num_learners=2, learner_share=1.0, pool="", init_from=str(run_dir), num_seeds=2
    )
    state = step3.experiment().init(jax.random.key(0))
    for s in range(2):
        for i in range(2):  # (s * 2 + i) mod (2 seeds x 1 learner)
            got = jax.tree.map(lambda x, s=s, i=i: x[s, i], state.params)
            want = jax.tree.map(
                lambda x, s=s, i=i: x[(s * 2 + i) % 2, 0], trained.params
            )
            jax.tree.map(np.testing.assert_array_equal, got, want)
    with pytest.raises(ValueError, match="differs from this run"):
        step3.replace(hidden=16).experiment()
    with pytest.raises(ValueError, match="was trained on ipd-v0"):
        step2.replace(env_id="stag_hunt-v0").experiment()


def test_step2_run_records_the_exploiter_and_the_frozen_agent(step1_run, tmp_path):
    run_dir, cfg = step1_run
    step2 = cfg.replace(pool=f"frozen:{run_dir}", iterations=2, num_seeds=2)
    summary = runner.run(
        step2.experiment(),
        tmp_path / "step2",
        progress=False,
        preset="coplayer-a2c-step2",
    )
    assert summary["status"] == "completed"
    record = json.loads((tmp_path / "step2" / "evaluation.json").read_text())
    cols = [p["col"] for p in record["pairs"]]
    assert cols == ["random_tabular", "allc", "alld", "tft", "frozen_0"]
    assert "learner_0 (vs frozen_0)" in record["memory_one"]
    assert "frozen_0 (vs learner_0)" in record["memory_one"]
    panel = record["within_episode"]["panels"]["learner_0 vs alld"]
    assert np.asarray(panel["co-player cooperation"]).shape == (2, 12)
    assert np.all(np.asarray(panel["co-player cooperation"]) == 0)
    gap = record["best_response_gap"]
    series = np.asarray(gap["series"]["learner_0"])
    assert series.shape == (2, 12) and np.all(series >= -1e-5)
    total = np.asarray(gap["total"]["learner_0"])
    np.testing.assert_allclose(total, series.sum(axis=-1), rtol=1e-6)


def test_the_gap_of_a_uniform_learner_against_allc_is_exact():
    # vs AllC the best response defects every round (value 2 per round); the
    # uniform policy's expected reward is 1.5, so the gap is 0.5 every round.
    from dilemmas.training.coplayer_eval import _gap

    cfg = TINY.replace(num_learners=1, learner_share=0.0, pool="allc", batch=8)
    algo, games, start = _play_fixed(cfg)
    gap, value, _ = jax.jit(lambda g, t: _gap(algo, g, t))(games, start.table)
    np.testing.assert_allclose(gap, 0.5, atol=1e-5)
    np.testing.assert_allclose(value, 2.0 * cfg.episode_length, rtol=1e-6)


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    cfg = TINY.replace(iterations=4, batch=8)
    exp = cfg.experiment()
    runner.run(exp, tmp_path / "a", progress=False, log_every=2)
    _, full = runner.load_checkpoint(tmp_path / "a", exp)
    half = cfg.replace(iterations=2)
    runner.run(half.experiment(), tmp_path / "b", progress=False, log_every=2)
    _, mid = runner.load_checkpoint(tmp_path / "b", half.experiment())
    state = mid
    update = jax.jit(exp.update)
    for _ in range(2):
        state, _ = update(state)
    jax.tree.map(np.testing.assert_array_equal, exp.params(state), exp.params(full))


def test_two_devices_give_the_same_run_as_one(tmp_path):
    code = (
        "import jax, numpy as np\n"
        "from dilemmas.training.coplayer import CoplayerConfig\n"
        "cfg = CoplayerConfig(hidden=8, embed=4, batch=16, episode_length=10,"
        " iterations=2)\n"
        "exp = cfg.experiment()\n"
        "s = exp.init(jax.random.key(0))\n"
        "for _ in range(2):\n"
        "    s, m = jax.jit(exp.update)(s)\n"
        "leaves = [np.asarray(x) for x in jax.tree.leaves(s.params)]\n"
        "leaves += [np.asarray(m[k]) for k in sorted(m)]\n"
        "np.savez(__import__('sys').argv[1], *leaves)\n"
        "print(len(jax.devices()))\n"
    )
    results = []
    for devices, name in ((1, "one.npz"), (2, "two.npz")):
        env = dict(
            os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / name)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == str(devices)
        results.append(np.load(tmp_path / name))
    for key in results[0].files:
        np.testing.assert_allclose(
            results[0][key], results[1][key], rtol=2e-5, atol=2e-6
        )


@pytest.mark.parametrize(
    ("env_id", "changes"),
    [
        ("stag_hunt-v0", {"pool": "random_tabular,tft"}),
        ("chicken-v0", {"learner_share": 1.0, "pool": ""}),
        ("coin_game-v0", {"learner_share": 1.0, "pool": ""}),
    ],
)
def test_other_two_player_games_train_through_the_same_code(env_id, changes):
    cfg = TINY.replace(env_id=env_id, batch=8, episode_length=6, **changes)
    exp = cfg.experiment()
    state = exp.init(jax.random.key(0))
    _, metrics = jax.jit(exp.update)(state)
    assert np.all(np.isfinite(metrics["total_loss"]))
    matrix = env_id != "coin_game-v0"
    assert ("cooperation_vs_learner" in metrics) == matrix
    if env_id == "stag_hunt-v0":  # every reward is one of the game's payoffs
        assert np.all(np.isin(np.asarray(metrics["reward_vs_fixed"]) > -10, True))


def test_huge_values_are_refused_before_compiling_and_any_seed_is_accepted():
    with pytest.raises(ValueError, match="hidden"):
        TINY.replace(hidden=10**7)
    with pytest.raises(ValueError, match="seed"):
        TINY.replace(seed=True)
    assert TINY.replace(seed=2**70).seed == 2**70
    from dilemmas.training.configs import check_memory

    huge = TINY.replace(batch=1 << 24, num_seeds=1024)
    with pytest.raises(ValueError, match="batch"):
        check_memory(huge, 64 * 2**30, "this host")


def test_a_corrupted_frozen_checkpoint_is_refused(step1_run, tmp_path):
    import shutil

    run_dir, cfg = step1_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    checkpoint = sorted((copy / "checkpoints").glob("iter_*.msgpack"))[-1]
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="pool entry frozen:"):
        cfg.replace(pool=f"frozen:{copy}").experiment()


# Two iterations of TINY recorded before the learners' gradient was accumulated over
# chunks (commit 3b1e82f): each parameter leaf's total absolute change, and the
# metrics ([iteration, learner]).
PINNED_CHANGES = {
    "embed/bias": 0.0030814278870821,
    "embed/kernel": 0.0070608630776405334,
    "input_proj/bias": 0.007718887645751238,
    "input_proj/kernel": 0.011839634738862514,
    "policy_head/bias": 0.006949379108846188,
    "policy_head/kernel": 0.04542035236954689,
    "recurrent_bias": 0.004807106219232082,
    "recurrent_kernel": 0.01290745660662651,
    "value_head/bias": 0.0039943852461874485,
    "value_head/kernel": 0.03005608171224594,
}
PINNED_METRICS = {
    "entropy": [
        [0.6931471824645996, 0.6931471824645996],
        [0.6931463479995728, 0.6931461691856384],
    ],
    "total_loss": [
        [-0.002136272843927145, -0.0014343531802296638],
        [-0.002664107596501708, -0.001973001519218087],
    ],
    "value_loss": [
        [0.009590513072907925, 0.01099433284252882],
        [0.00856528989970684, 0.00992459524422884],
    ],
}


def test_tiny_run_matches_the_pinned_reference_with_gradient_chunks(monkeypatch):
    from dilemmas.agents import losses

    # 100 samples per chunk: each learner's 64 episodes of 20 steps in 16 chunks.
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    monkeypatch.setattr(losses, "CPU_CHUNK_SAMPLES", 100)
    key = jax.random.key(5)
    init = Coplayer(TINY).init(key).params["params"]
    state, metrics = jax.jit(make_train(TINY))(key)
    changes = {
        "/".join(p.key for p in path): float(jnp.abs(leaf - init_leaf).sum())
        for (path, leaf), init_leaf in zip(
            jax.tree_util.tree_flatten_with_path(state.params["params"])[0],
            jax.tree.leaves(init),
            strict=True,
        )
    }
    assert set(changes) == set(PINNED_CHANGES)
    for name, expected in PINNED_CHANGES.items():
        np.testing.assert_allclose(changes[name], expected, rtol=2e-4, err_msg=name)
    for name, expected in PINNED_METRICS.items():
        np.testing.assert_allclose(metrics[name], expected, rtol=2e-4, err_msg=name)
