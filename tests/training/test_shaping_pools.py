"""Pools of the shaping loop: per-agent estimators (COALA-PG App. H.3) and dynamic
naive agents (spec ``coala_pg.md`` §1.7).

The expected results come from the single-estimator and static-naive code paths
run on hand-built inputs: an agent of a mixed pool must take exactly the update it
takes in a pool of its own estimator (the opponents drawn and the episodes played
depend on the keys, not on the estimators), and a dynamic-naive iteration must equal
a static one whose naive initialisations were replaced by hand with copies of the
meta agents (``k mod pool_size``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.training.shaping import Shaping, ShapingConfig
from dilemmas.training.shaping_eval import evaluate
from dilemmas.training.shaping_presets import PRESETS

POOL = dict(
    network="tabular",
    meta_batch=8,
    batch=3,
    num_inner_episodes=3,
    inner_episode_length=4,
    iterations=2,
    eval_meta_batch=2,
    pool_size=2,
    p_naive=0.75,
)


def one_update(**changes):
    algo = Shaping(ShapingConfig(**{**POOL, **changes}))
    state = algo.init(jax.random.key(3))
    new_state, metrics = jax.jit(algo.update)(state)
    return algo, state, new_state, metrics


def agent(params, i):
    return jax.tree.map(lambda x: np.asarray(x[i]), params)


def assert_trees_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), a, b)


def trees_differ(a, b) -> bool:
    return any(
        not np.allclose(x, y, atol=1e-6)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pool_estimators": "coala,dice"}, r"unknown estimator\(s\) \['dice'\]"),
        ({"pool_estimators": "coala"}, "names 1 estimators for pool_size = 2"),
        ({"pool_estimators": ["coala", "mfos"]}, "must be a comma-separated string"),
        ({"dynamic_naive_agents": "yes"}, "dynamic_naive_agents must be true or"),
    ],
)
def test_config_rejects_bad_pool_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        ShapingConfig(**{**POOL, **changes})


def test_agent_estimators_default_to_the_shared_estimator():
    assert ShapingConfig(**POOL).agent_estimators == ("coala", "coala")
    cfg = ShapingConfig(**{**POOL, "pool_estimators": " mfos, coala"})
    assert cfg.agent_estimators == ("mfos", "coala")


def test_each_agent_of_a_mixed_pool_updates_with_its_own_estimator():
    _, start, mixed, _ = one_update(pool_estimators="coala,mfos")
    _, start_c, coala, _ = one_update(estimator="coala")
    _, start_m, mfos, _ = one_update(estimator="mfos")
    # The same start (initialisation does not depend on the estimators) ...
    assert_trees_close(start.params, start_c.params)
    assert_trees_close(start.params, start_m.params)
    # ... and the two estimators give different updates here, so the test can fail.
    assert trees_differ(agent(coala.params, 0), agent(mfos.params, 0))
    assert trees_differ(agent(coala.params, 1), agent(mfos.params, 1))
    assert_trees_close(agent(mixed.params, 0), agent(coala.params, 0))
    assert_trees_close(agent(mixed.params, 1), agent(mfos.params, 1))


def test_a_pool_of_one_estimator_named_per_agent_equals_the_shared_field():
    _, _, named, _ = one_update(pool_estimators="mfos,mfos")
    _, _, shared, _ = one_update(estimator="mfos")
    assert_trees_close(named.params, shared.params)


def test_dynamic_naive_agents_start_from_copies_of_the_meta_agents():
    cfg = ShapingConfig(**{**POOL, "naive_pool_size": 3})
    static = Shaping(cfg)
    dynamic = Shaping(cfg.replace(dynamic_naive_agents=True))
    # Meta agents with random logits, far from the naive initialisations (tabular
    # policies start uniform).
    state = static.init(jax.random.key(5))
    leaves, treedef = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.key(6), len(leaves))
    random = [
        2.0 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)
    ]
    state = state._replace(params=jax.tree.unflatten(treedef, random))
    # By hand: naive initialisation k is meta agent k mod 2 (0, 1, 0).
    copies = jax.tree.map(lambda x: x[jnp.array([0, 1, 0])], state.params)
    expected, expected_metrics = jax.jit(static.update)(
        state._replace(naive_params=copies)
    )
    got, got_metrics = jax.jit(dynamic.update)(state)
    assert_trees_close(got.params, expected.params)
    np.testing.assert_allclose(
        got_metrics["naive_reward"], expected_metrics["naive_reward"], atol=1e-6
    )
    # The switch matters: with the static initialisations the update differs.
    plain, _ = jax.jit(static.update)(state)
    assert trees_differ(plain.params, got.params)


def test_dynamic_naive_agents_follow_the_meta_agents_every_iteration():
    algo = Shaping(
        ShapingConfig(**{**POOL, "naive_pool_size": 2, "dynamic_naive_agents": True})
    )
    state = algo.init(jax.random.key(0))
    state, _ = jax.jit(algo.update)(state)
    assert_trees_close(algo.naive_inits(state), state.params)
    assert trees_differ(state.naive_params, state.params)


def test_evaluation_plays_dynamic_naive_agents_and_names_each_agents_estimator():
    cfg = ShapingConfig(
        **{
            **POOL,
            "num_seeds": 1,
            "dynamic_naive_agents": True,
            "pool_estimators": "coala,mfos",
        }
    )
    exp = cfg.experiment()
    state = exp.init(jax.random.key(0))
    record = evaluate(exp.algo, state)
    assert record["estimators"] == ["coala", "mfos"]
    rows = {(p["row"], p["col"]) for p in record["pairs"]}
    assert {("meta_0", "meta_1"), ("meta_1", "meta_0"), ("meta_0", "naive")} <= rows


def test_summary_splits_the_headline_by_estimator():
    cfg = ShapingConfig(**{**POOL, "num_seeds": 2, "pool_estimators": "coala,mfos"})
    exp = cfg.experiment()
    state = exp.init(jax.random.key(0))
    state, metrics = jax.jit(exp.update)(state)
    summary = exp.summary(state, metrics)
    reward = np.asarray(metrics["reward_vs_meta"], np.float64)  # [seeds, agents]
    np.testing.assert_allclose(summary["reward_vs_meta [coala]"], reward[:, 0])
    np.testing.assert_allclose(summary["reward_vs_meta [mfos]"], reward[:, 1])
    np.testing.assert_allclose(summary["reward_vs_meta"], reward.mean(axis=1))


def test_pool_presets_follow_the_paper():
    h3 = PRESETS["ipd-coala-mfos"]
    assert h3.agent_estimators == ("coala", "coala", "mfos", "mfos")
    assert (h3.p_naive, h3.meta_batch, h3.iterations) == (0.75, 128, 3000)
    shaping = PRESETS["cleanup_lite-shaping"]
    # spec §7.1: B-bar 512, B 32, M 100, T 64, 10 static naive agents.
    assert (shaping.meta_batch, shaping.batch) == (512, 32)
    assert (shaping.num_inner_episodes, shaping.inner_episode_length) == (100, 64)
    assert (shaping.naive_pool_size, shaping.dynamic_naive_agents) == (10, False)
    assert shaping.steps_per_iteration == 104_857_600
    mixed = PRESETS["cleanup_lite-mixed"]
    assert (mixed.meta_batch, mixed.batch, mixed.num_inner_episodes) == (512, 64, 5)
    assert (mixed.pool_size, mixed.naive_pool_size, mixed.p_naive) == (3, 3, 0.75)
    assert mixed.dynamic_naive_agents and mixed.algorithm == "a2c"
    assert (mixed.naive_optimiser, mixed.naive_lr, mixed.naive_gamma) == (
        "sgd",
        1.0,
        1.0,
    )
    assert (mixed.lr, mixed.iterations) == (0.1, 30000)
    assert PRESETS["cleanup_lite-mixed-mfos"].lr == 0.03
    assert PRESETS["cleanup_lite-shaping-mfos"].lr == 3e-3
