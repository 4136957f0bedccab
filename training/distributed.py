"""Runs over several processes and hosts: ``jax.distributed`` and a global mesh.

``dilemmas train`` runs unchanged over several processes (one per host, or several
on one machine): each process calls :func:`initialize` before anything touches a
JAX device, ``jax.devices()`` then lists the devices of every process, and the
run driver (:mod:`dilemmas.training.runner`) places the training state on the
1-D ``"batch"`` mesh over all of them (:func:`state_shardings`: the leading
``[num_seeds]`` axis split over the devices when their number divides it,
replicated otherwise); the training loops split their meta-batch over the same
devices (:func:`dilemmas.training.sharding.batch_mesh`). Every process runs the
same compiled program on its own devices and XLA's collectives join them (on CPU
through gloo).

Where the processes find each other, by precedence:

* the flags ``--coordinator HOST:PORT --num-processes N --process-id I`` of
  ``dilemmas train`` (the arguments of :func:`initialize`);
* the environment variables ``DILEMMAS_COORDINATOR``,
  ``DILEMMAS_NUM_PROCESSES`` and ``DILEMMAS_PROCESS_ID``
  (:func:`initialize_from_env`);
* ``--coordinator auto`` (or ``DILEMMAS_COORDINATOR=auto``): JAX detects the
  cluster (SLURM, Open MPI, Kubernetes and the other environments that
  :func:`jax.distributed.initialize` knows) and reads all three from it.

Nothing given: one process, and nothing here changes a run.

Who does what: process 0 (:func:`is_writer`) alone creates, locks and writes the
run directory (config, metrics, checkpoints, evaluation, summary); the others
compute, read the checkpoint when they resume, and write nothing, so the run
directory must be on a file system every process sees (the same path). Reading
the state on the host gathers its pieces from every process
(:func:`host_state`, a collective: every process calls it at the same point).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

#: Environment variables read by :func:`initialize_from_env`.
COORDINATOR_ENV = "DILEMMAS_COORDINATOR"
NUM_PROCESSES_ENV = "DILEMMAS_NUM_PROCESSES"
PROCESS_ID_ENV = "DILEMMAS_PROCESS_ID"
#: The coordinator value that lets JAX detect the cluster (SLURM, MPI, ...).
AUTO = "auto"


def _int_or_none(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {number}")
    return number


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Join this process to a multi-process run (``jax.distributed.initialize``).

    Call it before anything uses a JAX device. CPU collectives go through gloo (set
    here, as JAX requires, before the runtime starts).

    Args:
      coordinator: ``HOST:PORT`` of process 0's coordination service, ``"auto"``
        to let JAX detect the cluster, or ``None`` for a one-process run.
      num_processes: the number of processes (``None`` with ``"auto"``).
      process_id: this process's index, ``0 <= process_id < num_processes``.

    Returns:
      Whether ``jax.distributed`` is initialised (``False``: one process); a
      second call with a coordinator finds it initialised and does nothing.

    Raises:
      ValueError: an incomplete or inconsistent set of arguments (checked before
        anything starts).
    """
    num_processes = _int_or_none("num_processes", num_processes)
    process_id = _int_or_none("process_id", process_id)
    if coordinator in (None, ""):
        if num_processes is not None or process_id is not None:
            raise ValueError(
                "--num-processes and --process-id need --coordinator HOST:PORT "
                f"(or {COORDINATOR_ENV}); use --coordinator auto on a cluster JAX "
                "detects"
            )
        return False
    if coordinator == AUTO:
        if num_processes is not None or process_id is not None:
            raise ValueError(
                "--coordinator auto reads the number of processes and the process "
                "id from the cluster; drop --num-processes and --process-id"
            )
        _start()
        return True
    if ":" not in coordinator:
        raise ValueError(f"the coordinator must be HOST:PORT, got {coordinator!r}")
    if num_processes is None or process_id is None:
        raise ValueError(
            "a coordinator needs --num-processes and --process-id (or "
            f"{NUM_PROCESSES_ENV} and {PROCESS_ID_ENV})"
        )
    if num_processes < 1 or process_id >= num_processes:
        raise ValueError(
            f"process_id = {process_id} must be in [0, num_processes = {num_processes})"
        )
    _start(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
    )
    return True


def _start(**arguments: Any) -> None:
    """``jax.distributed.initialize(**arguments)`` unless it ran already."""
    if jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**arguments)


def initialize_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """:func:`initialize` from ``DILEMMAS_COORDINATOR``, ``DILEMMAS_NUM_PROCESSES``
    and ``DILEMMAS_PROCESS_ID``; arguments that are not ``None`` (the command
    line's flags) take precedence over the variables."""
    environ = os.environ if environ is None else environ
    return initialize(
        coordinator if coordinator is not None else environ.get(COORDINATOR_ENV),
        num_processes if num_processes is not None else environ.get(NUM_PROCESSES_ENV),
        process_id if process_id is not None else environ.get(PROCESS_ID_ENV),
    )


def is_writer() -> bool:
    """Whether this process writes the run directory (process 0)."""
    return jax.process_index() == 0


def multi_process() -> bool:
    """Whether the run spans several processes."""
    return jax.process_count() > 1


def state_shardings(mesh: Mesh | None, state: Any) -> Any:
    """Where each leaf of a ``[num_seeds, ...]`` state lives on ``mesh``: its
    leading axis split over the devices when their number divides it, replicated
    otherwise (and everything replicated when it does not divide ``num_seeds``, so
    that a seed's leaves stay together); ``None`` without a mesh."""
    if mesh is None:
        return None
    count = mesh.devices.size
    leaves = jax.tree.leaves(state)
    split = bool(leaves) and all(
        np.ndim(x) > 0 and np.shape(x)[0] % count == 0 for x in leaves
    )

    def where(x):
        if split:
            return NamedSharding(mesh, PartitionSpec("batch"))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(where, state)


def place(state: Any, shardings: Any) -> Any:
    """Put a state (the same values on every process) where ``shardings`` say;
    unchanged without shardings."""
    if shardings is None:
        return state

    def put(x, sharding):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        if _is_key(x):
            data = put(jax.random.key_data(x), _key_data_sharding(sharding))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        local = np.asarray(x)
        return jax.make_array_from_callback(
            local.shape, sharding, lambda index: local[index]
        )

    return jax.tree.map(put, state, shardings)


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key
    )


def _key_data_sharding(sharding: NamedSharding) -> NamedSharding:
    """The sharding of a key array's raw data (one more, trailing, axis)."""
    return NamedSharding(sharding.mesh, PartitionSpec(*sharding.spec, None))


def _gathered(x: Any) -> np.ndarray:
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def host_state(state: Any) -> Any:
    """The whole state on this process's default device: a collective over the
    processes (call it on every process at the same point); ``state`` itself in a
    one-process run."""
    if not multi_process():
        return state

    def local(x):
        if _is_key(x):
            data = _gathered(jax.random.key_data(x))
            return jax.random.wrap_key_data(
                jax.numpy.asarray(data), impl=jax.random.key_impl(x)
            )
        return jax.numpy.asarray(_gathered(x))

    return jax.tree.map(local, state)


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (a collective; ``flag`` itself in a
    one-process run)."""
    if not multi_process():
        return bool(flag)
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.asarray([flag], np.int32))
    return bool(np.asarray(flags).any())


def barrier(name: str) -> None:
    """Wait until every process gets here (nothing in a one-process run)."""
    if multi_process():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
