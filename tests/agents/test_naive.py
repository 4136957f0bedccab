"""The naive learner's pieces against hand-computed numbers."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from dilemmas.agents.naive import discounted_returns, first_step_resets


def test_discounted_returns_by_hand():
    # G_2 = 3; G_1 = 2 + 0.5 * 3 = 3.5; G_0 = 1 + 0.5 * 3.5 = 2.75 (and per column).
    rewards = jnp.array([[1.0, 0.0], [2.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(
        discounted_returns(rewards, 0.5), [[2.75, 1.0], [3.5, 2.0], [3.0, 4.0]]
    )


def test_first_step_resets():
    np.testing.assert_array_equal(
        first_step_resets(3, 2), [[True, True], [False, False], [False, False]]
    )
