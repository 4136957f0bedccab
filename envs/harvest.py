"""Harvest (Commons Harvest): an N-player common-pool resource dilemma.

Apples regrow only near other apples, so a patch whose last apple is eaten is lost
for good; every player gains from restraint, and each is tempted to take the last
apples before someone else does (Perolat et al. 2017, after Janssen et al. 2010). The
rules and constants follow Melting Pot's ``commons_harvest__open`` substrate
(``meltingpot/configs/substrates/commons_harvest__open.py`` and
``meltingpot/lua/levels/commons_harvest/components.lua``); SSD's variant
(``sequential_social_dilemma_games``, ``social_dilemmas/envs/harvest.py``) is
reachable through ``Params`` where it is cheap (spec ``grid_dilemmas.md`` §3).

===================  ==============================================================
agents               ``num_agents`` (default 5, as in the SSD papers; Melting Pot
                     uses 7), symmetric
actions              ``Discrete(8)``, Melting Pot's order: 0 no-op, 1 forward,
                     2 backward, 3 step left, 4 step right, 5 turn left,
                     6 turn right, 7 fire zap. Steps are relative to the avatar's
                     orientation and keep it; turns change it.
observation          ``uint8[C, forward + backward + 1, left + right + 1]`` planes of
                     the egocentric window ``view = (forward, backward, left,
                     right)`` (default Melting Pot's (9, 1, 5, 5): 11 x 11; SSD's
                     is (7, 7, 7, 7): 15 x 15), the avatar at row ``forward``,
                     column ``left``, facing up. Channels
                     (``env.channel_names``): wall (outside the map reads as wall),
                     grass (a cell where apples grow), apple, self, others facing
                     the same way / to the viewer's right / back / to its left,
                     ready-to-zap (a constant plane, Melting Pot's
                     ``READY_TO_SHOOT``). ``view=None`` gives the full map unrotated
                     instead, with four self planes by absolute facing. A removed
                     avatar sees zeros. ``obs_format="compact"``: one ``uint8``
                     code per cell of the same window instead (shape ``[h, w]``,
                     see below)
reward               ``apple_reward`` (+1) per apple eaten, minus ``zap_cost`` per
                     zap beam fired and ``zap_penalty`` per zap beam received (both
                     0 by default, as in Melting Pot; SSD uses 1 and 50)
termination          never
truncation           after ``max_steps`` (1000) steps. Melting Pot ends episodes
                     stochastically (at least 1000 frames, then p = 0.15 per
                     100-frame interval, at most 5000); SSD runs 1000 steps
stochastic           yes: start, move order, regrowth, respawns
info                 per-step ``int32[N]``: ``apples_eaten``, ``zaps_fired`` (zap
                     beams fired), ``zaps_received`` (zap beams that hit it),
                     ``zap_hits`` (avatars its beam hit), ``removed`` (1 if it was
                     off the map for this whole step), and ``cells_cleaned``,
                     always 0 (no river here; kept so that Cleanup, CleanUp-lite
                     and Harvest log the same keys)
render modes         ``ansi`` and ``rgb_array``
===================  ==============================================================

Compact observation (``obs_format="compact"``, issue #16): the same information as
the planes, one code per cell, ``code = terrain + 4 * avatar`` (``env.code_names``
names every code; ``observation_space`` is ``Box(0, max code, [h, w], uint8)``).
``terrain`` (``COMPACT_TERRAIN``): 0 ground, 1 wall (or outside the map), 2 grass
without an apple, 3 apple (grass with an apple). ``avatar``, egocentric view: 0
none, 1 + b the viewer itself with ``b = ready_to_zap`` (1 or 2; the constant flag
plane is written on the viewer's own cell only), 3 ... 6 another avatar facing the
same way / to the viewer's right / back / to its left; codes 0 ... 27. Full view
(``view=None``): 0 none, ``1 + facing + 4 * b`` the viewer itself (1 ... 8, facing
0 up, 1 right, 2 down, 3 left), 9 ... 12 another avatar by absolute facing; codes
0 ... 51. A removed avatar sees 0 everywhere. The encoder is
:func:`dilemmas.envs.grid.compact_avatar_view`.

Map. Melting Pot's and SSD's ASCII maps are not shipped; the map is generated from
constructor arguments: a wall border and diamond-shaped apple patches (the cells
within L1 distance ``patch_radius`` of a centre, 13 cells for radius 2, the shape of
Melting Pot's patches) on a regular lattice with ``patch_spacing`` (default
``2 * patch_radius + 3``) between centres, centred in the interior. With that
spacing no cell of one patch lies within distance 2 of another patch, so patches
regrow independently and each can be lost on its own. Avatars (re)spawn on any cell
that is not grass. The default 15 x 22 map has 6 patches, 78 apples and 182 ground
cells for 5 players (Melting Pot: 18 x 24, 64 apples, 7 players; SSD: 16 x 38, 155
apples, 5 players): about 16 apples per player, enough that restraint pays over
1000 steps and small enough for cheap steps. ``layout=`` takes any ASCII map
instead (``#`` wall, ``A`` grass with an apple at the start, ``.`` ground).

Step, in order:

1. **Moves and turns** of present avatars, one at a time in a random order; a step
   into a wall or into another avatar's cell fails.
2. **Eating.** An avatar entering a cell with an apple eats it (Melting Pot's
   ``Edible:onEnter``: standing still on an apple that grew under it does not).
3. **Zaps**, fired together from the new positions by present avatars whose counter
   allows it (Melting Pot's counter: two shots are ``zap_cooldown + 1`` steps
   apart). The beam is :func:`dilemmas.envs.grid.beam`: ``2 * zap_radius + 1``
   lanes of ``zap_length`` cells ahead, stopped by walls; each lane stops at the
   first avatar, which is hit (``Zapper:onHit`` returns ``true``).
4. **Time-out.** A hit avatar is removed for ``zap_respawn`` steps: it takes no part
   in the next ``zap_respawn`` steps, is invisible and cannot be hit, then respawns
   on a random free ground cell facing a random way (0 disables removal, SSD).
5. **Regrowth.** Every empty grass cell regrows an apple independently with
   probability ``regrowth_probabilities[min(n, K - 1)]``, n the number of apples
   (after eating) at squared Euclidean distance ``1 .. regrowth_radius_sq`` from it
   (``DensityRegrow``); see :func:`neighbour_counts`.

Start: avatars on distinct random ground cells facing random ways, an apple on every
grass cell (Melting Pot).

Params (``env.make_params(**overrides)`` validates them), with their sources:

==========================  ======================  ===============================
field                       default                 source / alternative
==========================  ======================  ===============================
``apple_reward``            1.0                     MP ``Edible.rewardForEating``
``regrowth_probabilities``  (0, 0.0025, 0.005,      MP ``REGROWTH_PROBABILITIES``;
                            0.025)                  SSD (0, 0.005, 0.02, 0.05)
``regrowth_radius_sq``      4 (L2 radius 2, 12      MP ``APPLE_RESPAWN_RADIUS``;
                            neighbours)             2: SSD's code (j² + k² <= 2,
                                                    the 3 x 3 block)
``zap_length/radius``       3, 1                    MP ``Zapper``; SSD 5, 1
``zap_cooldown``            2                       MP ``Zapper``; SSD 0
``zap_respawn``             4                       MP ``framesTillRespawn``; SSD 0
``zap_cost``                0.0                     MP 0; SSD 1
``zap_penalty``             0.0                     MP 0; SSD 50
``grow_under_agents``       True                    MP ``canRegrowIfOccupied``;
                                                    False: SSD
``max_steps``               1000                    SSD horizon; MP stochastic
==========================  ======================  ===============================

The dilemma, measured with the scripted policies of
:mod:`dilemmas.agents.scripted.harvest` on the default map (1000 steps, 8 seeds):
with k of the 5 players restrained (``RestrainedHarvester``, never eating a
patch's core) and the rest greedy (``GreedyHarvester``), a restrained player earns
10.6, 11.8, 11.3, 14.0, 148.1 (k = 1 ... 5), a greedy one 16.7, 18.3, 21.0, 27.7,
42.6 (k = 0 ... 4), and the group 83, 84, 87, 89, 99, 741 (k = 0 ... 5). So a
player facing j <= 3 restrained others earns more by being greedy (27.7 against
14.0 at j = 3), while all-restraint pays everyone about nine times what all-greed
does; a lone greedy player among 4 restrained ones still empties every patch and
ends below what restraint would have paid it (42.6 against 148.1).
``tests/envs/test_harvest.py`` checks this on a small map against the rules.

``reset``, ``step`` and ``observe`` are jitted with the env as a static argument
(envs with equal settings share compiled code).

Departures from Melting Pot, all documented choices: beams are the engine's
rectangles (the reach that Melting Pot's ``Zapper:getWhoZappable`` traces tapers
instead: side lanes ``length - |offset|`` long, plus the cells beside the avatar);
respawn cells are all ground cells rather than marked spawn points; episodes have a
fixed length.

Version history: v0, initial release.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dilemmas.envs import _commons as rules
from dilemmas.envs import grid
from dilemmas.envs.core import LegendEntry, Timestep
from dilemmas.envs.registry import register

NOOP = rules.NOOP
FORWARD = rules.FORWARD
BACKWARD = rules.BACKWARD
STEP_LEFT = rules.STEP_LEFT
STEP_RIGHT = rules.STEP_RIGHT
TURN_LEFT = rules.TURN_LEFT
TURN_RIGHT = rules.TURN_RIGHT
FIRE_ZAP = rules.FIRE_ZAP
ACTION_NAMES = rules.ACTION_NAMES[:8]

#: Info keys, each ``int32[num_agents]`` on every step.
INFO_KEYS = (
    "apples_eaten",
    "cells_cleaned",
    "zaps_fired",
    "zaps_received",
    "zap_hits",
    "removed",
)
TERRAIN_CHANNELS = ("wall", "grass", "apple")
FLAG_CHANNELS = ("ready_to_zap",)
#: Terrain part of a compact code (``obs_format="compact"``), ``code % 4``: each
#: cell's terrain planes are one of these (apples grow only on grass; outside the
#: map reads as wall).
COMPACT_TERRAIN = ("ground", "wall", "grass", "apple")
LEGEND = "#A."
#: Neighbourhoods reach at most 2 cells away (a 5 x 5 kernel).
MAX_RADIUS_SQ = 8
_REACH = 2


@struct.dataclass
class HarvestState:
    pos: jax.Array  # [N, 2] int32 (row, col); stale while removed
    orientation: jax.Array  # [N] int32 in {0 up, 1 right, 2 down, 3 left}
    removed: jax.Array  # [N] int32, steps still off the map (0: present)
    zap_timer: jax.Array  # [N] int32, zap cooldown counter (0: ready)
    apples: jax.Array  # [H, W] bool, only on grass cells
    t: jax.Array  # () int32, steps played in this episode


@struct.dataclass
class HarvestParams:
    """Numbers of Harvest (defaults and sources in the module docstring)."""

    apple_reward: jax.Array  # () float32
    regrowth_probabilities: jax.Array  # [K] float32, by min(neighbours, K - 1)
    regrowth_radius_sq: jax.Array  # () int32, neighbours at 1 <= d² <= this
    zap_length: jax.Array  # () int32
    zap_radius: jax.Array  # () int32
    zap_cooldown: jax.Array  # () int32
    zap_respawn: jax.Array  # () int32
    zap_cost: jax.Array  # () float32
    zap_penalty: jax.Array  # () float32
    grow_under_agents: jax.Array  # () bool
    max_steps: jax.Array  # () int32


_DEFAULTS: dict[str, Any] = {
    "apple_reward": 1.0,
    "regrowth_probabilities": (0.0, 0.0025, 0.005, 0.025),
    "regrowth_radius_sq": 4,
    "zap_length": 3,
    "zap_radius": 1,
    "zap_cooldown": 2,
    "zap_respawn": 4,
    "zap_cost": 0.0,
    "zap_penalty": 0.0,
    "grow_under_agents": True,
    "max_steps": 1000,
}
#: SSD's regrowth table (``SPAWN_PROB`` in ``social_dilemmas/envs/harvest.py``).
SSD_REGROWTH_PROBABILITIES = (0.0, 0.005, 0.02, 0.05)
_REWARDS = ("apple_reward", "zap_cost", "zap_penalty")
_COUNTS = ("zap_length", "zap_radius", "zap_cooldown", "zap_respawn")


def neighbour_counts(apples: jax.Array, radius_sq: jax.Array) -> jax.Array:
    """``int32[H, W]``: apples at squared Euclidean distance ``1 .. radius_sq``.

    ``radius_sq`` = 4 is Melting Pot's L2 disc of radius 2 (12 cells around the
    centre), 2 the 3 x 3 block of SSD's code; at most :data:`MAX_RADIUS_SQ`.
    Cells outside the map hold no apple. Computed as integer sums of the zero-padded
    apple map shifted by each of the 24 offsets within 2 cells, grouped by squared
    distance; a group counts when its distance is within ``radius_sq``.
    """
    height, width = apples.shape
    padded = jnp.pad(apples.astype(jnp.int32), _REACH)
    rings: dict[int, jax.Array] = {}
    for dr in range(-_REACH, _REACH + 1):
        for dc in range(-_REACH, _REACH + 1):
            distance_sq = dr * dr + dc * dc
            if distance_sq == 0:
                continue
            shifted = padded[
                _REACH + dr : _REACH + dr + height, _REACH + dc : _REACH + dc + width
            ]
            ring = rings.get(distance_sq)
            rings[distance_sq] = shifted if ring is None else ring + shifted
    counts = jnp.zeros((height, width), jnp.int32)
    for distance_sq, ring in rings.items():
        counts = counts + jnp.where(distance_sq <= radius_sq, ring, 0)
    return counts


def regrowth_probability(counts: jax.Array, params: HarvestParams) -> jax.Array:
    """``regrowth_probabilities[min(counts, K - 1)]`` (Melting Pot's rule)."""
    table = params.regrowth_probabilities
    return table[jnp.minimum(counts, table.shape[0] - 1)]


def generate_layout(
    height: int, width: int, patch_radius: int, patch_spacing: int
) -> tuple[str, list[tuple[int, int]]]:
    """The ASCII map of the generated layout and its patch centres."""
    chars = np.full((height, width), ".")
    chars[rules.border_walls(height, width)] = "#"
    size = 2 * patch_radius + 1
    interior_h, interior_w = height - 2, width - 2
    centres: list[tuple[int, int]] = []
    if interior_h >= size and interior_w >= size:
        num_rows = (interior_h - size) // patch_spacing + 1
        num_cols = (interior_w - size) // patch_spacing + 1
        first_row = (
            1 + patch_radius + (interior_h - size - (num_rows - 1) * patch_spacing) // 2
        )
        first_col = (
            1 + patch_radius + (interior_w - size - (num_cols - 1) * patch_spacing) // 2
        )
        rows, cols = np.mgrid[0:height, 0:width]
        for i in range(num_rows):
            for j in range(num_cols):
                centre = (first_row + i * patch_spacing, first_col + j * patch_spacing)
                centres.append(centre)
                diamond = np.abs(rows - centre[0]) + np.abs(cols - centre[1])
                chars[diamond <= patch_radius] = "A"
    return "\n".join("".join(row) for row in chars), centres


class Harvest(rules.CommonsGame):
    """Commons Harvest (Melting Pot ``commons_harvest__open`` rules).

    Args:
      num_agents: number of players.
      height, width: map size including the wall border (default 15 x 22).
      patch_radius: L1 radius of the diamond apple patches (default 2: 13 cells).
      patch_spacing: rows/columns between patch centres (default
        ``2 * patch_radius + 3``).
      layout: an ASCII map (``#`` wall, ``A`` grass with an apple, ``.`` ground)
        instead of the generated one; then leave the four size arguments unset.
      view: the egocentric window ``(forward, backward, left, right)``, or
        ``None`` for the full map.
      max_steps: default episode length of :attr:`default_params` (1000).
      obs_format: ``"planes"`` (default, one-hot planes) or ``"compact"`` (one
        ``uint8`` code per cell; table in the module docstring).
    """

    num_actions = 8
    co_players = "dilemmas.agents.scripted.harvest"
    default_co_player = "greedy"
    action_names = ACTION_NAMES
    GAME_NAME = "Harvest"
    DEFAULTS = _DEFAULTS

    def __init__(
        self,
        num_agents: int = 5,
        height: int | None = None,
        width: int | None = None,
        patch_radius: int | None = None,
        patch_spacing: int | None = None,
        *,
        layout: str | None = None,
        view: tuple[int, int, int, int] | None = (9, 1, 5, 5),
        max_steps: int = 1000,
        obs_format: str = "planes",
    ):
        self.obs_format = grid.check_obs_format(obs_format)
        self.num_agents = rules.check_int("num_agents", num_agents, 1)
        self._max_steps = rules.check_int("max_steps", max_steps, 1)
        sizes = (height, width, patch_radius, patch_spacing)
        self.patch_centres: list[tuple[int, int]] = []
        if layout is None:
            height = rules.check_int("height", 15 if height is None else height, 3)
            width = rules.check_int("width", 22 if width is None else width, 3)
            patch_radius = rules.check_int(
                "patch_radius", 2 if patch_radius is None else patch_radius, 0
            )
            spacing_default = 2 * patch_radius + 3
            patch_spacing = rules.check_int(
                "patch_spacing",
                spacing_default if patch_spacing is None else patch_spacing,
                2 * patch_radius + 1,
            )
            layout, self.patch_centres = generate_layout(
                height, width, patch_radius, patch_spacing
            )
            if not self.patch_centres:
                raise ValueError(
                    f"the map has no orchard: a patch of radius {patch_radius} needs "
                    f"{2 * patch_radius + 1} interior rows and columns, but a "
                    f"{height} x {width} map (with its wall border) has "
                    f"{height - 2} x {width - 2}"
                )
        elif any(size is not None for size in sizes):
            raise ValueError(
                "give either layout= or height/width/patch_radius/patch_spacing, "
                "not both"
            )
        chars = rules.parse_layout(layout, LEGEND)
        self.layout = "\n".join("".join(row) for row in chars)
        self.height, self.width = chars.shape
        self.walls = chars == "#"
        self.grass = chars == "A"
        self.spawn = chars == "."
        if not self.grass.any():
            raise ValueError(
                "the map has no orchard: Harvest needs at least one apple cell "
                "('A' in the layout)"
            )
        if self.spawn.sum() < self.num_agents:
            raise ValueError(
                f"{self.num_agents} agents need as many ground cells to spawn on, "
                f"but the map has only {int(self.spawn.sum())} cells that are "
                "neither wall nor grass"
            )
        self._init_observation(view, TERRAIN_CHANNELS, FLAG_CHANNELS)
        # Static terrain codes of the compact format; an apple adds 1.
        self._terrain_code = (self.walls * 1 + self.grass * 2).astype(np.int32)
        self._init_compact(COMPACT_TERRAIN, FLAG_CHANNELS)

    def make_params(self, **overrides: Any) -> HarvestParams:
        """Validated params: the defaults of the module docstring, with overrides."""
        values = self._param_values(overrides)
        fields: dict[str, jax.Array] = {}
        table = np.asarray(values["regrowth_probabilities"], np.float64)
        if table.ndim != 1 or table.size == 0:
            raise ValueError(
                "regrowth_probabilities must be a non-empty 1-D sequence, got "
                f"{values['regrowth_probabilities']!r}"
            )
        for entry in table:
            rules.check_float("regrowth_probabilities entry", entry, 0.0, 1.0)
        fields["regrowth_probabilities"] = jnp.asarray(table, jnp.float32)
        radius_sq = rules.check_int(
            "regrowth_radius_sq", values["regrowth_radius_sq"], 0
        )
        if radius_sq > MAX_RADIUS_SQ:
            raise ValueError(
                f"regrowth_radius_sq must be at most {MAX_RADIUS_SQ} (neighbours "
                f"within 2 cells), got {radius_sq}"
            )
        fields["regrowth_radius_sq"] = jnp.int32(radius_sq)
        for name in _REWARDS:
            fields[name] = jnp.float32(
                rules.check_float(name, values[name], -np.inf, np.inf)
            )
        for name in _COUNTS:
            fields[name] = jnp.int32(rules.check_int(name, values[name], 0))
        fields["grow_under_agents"] = jnp.asarray(
            rules.check_bool("grow_under_agents", values["grow_under_agents"])
        )
        fields["max_steps"] = jnp.int32(
            rules.check_int("max_steps", values["max_steps"], 1)
        )
        return HarvestParams(**fields)

    # ------------------------------------------------------------------ dynamics

    @functools.partial(jax.jit, static_argnums=(0,))
    def reset(
        self, key: jax.Array, params: HarvestParams
    ) -> tuple[jax.Array, HarvestState]:
        del params
        num = self.num_agents
        draws = jax.random.uniform(
            key, (rules.spawn_draws((self.height, self.width), num),)
        )
        pos, orientation = rules.spawn_positions(draws, jnp.asarray(self.spawn), num)
        zeros = jnp.zeros((num,), jnp.int32)
        state = HarvestState(
            pos=pos,
            orientation=orientation,
            removed=zeros,
            zap_timer=zeros,
            apples=jnp.asarray(self.grass),
            t=jnp.zeros((), jnp.int32),
        )
        return self.observe(state), state

    @functools.partial(jax.jit, static_argnums=(0,))
    def step(
        self,
        key: jax.Array,
        state: HarvestState,
        actions: jax.Array,
        params: HarvestParams,
    ) -> Timestep:
        num, shape = self.num_agents, (self.height, self.width)
        # One block of uniforms, sliced: [move order | respawn | regrowth].
        respawn_end = num + rules.spawn_draws(shape, num)
        draws = jax.random.uniform(key, (respawn_end + shape[0] * shape[1],))
        actions = jnp.asarray(actions, jnp.int32)
        walls = jnp.asarray(self.walls)
        present = state.removed == 0

        # 1. Moves and turns.
        pos, orientation, moved = rules.move_avatars(
            draws[:num], state.pos, state.orientation, actions, present, walls
        )
        # 2. Eating, on entering a cell.
        eaten = present & moved & state.apples[pos[:, 0], pos[:, 1]]
        apples = state.apples & ~rules.occupancy(pos, eaten, shape)

        # 3. Zaps.
        zaps, zap_timer = rules.cooldown_fire(
            state.zap_timer, actions == FIRE_ZAP, present, params.zap_cooldown
        )
        (zap_mask,) = rules.beam_masks(
            pos, orientation, ((params.zap_length, params.zap_radius),), walls
        )
        hits = rules.zap_hits(pos, orientation, zaps, present, zap_mask)
        received = hits.sum(axis=0, dtype=jnp.int32)

        # 4. Time-out of the hit avatars, respawn of those whose time is up.
        pos, orientation, removed = rules.remove_and_respawn(
            draws[num:respawn_end],
            pos,
            orientation,
            state.removed,
            received > 0,
            params.zap_respawn,
            jnp.asarray(self.spawn),
        )

        # 5. Regrowth, from the apples left after eating.
        p_grow = regrowth_probability(
            neighbour_counts(apples, params.regrowth_radius_sq), params
        )
        free = ~rules.occupancy(pos, removed == 0, shape) | params.grow_under_agents
        grows = (
            jnp.asarray(self.grass)
            & ~apples
            & free
            & (draws[respawn_end:].reshape(shape) < p_grow)
        )
        apples = apples | grows

        state = HarvestState(
            pos=pos,
            orientation=orientation,
            removed=removed,
            zap_timer=zap_timer,
            apples=apples,
            t=state.t + 1,
        )
        reward = (
            params.apple_reward * eaten
            - params.zap_cost * zaps
            - params.zap_penalty * received
        ).astype(jnp.float32)
        info = {
            "apples_eaten": eaten.astype(jnp.int32),
            "cells_cleaned": jnp.zeros_like(received),
            "zaps_fired": zaps.astype(jnp.int32),
            "zaps_received": received,
            "zap_hits": hits.sum(axis=1, dtype=jnp.int32),
            "removed": (~present).astype(jnp.int32),
        }
        return Timestep(
            obs=self.observe(state),
            state=state,
            reward=reward,
            terminated=jnp.zeros((), bool),
            truncated=state.t >= params.max_steps,
            info=info,
        )

    @functools.partial(jax.jit, static_argnums=(0,))
    def observe(self, state: HarvestState) -> jax.Array:
        """``uint8[N, *obs_shape]``: every avatar's planes (see ``channel_names``),
        or with ``obs_format="compact"`` its cell codes (see ``code_names``)."""
        flags = (state.zap_timer == 0)[:, None]
        if self.obs_format == "compact":
            return grid.compact_avatar_view(
                jnp.asarray(self._terrain_code) + state.apples,
                len(COMPACT_TERRAIN),
                state.pos,
                state.orientation,
                state.removed == 0,
                flags,
                self.view,
            )
        terrain = jnp.stack(
            [jnp.asarray(self.walls), jnp.asarray(self.grass), state.apples]
        )
        return rules.observe(
            terrain, state.pos, state.orientation, state.removed == 0, flags, self.view
        )

    # ------------------------------------------------------------------ rendering

    def _index_grid(self, state: HarvestState) -> np.ndarray:
        index = np.full((self.height, self.width), rules.GROUND, np.int64)
        index[self.walls] = rules.WALL
        index[self.grass] = rules.GRASS
        index[np.asarray(state.apples)] = rules.APPLE
        return rules.avatar_overlay(
            index, np.asarray(state.pos), np.asarray(state.removed)
        )

    def render_legend(self) -> tuple[LegendEntry, ...]:
        """The symbols of :meth:`render_ansi` and colours of :meth:`render_rgb`."""
        entry = LegendEntry
        return (
            entry("ground (avatars spawn here)", ".", rules.colour(rules.GROUND)),
            entry("wall", "#", rules.colour(rules.WALL)),
            entry("grass without an apple", ":", rules.colour(rules.GRASS)),
            entry("apple", "a", rules.colour(rules.APPLE)),
            *rules.avatar_legend(self.num_agents),
        )

    def render_ansi(self, state: HarvestState, params: HarvestParams) -> str:
        """Text picture: ``#`` wall, ``a`` apple, ``:`` grass without an apple,
        ``.`` ground, digits the present avatars."""
        chars = np.array([list(row) for row in self.layout.split("\n")])
        chars[self.grass] = ":"
        chars[np.asarray(state.apples)] = "a"
        pos, removed = np.asarray(state.pos), np.asarray(state.removed)
        orientation = np.asarray(state.orientation)
        header = (
            f"step {int(state.t)}/{int(params.max_steps)}: "
            f"{int(np.asarray(state.apples).sum())} of {int(self.grass.sum())} apples"
        )
        rows = rules.ansi_rows(chars, pos, orientation, removed)
        return "\n".join(
            [header, *rows, rules.avatar_status(pos, orientation, removed)]
        )


register(
    "harvest-v0",
    Harvest,
    description=(
        "Commons Harvest (Melting Pot rules): 5 players, 15 x 22 map with 6 apple "
        "patches, density-dependent regrowth, zapping, 1000 steps"
    ),
)
