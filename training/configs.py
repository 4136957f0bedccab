"""Command-line overrides and JSON round trips for frozen dataclass configs.

Every training config in :mod:`dilemmas.training` is a frozen dataclass that
validates itself in ``__post_init__``. This module gives all of them the same
``--set key=value`` syntax and the same JSON form (``config.json`` of a run
directory), without knowing any particular config:

* :func:`apply_overrides` parses ``"key=value"`` strings by each field's annotated
  type and applies them with :func:`dataclasses.replace`, so the config's own
  validation runs once on the final combination. Unknown keys, unparsable values
  and impossible combinations all raise :class:`ValueError` naming the key, before
  anything is compiled.
* :func:`config_to_json` and :func:`config_from_json` convert a config to plain
  JSON values and back (tuples become lists, nested dataclasses become objects).
* :func:`check_choices`, :func:`check_ints`, :func:`check_floats`,
  :func:`check_seeds` and the predicates :func:`is_int`, :func:`is_number` are the
  shared pieces of the configs' ``__post_init__`` validation, so every config words
  its errors alike and every field is bounded before anything is compiled.
* :func:`memory_estimate` and :func:`check_memory` refuse a config whose arrays
  cannot fit in the devices' memory, before a run directory is created, from the
  config's own ``memory_estimate_bytes()`` (see :func:`check_memory`).

A new config validates itself with these helpers, for example::

    @dataclasses.dataclass(frozen=True)
    class MyConfig:
        iterations: int = 1000
        batch: int = 64
        hidden: int = 128
        lr: float = 1e-3
        gamma: float = 0.99
        seed: int = 0

        def __post_init__(self):
            check_seeds(self)                       # any int, no bool or float
            check_ints(self, {"iterations": 1,      # 1 <= iterations <= INT32_MAX
                              "batch": (1, 65536),  # explicit upper bound
                              "hidden": 1})
            check_floats(self, ["lr"], low=0.0, low_open=True)   # finite, > 0
            check_floats(self, ["gamma"], low=0.0, high=1.0)     # in [0, 1]

        def memory_estimate_bytes(self) -> dict[str, int]:
            # the largest arrays of one iteration, labelled by the fields sizing them
            return {"batch * hidden (activations)": 4 * self.batch * self.hidden,
                    "hidden^2 (weights, Adam state)": 3 * 4 * self.hidden**2}

Value syntax by annotated type: ``int`` (``20``, ``1_000``), ``float`` (``0.01``,
``1e-3``), ``bool`` (``true``/``false``/``1``/``0``/``yes``/``no``), ``str`` (as
given), tuples of numbers (``1,-1,2,0``, optionally in brackets or parentheses),
``Literal[...]`` (one of the listed values), ``X | None`` (``none`` or ``null`` for
``None``) and nested dataclasses through dotted keys (``env.max_steps=10``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_NONE = frozenset({"none", "null"})


def is_int(x: Any) -> bool:
    """An integer that is not a bool (numpy integers included)."""
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    """A real number that is not a bool (numpy scalars included)."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(
        x, bool
    )


def check_env_id(config: Any, field: str = "env_id") -> None:
    """Raise ``ValueError`` unless ``config.<field>`` is a registered game id."""
    from dilemmas.envs import registered
    from dilemmas.envs.registry import did_you_mean

    value = getattr(config, field)
    if value not in registered():
        raise ValueError(
            f"unknown {field} {value!r}{did_you_mean(value)}; registered: "
            f"{registered()}"
        )


def check_choices(config: Any, allowed: Mapping[str, Iterable[Any]]) -> None:
    """Raise ``ValueError`` unless each ``config.<field>`` is one of its choices."""
    for field, choices in allowed.items():
        value = getattr(config, field)
        if value not in tuple(choices):
            raise ValueError(f"{field} must be one of {tuple(choices)}, got {value!r}")


#: Default upper bound of :func:`check_ints`: array sizes, loop lengths and step
#: counters are int32 inside compiled code.
INT32_MAX = 2**31 - 1


def check_ints(
    config: Any, bounds: Mapping[str, int | tuple[int | None, int | None]]
) -> None:
    """Raise ``ValueError`` unless each ``config.<field>`` is an int within bounds.

    Args:
      config: the (dataclass) instance whose fields are checked.
      bounds: per field, either a lower bound ``low`` (the field must satisfy
        ``low <= value <= INT32_MAX``) or a pair ``(low, high)`` of inclusive
        bounds, where ``None`` leaves that side open. Example:
        ``check_ints(self, {"iterations": 1, "batch": (1, 2**16), "offset":
        (None, None)})``.

    Raises:
      ValueError: a value that is not an int (``bool`` included) or out of its
        bounds; the message names the field, the bounds and the value.
    """
    for field, bound in bounds.items():
        low, high = bound if isinstance(bound, tuple) else (bound, INT32_MAX)
        value = getattr(config, field)
        too_low = low is not None and is_int(value) and value < low
        too_high = high is not None and is_int(value) and value > high
        if not is_int(value) or too_low or too_high:
            raise ValueError(
                f"{field} must be an int{_int_range(low, high)}, got {value!r}"
            )


def _int_range(low: int | None, high: int | None) -> str:
    parts = [f">= {low}" if low is not None else "", _high(high)]
    shown = " and ".join(p for p in parts if p)
    return f" {shown}" if shown else ""


def _high(high: int | None) -> str:
    if high is None:
        return ""
    if high == INT32_MAX:
        return "<= 2**31 - 1 (the int32 range of compiled code)"
    return f"<= {high}"


def check_floats(
    config: Any,
    fields: Iterable[str],
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError`` unless each ``config.<field>`` is a finite real number
    within the bounds (ints are numbers; ``bool``, ``nan`` and ``inf`` are not).

    Args:
      config: the (dataclass) instance whose fields are checked.
      fields: names of the fields to check.
      low, high: bounds, ``None`` for an open side (the value is still finite).
      low_open, high_open: exclude the bound itself (``> low`` or ``< high``).

    Example: ``check_floats(self, ["lr", "eps"], low=0.0, low_open=True)`` (finite
    and > 0), ``check_floats(self, ["gamma"], low=0.0, high=1.0, high_open=True)``
    (in [0, 1)).

    Raises:
      ValueError: the message names the field, the allowed range and the value.
    """
    for field in fields:
        value = getattr(config, field)
        ok = is_number(value) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            shown = _float_range(low, high, low_open, high_open)
            raise ValueError(f"{field} must be {shown}, got {value!r}")


def _float_range(
    low: float | None, high: float | None, low_open: bool, high_open: bool
) -> str:
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"a number in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return "a finite number"


def check_seeds(config: Any, fields: Iterable[str] = ("seed",)) -> None:
    """Raise ``ValueError`` unless each ``config.<field>`` is an integer seed.

    Any integer is a seed, of any size and sign (``bool``, floats and strings are
    not): :func:`dilemmas.envs.seeding.key_from_seed` gives every one its own key,
    and ``config.json`` stores it exactly (JSON integers are unbounded).
    """
    from dilemmas.envs.seeding import check_seed

    for field in fields:
        check_seed(getattr(config, field), field)


def format_bytes(count: float) -> str:
    """``count`` bytes in a readable unit, e.g. ``"1.5 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def memory_estimate(config: Any) -> dict[str, int]:
    """The config's ``memory_estimate_bytes()`` (bytes by term), or ``{}`` for a
    config without one.

    The method is the protocol a config implements to be checked by
    :func:`check_memory`: it returns, from the config's fields alone (no tracing,
    no allocation), the bytes of the largest arrays that one training iteration
    (or the final evaluation) holds at once, as a dict whose keys name the fields
    that size each term, e.g. ``{"num_seeds * meta_batch * batch (rollouts)":
    ...}``. It should be a lower bound, so that a refusal is never wrong.

    Raises:
      ValueError: the method returned something else than non-negative ints.
    """
    method = getattr(config, "memory_estimate_bytes", None)
    if not callable(method):
        return {}
    terms = method()
    if not isinstance(terms, Mapping) or not all(
        isinstance(k, str) and is_int(v) and v >= 0 for k, v in terms.items()
    ):
        raise ValueError(
            f"{type(config).__name__}.memory_estimate_bytes() must return a dict of "
            f"non-negative int byte counts by term, got {terms!r}"
        )
    return {k: int(v) for k, v in terms.items()}


def check_memory(config: Any, available_bytes: int, where: str = "memory") -> None:
    """Raise ``ValueError`` if ``config`` needs more than ``available_bytes``.

    Uses :func:`memory_estimate`; a config without ``memory_estimate_bytes()``
    always passes. The message gives the estimate, what is available (``where``,
    e.g. ``"host memory"``) and the dominant terms, which name the fields to
    reduce.

    Example: ``check_memory(cfg, 16 * 2**30, "host memory")``.
    """
    terms = memory_estimate(config)
    total = sum(terms.values())
    if total <= available_bytes:
        return
    ranked = sorted(terms.items(), key=lambda item: -item[1])
    dominant = [ranked[0]] + [t for t in ranked[1:] if t[1] >= total / 10]
    shown = "; ".join(f"{name}: {format_bytes(size)}" for name, size in dominant)
    raise ValueError(
        f"{type(config).__name__} needs at least {format_bytes(total)} at once, "
        f"more than the {format_bytes(available_bytes)} of {where}; the largest "
        f"arrays: {shown}. Reduce the fields named there."
    )


def _check_dataclass_instance(config: Any) -> None:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass config instance, got {config!r}")


def _field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of the init fields of a dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def valid_keys(config: Any) -> list[str]:
    """Every key :func:`apply_overrides` accepts for ``config``, dotted for nesting."""
    _check_dataclass_instance(config)
    keys = []
    for name in _field_types(type(config)):
        value = getattr(config, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            keys.extend(f"{name}.{key}" for key in valid_keys(value))
        else:
            keys.append(name)
    return keys


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _split_sequence(text: str) -> list[str]:
    text = text.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    if not text.strip():
        return []
    return [part.strip() for part in text.split(",")]


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")


def parse_value(text: str, tp: Any) -> Any:
    """Parse the command-line string ``text`` as a value of the type ``tp``.

    Raises:
      ValueError: ``text`` is not a value of ``tp`` (the message says why), or
        ``tp`` cannot be written on a command line.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return text
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in _NONE:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return parse_value(text, option)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        for option in args:
            if str(option) == text.strip():
                return option
        raise ValueError(f"expected one of {list(args)}")
    if origin is tuple:
        parts = _split_sequence(text)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(parse_value(part, args[0]) for part in parts)
        if len(parts) != len(args):
            raise ValueError(
                f"expected {len(args)} comma-separated values, got {len(parts)}"
            )
        return tuple(parse_value(part, a) for part, a in zip(parts, args, strict=True))
    if tp is bool:
        return _parse_bool(text)
    if tp is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
    if tp is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError("expected a number") from None
    if tp is str:
        return text
    raise ValueError(f"fields of type {_type_name(tp)} cannot be set from text")


def _unknown_key(key: str, config: Any) -> ValueError:
    keys = valid_keys(config)
    close = difflib.get_close_matches(key, keys, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ValueError(
        f"unknown config key {key!r}{hint}; valid keys for "
        f"{type(config).__name__}: {', '.join(keys)}"
    )


def _split_override(override: str) -> tuple[str, str]:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected key=value, got {override!r}")
    return key.strip(), value


def parse_overrides(config: Any, overrides: Iterable[str]) -> dict[str, Any]:
    """Typed values of ``"key=value"`` strings for ``config``, keyed by (dotted) key.

    A key given twice keeps its last value. Nothing is validated beyond the types;
    :func:`apply_overrides` runs the config's own checks.

    Raises:
      ValueError: malformed item, unknown key (listing the valid ones and close
        matches) or a value that does not parse as the field's type.
    """
    _check_dataclass_instance(config)
    parsed: dict[str, Any] = {}
    for override in overrides:
        key, text = _split_override(override)
        node, types_ = config, _field_types(type(config))
        *parents, leaf = key.split(".")
        for parent in parents:
            child = getattr(node, parent, None) if parent in types_ else None
            if not dataclasses.is_dataclass(child) or isinstance(child, type):
                raise _unknown_key(key, config)
            node, types_ = child, _field_types(type(child))
        if leaf not in types_:
            raise _unknown_key(key, config)
        tp = types_[leaf]
        if dataclasses.is_dataclass(tp):
            raise ValueError(
                f"{key} is a group of settings; set its fields instead: "
                + ", ".join(k for k in valid_keys(config) if k.startswith(key + "."))
            )
        try:
            parsed[key] = parse_value(text, tp)
        except ValueError as err:
            raise ValueError(
                f"cannot set {key}={text!r}: expected {_type_name(tp)} ({err})"
            ) from None
    return parsed


def _replace_nested(config: Any, values: Mapping[str, Any]) -> Any:
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = value
    for head, inner in nested.items():
        top[head] = _replace_nested(getattr(config, head), inner)
    return dataclasses.replace(config, **top)


def replace_values(config: Any, values: Mapping[str, Any]) -> Any:
    """``config`` with already typed ``values`` (keys as in :func:`parse_overrides`).

    Raises:
      ValueError: the config's own validation rejects the result; the message
        names the values that were set.
    """
    if not values:
        return config
    try:
        return _replace_nested(config, values)
    except (TypeError, ValueError) as err:
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ValueError(f"invalid config with {shown}: {err}") from None


def apply_overrides(config: Any, overrides: Iterable[str]) -> Any:
    """``config`` with ``"key=value"`` overrides applied and validated.

    Example: ``apply_overrides(cfg, ["iterations=50", "payoffs=1,-1,2,0"])``.

    Raises:
      ValueError: unknown key (with the valid keys and close matches), a value
        that does not parse as the field's type (naming key, value and type), or
        a combination the config's ``__post_init__`` rejects.
    """
    return replace_values(config, parse_overrides(config, overrides))


def to_json_value(value: Any) -> Any:
    """A plain JSON value (dict, list, str, number, bool, None) for ``value``.

    Dataclasses become objects, tuples and lists become lists, numpy scalars and
    arrays become numbers and lists, non-finite floats become ``None``.

    Raises:
      TypeError: a value with no JSON form.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in _fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, np.ndarray) or (
        hasattr(value, "__array__") and hasattr(value, "shape")
    ):
        return to_json_value(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        return to_json_value(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"no JSON form for {type(value).__name__} value {value!r}")


def _fields(config: Any) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(config) if f.init)


def config_to_json(config: Any) -> dict[str, Any]:
    """Every init field of the dataclass ``config`` as a JSON object."""
    _check_dataclass_instance(config)
    return to_json_value(config)


def _from_json_value(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return config_from_json(tp, value)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
                return config_from_json(option, value)
            if typing.get_origin(option) is tuple and isinstance(value, list):
                return _from_json_value(value, option)
        return value
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json_value(v, args[0]) for v in value)
        if len(args) == len(value):
            return tuple(
                _from_json_value(v, a) for v, a in zip(value, args, strict=True)
            )
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return value  # too large for a float: the config's check rejects it
    return value


def config_from_json(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a ``cls`` instance from :func:`config_to_json` output (validated).

    Fields missing from ``data`` take their defaults. ``data`` is untrusted (a file
    may be corrupt): whatever the values, the outcome is a config or a
    ``ValueError``.

    Raises:
      ValueError: ``data`` is not a JSON object, has keys that ``cls`` does not
        have, or values it rejects (any exception of ``cls``'s own validation on
        such values is reported as a ``ValueError`` naming it).
    """
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    if not isinstance(data, Mapping):
        raise ValueError(
            f"a stored {cls.__name__} must be a JSON object, got {type(data).__name__}"
        )
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no field(s) {', '.join(unknown)}; "
            f"fields: {', '.join(types_)}"
        )
    try:
        kwargs = {k: _from_json_value(v, types_[k]) for k, v in data.items()}
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid stored {cls.__name__}: {err}") from None
    except Exception as err:  # a validation that trips over a value of a wrong type
        raise ValueError(
            f"invalid stored {cls.__name__}: {type(err).__name__}: {err}"
        ) from None
