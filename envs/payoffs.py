"""Payoff tables for 2x2 games, by name.

A payoff table is a float32 array ``payoffs[a_row, a_col, agent]`` with actions encoded
0 = cooperate (C) and 1 = defect (D): ``payoffs[0, 1]`` is the reward pair when the row
player cooperates and the column player defects.

Prisoner's-dilemma conventions (R, S, T, P), the main source of confusion between
papers:

=============  ==================  ==================================================
name           (R, S, T, P)        used by
=============  ==================  ==================================================
``coala``      (1, -1, 2, 0)       COALA-PG (arXiv:2410.18636), in-context co-player
                                   inference (arXiv:2602.16301); our IPD default
``lola``       (-1, -3, 0, -2)     LOLA, LOLA-DiCE, M-FOS, Pax, LOQA, OpenSpiel
``axelrod``    (3, 0, 5, 1)        Press & Dyson 2012, the Axelrod library
``pax_test``   (2, 0, 3, 1)        Pax's matrix-game tests, EUPI
``openspiel``  (5, 0, 10, 1)       OpenSpiel's python IPD
=============  ==================  ==================================================

Other games (CC / CD / DC / DD as (row, col)), values from Pax's matrix-game tests:
``stag_hunt`` (4,4)/(1,3)/(3,1)/(2,2); ``chicken`` (0,0)/(-1,1)/(1,-1)/(-2,-2);
``battle_of_the_sexes`` (3,2)/(0,0)/(0,0)/(2,3); ``matching_pennies``
(1,-1)/(-1,1)/(-1,1)/(1,-1).

COALA = LOLA + 2 exactly, so exact gradients agree; Axelrod is *not* an affine transform
of either, so results never convert between them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PayoffsLike = str | Sequence[float] | np.ndarray


def pd_payoffs(reward: float, sucker: float, temptation: float, punishment: float):
    """Payoff table of a symmetric 2x2 game from (R, S, T, P).

    Returns:
      float32 ``[2, 2, 2]`` array, ``payoffs[a_row, a_col, agent]``.
    """
    r, s, t, p = reward, sucker, temptation, punishment
    return np.array(
        [[[r, r], [s, t]], [[t, s], [p, p]]],
        dtype=np.float32,
    )


def _table(cc, cd, dc, dd):
    return np.array([[cc, cd], [dc, dd]], dtype=np.float32)


PD_CONVENTIONS: dict[str, tuple[float, float, float, float]] = {
    "coala": (1.0, -1.0, 2.0, 0.0),
    "lola": (-1.0, -3.0, 0.0, -2.0),
    "axelrod": (3.0, 0.0, 5.0, 1.0),
    "pax_test": (2.0, 0.0, 3.0, 1.0),
    "openspiel": (5.0, 0.0, 10.0, 1.0),
}

PRESETS: dict[str, np.ndarray] = {
    **{name: pd_payoffs(*rstp) for name, rstp in PD_CONVENTIONS.items()},
    "stag_hunt": _table((4, 4), (1, 3), (3, 1), (2, 2)),
    "chicken": _table((0, 0), (-1, 1), (1, -1), (-2, -2)),
    "battle_of_the_sexes": _table((3, 2), (0, 0), (0, 0), (2, 3)),
    "matching_pennies": _table((1, -1), (-1, 1), (-1, 1), (1, -1)),
}
for _table_array in PRESETS.values():
    _table_array.setflags(write=False)


def payoff_table(payoffs: PayoffsLike) -> np.ndarray:
    """Resolve a preset name, an (R, S, T, P) 4-tuple or a ``[2, 2, 2]`` table.

    Raises:
      ValueError: unknown preset name, wrong shape, or non-finite entries.
    """
    if isinstance(payoffs, str):
        try:
            return PRESETS[payoffs]
        except KeyError:
            raise ValueError(
                f"unknown payoff preset {payoffs!r}; known presets: {sorted(PRESETS)}"
            ) from None
    try:
        table = np.asarray(payoffs, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"payoffs must be numeric, got {payoffs!r}") from err
    if table.shape == (4,):
        table = pd_payoffs(*table)
    if table.shape != (2, 2, 2):
        raise ValueError(
            "payoffs must be a preset name, an (R, S, T, P) 4-vector or a table of "
            f"shape [2, 2, 2] (payoffs[a_row, a_col, agent]); got shape {table.shape}"
        )
    if not np.all(np.isfinite(table)):
        raise ValueError(f"payoffs must be finite; got {table.tolist()}")
    return table.astype(np.float32)


def rstp(payoffs: PayoffsLike) -> tuple[float, float, float, float]:
    """(R, S, T, P) of the row player of a table."""
    table = payoff_table(payoffs)
    return (
        float(table[0, 0, 0]),
        float(table[0, 1, 0]),
        float(table[1, 0, 0]),
        float(table[1, 1, 0]),
    )
