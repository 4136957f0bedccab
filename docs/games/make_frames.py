"""Make the pictures of the game pages: an RGB frame per grid game, and in each page
the legend table and the ANSI picture of the same state.

Run from the repository root (it takes about a minute on two cores)::

    python docs/games/make_frames.py

Each grid game is played for a few steps by its scripted policies (listed in
``GAMES``), so the frame shows the dilemma under way rather than the start state;
the frame is saved to ``docs/figures/games/<page>.png``, enlarged with the faces'
``scale`` where the map is small. The legend comes from the core's
``render_legend()``; the text between the ``<!-- make_frames.py: ... -->`` comments
of each page is rewritten, the rest of the page is left alone.
``tests/envs/test_game_docs.py`` checks that the pages still hold what this script
writes.
"""

from __future__ import annotations

import pathlib
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp

import dilemmas.agents  # noqa: F401  (registers the scripted policies)
from dilemmas.envs import make
from dilemmas.envs.core import LegendEntry, MultiAgentEnv
from dilemmas.envs.grid import save_png
from dilemmas.envs.gymnasium import named_co_player
from dilemmas.envs.pettingzoo import upscale

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = ROOT / "docs" / "games"
FIGURES = ROOT / "docs" / "figures" / "games"


class Picture(NamedTuple):
    """How a page's picture is made."""

    env_id: str
    players: tuple[str, ...]  # scripted policies, one per agent ("" for none)
    steps: int
    seed: int
    scale: int  # of the saved frame


GAMES: dict[str, Picture] = {
    "matrix_games": Picture("ipd-v0", (), 0, 0, 1),
    "coin_game": Picture("coin_game-v0", ("greedy", "own_coin"), 5, 3, 4),
    "cleanup_lite": Picture(
        "cleanup_lite-v0", ("dedicated_cleaner", "always_harvest"), 12, 0, 3
    ),
    "cleanup": Picture(
        "cleanup-v0", ("dedicated_cleaner",) * 2 + ("harvester",) * 3, 200, 0, 1
    ),
    "harvest": Picture("harvest-v0", ("greedy",) * 5, 20, 0, 1),
}

#: The IPD rounds the matrix-game page shows: (C, C), then (D, C).
MATRIX_ROUNDS = ((0, 0), (1, 0))


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def legend_markdown(legend: tuple[LegendEntry, ...]) -> str:
    """A Markdown table of ``legend`` (a core's ``render_legend()``)."""
    has_rgb = any(entry.rgb for entry in legend)
    header = "| ANSI | RGB colour | meaning |" if has_rgb else "| ANSI | meaning |"
    rule = "| --- | --- | --- |" if has_rgb else "| --- | --- |"
    rows = [header, rule]
    for entry in legend:
        ansi = f"`{entry.ansi}`" if entry.ansi else "(not drawn)"
        if has_rgb:
            rgb = f"`{_hex(entry.rgb)}` {entry.rgb}" if entry.rgb else "(not drawn)"
            rows.append(f"| {ansi} | {rgb} | {entry.meaning} |")
        else:
            rows.append(f"| {ansi} | {entry.meaning} |")
    return "\n".join(rows)


def final_state(picture: Picture) -> tuple[MultiAgentEnv, object, object]:
    """``(core, params, state)`` after the picture's steps."""
    core, params = make(picture.env_id)
    key = jax.random.key(picture.seed)
    key, key_reset = jax.random.split(key)
    _, state = core.reset(key_reset, params)
    if not picture.players:  # the matrix games: fixed rounds
        for joint in MATRIX_ROUNDS:
            key, key_step = jax.random.split(key)
            state = core.step(key_step, state, jnp.asarray(joint), params).state
        return core, params, state
    policies = tuple(named_co_player(core, name) for name in picture.players)

    @jax.jit
    def step(key, state):
        key, key_act, key_step = jax.random.split(key, 3)
        keys = jax.random.split(key_act, core.num_agents)
        actions = jnp.stack(
            [p.act(keys[i], state, params, i) for i, p in enumerate(policies)]
        ).astype(jnp.int32)
        return key, core.step(key_step, state, actions, params).state

    for _ in range(picture.steps):
        key, state = step(key, state)
    return core, params, state


def regions(core: MultiAgentEnv, params: object, state: object) -> dict[str, str]:
    """The generated text of each marked region of a page."""
    ansi = core.render_ansi(state, params)
    return {
        "legend": legend_markdown(core.render_legend()),
        "ansi": f"```text\n{ansi}\n```",
    }


def fill(page: str, texts: dict[str, str]) -> str:
    """``page`` with each ``<!-- make_frames.py: NAME -->`` ...
    ``<!-- make_frames.py: end NAME -->`` region replaced by ``texts[NAME]``."""
    for name, text in texts.items():
        pattern = re.compile(
            rf"(<!-- make_frames.py: {name} -->\n).*?"
            rf"(<!-- make_frames.py: end {name} -->)",
            re.DOTALL,
        )
        if not pattern.search(page):
            raise ValueError(f"the page has no make_frames.py region {name!r}")
        page = pattern.sub(lambda m, text=text: m[1] + text + "\n" + m[2], page)
    return page


def main() -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name, picture in GAMES.items():
        core, params, state = final_state(picture)
        if "rgb_array" in core.render_modes:
            frame = upscale(core.render_rgb(state, params), picture.scale)
            save_png(frame, FIGURES / f"{name}.png")
            print(f"docs/figures/games/{name}.png  {frame.shape}")
        path = PAGES / f"{name}.md"
        path.write_text(fill(path.read_text(), regions(core, params, state)))
        print(f"docs/games/{name}.md")


if __name__ == "__main__":
    main()
