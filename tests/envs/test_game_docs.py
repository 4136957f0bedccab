"""The game pages (docs/games/*.md) hold what docs/games/make_frames.py writes: each
game's legend, a frame whose size and colours the legend explains, and an ANSI
picture drawn with the legend's symbols."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import numpy as np
import pytest
from matplotlib import image as mpl_image

from dilemmas.envs import make

ROOT = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "make_frames", ROOT / "docs" / "games" / "make_frames.py"
)
make_frames = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_frames)

PAGES = sorted(make_frames.GAMES)
#: The saved frames' sizes: cells x 16 pixels x the picture's scale.
FRAME_SHAPES = {
    "coin_game": (3 * 16 * 4, 3 * 16 * 4, 3),
    "cleanup_lite": (5 * 16 * 3, 4 * 16 * 3, 3),
    "cleanup": (16 * 16, 20 * 16, 3),
    "harvest": (15 * 16, 22 * 16, 3),
}


def _page(name: str) -> str:
    return (ROOT / "docs" / "games" / f"{name}.md").read_text()


def _region(page: str, name: str) -> str:
    match = re.search(
        rf"<!-- make_frames.py: {name} -->\n(.*?)\n<!-- make_frames.py: end {name} -->",
        page,
        re.DOTALL,
    )
    assert match, f"no {name} region"
    return match[1]


def test_every_game_has_a_page():
    ids = {make_frames.GAMES[name].env_id for name in PAGES}
    assert {"ipd-v0", "coin_game-v0", "cleanup_lite-v0", "cleanup-v0"} <= ids
    assert "harvest-v0" in ids
    for name in PAGES:
        assert _page(name).startswith("# ")


@pytest.mark.parametrize("name", PAGES)
def test_the_page_legend_is_the_games_legend(name):
    core, _ = make(make_frames.GAMES[name].env_id)
    legend = core.render_legend()
    assert legend
    assert _region(_page(name), "legend") == make_frames.legend_markdown(legend)


@pytest.mark.parametrize("name", PAGES)
def test_the_ansi_picture_uses_the_legends_symbols(name):
    core, _ = make(make_frames.GAMES[name].env_id)
    text = _region(_page(name), "ansi").split("\n")
    assert text[0] == "```text" and text[-1] == "```"
    symbols = {c for entry in core.render_legend() if entry.ansi for c in entry.ansi}
    if hasattr(core, "height"):  # a grid: the map rows follow the header
        rows = text[2 : 2 + core.height]
        assert all(len(row.split()) for row in rows)
        assert {c for row in rows for c in row if c != " "} <= symbols
    else:
        assert re.fullmatch(
            r"round 2/100: player_0 [CD] \(.*\), player_1 [CD] .*", text[1]
        )


@pytest.mark.parametrize("name", sorted(FRAME_SHAPES))
def test_the_frame_has_the_maps_size_and_only_legend_colours(name):
    page = _page(name)
    assert f"](../figures/games/{name}.png)" in page
    frame = mpl_image.imread(ROOT / "docs" / "figures" / "games" / f"{name}.png")
    frame = np.round(frame[..., :3] * 255).astype(np.uint8)
    assert frame.shape == FRAME_SHAPES[name]
    core, _ = make(make_frames.GAMES[name].env_id)
    legend = {entry.rgb for entry in core.render_legend() if entry.rgb}
    colours = {tuple(int(v) for v in p) for p in frame.reshape(-1, 3)}
    assert colours <= legend
    assert len(colours) >= 4  # ground, agents and something to collect at least


def test_fill_rewrites_only_the_marked_regions():
    page = "# T\n\nbefore\n<!-- make_frames.py: legend -->\nold\n"
    page += "<!-- make_frames.py: end legend -->\nafter\n"
    filled = make_frames.fill(page, {"legend": "| new |"})
    assert filled == page.replace("old\n", "| new |\n")
    with pytest.raises(ValueError, match="'ansi'"):
        make_frames.fill(page, {"ansi": "x"})
