"""The verdict of a shaping run, one test for every place that states it.

The quickstart (``dilemmas train``) prints it, ``dilemmas analyze`` writes it in the
report, and the README quotes it: all three call :func:`shaping_verdict` on the run's
``evaluation.json`` record, so they cannot disagree.

Two claims are tested per seed, on the evaluation's meta-episodes against fresh
naive learners (``meta_0 vs naive``) and the reference played with the same naive
initialisations and random keys by an always-defector (``alld vs naive``, written by
the shaping loop's evaluation of a 2x2 matrix game):

* **shapes**: the learning-aware agent earns more from the naive learners than the
  always-defector does, by at least ``margin`` (a tenth of ``R - P`` by default).
  An agent that merely defects earns about what the always-defector earns (naive
  learners that start at 50 % cooperation pay it until they learn to defect); one
  that shapes them keeps them cooperating while it exploits them.
* **extorts**: it earns more than mutual cooperation (``R``) while the naive learners
  earn less than mutual defection (``P``): the outcome COALA-PG reports for a
  learning-aware agent against naive learners.

A seed counts when its claim holds; the lines report how many seeds, with medians.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class ShapingVerdict:
    """Per-seed outcome of a shaping run's evaluation (arrays ``[seeds]``)."""

    meta_reward: np.ndarray  # the learning-aware agent (meta_0) against naive learners
    naive_reward: np.ndarray  # the naive learners against it
    alld_reward: np.ndarray  # an always-defector against the same naive learners
    cooperation_payoff: float  # R
    defection_payoff: float  # P
    margin: float

    @property
    def shapes(self) -> np.ndarray:
        return self.meta_reward >= self.alld_reward + self.margin

    @property
    def extorts(self) -> np.ndarray:
        return (self.meta_reward > self.cooperation_payoff) & (
            self.naive_reward < self.defection_payoff
        )

    @property
    def num_seeds(self) -> int:
        return int(self.meta_reward.size)

    def lines(self) -> list[str]:
        """The verdict as printed by ``dilemmas train`` and written in reports."""
        n = self.num_seeds
        r, p = self.cooperation_payoff, self.defection_payoff

        def median(x: np.ndarray) -> str:
            return f"{float(np.median(x)):+.3f}"

        return [
            f"shapes the naive learners in {int(self.shapes.sum())} of {n} seeds: "
            "earns more from them than an always-defector earns from the same "
            f"learners (by >= {self.margin:g}; median {median(self.meta_reward)} vs "
            f"{median(self.alld_reward)})",
            f"extorts them in {int(self.extorts.sum())} of {n} seeds: earns more than "
            f"mutual cooperation (R = {r:g}) while they earn less than mutual "
            f"defection (P = {p:g}) (medians {median(self.meta_reward)} and "
            f"{median(self.naive_reward)})",
        ]


def shaping_verdict(
    evaluation: Mapping[str, Any], margin: float | None = None
) -> ShapingVerdict | None:
    """The verdict of an ``evaluation.json`` record of a shaping run, or ``None``
    when the record lacks what it needs (no ``meta_0 vs naive`` or ``alld vs
    naive`` pair, no prisoner's-dilemma payoff table).

    Args:
      evaluation: the parsed ``evaluation.json``.
      margin: how much more than the always-defector counts as shaping (default
        ``(R - P) / 10``).
    """
    pairs = {
        (pair.get("row"), pair.get("col")): pair
        for pair in evaluation.get("pairs", [])
        if isinstance(pair, Mapping)
    }
    meta, alld = pairs.get(("meta_0", "naive")), pairs.get(("alld", "naive"))
    payoffs = (evaluation.get("game") or {}).get("payoffs")
    if meta is None or alld is None or payoffs is None:
        return None
    table = np.asarray(payoffs, np.float64)
    if table.shape != (2, 2, 2):
        return None
    r, s = table[0, 0, 0], table[0, 1, 0]
    t, p = table[1, 0, 0], table[1, 1, 0]
    if not t > r > p > s:
        return None
    meta_rewards = np.asarray(meta["reward"], np.float64)
    alld_rewards = np.asarray(alld["reward"], np.float64)
    if meta_rewards.ndim != 2 or meta_rewards.shape != alld_rewards.shape:
        return None
    return ShapingVerdict(
        meta_reward=meta_rewards[:, 0],
        naive_reward=meta_rewards[:, 1],
        alld_reward=alld_rewards[:, 0],
        cooperation_payoff=float(r),
        defection_payoff=float(p),
        margin=float((r - p) / 10 if margin is None else margin),
    )
