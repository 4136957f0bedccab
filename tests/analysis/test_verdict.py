"""The shaping verdict (analysis.verdict), against hand-computed records."""

import numpy as np
import pytest

from dilemmas.analysis.verdict import shaping_verdict

COALA = [[[1, 1], [-1, 2]], [[2, -1], [0, 0]]]  # R 1, S -1, T 2, P 0


def record(meta, alld, payoffs=COALA):
    return {
        "game": {"id": "ipd-v0", "actions": ["C", "D"], "payoffs": payoffs},
        "pairs": [
            {"row": "meta_0", "col": "naive", "reward": meta},
            {"row": "alld", "col": "naive", "reward": alld},
            {"row": "meta_1", "col": "naive", "reward": [[9.0, 9.0]] * len(meta)},
        ],
    }


def test_each_seed_is_judged_against_its_own_always_defector():
    verdict = shaping_verdict(
        record(
            meta=[[1.2, -0.3], [0.95, -0.2], [0.62, -0.31], [1.0, 0.1]],
            alld=[[0.6, -0.3], [0.6, -0.3], [0.6, -0.3], [0.95, -0.5]],
        )
    )
    # margin (R - P) / 10 = 0.1: 1.2 >= 0.7, 0.95 >= 0.7, 0.62 < 0.7, 1.0 < 1.05
    np.testing.assert_array_equal(verdict.shapes, [True, True, False, False])
    # > R = 1 and < P = 0: only seed 0 (seed 3 earns exactly R, its learners +0.1)
    np.testing.assert_array_equal(verdict.extorts, [True, False, False, False])
    first, second = verdict.lines()
    assert first.startswith("shapes the naive learners in 2 of 4 seeds")
    assert "median +0.975 vs +0.600" in first
    assert second.startswith("extorts them in 1 of 4 seeds")
    assert "(R = 1)" in second and "(P = 0)" in second


def test_the_margin_scales_with_the_payoffs_and_can_be_set():
    doubled = [[[2 * x for x in cell] for cell in row] for row in COALA]
    verdict = shaping_verdict(record([[0.75, 0.0]], [[0.6, 0.0]], doubled))
    assert verdict.margin == pytest.approx(0.2) and not verdict.shapes[0]
    verdict = shaping_verdict(record([[0.75, 0.0]], [[0.6, 0.0]]), margin=0.1)
    assert verdict.shapes[0]


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r["pairs"].pop(1),  # no always-defector reference
        lambda r: r["pairs"].pop(0),  # no meta_0
        lambda r: r["game"].pop("payoffs"),  # a grid game
        # stag hunt (R > T): not a prisoner's dilemma
        lambda r: r["game"].update(payoffs=[[[4, 4], [0, 3]], [[3, 0], [2, 2]]]),
        lambda r: r["pairs"][1].update(reward=[[0.6, -0.3]] * 3),  # seeds disagree
    ],
)
def test_records_it_cannot_judge_give_none(change):
    evaluation = record([[1.2, -0.3], [0.9, -0.2]], [[0.6, -0.3], [0.6, -0.3]])
    change(evaluation)
    assert shaping_verdict(evaluation) is None
