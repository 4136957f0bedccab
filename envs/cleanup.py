"""Cleanup: an N-player public-goods dilemma (Hughes et al. 2018; Melting Pot).

Apples grow in an orchard only while a river is kept clean, and cleaning means leaving
the orchard: the benefit of a clean river is shared by everyone, the cost is borne by
whoever cleans. The rules and constants follow Melting Pot's ``clean_up`` substrate
(``meltingpot/configs/substrates/clean_up.py`` and
``meltingpot/lua/levels/clean_up/components.lua``); SSD's variant
(``sequential_social_dilemma_games``, ``social_dilemmas/envs/cleanup.py``) is
reachable through ``Params`` where it is cheap (spec ``grid_dilemmas.md`` §2).

===================  ==============================================================
agents               ``num_agents`` (default 5, as in the SSD papers; Melting Pot
                     uses 7), symmetric
actions              ``Discrete(9)``, Melting Pot's order: 0 no-op, 1 forward,
                     2 backward, 3 step left, 4 step right, 5 turn left,
                     6 turn right, 7 fire zap, 8 fire clean. Steps are relative to
                     the avatar's orientation and keep it; turns change it.
observation          ``uint8[C, forward + backward + 1, left + right + 1]`` planes of
                     the egocentric window ``view = (forward, backward, left,
                     right)`` (default Melting Pot's (9, 1, 5, 5): 11 x 11; SSD's
                     is (7, 7, 7, 7): 15 x 15), the avatar at row ``forward``,
                     column ``left``, facing up. Channels
                     (``env.channel_names``): wall (outside the map reads as wall),
                     river, orchard, dirt, apple, self, others facing the same way /
                     to the viewer's right / back / to its left, ready-to-zap,
                     ready-to-clean (constant planes, Melting Pot's
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
                     stochastically (at least 1000 frames, then p = 0.2 per
                     100-frame interval, at most 5000); SSD runs 1000 steps
stochastic           yes: start, move order, dirt, apples, respawns
info                 per-step ``int32[N]``: ``apples_eaten``, ``cells_cleaned`` (dirt
                     cells this avatar's clean beam removed), ``zaps_fired`` (zap
                     beams fired), ``zaps_received`` (zap beams that hit it),
                     ``zap_hits`` (avatars its beam hit), ``removed`` (1 if it was
                     off the map for this whole step)
render modes         ``ansi`` and ``rgb_array``
===================  ==============================================================

Compact observation (``obs_format="compact"``, issue #16): the same information as
the planes, one code per cell, ``code = terrain + 6 * avatar`` (``env.code_names``
names every code; ``observation_space`` is ``Box(0, max code, [h, w], uint8)``).
``terrain`` (``COMPACT_TERRAIN``): 0 ground, 1 wall (or outside the map), 2 clean
river, 3 dirt (river with dirt), 4 orchard without an apple, 5 apple (orchard with
an apple). ``avatar``, egocentric view: 0 none, 1 + b the viewer itself with its
flags ``b = ready_to_zap + 2 * ready_to_clean`` (so 1 ... 4; the constant flag
planes are written on the viewer's own cell only), 5 ... 8 another avatar facing
the same way / to the viewer's right / back / to its left; codes 0 ... 53. Full
view (``view=None``): 0 none, ``1 + facing + 4 * b`` the viewer itself (1 ... 16,
facing 0 up, 1 right, 2 down, 3 left), 17 ... 20 another avatar by absolute facing;
codes 0 ... 125. A removed avatar sees 0 everywhere. The encoder is
:func:`dilemmas.envs.grid.compact_avatar_view`.

Map. Melting Pot's and SSD's ASCII maps are not shipped; the map is generated from
constructor arguments: a wall border, ``river_rows`` rows of river across the top
(every river cell can hold dirt), ``orchard_rows`` rows of orchard along the bottom
(every orchard cell can grow an apple) and plain ground between them, where avatars
(re)spawn. The default 16 x 20 map (interior 14 x 18: 72 river cells, 90 orchard
cells, 90 ground cells) is about half of Melting Pot's 21 x 30 (147 river, 122
orchard cells, 7 players) or SSD's 25 x 18, with the same river-above/orchard-below
arrangement: a step stays cheap, the orchard gives each of 5 players about as much
potential growth as Melting Pot's gives 7, and an avatar still needs ~5 steps to go
from the orchard to the river bank, so cleaning costs apples. ``layout=`` takes any
ASCII map instead (``#`` wall, ``~`` river, ``o`` orchard, ``.`` ground).

Step, in order:

1. **Moves and turns** of present avatars, one at a time in a random order; a step
   into a wall or into another avatar's cell fails.
2. **Eating.** An avatar entering a cell with an apple eats it (Melting Pot's
   ``Edible:onEnter``: standing still on an apple that grew under it does not).
3. **Beams**, fired together from the new positions by present avatars whose
   counter allows it (Melting Pot's counter: two shots are ``cooldown + 1`` steps
   apart). Shapes come from :func:`dilemmas.envs.grid.beam`: ``2 * radius + 1``
   lanes of ``length`` cells ahead, stopped by walls. A *zap* lane stops at the
   first avatar, which is hit; a *clean* lane stops at the first dirt, which is
   removed (``components.lua``: both ``onHit`` return ``true``). Simultaneous zaps
   all land; dirt hit by two clean beams is credited to both.
4. **Time-out.** A hit avatar is removed for ``zap_respawn`` steps: it takes no part
   in the next ``zap_respawn`` steps, is invisible and cannot be hit, then respawns
   on a random free ground cell facing a random way (0 disables removal, SSD).
5. **Dirt.** From step index ``dirt_spawn_delay`` on (frames after the 50th), with
   probability ``dirt_spawn_prob`` one dirt appears on a uniformly random clean
   river cell (``DirtSpawner``).
6. **Apples.** With dirt fraction f = dirt cells / river cells (after 3 and 5),
   every empty orchard cell grows an apple independently with probability
   ``max_apple_growth * clip((f - threshold_depletion) / (threshold_restoration -
   threshold_depletion), 0, 1)``, i.e. 0.05 (1 - f / 0.4) for f < 0.4 and 0 above
   (``AppleGrow``); see :func:`apple_growth_probability`.

Start: avatars on distinct random ground cells facing random ways, no apples, and
``round(initial_dirt_fraction * river cells)`` dirt cells chosen at random (Melting
Pot: 79 of 147, f = 0.54 > 0.4, so nothing grows until the river is cleaned).

Params (``env.make_params(**overrides)`` validates them), with their sources:

===========================  =======  =======================================
field                        default  source / alternative
===========================  =======  =======================================
``apple_reward``             1.0      MP ``Edible.rewardForEating``
``max_apple_growth``         0.05     MP ``AppleGrow``; SSD same
``threshold_depletion``      0.4      MP ``AppleGrow``; SSD same
``threshold_restoration``    0.0      MP ``AppleGrow``
``dirt_spawn_prob``          0.5      MP ``DirtSpawner``; SSD ~1 (one a step)
``dirt_spawn_delay``         50       MP ``delayStartOfDirtSpawning``; SSD 0
``dirt_stops_at_threshold``  False    True: none while f >= 0.4 (SSD)
``initial_dirt_fraction``    79/147   MP map; SSD 56/119
``clean_length/radius``      3, 1     MP ``Cleaner``; SSD 5, 1
``clean_cooldown``           2        MP ``Cleaner``; SSD 0
``zap_length/radius``        3, 1     MP ``Zapper``; SSD 5, 1
``zap_cooldown``             10       MP ``Zapper``; SSD 0
``zap_respawn``              50       MP ``framesTillRespawn``; SSD 0 (stays)
``zap_cost``                 0.0      MP ``rewardForZapping`` 0; SSD 1
``zap_penalty``              0.0      MP ``penaltyForBeingZapped`` 0; SSD 50
``grow_under_agents``        True     MP (``AppleGrow`` ignores avatars);
                                      False: SSD, none under a present avatar
``max_steps``                1000     SSD horizon; MP's ending is stochastic
===========================  =======  =======================================

The dilemma, measured with the scripted policies of
:mod:`dilemmas.agents.scripted.cleanup` on the default map (1000 steps, 8 seeds):
with k of the 5 players as ``DedicatedCleaner`` and the rest as ``Harvester``, a
harvester earns 0, 40, 687, 784, 873 for k = 0 ... 4 and a cleaner always 0, so at
every k >= 1 the individual gains by not cleaning, while the group earns 0, 159,
2062, 1568, 873 and 0 (k = 0 ... 5): nothing at all unless someone cleans. With
``TurnTaker`` as the cooperator instead (it cleans on its turn or while the dirt
fraction is at least 0.2, and eats otherwise; same map, 1000 steps, 8 seeds), a
cooperator earns 0, 28, 81, 140, 198 for k = 1 ... 5 and a harvester 0, 35, 527,
632, 715 for k = 0 ... 4: mutual cooperation (198 each) beats mutual defection (0),
yet a player whose four partners cooperate earns more by defecting (715). The group
earns most with two of them (1637 in all, against 988 with five: every TurnTaker
heads for the river when it is dirty). ``tests/envs/test_cleanup.py`` checks these
inequalities on a 9 x 10 map.

``reset``, ``step`` and ``observe`` are jitted with the env as a static argument
(envs with equal settings share compiled code).

Departures from Melting Pot, all documented choices: beams are the engine's
rectangles (the reach that Melting Pot's ``Zapper:getWhoZappable`` traces tapers
instead: side lanes ``length - |offset|`` long, plus the cells beside the avatar);
dirt does not block movement; respawn cells are all ground cells rather than marked
spawn points; the initial dirt is placed at random rather than from the map;
episodes have a fixed length.

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
FIRE_CLEAN = rules.FIRE_CLEAN
ACTION_NAMES = rules.ACTION_NAMES

#: Info keys, each ``int32[num_agents]`` on every step.
INFO_KEYS = (
    "apples_eaten",
    "cells_cleaned",
    "zaps_fired",
    "zaps_received",
    "zap_hits",
    "removed",
)
TERRAIN_CHANNELS = ("wall", "river", "orchard", "dirt", "apple")
FLAG_CHANNELS = ("ready_to_zap", "ready_to_clean")
#: Terrain part of a compact code (``obs_format="compact"``), ``code % 6``: each
#: cell's terrain planes are one of these (dirt lies only on river cells, apples
#: only on orchard cells; outside the map reads as wall).
COMPACT_TERRAIN = ("ground", "wall", "river", "dirt", "orchard", "apple")
LEGEND = "#~o."


@struct.dataclass
class CleanupState:
    pos: jax.Array  # [N, 2] int32 (row, col); stale while removed
    orientation: jax.Array  # [N] int32 in {0 up, 1 right, 2 down, 3 left}
    removed: jax.Array  # [N] int32, steps still off the map (0: present)
    zap_timer: jax.Array  # [N] int32, zap cooldown counter (0: ready)
    clean_timer: jax.Array  # [N] int32, clean cooldown counter (0: ready)
    dirt: jax.Array  # [H, W] bool, only on river cells
    apples: jax.Array  # [H, W] bool, only on orchard cells
    t: jax.Array  # () int32, steps played in this episode


@struct.dataclass
class CleanupParams:
    """Numbers of Cleanup (defaults and sources in the module docstring)."""

    apple_reward: jax.Array  # () float32
    max_apple_growth: jax.Array  # () float32
    threshold_depletion: jax.Array  # () float32
    threshold_restoration: jax.Array  # () float32
    dirt_spawn_prob: jax.Array  # () float32
    dirt_spawn_delay: jax.Array  # () int32
    dirt_stops_at_threshold: jax.Array  # () bool
    initial_dirt_fraction: jax.Array  # () float32
    clean_length: jax.Array  # () int32
    clean_radius: jax.Array  # () int32
    clean_cooldown: jax.Array  # () int32
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
    "max_apple_growth": 0.05,
    "threshold_depletion": 0.4,
    "threshold_restoration": 0.0,
    "dirt_spawn_prob": 0.5,
    "dirt_spawn_delay": 50,
    "dirt_stops_at_threshold": False,
    "initial_dirt_fraction": 79 / 147,
    "clean_length": 3,
    "clean_radius": 1,
    "clean_cooldown": 2,
    "zap_length": 3,
    "zap_radius": 1,
    "zap_cooldown": 10,
    "zap_respawn": 50,
    "zap_cost": 0.0,
    "zap_penalty": 0.0,
    "grow_under_agents": True,
    "max_steps": 1000,
}
_PROBABILITIES = (
    "max_apple_growth",
    "threshold_depletion",
    "threshold_restoration",
    "dirt_spawn_prob",
    "initial_dirt_fraction",
)
_REWARDS = ("apple_reward", "zap_cost", "zap_penalty")
_COUNTS = (
    "dirt_spawn_delay",
    "clean_length",
    "clean_radius",
    "clean_cooldown",
    "zap_length",
    "zap_radius",
    "zap_cooldown",
    "zap_respawn",
)
_FLAGS = ("dirt_stops_at_threshold", "grow_under_agents")


def apple_growth_probability(
    dirt_fraction: jax.Array, params: CleanupParams
) -> jax.Array:
    """Melting Pot's ``AppleGrow`` probability per empty orchard cell and step.

    ``max_apple_growth * min(1, (f - depletion) / (restoration - depletion))``,
    clipped at 0: with the defaults 0.05 (1 - f / 0.4) below f = 0.4, else 0.
    """
    depletion, restoration = params.threshold_depletion, params.threshold_restoration
    interpolation = (dirt_fraction - depletion) / (restoration - depletion)
    return params.max_apple_growth * jnp.clip(interpolation, 0.0, 1.0)


def generate_layout(height: int, width: int, river_rows: int, orchard_rows: int) -> str:
    """The ASCII map of the generated layout (see the module docstring)."""
    rows = ["#" * width]
    interior = width - 2
    plain_rows = height - 2 - river_rows - orchard_rows
    rows += ["#" + "~" * interior + "#"] * river_rows
    rows += ["#" + "." * interior + "#"] * plain_rows
    rows += ["#" + "o" * interior + "#"] * orchard_rows
    rows.append("#" * width)
    return "\n".join(rows)


class Cleanup(rules.CommonsGame):
    """Cleanup (Melting Pot ``clean_up`` rules) on a generated or given map.

    Args:
      num_agents: number of players.
      height, width: map size including the wall border (default 16 x 20).
      river_rows: rows of river along the top (default 4).
      orchard_rows: rows of orchard along the bottom (default 5); the rows between
        are ground, where avatars spawn.
      layout: an ASCII map (``#`` wall, ``~`` river, ``o`` orchard, ``.`` ground)
        instead of the generated one; then leave the four size arguments unset.
      view: the egocentric window ``(forward, backward, left, right)``, or
        ``None`` for the full map.
      max_steps: default episode length of :attr:`default_params` (1000).
      obs_format: ``"planes"`` (default, one-hot planes) or ``"compact"`` (one
        ``uint8`` code per cell; table in the module docstring).
    """

    num_actions = 9
    co_players = "dilemmas.agents.scripted.cleanup"
    default_co_player = "harvester"
    #: One cleaner feeding four free-riders: five harvesters alone eat nothing.
    demo_players = ("dedicated_cleaner", "harvester")
    action_names = ACTION_NAMES
    GAME_NAME = "Cleanup"
    DEFAULTS = _DEFAULTS

    def __init__(
        self,
        num_agents: int = 5,
        height: int | None = None,
        width: int | None = None,
        river_rows: int | None = None,
        orchard_rows: int | None = None,
        *,
        layout: str | None = None,
        view: tuple[int, int, int, int] | None = (9, 1, 5, 5),
        max_steps: int = 1000,
        obs_format: str = "planes",
    ):
        self.obs_format = grid.check_obs_format(obs_format)
        self.num_agents = rules.check_int("num_agents", num_agents, 1)
        self._max_steps = rules.check_int("max_steps", max_steps, 1)
        sizes = (height, width, river_rows, orchard_rows)
        if layout is None:
            height = rules.check_int("height", 16 if height is None else height, 3)
            width = rules.check_int("width", 20 if width is None else width, 3)
            river_rows = rules.check_int(
                "river_rows", 4 if river_rows is None else river_rows, 0
            )
            orchard_rows = rules.check_int(
                "orchard_rows", 5 if orchard_rows is None else orchard_rows, 0
            )
            if river_rows + orchard_rows > height - 2:
                raise ValueError(
                    f"river_rows={river_rows} + orchard_rows={orchard_rows} do not fit "
                    f"in the {height - 2} interior rows of a height={height} map"
                )
            layout = generate_layout(height, width, river_rows, orchard_rows)
        elif any(size is not None for size in sizes):
            raise ValueError(
                "give either layout= or height/width/river_rows/orchard_rows, not both"
            )
        chars = rules.parse_layout(layout, LEGEND)
        self.layout = "\n".join("".join(row) for row in chars)
        self.height, self.width = chars.shape
        self.walls = chars == "#"
        self.river = chars == "~"
        self.orchard = chars == "o"
        self.spawn = chars == "."
        if not self.river.any():
            raise ValueError(
                "the map has no river: Cleanup needs at least one river cell "
                "(river_rows >= 1, or '~' in the layout)"
            )
        if not self.orchard.any():
            raise ValueError(
                "the map has no orchard: Cleanup needs at least one orchard cell "
                "(orchard_rows >= 1, or 'o' in the layout)"
            )
        if self.spawn.sum() < self.num_agents:
            raise ValueError(
                f"{self.num_agents} agents need as many ground cells to spawn on, "
                f"but the map has only {int(self.spawn.sum())} (the rows between "
                "river and orchard, or '.' in the layout)"
            )
        self.num_river_cells = int(self.river.sum())
        self._init_observation(view, TERRAIN_CHANNELS, FLAG_CHANNELS)
        # Static terrain codes of the compact format; dirt and apples add 1.
        self._terrain_code = (
            self.walls * 1 + self.river * 2 + self.orchard * 4
        ).astype(np.int32)
        self._init_compact(COMPACT_TERRAIN, FLAG_CHANNELS)

    def make_params(self, **overrides: Any) -> CleanupParams:
        """Validated params: the defaults of the module docstring, with overrides."""
        values = self._param_values(overrides)
        fields: dict[str, jax.Array] = {}
        for name in _PROBABILITIES:
            fields[name] = jnp.float32(rules.check_float(name, values[name], 0.0, 1.0))
        for name in _REWARDS:
            fields[name] = jnp.float32(
                rules.check_float(name, values[name], -np.inf, np.inf)
            )
        for name in _COUNTS:
            fields[name] = jnp.int32(rules.check_int(name, values[name], 0))
        for name in _FLAGS:
            fields[name] = jnp.asarray(rules.check_bool(name, values[name]))
        fields["max_steps"] = jnp.int32(
            rules.check_int("max_steps", values["max_steps"], 1)
        )
        if not values["threshold_restoration"] < values["threshold_depletion"]:
            raise ValueError(
                "threshold_restoration must be below threshold_depletion, got "
                f"{values['threshold_restoration']} >= {values['threshold_depletion']}"
            )
        return CleanupParams(**fields)

    # ------------------------------------------------------------------ dynamics

    @functools.partial(jax.jit, static_argnums=(0,))
    def reset(
        self, key: jax.Array, params: CleanupParams
    ) -> tuple[jax.Array, CleanupState]:
        num, shape = self.num_agents, (self.height, self.width)
        start = rules.spawn_draws(shape, num)
        draws = jax.random.uniform(key, (start + self.height * self.width,))
        pos, orientation = rules.spawn_positions(
            draws[:start], jnp.asarray(self.spawn), num
        )
        # A uniformly random set of round(fraction * river) river cells: those
        # whose i.i.d. uniform score is among the smallest (other cells score 2).
        river = jnp.asarray(self.river)
        scores = jnp.where(river, draws[start:].reshape(shape), 2.0)
        num_dirt = jnp.round(params.initial_dirt_fraction * self.num_river_cells)
        num_dirt = num_dirt.astype(jnp.int32)
        cutoff = jnp.sort(scores.reshape(-1))[jnp.maximum(num_dirt - 1, 0)]
        zeros = jnp.zeros((num,), jnp.int32)
        state = CleanupState(
            pos=pos,
            orientation=orientation,
            removed=zeros,
            zap_timer=zeros,
            clean_timer=zeros,
            dirt=river & (scores <= cutoff) & (num_dirt > 0),
            apples=jnp.zeros(river.shape, bool),
            t=jnp.zeros((), jnp.int32),
        )
        return self.observe(state), state

    @functools.partial(jax.jit, static_argnums=(0,))
    def step(
        self,
        key: jax.Array,
        state: CleanupState,
        actions: jax.Array,
        params: CleanupParams,
    ) -> Timestep:
        num, shape = self.num_agents, (self.height, self.width)
        # One block of uniforms, sliced: [move order | respawn | dirt | growth].
        key_draws, key_spawn = jax.random.split(key)
        respawn_end = num + rules.spawn_draws(shape, num)
        draws = jax.random.uniform(key_draws, (respawn_end + 1 + shape[0] * shape[1],))
        actions = jnp.asarray(actions, jnp.int32)
        walls, river = jnp.asarray(self.walls), jnp.asarray(self.river)
        present = state.removed == 0

        # 1. Moves and turns.
        pos, orientation, moved = rules.move_avatars(
            draws[:num], state.pos, state.orientation, actions, present, walls
        )
        # 2. Eating, on entering a cell.
        eaten = present & moved & state.apples[pos[:, 0], pos[:, 1]]
        apples = state.apples & ~rules.occupancy(pos, eaten, shape)

        # 3. Beams.
        zaps, zap_timer = rules.cooldown_fire(
            state.zap_timer, actions == FIRE_ZAP, present, params.zap_cooldown
        )
        cleans, clean_timer = rules.cooldown_fire(
            state.clean_timer, actions == FIRE_CLEAN, present, params.clean_cooldown
        )
        zap_mask, clean_mask = rules.beam_masks(
            pos,
            orientation,
            (
                (params.zap_length, params.zap_radius),
                (params.clean_length, params.clean_radius),
            ),
            walls,
        )
        hits = rules.zap_hits(pos, orientation, zaps, present, zap_mask)
        cleaned = jax.vmap(rules.first_in_lanes, in_axes=(0, None, 0, 0))(
            clean_mask, state.dirt, pos, orientation
        )
        cleaned = cleaned & cleans[:, None, None]
        dirt = state.dirt & ~cleaned.any(axis=0)
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

        # 5. Dirt.
        fraction = dirt.sum() / self.num_river_cells
        may_spawn = (state.t >= params.dirt_spawn_delay) & (
            ~params.dirt_stops_at_threshold | (fraction < params.threshold_depletion)
        )
        cell, found = grid.sample_cell(key_spawn, river & ~dirt)
        spawns = may_spawn & found & (draws[respawn_end] < params.dirt_spawn_prob)
        dirt = dirt.at[cell[0], cell[1]].set(dirt[cell[0], cell[1]] | spawns)

        # 6. Apples.
        p_grow = apple_growth_probability(dirt.sum() / self.num_river_cells, params)
        free = ~rules.occupancy(pos, removed == 0, shape) | params.grow_under_agents
        grows = (
            jnp.asarray(self.orchard)
            & ~apples
            & free
            & (draws[respawn_end + 1 :].reshape(shape) < p_grow)
        )
        apples = apples | grows

        state = CleanupState(
            pos=pos,
            orientation=orientation,
            removed=removed,
            zap_timer=zap_timer,
            clean_timer=clean_timer,
            dirt=dirt,
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
            "cells_cleaned": cleaned.sum(axis=(1, 2), dtype=jnp.int32),
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
    def observe(self, state: CleanupState) -> jax.Array:
        """``uint8[N, *obs_shape]``: every avatar's planes (see ``channel_names``),
        or with ``obs_format="compact"`` its cell codes (see ``code_names``)."""
        flags = jnp.stack([state.zap_timer == 0, state.clean_timer == 0], axis=-1)
        if self.obs_format == "compact":
            terrain = jnp.asarray(self._terrain_code) + state.dirt + state.apples
            return grid.compact_avatar_view(
                terrain,
                len(COMPACT_TERRAIN),
                state.pos,
                state.orientation,
                state.removed == 0,
                flags,
                self.view,
            )
        terrain = jnp.stack(
            [
                jnp.asarray(self.walls),
                jnp.asarray(self.river),
                jnp.asarray(self.orchard),
                state.dirt,
                state.apples,
            ]
        )
        return rules.observe(
            terrain, state.pos, state.orientation, state.removed == 0, flags, self.view
        )

    # ------------------------------------------------------------------ rendering

    def _index_grid(self, state: CleanupState) -> np.ndarray:
        index = np.full((self.height, self.width), rules.GROUND, np.int64)
        index[self.walls] = rules.WALL
        index[self.river] = rules.RIVER
        index[self.orchard] = rules.GRASS
        index[np.asarray(state.dirt)] = rules.DIRT
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
            entry("clean river cell", "~", rules.colour(rules.RIVER)),
            entry("dirt on the river", "%", rules.colour(rules.DIRT)),
            entry("orchard cell without an apple", ":", rules.colour(rules.GRASS)),
            entry("apple", "a", rules.colour(rules.APPLE)),
            *rules.avatar_legend(self.num_agents),
        )

    def render_ansi(self, state: CleanupState, params: CleanupParams) -> str:
        """Text picture: ``#`` wall, ``~`` clean river, ``%`` dirt, ``:`` empty
        orchard cell, ``a`` apple, ``.`` ground, digits the present avatars."""
        chars = np.array([list(row) for row in self.layout.split("\n")])
        chars[chars == "o"] = ":"
        chars[np.asarray(state.dirt)] = "%"
        chars[np.asarray(state.apples)] = "a"
        pos, removed = np.asarray(state.pos), np.asarray(state.removed)
        orientation = np.asarray(state.orientation)
        dirt = int(np.asarray(state.dirt).sum())
        header = (
            f"step {int(state.t)}/{int(params.max_steps)}: {dirt} dirt "
            f"(f = {dirt / self.num_river_cells:.2f}), "
            f"{int(np.asarray(state.apples).sum())} apples"
        )
        rows = rules.ansi_rows(chars, pos, orientation, removed)
        return "\n".join(
            [header, *rows, rules.avatar_status(pos, orientation, removed)]
        )


register(
    "cleanup-v0",
    Cleanup,
    description=(
        "Cleanup (Melting Pot rules): 5 players, 16 x 20 map with river and orchard "
        "bands, cleaning and zapping beams, 1000 steps"
    ),
)
