"""Suite-wide fixtures."""

from __future__ import annotations

import gc

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    XLA on CPU maps each compiled program into a few memory regions; one process
    running the whole suite compiled enough of them to reach the kernel's limit on
    mappings (``vm.max_map_count``, 65530), and the next compilation crashed the
    interpreter with a segmentation fault. Clearing the caches between modules
    releases the mappings; tests inside one module still share compilations.
    """
    yield
    jax.clear_caches()
    gc.collect()
