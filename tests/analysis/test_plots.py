"""The figure functions of ``dilemmas.analysis.plots`` on small known arrays."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread
from matplotlib.patches import Polygon, Rectangle

from dilemmas.analysis import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COALA = np.array([[[1, 1], [-1, 2]], [[2, -1], [0, 0]]], float)


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert imread(path).ndim == 3


def visible_axes(fig) -> list:
    return [
        ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"
    ]


def test_band_is_min_max_for_few_seeds_and_quartiles_for_many():
    few = np.array([[0.0, 1.0, 5.0]])
    mean, low, high, kind = plots.seed_band(few, axis=1)
    assert kind == "min-max" and plots.band_kind(4) == "min-max"
    np.testing.assert_allclose([mean[0], low[0], high[0]], [2.0, 0.0, 5.0])
    many = np.arange(9.0)[None]  # 0 .. 8: quartiles 2 and 6
    mean, low, high, kind = plots.seed_band(many, axis=1)
    assert kind == "25-75%" == plots.band_kind(plots.QUARTILE_MIN_SEEDS)
    np.testing.assert_allclose([mean[0], low[0], high[0]], [4.0, 2.0, 6.0])
    mean, _, _, _ = plots.seed_band(np.array([[np.nan, 1.0], [np.nan, np.nan]]))
    assert mean[0] == 1.0 and np.isnan(mean[1])


def test_learning_curves_name_the_naive_learners_by_the_agent_they_face():
    metrics = {
        "reward_vs_naive": np.ones((4, 2, 2)),
        "naive_reward": np.ones((4, 2, 2)),
    }
    fig = plots.learning_curves(np.arange(4), metrics, agent_names=["meta_0", "meta_1"])
    legends = [
        [t.get_text() for t in ax.get_legend().get_texts()] for ax in visible_axes(fig)
    ]
    assert legends == [["meta_0", "meta_1"], ["naive vs meta_0", "naive vs meta_1"]]


def test_learning_curves_one_panel_per_metric(tmp_path):
    iterations = np.arange(1, 11)
    metrics = {
        "total_loss": np.linspace(5, 1, 30).reshape(10, 3),
        "reward_vs_naive": np.ones((10, 3, 2)),
        "reward_vs_meta": np.where(np.arange(10)[:, None] % 2, np.nan, 1.0)
        * np.ones((10, 3)),
    }
    fig = plots.learning_curves(iterations, metrics, tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == list(metrics)
    assert axes[0].get_ylabel() == "loss" and axes[1].get_ylabel() == "reward per step"
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == [
        "agent 0",
        "agent 1",
    ]
    # The undefined iterations are left out, not drawn as gaps of NaN.
    np.testing.assert_array_equal(axes[2].lines[0].get_xdata(), [1, 3, 5, 7, 9])
    np.testing.assert_allclose(
        axes[0].lines[0].get_ydata()[0], np.mean([5, 4.862, 4.724]), atol=1e-3
    )
    assert "min-max" in fig.get_suptitle()
    with pytest.raises(ValueError, match="shape"):
        plots.learning_curves(iterations, {"bad": np.ones(10)})
    with pytest.raises(ValueError, match="at least one metric"):
        plots.learning_curves(iterations, {})


def test_convex_hull():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5], [1, 0]])
    hull = plots.convex_hull(square)
    assert {tuple(p) for p in hull} == {(0, 0), (1, 0), (1, 1), (0, 1)}
    assert len(plots.convex_hull(COALA.reshape(4, 2))) == 4
    # Stag hunt-like payoffs where one pair lies inside the hull of the others.
    inner = np.array([[4, 4], [0, 3], [3, 0], [1, 1]])
    assert len(plots.convex_hull(inner)) == 4
    assert len(plots.convex_hull(np.array([[0, 0], [1, 1], [2, 2]]))) == 2


def test_payoff_space_polygon_and_outcomes(tmp_path):
    outcomes = {
        "meta vs naive": np.array([[1.2, 0.4], [1.3, 0.5], [np.nan, np.nan]]),
        "naive vs naive": np.array([[0.0, 0.0]]),
    }
    fig = plots.payoff_space(COALA, outcomes, tmp_path / "space.png")
    assert_png(tmp_path / "space.png")
    (ax,) = fig.axes
    (polygon,) = [p for p in ax.patches if isinstance(p, Polygon)]
    vertices = {tuple(v) for v in polygon.get_xy().tolist()}
    assert vertices == {(1, 1), (-1, 2), (2, -1), (0, 0)}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "mutual cooperation" in labels and "mutual defection" in labels
    assert "meta vs naive (mean of 2 seeds)" in labels
    fig = plots.payoff_space(None, outcomes)
    assert not [p for p in fig.axes[0].patches if isinstance(p, Polygon)]
    with pytest.raises(ValueError, match=r"\[2, 2, 2\]"):
        plots.payoff_space(np.ones((2, 2)), outcomes)


def test_heatmap_annotates_values_and_hatches_missing_states(tmp_path):
    p = np.array([[0.0, 0.714, 0.0, 0.714, 0.0], [1.0, 1.0, np.nan, 1.0, np.nan]])
    fig = plots.cooperation_heatmap(p, ["meta", "naive"], tmp_path / "heat.png")
    assert_png(tmp_path / "heat.png")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("n/a") == 2 and "0.71" in texts and texts.count("1.00") == 3
    hatched = [r for r in ax.patches if isinstance(r, Rectangle) and r.get_hatch()]
    assert sorted(r.get_xy() for r in hatched) == [(1.5, 0.5), (3.5, 0.5)]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(plots.STATE_LABELS)
    with pytest.raises(ValueError, match="agents"):
        plots.cooperation_heatmap(p, ["only one"])


def test_profiles_share_panels_by_quantity(tmp_path):
    series = {
        "meta reward": np.ones((2, 5)),
        "naive reward": np.zeros((2, 5)),
        "meta cooperation": np.full((2, 5), 0.5),
    }
    fig = plots.profiles(series, tmp_path / "profiles.png")
    assert_png(tmp_path / "profiles.png")
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["reward", "cooperation"]
    assert len(axes[0].lines) == 2
    np.testing.assert_array_equal(axes[0].lines[0].get_xdata(), [1, 2, 3, 4, 5])
    assert axes[0].get_xlabel() == "inner episode"


def test_grid_panels_group_families(tmp_path):
    iterations = np.arange(1, 5)
    metrics = {
        "cleaning_time": np.ones((4, 2, 2)),
        "cleaning_discrepancy": np.ones((4, 2)),
        "zaps_received": np.ones((4, 2, 2)),
        "pollution": np.ones((4, 2)),
        "apples": np.ones((4, 2)),
        "total_loss": np.ones((4, 2)),
    }
    fig = plots.grid_panels(iterations, metrics, tmp_path / "grid.png")
    assert_png(tmp_path / "grid.png")
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == [
        "cleaning",
        "zapping",
        "pollution",
        "apples",
    ]
    assert len(axes[0].lines) == 3  # two agents of cleaning_time + discrepancy
    with pytest.raises(ValueError, match="no cleaning / zap"):
        plots.grid_panels(iterations, {"total_loss": np.ones((4, 2))})


def test_analysis_imports_neither_pyplot_nor_training_code(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from dilemmas.analysis import plots, report\n"
        f"plots.learning_curves(np.arange(3), {{'x': np.ones((3, 2))}}, "
        f"{str(tmp_path / 'x.png')!r})\n"
        "bad = [m for m in sys.modules if m.startswith('dilemmas.training') "
        "or m == 'matplotlib.pyplot']\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_comparison_one_line_per_group(tmp_path):
    x = np.arange(1, 5)
    curves = {
        "reward_vs_naive": {
            "coala": (x, np.array([[0.1, 0.2]] * 4)),
            "mfos": (x, np.array([[0.0, 0.1]] * 4)),
        },
        "naive_reward": {"coala": (x, np.zeros((4, 2)))},
    }
    fig = plots.comparison(curves, tmp_path / "cmp.png")
    first = fig.axes[0]
    assert [line.get_label() for line in first.get_lines()] == ["coala", "mfos"]
    np.testing.assert_allclose(first.get_lines()[0].get_ydata(), 0.15)
    assert_png(tmp_path / "cmp.png")
    with pytest.raises(ValueError, match="reward_vs_naive of bad"):
        plots.comparison({"reward_vs_naive": {"bad": (x, np.zeros(3))}})
