"""Harvest's neighbour counts against a brute-force reference (issue #16).

:func:`dilemmas.envs.harvest.neighbour_counts` sums shifted copies of the padded
apple map. The reference here visits every cell and every offset within 2 cells in
plain Python loops and counts the apples at squared distance ``1 .. radius_sq`` that
lie on the map (cells outside the map hold no apple). The counts are compared on
random apple maps of many shapes, and whole rollouts of the library's Harvest are
compared, state by state, with rollouts whose regrowth reads the reference's counts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.envs import harvest
from dilemmas.envs.harvest import Harvest


def brute_force_counts(apples: np.ndarray, radius_sq: int) -> np.ndarray:
    """``int32[H, W]``: apples at squared distance ``1 .. radius_sq``, by loops."""
    apples = np.asarray(apples, bool)
    height, width = apples.shape
    counts = np.zeros((height, width), np.int32)
    for row in range(height):
        for col in range(width):
            for dr in range(-2, 3):
                for dc in range(-2, 3):
                    distance_sq = dr * dr + dc * dc
                    if not 1 <= distance_sq <= radius_sq:
                        continue
                    r, c = row + dr, col + dc
                    if 0 <= r < height and 0 <= c < width and apples[r, c]:
                        counts[row, col] += 1
    return counts


SHAPES = [(1, 1), (1, 6), (5, 1), (2, 2), (3, 4), (5, 5), (8, 13), (15, 22)]
DENSITIES = [0.1, 0.5, 0.9]
JIT_COUNTS = jax.jit(harvest.neighbour_counts)


def test_reference_corners_and_edges_of_a_full_map():
    # Hand-checked reference: on a full 5 x 5 map with Melting Pot's radius
    # (d² <= 4), a corner sees 5 apples, the middle of an edge 8, the centre 12.
    counts = brute_force_counts(np.ones((5, 5), bool), 4)
    assert counts[0, 0] == counts[4, 4] == counts[0, 4] == counts[4, 0] == 5
    assert counts[0, 2] == counts[2, 0] == 8 and counts[2, 2] == 12
    assert (brute_force_counts(np.ones((5, 5), bool), 8)[2, 2]) == 24


@pytest.mark.parametrize("shape", SHAPES)
def test_neighbour_counts_match_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    maps = [rng.random(shape) < density for density in DENSITIES]
    maps += [np.ones(shape, bool), np.zeros(shape, bool)]
    for apples in maps:
        for radius_sq in range(harvest.MAX_RADIUS_SQ + 1):
            expected = brute_force_counts(apples, radius_sq)
            # A Python radius, and a traced one as in the params.
            eager = harvest.neighbour_counts(jnp.asarray(apples), radius_sq)
            traced = JIT_COUNTS(jnp.asarray(apples), jnp.int32(radius_sq))
            for counts in (eager, traced):
                assert counts.dtype == jnp.int32 and counts.shape == shape
                np.testing.assert_array_equal(np.asarray(counts), expected)


def test_neighbour_counts_batched():
    rng = np.random.default_rng(7)
    apples = rng.random((6, 9, 11)) < 0.4
    radii = jnp.asarray([0, 1, 2, 4, 5, 8], jnp.int32)
    counts = jax.jit(jax.vmap(harvest.neighbour_counts))(jnp.asarray(apples), radii)
    for i, radius_sq in enumerate(np.asarray(radii)):
        expected = brute_force_counts(apples[i], int(radius_sq))
        np.testing.assert_array_equal(np.asarray(counts[i]), expected)


# ---------------------------------------------------------------- rollouts

# No wall border: grass on every edge and in every corner, so the regrowth of the
# rollouts depends on how cells beside the map's edge are counted.
LAYOUT = """
AAA.AA..AAA
AA.AAA.A.AA
A..A.AAA..A
.AAA...AA.A
AA.AA.A.AAA
A.AA..AAA.A
AAA.AA.AAAA
"""
NUM_AGENTS = 3
STEPS = 60
NUM_KEYS = 4
# A probability for every count up to 12, so a count off by one changes the odds.
REGROWTH = tuple(np.linspace(0.0, 0.6, 13))


def _reference_counts(apples, radius_sq):
    def host(apples, radius_sq):
        return brute_force_counts(np.asarray(apples), int(radius_sq))

    shape = jax.ShapeDtypeStruct(apples.shape, jnp.int32)
    return jax.pure_callback(
        host, shape, apples, jnp.asarray(radius_sq), vmap_method="sequential"
    )


class ReferenceHarvest(Harvest):
    """Harvest traced while ``neighbour_counts`` is the brute-force reference (a
    class of its own, so its compiled steps are not shared with the library's)."""


def _rollouts(env, params, start, keys):
    """Every state of ``STEPS`` random-action steps from ``start``, per key."""

    def episode(key):
        def body(state, key):
            key_act, key_step = jax.random.split(key)
            actions = jax.random.randint(key_act, (NUM_AGENTS,), 0, env.num_actions)
            ts = env.step(key_step, state, actions, params)
            return ts.state, ts.state

        _, states = jax.lax.scan(body, start, jax.random.split(key, STEPS))
        return states

    return jax.vmap(episode)(keys)


ROLLOUTS = jax.jit(_rollouts, static_argnums=0)
STATE_FIELDS = ("pos", "orientation", "removed", "zap_timer", "apples", "t")


def test_rollouts_match_brute_force_regrowth(monkeypatch):
    env = Harvest(num_agents=NUM_AGENTS, layout=LAYOUT, view=(3, 1, 2, 2))
    reference_env = ReferenceHarvest(
        num_agents=NUM_AGENTS, layout=LAYOUT, view=(3, 1, 2, 2)
    )
    edge = np.zeros(env.grass.shape, bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    cases = []
    for radius_sq in (1, 2, 4, 5, 8):
        params = env.make_params(
            regrowth_probabilities=REGROWTH, regrowth_radius_sq=radius_sq
        )
        _, start = env.reset(jax.random.key(radius_sq), params)
        # Start from about half the apples, so that regrowth begins at once.
        rng = np.random.default_rng(radius_sq)
        half = env.grass & (rng.random(env.grass.shape) < 0.5)
        start = start.replace(apples=jnp.asarray(half))
        keys = jax.random.split(jax.random.key(100 + radius_sq), NUM_KEYS)
        cases.append((radius_sq, params, start, keys))
    ours = [ROLLOUTS(env, params, start, keys) for _, params, start, keys in cases]

    monkeypatch.setattr(harvest, "neighbour_counts", _reference_counts)
    for (radius_sq, params, start, keys), states in zip(cases, ours, strict=True):
        reference = ROLLOUTS(reference_env, params, start, keys)
        for name in STATE_FIELDS:
            np.testing.assert_array_equal(
                np.asarray(getattr(states, name)),
                np.asarray(getattr(reference, name)),
                f"{name}, regrowth_radius_sq {radius_sq}",
            )
        # The comparison means something: apples regrew often, on the edges too.
        apples = np.asarray(states.apples)
        first = np.broadcast_to(np.asarray(start.apples), apples[:, :1].shape)
        grown = apples & ~np.concatenate([first, apples[:, :-1]], axis=1)
        assert grown.sum() > 100 and grown[..., edge].sum() > 30, radius_sq
