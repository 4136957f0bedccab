"""The contract between a training algorithm and the run driver.

An :class:`Experiment` is what ``dilemmas train`` runs: a frozen, validated config
plus pure functions. The driver (:mod:`dilemmas.training.runner`) owns everything
around them (the run directory, the compiled chunks of iterations, metrics files,
checkpoints, resumption, the progress bar), so every algorithm (the sampled
shaping loop, the analytic IPD, the in-context co-player inference agents) gets the
same run directories and the same guarantees without copying any of it.

Conventions:

* ``init(key)`` returns the whole training state for all seeds, a pytree of arrays
  whose leaves have a leading ``[num_seeds]`` axis. It holds its own PRNG keys, so
  the run is a deterministic function of the state: a resumed run continues exactly
  where the checkpoint left it.
* ``update(state) -> (state, metrics)`` is ONE training iteration, pure and
  jittable. Each metric is an array ``[num_seeds]`` or ``[num_seeds, num_agents]``
  (float). The driver compiles ``lax.scan(update, state, length=chunk)``.
* ``loss_metrics`` names the metrics that must stay finite; a non-finite value
  stops the run before the state that produced it is checkpointed.
* ``evaluate(state)`` (host side, called once at the end) returns the JSON-able
  ``evaluation.json`` record described in ``docs/run_directory.md``.
* ``summary(state, metrics)`` returns the headline numbers printed at the end and
  stored in ``summary.json``; ``metrics`` is the last iteration's metrics as
  numpy arrays.
* ``params(state)`` returns the trained parameters (the pytree compared when a test
  checks that a resumed run matches an uninterrupted one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import jax

Metrics = dict[str, jax.Array]


class Experiment(Protocol):
    """What ``dilemmas train`` needs from an algorithm (see the module docstring)."""

    #: Short name of the algorithm family, e.g. ``"shaping"`` or ``"analytic"``.
    kind: str
    #: The frozen, validated config dataclass the experiment was built from.
    config: Any
    #: Total number of training iterations.
    iterations: int
    #: Metrics that must stay finite.
    loss_metrics: tuple[str, ...]
    #: Metrics shown live on the progress bar (mean over seeds and agents).
    progress_metrics: tuple[str, ...]

    def init(self, key: jax.Array) -> Any: ...

    def update(self, state: Any) -> tuple[Any, Metrics]: ...

    def evaluate(self, state: Any) -> dict[str, Any]: ...

    def summary(self, state: Any, metrics: Mapping[str, Any]) -> dict[str, Any]: ...

    def params(self, state: Any) -> Any: ...
