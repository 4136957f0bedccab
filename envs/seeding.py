"""Seeds to PRNG keys: every integer seed, of any size, to its own key.

``jax.random.key(seed)`` keeps only the low 32 bits of a Python integer without
64-bit mode (``key(0) == key(2**32)``), raises ``OverflowError`` beyond 64 bits and
accepts ``True`` and numpy floats. :func:`key_from_seed` is what every face and the
run driver use instead:

* ``0 <= seed < 2**64``: the threefry key whose two 32-bit words are the seed's
  high and low words. For ``seed < 2**32`` this is exactly ``jax.random.key(seed)``,
  so results recorded with small seeds are unchanged.
* any other integer (negative, or ``>= 2**64``): the words of ``|seed|`` folded one by
  one into a key tagged with the sign and the word count (``jax.random.fold_in``).
  Distinct seeds give distinct keys unless a 64-bit hash collides (probability about
  2**-64 per pair).
* anything else (``bool``, floats, strings, lists, arrays with more than one value)
  is a :class:`ValueError` naming the value.

:func:`check_seed` is the validation alone, returning the seed as a Python ``int``.
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_MASK = 0xFFFFFFFF


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as a Python ``int``; a ``ValueError`` naming ``what`` if it is not an
    integer (``bool`` and floats with integral values are refused too)."""
    if isinstance(seed, bool | np.bool_ | float | np.floating | str):
        raise ValueError(f"{what} must be an integer, got {seed!r}")
    if isinstance(seed, jax.Array | np.ndarray):
        if seed.shape != () or not jnp.issubdtype(seed.dtype, jnp.integer):
            raise ValueError(f"{what} must be an integer, got {seed!r}")
        return int(seed)
    try:
        return operator.index(seed)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {seed!r}") from None


def key_from_seed(seed: Any, what: str = "seed") -> jax.Array:
    """The PRNG key of an integer ``seed`` (see the module docstring)."""
    seed = check_seed(seed, what)
    if 0 <= seed < 2**64:
        data = np.array([seed >> 32, seed & _MASK], np.uint32)
        return jax.random.wrap_key_data(data, impl="threefry2x32")
    magnitude = abs(seed)
    words = []
    while magnitude:
        words.append(magnitude & _MASK)
        magnitude >>= 32
    tag = 1 if seed < 0 else 2
    key = jax.random.wrap_key_data(
        np.array([tag, len(words)], np.uint32), impl="threefry2x32"
    )
    for word in words:
        key = jax.random.fold_in(key, np.uint32(word))
    return key
