"""Data parallelism over every device: a 1-D ``"batch"`` mesh (the devices of all
processes once :mod:`dilemmas.training.distributed` has joined them).

The training loops split their episode (or meta-batch) axis over
``jax.devices()`` with :func:`jax.lax.with_sharding_constraint`; XLA partitions
the rollouts and reduces the gradients. With one device nothing is constrained, so
the same code runs on one CPU, one GPU or a many-device host.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def batch_mesh() -> Mesh | None:
    """A 1-D mesh named ``"batch"`` over every device; ``None`` with one device."""
    devices = jax.devices()
    if len(devices) < 2:
        return None
    return Mesh(np.asarray(devices), ("batch",))


def shard_leading(mesh: Mesh | None, tree: Any) -> Any:
    """Constrain every leaf's leading axis to be split over ``mesh``'s devices.

    Leaves whose leading axis the device count does not divide (and every leaf,
    without a mesh) are left unconstrained.
    """
    if mesh is None:
        return tree
    count = mesh.devices.size

    def constrain(x):
        if getattr(x, "ndim", 0) == 0 or x.shape[0] % count:
            return x
        spec = PartitionSpec("batch", *([None] * (x.ndim - 1)))
        return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

    return jax.tree.map(constrain, tree)
