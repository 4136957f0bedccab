"""The named presets of ``dilemmas train``: every algorithm's configs in one registry.

A preset is a frozen, validated config dataclass with an ``experiment()`` method
returning a :class:`~dilemmas.training.experiment.Experiment`. The registry merges
the ``PRESETS`` dicts of the algorithm modules (:mod:`dilemmas.training.analytic`,
:mod:`dilemmas.training.shaping_presets`, ...); they are imported on first use, so
listing the presets costs one import and a missing optional module never breaks the
others.

``from dilemmas.training.presets import PRESETS`` works too (a fresh merged dict).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from dilemmas.training.experiment import Experiment

#: Modules whose ``PRESETS`` dicts make up the registry, in listing order.
PRESET_MODULES = (
    "dilemmas.training.analytic",
    "dilemmas.training.shaping_presets",
    "dilemmas.training.coplayer",
    "dilemmas.training.ppi",
)


def presets() -> dict[str, Any]:
    """Every preset by name (a new dict; the configs themselves are frozen).

    Raises:
      ValueError: two modules define the same preset name.
    """
    merged: dict[str, Any] = {}
    for module_name in PRESET_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        for name, config in getattr(module, "PRESETS", {}).items():
            if name in merged:
                raise ValueError(f"preset {name!r} is defined twice ({module_name})")
            merged[name] = config
    return merged


def get_preset(name: str) -> Any:
    """The config of the preset ``name``.

    Raises:
      ValueError: unknown name; the message lists close matches and every preset.
    """
    known = presets()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(
        f"unknown preset {name!r}{hint}; known presets: {', '.join(known)} "
        "(see `dilemmas presets`)"
    )


def experiment_from_config(config: Any) -> Experiment:
    """The :class:`Experiment` of a preset config (``config.experiment()``)."""
    make = getattr(config, "experiment", None)
    if not callable(make):
        raise TypeError(f"{type(config).__name__} has no experiment() method")
    return make()


def describe(config: Any) -> str:
    """One line about a preset config: its ``description`` attribute if it has one,
    otherwise the algorithm family and the fields that differ from the defaults."""
    description = getattr(config, "description", None)
    if isinstance(description, str) and description:
        return description
    family = type(config).__module__.rsplit(".", 1)[-1]
    try:
        defaults = type(config)()
    except (TypeError, ValueError):
        defaults = None
    changed = [
        f"{field}={value!r}"
        for field, value in vars(config).items()
        if field not in ("name", "iterations")
        and (defaults is None or getattr(defaults, field, None) != value)
    ]
    iterations = getattr(config, "iterations", None)
    shown = ", ".join(changed) if changed else "default settings"
    suffix = f"; {iterations} iterations" if iterations is not None else ""
    return f"{family}: {shown}{suffix}"


def __getattr__(name: str) -> Any:
    if name == "PRESETS":
        return presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
