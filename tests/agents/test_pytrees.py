"""Policy classes keep distinct pytree structures (jit caches key on them)."""

from __future__ import annotations

import itertools

import jax
import pytest
from flax import struct

from dilemmas.agents import strategies
from dilemmas.agents.pytrees import policy_dataclass
from dilemmas.agents.scripted import cleanup, cleanup_lite, coin_game, harvest
from dilemmas.envs import make

GAMES = {
    "cleanup-v0": cleanup,
    "cleanup_lite-v0": cleanup_lite,
    "coin_game-v0": coin_game,
    "harvest-v0": harvest,
}


def _policies() -> list:
    policies = [strategies.make(name) for name in strategies.NAMES]
    for env_id, module in GAMES.items():
        env, _ = make(env_id)
        policies += [module.co_player(name, env) for name in module.POLICIES]
    return policies


def test_bare_flax_dataclasses_of_two_classes_compare_equal():
    # The JAX behaviour policy_dataclass guards against: if this starts failing,
    # JAX compares the classes again and the guard is no longer needed.
    @struct.dataclass
    class A:
        pass

    @struct.dataclass
    class B:
        pass

    assert jax.tree.structure(A()) == jax.tree.structure(B())


def test_policies_of_different_classes_have_different_structures():
    policies = _policies()
    assert len({type(p) for p in policies}) >= 15
    for a, b in itertools.combinations(policies, 2):
        if type(a) is not type(b):
            assert jax.tree.structure(a) != jax.tree.structure(b), (a, b)


@pytest.mark.parametrize("cls", [strategies.Grim, strategies.TitForTwoTats])
def test_the_class_field_is_static_and_hidden(cls):
    policy = cls()
    assert jax.tree.leaves(policy) == []
    assert repr(policy) == f"{cls.__name__}()"
    assert policy.pytree_class == f"{cls.__module__}.{cls.__qualname__}"
    assert jax.tree.unflatten(jax.tree.structure(policy), []) == policy


def test_policy_dataclass_keeps_fields_and_defaults():
    @policy_dataclass
    class Scaled:
        w: jax.Array
        k: int = struct.field(pytree_node=False, default=3)

    x = Scaled(w=jax.numpy.ones(2))
    assert x.k == 3 and len(jax.tree.leaves(x)) == 1
    assert jax.jit(lambda s: s.w * s.k)(x).tolist() == [3.0, 3.0]
