"""Trained agents as policies: ``policies/`` in run directories, ``load_policy``,
and the same agents in JAX loops, the Gymnasium face, the pools and Axelrod.

The references are outside the policy code: the checkpoint the run driver wrote
and the training code's own networks and agents (what the policy must reproduce),
the env's rewards (what the policy recovers from the observation), the analytic
run's evaluation.json, and the rule of tit-for-tat.
"""

from __future__ import annotations

import json

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents import from_function, load_policy, strategies
from dilemmas.agents.policy import (
    POLICY_DIR,
    NetworkPolicy,
    PolicyState,
    PPIPolicy,
    Trained,
    policy_files,
    policy_names,
)
from dilemmas.envs import make
from dilemmas.training import cli, runner
from dilemmas.training.analytic import AnalyticConfig
from dilemmas.training.coplayer import Coplayer, CoplayerConfig
from dilemmas.training.ppi import PPIConfig
from dilemmas.training.run_dir import load_checkpoint
from dilemmas.training.shaping import ShapingConfig

SHAPING = ShapingConfig(
    network="tabular",
    meta_batch=4,
    batch=3,
    num_inner_episodes=2,
    inner_episode_length=5,
    iterations=2,
    eval_meta_batch=2,
    num_seeds=2,
)
COPLAYER = CoplayerConfig(
    hidden=8,
    embed=4,
    batch=16,
    episode_length=10,
    iterations=2,
    eval_episodes=4,
    num_seeds=2,
    input_prev_action=True,
    input_prev_reward=True,
)
PPI = PPIConfig(
    pretrain_episodes=16,
    iterations=1,
    episodes=4,
    epochs=1,
    minibatch=8,
    hidden=8,
    embed=4,
    episode_length=6,
    rollouts=2,
    horizon=2,
    eval_episodes=2,
    num_seeds=2,
)


PRESET_OF = {  # a preset of each kind, so that export-policies can rebuild the run
    "shaping": "quickstart",
    "coplayer": "coplayer-a2c-step1",
    "analytic": "analytic-shaping",
    "ppi": "ppi-step1",
}


def _train(config, path, kind):
    experiment = config.experiment()
    runner.run(experiment, path, preset=PRESET_OF[kind], progress=False)
    return experiment


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        name: (root / name, _train(config, root / name, kind))
        for name, kind, config in (
            ("shaping", "shaping", SHAPING),
            ("coplayer", "coplayer", COPLAYER),
            (
                "analytic",
                "analytic",
                AnalyticConfig(iterations=2, meta_batch=2, num_seeds=2),
            ),
        )
    }


def _episode_obs(steps=8, seed=0):
    """Observations and rewards of an IPD episode with random actions."""
    env, params = make("ipd-v0", max_steps=steps)
    key = jax.random.key(seed)
    obs, state = env.reset(key, params)
    trace = []
    for t in range(steps):
        actions = jax.random.randint(jax.random.fold_in(key, t), (2,), 0, 2)
        ts = env.step(key, state, actions, params)
        trace.append((obs, actions, ts.reward))
        obs, state = ts.obs, ts.state
    return trace


def test_every_run_kind_writes_its_agents(runs):
    assert policy_names(runs["shaping"][0]) == ["meta_0"]
    assert policy_names(runs["coplayer"][0]) == ["learner_0", "learner_1"]
    assert policy_names(runs["analytic"][0]) == ["meta_0"]
    spec = json.loads((runs["shaping"][0] / POLICY_DIR / "meta_0.json").read_text())
    assert (spec["network"], spec["env_id"], spec["num_seeds"]) == (
        "TabularPolicy",
        "ipd-v0",
        2,
    )


def test_shaping_meta_agent_acts_like_its_checkpointed_network(runs):
    path, experiment = runs["shaping"]
    _, state = load_checkpoint(path, experiment)
    net = experiment.algo.net
    params = jax.tree.map(lambda x: x[1, 0], state.params)
    policy = load_policy(path, "meta_0", seed=1)
    assert isinstance(policy, NetworkPolicy)
    carry, p_state = net.initial_state(), policy.init()
    for t, (obs, actions, _) in enumerate(_episode_obs()):
        carry, out = net.apply(params, carry, obs[0], jnp.asarray(t == 0))
        new_carry, logits = policy.logits(p_state, obs[0])
        np.testing.assert_allclose(logits, out.logits, rtol=1e-6, atol=1e-6)
        p_state = PolicyState(new_carry, actions[0], p_state.t + 1)
    # The other seed is another agent.
    other = load_policy(path, "meta_0", seed=0)
    assert not np.allclose(
        other.logits(other.init(), _episode_obs()[0][0][0])[1],
        policy.logits(policy.init(), _episode_obs()[0][0][0])[1],
    )


def test_coplayer_learner_recovers_its_previous_reward_from_the_observation(runs):
    # The A2C learner reads its previous action and reward; the policy is given
    # only observations, and must feed the network what the env paid.
    path, experiment = runs["coplayer"]
    _, state = load_checkpoint(path, experiment)
    algo: Coplayer = experiment.algo
    params = jax.tree.map(lambda x: x[0, 1], state.params)
    policy = load_policy(path, "learner_1", seed=0)
    carry = algo.net.initial_state()
    prev_action, prev_reward = jnp.asarray(-1), jnp.asarray(0.0)
    p_state = policy.init()
    for obs, actions, reward in _episode_obs(seed=3):
        x = algo.inputs.step(obs[0], prev_action, prev_reward)
        carry, out = algo.net.apply(params, carry, x, jnp.asarray(False))
        new_carry, logits = policy.logits(p_state, obs[0])
        np.testing.assert_allclose(logits, out.logits, rtol=1e-5, atol=1e-6)
        p_state = PolicyState(new_carry, actions[0], p_state.t + 1)
        prev_action, prev_reward = actions[0], reward[0]


def test_analytic_agent_is_its_memory_one_vector(runs):
    path, _ = runs["analytic"]
    evaluation = json.loads((path / "evaluation.json").read_text())
    for seed in range(2):
        policy = load_policy(path, seed=seed)
        assert isinstance(policy, strategies.MemoryOne)
        np.testing.assert_allclose(
            policy.probs, evaluation["memory_one"]["meta_0"][seed], rtol=1e-6
        )


@pytest.mark.slow
def test_ppi_learner_decides_like_the_training_agent(tmp_path):
    experiment = _train(PPI, tmp_path / "ppi", "ppi")
    _, state = load_checkpoint(tmp_path / "ppi", experiment)
    algo = experiment.algo
    agent = algo.learner_side(jax.tree.map(lambda x: x[1, 0], state.params), None)
    policy = load_policy(tmp_path / "ppi", "learner_0", seed=1)
    assert isinstance(policy, PPIPolicy)
    carry = agent.start_carry(jax.random.key(0), 1)
    p_state = policy.init()
    prev_reward = jnp.zeros((1,))
    for t, (obs, _, reward) in enumerate(_episode_obs(PPI.episode_length, seed=5)):
        key = jax.random.key(100 + t)
        carry, action, _, _ = agent.act(
            carry, obs[:1], jnp.asarray([-1]), prev_reward, key
        )
        p_action, p_state = policy.act(key, p_state, obs[0])
        assert int(p_action) == int(action[0])
        np.testing.assert_allclose(p_state.carry, carry[0], rtol=1e-5, atol=1e-6)
        # Both go on from the env's joint action, not their own samples.
        prev_reward = reward[:1]
        del reward


def test_loaded_policies_jit_and_vmap_in_rollouts(runs):
    policy = load_policy(runs["shaping"][0])
    env, params = make("ipd-v0", max_steps=10)
    keys = jax.random.split(jax.random.key(0), 4)
    play = jax.jit(
        jax.vmap(
            lambda k: strategies.rollout(k, policy, strategies.make("tft"), params, 10)
        )
    )
    actions = np.asarray(play(keys).actions)
    assert actions.shape == (4, 10, 2)
    # TFT copies the policy's previous move.
    np.testing.assert_array_equal(actions[:, 1:, 1], actions[:, :-1, 0])
    np.testing.assert_array_equal(actions[:, 0, 1], 0)


def test_gymnasium_co_player_is_the_loaded_table(runs):
    # A greedy tabular meta agent as the co-player: each of its moves is the
    # argmax of its table at the state it sees (its own previous move first).
    policy = load_policy(runs["shaping"][0], greedy=True)
    table = np.stack(
        [
            np.asarray(
                policy.network.apply(policy.params, (), jax.nn.one_hot(i, 5), False)[
                    1
                ].logits
            )
            for i in range(5)
        ]
    )
    env = gymnasium.make("dilemmas/IPD-v0", co_player=policy)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    state = 0
    for _ in range(12):
        action = int(rng.integers(2))
        _, _, terminated, truncated, info = env.step(action)
        co = info["co_player_action"]
        assert co == int(np.argmax(table[state]))
        state = 1 + 2 * co + action  # the co-player's view: own move first
        if terminated or truncated:
            break


def test_tft_written_as_a_policy_file_plays_tft_in_a_pool(tmp_path):
    # A memory-one policy file with TFT's logits, used as `policy:DIR` in a pool:
    # the co-player opens with C and then copies the learner's previous move.
    logits = jnp.asarray([[20.0, 20.0, -20.0, 20.0, -20.0]])  # one seed
    spec, data = policy_files(Trained("memory_one", logits, (5,), "ipd-v0"))
    (tmp_path / POLICY_DIR).mkdir()
    (tmp_path / POLICY_DIR / "meta_0.json").write_bytes(spec)
    (tmp_path / POLICY_DIR / "meta_0.msgpack").write_bytes(data)
    cfg = COPLAYER.replace(pool=f"policy:{tmp_path}", num_seeds=1)
    algo = Coplayer(cfg)
    params = algo.init_network(jax.random.key(1))

    @jax.jit
    def play(key):
        from dilemmas.training.coplayer import Fixed, Learner

        k_draw, k_start, k_play = jax.random.split(key, 3)
        entry = algo.pool.draw(k_draw, cfg.batch)
        start = algo.pool.start((), k_start, entry)
        return algo.play(Learner(params, None), Fixed(algo.pool, (), start), k_play, 16)

    actions = np.asarray(play(jax.random.key(0)).actions)  # [B, T, 2]
    np.testing.assert_array_equal(actions[:, 0, 1], 0)
    np.testing.assert_array_equal(actions[:, 1:, 1], actions[:, :-1, 0])
    assert 0 < actions[..., 0].mean() < 1  # the learner's moves vary


def test_a_function_is_a_policy():
    tft = from_function(lambda key, obs: (obs[2] + obs[4] > 0).astype(jnp.int32))
    _, params = make("ipd-v0", max_steps=6)
    out = strategies.rollout(
        jax.random.key(0), tft, strategies.make("alternator"), params, 6
    )
    # Alternator plays C, D, C, D...; TFT plays C then copies it.
    np.testing.assert_array_equal(np.asarray(out.actions)[:, 0], [0, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="callable"):
        from_function(3)


def test_axelrod_player_plays_the_trained_table(runs):
    axl = pytest.importorskip("axelrod")
    from dilemmas.analysis.tournament import players_from_policies

    players = players_from_policies(runs["shaping"][0])
    assert [p.name for p in players] == [
        f"{runs['shaping'][0].name}:meta_0[seed {s}]" for s in range(2)
    ]
    match = axl.Match((players[1], axl.TitForTat()), turns=8, seed=1)
    moves = match.play()
    assert len(moves) == 8 and all(m[0] in (axl.Action.C, axl.Action.D) for m in moves)


def test_export_policies_rewrites_the_same_files(runs, capsys):
    path, _ = runs["coplayer"]
    before = {p.name: p.read_bytes() for p in (path / POLICY_DIR).iterdir()}
    for p in (path / POLICY_DIR).iterdir():
        p.unlink()
    assert cli.main(["export-policies", str(path)]) == 0
    assert "learner_0, learner_1" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in (path / POLICY_DIR).iterdir()}
    assert after == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: load_policy(p / "nope"), "does not exist"),
        (lambda p: load_policy(p, "meta_7"), "has no agent 'meta_7'"),
        (lambda p: load_policy(p, seed=2), r"seed must be an int in \[0, 2\)"),
        (lambda p: load_policy(p, env_id="coin_game-v0"), "trained on ipd-v0"),
    ],
)
def test_bad_requests_are_refused(runs, call, message):
    with pytest.raises(ValueError, match=message):
        call(runs["shaping"][0])


def test_missing_and_corrupted_files_are_refused(runs, tmp_path):
    with pytest.raises(ValueError, match="dilemmas export-policies"):
        load_policy(tmp_path)
    folder = tmp_path / POLICY_DIR
    folder.mkdir()
    source = runs["coplayer"][0] / POLICY_DIR
    (folder / "learner_0.json").write_bytes((source / "learner_0.json").read_bytes())
    data = (source / "learner_0.msgpack").read_bytes()
    (folder / "learner_0.msgpack").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read the parameters of learner_0"):
        load_policy(tmp_path)
    spec = json.loads((source / "learner_0.json").read_text())
    spec["network_kwargs"]["hidden_size"] = 16
    (folder / "learner_0.json").write_text(json.dumps(spec))
    (folder / "learner_0.msgpack").write_bytes(data)
    with pytest.raises(ValueError, match="do not match its spec"):
        load_policy(tmp_path)
