"""Policy classes as pytrees whose structure names their class.

Strategies and scripted policies are ``flax.struct`` dataclasses passed into jitted
functions as arguments (``NumpyPolicy``'s step, ``play``, the faces' co-players).
JAX 0.10's ``PyTreeDef`` equality does not compare the classes of two registered
dataclasses: two policy classes with the same number of array fields and equal
static fields (two field-less strategies, two scripted policies of one env) have
structures that compare equal, though their hashes differ, so on a hash collision a
jitted function's cache can hand one class the program compiled for the other (the
test suite saw ``TitForTwoTats`` play ``Grim``'s moves). :func:`policy_dataclass`
adds a static field holding the class's qualified name, which makes the structures
differ.
"""

from __future__ import annotations

from typing import TypeVar

from flax import struct

__all__ = ["CLASS_FIELD", "policy_dataclass"]

CLASS_FIELD = "pytree_class"
"""The static field :func:`policy_dataclass` adds (the class's qualified name)."""

T = TypeVar("T", bound=type)


def policy_dataclass(cls: T) -> T:
    """``flax.struct.dataclass(cls)`` with a last static field, ``pytree_class``,
    defaulting to ``"module.QualName"`` (hidden from the repr), so the pytree
    structures of two classes never compare equal."""
    annotations = dict(cls.__dict__.get("__annotations__", {}))
    annotations[CLASS_FIELD] = "str"
    cls.__annotations__ = annotations
    name = f"{cls.__module__}.{cls.__qualname__}"
    setattr(cls, CLASS_FIELD, struct.field(pytree_node=False, default=name, repr=False))
    return struct.dataclass(cls)
