"""Predictive Policy Improvement: configs, the stored data, a run through the run
driver and its exact resumption.

Numbers come from outside the code under test: the COALA payoff table, the spec's
token layout (``o_0 = s0``, ``r_0 = 0``), U(0, 1) moments (two random memory-one
agents cooperate half of the time, spec E3) and the Opponent-ID layout.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.envs.seeding import key_from_seed
from dilemmas.training import runner
from dilemmas.training.ppi import PPI, PRESETS, PPIConfig, decode, tabular_pairs
from dilemmas.training.presets import get_preset

COALA = jnp.asarray([[[1, 1], [-1, 2]], [[2, -1], [0, 0]]], jnp.float32)
TINY = PPIConfig(
    pretrain_episodes=40,
    iterations=4,
    episodes=8,
    epochs=1,
    minibatch=16,
    hidden=8,
    embed=4,
    episode_length=10,
    rollouts=4,
    horizon=3,
    eval_episodes=4,
    num_seeds=2,
)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"collect_chunks": 3}, "must divide episodes"),
        ({"pretrain": "none"}, "pretrain must be one of"),
        ({"pool": "frozen:runs/x"}, "frozen:RUN_DIR co-players are not supported"),
        ({"env_id": "coin_game-v0"}, "2x2 matrix game"),
        ({"beta": -1.0}, "beta"),
        ({"adam_b2": 1.0}, "adam_b2"),
        ({"discount": 1.5}, "discount"),
        ({"rollouts": 0}, "rollouts"),
        ({"pool": "", "learner_share": 0.5}, "needs co-players in pool"),
        ({"opponent_id": 1}, "opponent_id must be true or false"),
    ],
)
def test_bad_configs_are_rejected_naming_the_problem(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        TINY.replace(**changes)


def test_presets_are_registered_with_the_paper_numbers():
    mixed = get_preset("ppi-mixed")
    assert (mixed.pretrain_episodes, mixed.iterations, mixed.episodes) == (
        200_000,
        30,
        20_000,
    )
    assert (mixed.epochs, mixed.rollouts, mixed.horizon, mixed.beta) == (
        10,
        32,
        15,
        0.01,
    )
    assert (mixed.lr, mixed.weight_decay, mixed.minibatch) == (1e-4, 1e-2, 256)
    no_tabular = get_preset("ppi-no-tabular")
    assert (no_tabular.pretrain, no_tabular.pool) == ("random", "")
    assert get_preset("ppi-opponent-id").opponent_id
    assert get_preset("ppi-step1").num_learners == 1
    step2 = get_preset("ppi-step2-cpu")
    assert (step2.frozen_from, step2.learner_share) == ("runs/ppi-step1-cpu", 1.0)
    step3 = get_preset("ppi-step3-cpu")
    assert (step3.init_from, step3.pretrain_episodes) == (
        "runs/ppi-step2-cpu",
        step2.pretrain_episodes + step2.iterations * step2.episodes,
    )
    assert {f"{n}-cpu" for n in PRESETS if not n.endswith("-cpu")} <= set(PRESETS)


def test_codes_decode_to_the_spec_token_stream():
    # rounds: DC (own D, co-player C), CD, DD
    obs, rewards, actions = decode(jnp.asarray([[2, 1, 3]], jnp.int8), COALA)
    np.testing.assert_array_equal(obs, [[0, 3, 2]])  # s0, DC, CD
    np.testing.assert_array_equal(rewards, [[0.0, 2.0, -1.0]])  # r_0 = 0, T, S
    np.testing.assert_array_equal(actions, [[1, 0, 1]])


def test_tabular_pretraining_pairs_cooperate_half_the_time():
    codes, z = jax.jit(lambda k: tabular_pairs(k, 4000, 20))(jax.random.key(3))
    own_c = np.mean(np.asarray(codes) // 2 == 0)
    other_c = np.mean(np.asarray(codes) % 2 == 0)
    assert abs(own_c - 0.5) < 0.02 and abs(other_c - 0.5) < 0.02
    # z holds log p and log(1 - p) of the co-player: each pair sums to log-probs of
    # two complementary events, exp(z) pairs add to 1
    pairs = np.exp(np.asarray(z)).reshape(-1, 5, 2)
    np.testing.assert_allclose(pairs.sum(-1), 1.0, atol=1e-5)


def test_a_tiny_run_goes_through_the_runner_and_resumes_bit_identically(tmp_path):
    exp = TINY.replace(iterations=2).experiment()
    summary = runner.run(
        exp,
        tmp_path / "a",
        preset="ppi-mixed-cpu",
        progress=False,
        log_every=1,
        checkpoint_every=1,
    )
    final = tmp_path / "a" / "checkpoints" / "iter_00000002.msgpack"
    middle = tmp_path / "a" / "checkpoints" / "iter_00000001.msgpack"
    template = exp.init(key_from_seed(0))
    state = runner.state_from_bytes(template, middle.read_bytes())
    state, _ = jax.jit(exp.update)(state)
    assert runner.state_to_bytes(state) == final.read_bytes()
    want = runner.state_from_bytes(template, final.read_bytes())
    # the buffer: D_0 untouched, 2 phases of 8 trajectories appended per learner
    np.testing.assert_array_equal(want.count, [40 + 2 * 8] * 2)
    np.testing.assert_array_equal(want.codes[:, :, :40], template.codes[:, :, :40])
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    for name in ("reward_vs_learner", "cooperation_vs_fixed", "total_loss"):
        assert name in json.dumps(record)
    assert summary["status"] == "completed"
    assert math.isfinite(summary["headline"]["reward_vs_fixed"])
    evaluation = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    assert {"learner_0", "learner_1"} <= {p["row"] for p in evaluation["pairs"]}
    prediction = np.asarray(
        evaluation["within_episode"]["panels"]["learner_0 vs tft"]["learner prediction"]
    )
    assert prediction.shape == (2, 10) and np.all((prediction > 0) & (prediction < 1))


def test_the_fit_learns_the_filled_rows_and_ignores_the_rest():
    # 20 always-CC trajectories, the unfilled rows hold always-DD ones: a model fitted
    # on the first 20 rows only predicts every token (o = CC, r = 1, a = C) almost
    # surely, so all three losses approach 0; with the DD rows mixed in they cannot.
    cfg = TINY.replace(
        pretrain_episodes=32, iterations=1, epochs=40, minibatch=8, lr=0.05
    )
    cfg = cfg.replace(weight_decay=0.0, num_seeds=1)
    algo = PPI(cfg)
    codes = jnp.full((cfg.capacity, cfg.episode_length), 3, jnp.int8).at[:20].set(0)
    fit = jax.jit(algo.fit)
    _, losses = fit(jax.random.key(0), codes, None, jnp.int32(20))
    assert np.all(np.asarray(losses) < 0.03)
    _, mixed = fit(jax.random.key(0), codes, None, jnp.int32(cfg.capacity))
    assert float(mixed[0]) > 0.05


def test_opponent_id_stores_the_co_players_table_and_zero_for_learners():
    cfg = TINY.replace(opponent_id=True, iterations=1, num_seeds=1, episodes=8)
    exp = cfg.experiment()
    state = exp.init(jax.random.key(0))
    d0 = np.asarray(state.z[0, 0, :40])
    pairs = np.exp(d0).reshape(-1, 5, 2).sum(-1)
    np.testing.assert_allclose(pairs, 1.0, atol=1e-5)  # log p, log(1 - p)
    new, _ = jax.jit(exp.update)(state)
    z = np.asarray(new.z[0, :, 40:48])  # [N, 8, 10]: 4 learner games, then 4 pool
    np.testing.assert_array_equal(z[:, :4], 0.0)
    pool = np.exp(z[:, 4:]).reshape(2, 4, 5, 2).sum(-1)
    np.testing.assert_allclose(pool, 1.0, atol=1e-5)


def test_the_acting_stream_is_the_training_stream():
    # With beta = 0 the improved policy is the prior: the action probabilities the
    # agent played with must be the model's teacher-forced predictions of a_t on
    # the decoded (o, r, a) stream of the same games.
    cfg = TINY.replace(beta=0.0, num_seeds=1)
    algo = PPI(cfg)
    params = jax.vmap(algo.model.init)(jax.random.split(jax.random.key(5), 2))
    params = jax.tree.map(lambda x: 3.0 * x, params)  # a far-from-uniform prior
    games, _ = jax.jit(algo.pool_games)(params, (), jax.random.key(6))
    one = jax.tree.map(lambda x: x[0], params)
    codes = 2 * games.actions[0, ..., 0] + games.actions[0, ..., 1]
    obs, rewards, actions = decode(codes, COALA)
    prior = algo.model.teacher_forced(one, obs, rewards, actions).action_logits
    want = jax.nn.softmax(prior)
    np.testing.assert_allclose(games.policy[0, :, :, 0], want, atol=1e-5)
    assert float(jnp.std(want[..., 0])) > 0.05


def test_the_tilt_metrics_measure_the_improved_policys_distance_from_the_prior():
    # beta = 0: the improved policy is the prior, KL 0 and the prior's cooperation
    # is the cooperation played (up to sampling); beta = 2: a positive KL
    params = None
    for beta in (0.0, 2.0):
        algo = PPI(
            TINY.replace(
                beta=beta, num_seeds=1, episodes=64, learner_share=0.0, num_learners=1
            )
        )
        if params is None:
            params = jax.vmap(algo.model.init)(jax.random.split(jax.random.key(5), 1))
            params = jax.tree.map(lambda x: 3.0 * x, params)
        _, metrics = jax.jit(algo.collect)(params, jax.random.key(7))
        kl = float(metrics["tilt_kl"][0])
        if beta == 0.0:
            assert abs(kl) < 1e-5
            played = float(metrics["cooperation_vs_fixed"][0])
            prior = float(metrics["prior_cooperation_vs_fixed"][0])
            assert abs(played - prior) < 0.03
        else:
            assert kl > 1e-3


def test_a_ppi_run_is_a_frozen_co_player_or_the_data_of_a_new_run(tmp_path):
    source = TINY.replace(
        num_learners=1, learner_share=0.0, iterations=1, num_seeds=1, eval_episodes=2
    )
    runner.run(
        source.experiment(), tmp_path / "step1", preset="ppi-step1-cpu", progress=False
    )
    _, trained = runner.load_checkpoint(tmp_path / "step1", source.experiment())
    with pytest.raises(ValueError, match="does not exist"):
        TINY.replace(frozen_from=str(tmp_path / "nosuch")).experiment()
    cfg = TINY.replace(
        num_learners=1,
        learner_share=1.0,
        pool="",
        frozen_from=str(tmp_path / "step1"),
        iterations=1,
    )
    exp = cfg.experiment()
    state = exp.init(jax.random.key(0))
    for seed in range(2):  # both seeds play seed 0 of the one-seed source
        jax.tree.map(
            lambda x, y, s=seed: np.testing.assert_array_equal(x[s, 1], y[0, 0]),
            state.params,
            trained.params,
        )
    new, metrics = jax.jit(exp.update)(state)
    jax.tree.map(
        lambda x, y: np.testing.assert_array_equal(x[:, 1], y[:, 1]),
        new.params,
        state.params,
    )
    assert new.codes.shape[1] == 1  # only the trainable learner keeps data
    assert metrics["reward_vs_learner"].shape == (2, 2)  # learner, then frozen
    assert metrics["total_loss"].shape == (2, 1)
    # init_from: the same run's whole buffer (D_0 and its phase) is a new D_0
    with pytest.raises(ValueError, match="set pretrain_episodes = 48"):
        TINY.replace(init_from=str(tmp_path / "step1")).experiment()
    cfg = TINY.replace(
        init_from=str(tmp_path / "step1"), pretrain_episodes=48, iterations=1
    )
    state = cfg.experiment().init(jax.random.key(0))
    for seed in range(2):
        for learner in range(2):  # every (seed, learner) takes the source's only one
            np.testing.assert_array_equal(
                state.codes[seed, learner, :48], trained.codes[0, 0]
            )


def test_the_prediction_series_is_the_models_probability_of_the_co_players_move():
    # Stepped token by token through the rollout interface (not the teacher-forced
    # pass under test): before o_{t+1} is fed, the predicted probability of the
    # co-player's actual move of round t, given the agent's own move.
    cfg = TINY.replace(num_seeds=1, num_learners=1, learner_share=0.0, episodes=8)
    algo = PPI(cfg)
    params = jax.vmap(algo.model.init)(jax.random.split(jax.random.key(8), 1))
    params = jax.tree.map(lambda x: 3.0 * x, params)
    games, _ = jax.jit(algo.pool_games)(params, (), jax.random.key(9))
    one = jax.tree.map(lambda x: x[0], params)
    mine = jax.tree.map(lambda x: x[0], games)
    got = np.asarray(algo.eval_series(one, mine)["prediction"])
    model, actions = algo.model, np.asarray(mine.actions)
    E, T = actions.shape[:2]
    h = model.initial_state((E,))
    obs, reward = np.zeros(E, np.int32), np.zeros(E, np.float32)
    want = []
    for t in range(T):
        h = model.feed_obs(one, h, jnp.asarray(obs))
        h = model.feed_reward(one, h, jnp.asarray(reward))
        h = model.feed_action(one, h, jnp.asarray(actions[:, t, 0]))
        p = np.asarray(jax.nn.softmax(model.predict(one, h).obs_logits))
        own, other = actions[:, t, 0], actions[:, t, 1]
        rows = np.arange(E)
        seen = p[rows, 1 + 2 * own + other]
        want.append(np.mean(seen / (p[rows, 1 + 2 * own] + p[rows, 2 + 2 * own])))
        obs = 1 + 2 * own + other
        reward = np.asarray(COALA)[own, other, 0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.std(want) > 0.01


def test_importing_training_turns_off_the_deadlocking_xla_cpu_scheduler():
    # a fresh process: the flag is added before JAX starts, and a user's own
    # setting of it is kept
    import os
    import subprocess
    import sys

    code = "import os, dilemmas.training; print(os.environ.get('XLA_FLAGS', ''))"
    for given, want in (
        ("", "--xla_cpu_enable_concurrency_optimized_scheduler=false"),
        (
            "--xla_cpu_enable_concurrency_optimized_scheduler=true",
            "--xla_cpu_enable_concurrency_optimized_scheduler=true",
        ),
    ):
        env = {**os.environ, "XLA_FLAGS": given}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True
        )
        assert out.stdout.strip() == want, out.stderr
