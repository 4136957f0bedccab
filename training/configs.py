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
* :func:`check_choices`, :func:`check_ints` and the predicates :func:`is_int`,
  :func:`is_number` are the shared pieces of the configs' ``__post_init__``
  validation, so every config words its errors alike.

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


def check_choices(config: Any, allowed: Mapping[str, Iterable[Any]]) -> None:
    """Raise ``ValueError`` unless each ``config.<field>`` is one of its choices."""
    for field, choices in allowed.items():
        value = getattr(config, field)
        if value not in tuple(choices):
            raise ValueError(f"{field} must be one of {tuple(choices)}, got {value!r}")


def check_ints(config: Any, lower_bounds: Mapping[str, int]) -> None:
    """Raise ``ValueError`` unless each ``config.<field>`` is an int >= its bound."""
    for field, low in lower_bounds.items():
        value = getattr(config, field)
        if not is_int(value) or value < low:
            raise ValueError(f"{field} must be an int >= {low}, got {value!r}")


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
        return float(value)
    return value


def config_from_json(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a ``cls`` instance from :func:`config_to_json` output (validated).

    Fields missing from ``data`` take their defaults.

    Raises:
      ValueError: keys that ``cls`` does not have, or values it rejects.
    """
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no field(s) {', '.join(unknown)}; "
            f"fields: {', '.join(types_)}"
        )
    kwargs = {key: _from_json_value(value, types_[key]) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid stored {cls.__name__}: {err}") from None
