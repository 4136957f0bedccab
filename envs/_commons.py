"""Rules shared by :mod:`dilemmas.envs.cleanup` and :mod:`dilemmas.envs.harvest`.

Both games use Melting Pot's avatars: an orientation, 8 or 9 actions (no-op, forward,
backward, step left, step right, turn left, turn right, fire zap, and fire clean in
Cleanup), beams that stop at the first thing they hit in each lane, a zap that
removes the hit player for a time-out, and cooldown counters. This private module
holds those shared rules, the map parsing, the egocentric observation and the
navigation helpers of the scripted policies; the grid geometry itself (moves, turns,
beam shapes, views, sampling, frames) comes from :mod:`dilemmas.envs.grid`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium.spaces
import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.envs import grid
from dilemmas.envs.core import LegendEntry, MultiAgentEnv

# Melting Pot's action order (``ACTION_SET`` of ``clean_up.py`` and
# ``commons_harvest__open.py``); Harvest uses the first eight.
(
    NOOP,
    FORWARD,
    BACKWARD,
    STEP_LEFT,
    STEP_RIGHT,
    TURN_LEFT,
    TURN_RIGHT,
    FIRE_ZAP,
    FIRE_CLEAN,
) = range(9)
ACTION_NAMES = (
    "noop",
    "forward",
    "backward",
    "step_left",
    "step_right",
    "turn_left",
    "turn_right",
    "fire_zap",
    "fire_clean",
)
#: ``_STEP_RELATIVE[a]``: the direction of action ``a``'s step relative to the
#: avatar's orientation (0 forward, 1 right, 2 backward, 3 left), -1 if it does not
#: move. Moving never changes the orientation.
_STEP_RELATIVE = jnp.array([-1, 0, 2, 3, 1, -1, -1, -1, -1], jnp.int32)
#: ``_TURN[a]``: -1 turn left, +1 turn right, 0 no turn.
_TURN = jnp.array([0, 0, 0, 0, 0, -1, 1, 0, 0], jnp.int32)
#: ``_MOVE_FOR_RELATIVE[r]``: the action stepping in relative direction ``r``.
_MOVE_FOR_RELATIVE = jnp.array([FORWARD, STEP_RIGHT, BACKWARD, STEP_LEFT], jnp.int32)

#: Colours shared by the renderers: index 0 ground, 1 wall, 2 clean river, 3 dirt,
#: 4 empty apple cell (orchard / grass), 5 apple, then one colour per avatar
#: (cycled when there are more avatars than colours).
PALETTE = np.array(
    [
        [220, 205, 185],
        [95, 95, 95],
        [70, 130, 220],
        [110, 150, 60],
        [165, 200, 110],
        [212, 60, 50],
        [250, 220, 40],
        [170, 60, 200],
        [40, 200, 200],
        [255, 140, 0],
        [255, 255, 255],
        [20, 20, 20],
        [250, 120, 190],
        [120, 80, 40],
    ],
    np.uint8,
)
GROUND, WALL, RIVER, DIRT, GRASS, APPLE, FIRST_AVATAR = range(7)
_AVATAR_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ORIENTATION_CHARS = "^>v<"


# ---------------------------------------------------------------- validation


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` (and int32), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if value > np.iinfo(np.int32).max:
        raise ValueError(f"{name} must fit in int32, got {value}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a finite float in ``[low, high]``, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool (Python or numpy), else a ValueError."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_view(view: Any) -> tuple[int, int, int, int] | None:
    """A ``(forward, backward, left, right)`` window, or ``None`` (full state)."""
    if view is None:
        return None
    if not isinstance(view, tuple | list) or len(view) != 4:
        raise ValueError(
            f"view must be a (forward, backward, left, right) tuple, got {view!r}"
        )
    names = ("forward", "backward", "left", "right")
    return tuple(check_int(f"view {n}", v, 0) for n, v in zip(names, view, strict=True))


def parse_layout(text: str, legend: str) -> np.ndarray:
    """The characters of an ASCII map as ``<U1[H, W]``, checked against ``legend``.

    Blank lines and the whitespace around each row are dropped; every row must have
    the same length and use only characters in ``legend``.
    """
    if not isinstance(text, str):
        raise ValueError(f"layout must be a string, got {type(text).__name__}")
    lines = [line.strip() for line in text.strip("\n").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError("layout is empty")
    widths = {len(line) for line in lines}
    if len(widths) != 1:
        raise ValueError(f"layout rows must all have one length, got {sorted(widths)}")
    unknown = sorted(set("".join(lines)) - set(legend))
    if unknown:
        raise ValueError(f"layout has unknown characters {unknown}; use {legend!r}")
    return np.array([list(line) for line in lines])


def border_walls(height: int, width: int) -> np.ndarray:
    """``bool[H, W]``: True on the outer ring of cells."""
    walls = np.zeros((height, width), bool)
    walls[[0, -1], :] = True
    walls[:, [0, -1]] = True
    return walls


# ---------------------------------------------------------------- dynamics


def spawn_draws(shape: tuple[int, int], num: int) -> int:
    """How many uniform draws :func:`spawn_positions` consumes."""
    return shape[0] * shape[1] + num


def spawn_positions(
    draws: jax.Array, spawn: jax.Array, num: int
) -> tuple[jax.Array, jax.Array]:
    """``num`` distinct cells drawn uniformly from ``spawn``, and random facings.

    ``draws`` are :func:`spawn_draws` i.i.d. uniforms on [0, 1) (the games draw
    one block of uniforms per step and slice it: one random-number computation
    compiles much faster than several). The caller guarantees ``spawn`` has at
    least ``num`` cells (the constructors check it), so the cells are a uniformly
    random ``num``-subset in random order.

    Returns:
      ``(cells: int32[num, 2], orientations: int32[num])``.
    """
    height, width = spawn.shape
    scores = jnp.where(spawn.reshape(-1), draws[: height * width], -1.0)
    _, flat = jax.lax.top_k(scores, num)
    flat = flat.astype(jnp.int32)
    faces = jnp.minimum(draws[height * width :] * 4, 3).astype(jnp.int32)
    return jnp.stack([flat // width, flat % width], axis=-1), faces


def move_avatars(
    order_draws: jax.Array,
    pos: jax.Array,
    orientation: jax.Array,
    actions: jax.Array,
    present: jax.Array,
    walls: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Turns and steps of the avatars ``present`` on the map.

    Steps are relative to the orientation and do not change it; a step into a wall
    fails. Steps are resolved one avatar at a time in a uniformly random order (as
    Melting Pot's engine resolves them; ``order_draws``, ``N`` i.i.d. uniforms, sort
    into it), and a step into a cell held by another avatar at that moment fails,
    so two avatars never share a cell.

    Returns:
      ``(pos, orientation, moved)``; ``moved: bool[N]`` says who changed cell.
    """
    num, height, width = pos.shape[0], walls.shape[0], walls.shape[1]
    orientation = grid.turn(orientation, _TURN[actions] * present)
    relative = _STEP_RELATIVE[actions]
    wants = present & (relative >= 0)
    delta = grid.relative_delta(orientation, jnp.maximum(relative, 0))
    target = grid.move(
        pos, delta * wants[:, None], height, width, walls=jnp.asarray(walls)
    )
    order = jnp.argsort(order_draws)
    agents = jnp.arange(num)

    def resolve(k, current):
        i = order[k]
        others = present & (agents != i)
        taken = jnp.any(others & jnp.all(current == target[i], axis=-1))
        return current.at[i].set(jnp.where(wants[i] & ~taken, target[i], current[i]))

    new_pos = jax.lax.fori_loop(0, num, resolve, pos)
    moved = jnp.any(new_pos != pos, axis=-1)
    return new_pos, orientation, moved


def cooldown_fire(
    timer: jax.Array, wants: jax.Array, present: jax.Array, cooldown: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Melting Pot's beam cooldown counter (``Zapper``/``Cleaner`` components).

    Each step, for a present avatar: if its counter is positive it counts down by
    one and the avatar cannot fire; otherwise, if it wants to, it fires and the
    counter is set to ``cooldown``. So two shots are at least ``cooldown + 1`` steps
    apart. Removed avatars' counters are frozen.

    Returns:
      ``(fires: bool[N], timer: int32[N])``.
    """
    cooling = present & (timer > 0)
    fires = present & (timer == 0) & wants
    timer = jnp.where(cooling, timer - 1, jnp.where(fires, cooldown, timer))
    return fires, timer.astype(jnp.int32)


def _unit_vectors(orientation: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(ahead, right)``, ``int32[..., 2]``: ``grid.DIRECTIONS[orientation]`` and
    the direction to its right, by arithmetic (cheaper than a gather)."""
    drow = (orientation == grid.DOWN).astype(jnp.int32) - (orientation == grid.UP)
    dcol = (orientation == grid.RIGHT).astype(jnp.int32) - (orientation == grid.LEFT)
    return jnp.stack([drow, dcol], axis=-1), jnp.stack([dcol, -drow], axis=-1)


def _lane_coordinates(
    pos: jax.Array, orientation: jax.Array, shape: tuple[int, int]
) -> tuple[jax.Array, jax.Array]:
    """``(forward, lateral)``, ``int32[..., H, W]``: every cell's distance ahead of
    and to the right of each avatar (``pos: [..., 2]``, ``orientation: [...]``)."""
    height, width = shape
    rows = jnp.arange(height, dtype=jnp.int32)[:, None]
    cols = jnp.arange(width, dtype=jnp.int32)[None, :]
    ahead, right = _unit_vectors(orientation)
    drow = rows - pos[..., 0, None, None]
    dcol = cols - pos[..., 1, None, None]
    forward = drow * ahead[..., 0, None, None] + dcol * ahead[..., 1, None, None]
    lateral = drow * right[..., 0, None, None] + dcol * right[..., 1, None, None]
    return forward, lateral


def beam_reach(
    pos: jax.Array,
    orientation: jax.Array,
    length: jax.Array,
    radius: jax.Array,
    shape: tuple[int, int],
) -> jax.Array:
    """``bool[H, W]``: the cells a beam would reach with no wall in the way (a
    cheap guess for scripted policies; the rules use :func:`beam_masks`)."""
    forward, lateral = _lane_coordinates(pos, orientation, shape)
    return (forward >= 1) & (forward <= length) & (jnp.abs(lateral) <= radius)


def beam_masks(
    pos: jax.Array,
    orientation: jax.Array,
    shapes: tuple[tuple[jax.Array, jax.Array], ...],
    walls: jax.Array,
) -> list[jax.Array]:
    """``bool[N, H, W]`` beam footprints of every avatar, one per ``(length, radius)``.

    One :func:`grid.beam` per avatar with the largest length and radius; a smaller
    beam is its restriction to ``forward <= length`` and ``|lateral| <= radius``
    (a lane is stopped by the walls between the avatar and a cell, whatever the
    beam's length).
    """
    walls = jnp.asarray(walls)
    longest = jnp.max(jnp.stack([length for length, _ in shapes]))
    widest = jnp.max(jnp.stack([radius for _, radius in shapes]))
    widest_beam = jax.vmap(grid.beam, in_axes=(0, 0, None, None, None))(
        pos, orientation, longest, widest, walls
    )
    forward, lateral = _lane_coordinates(pos, orientation, walls.shape)
    return [
        widest_beam & (forward <= length) & (jnp.abs(lateral) <= radius)
        for length, radius in shapes
    ]


def first_in_lanes(
    beam_mask: jax.Array, targets: jax.Array, pos: jax.Array, orientation: jax.Array
) -> jax.Array:
    """``bool[H, W]``: the nearest ``targets`` cell of each lane of a beam.

    ``beam_mask`` is the footprint of a beam fired from ``pos`` facing
    ``orientation``; a lane is a line of cells parallel to the facing direction.
    Melting Pot's beams stop at the first object that takes the hit (a dirt cell for
    the clean beam, ``DirtCleaning:onHit`` returns true), so at most one target per
    lane is hit.
    """
    height, width = beam_mask.shape
    forward, _ = _lane_coordinates(pos, orientation, beam_mask.shape)
    candidates = beam_mask & targets
    distance = jnp.where(candidates, forward, height + width)
    vertical = orientation % 2 == 0  # lanes are columns when facing up or down
    lane_min = jnp.where(
        vertical, distance.min(axis=0)[None, :], distance.min(axis=1)[:, None]
    )
    return candidates & (forward == lane_min)


def zap_hits(
    pos: jax.Array,
    orientation: jax.Array,
    fires: jax.Array,
    present: jax.Array,
    masks: jax.Array,
) -> jax.Array:
    """``bool[N, N]``: ``hits[f, j]`` when avatar ``f``'s zap beam hits avatar ``j``.

    ``masks`` (``bool[N, H, W]``) are the zap beam footprints. Beams fire together
    from the positions after this step's moves, so two avatars can zap each other;
    each lane stops at its first present avatar (``Zapper:onHit`` returns true).
    Removed avatars are neither hit nor block.
    """
    num = pos.shape[0]
    in_beam = masks[:, pos[:, 0], pos[:, 1]]  # [firer, target]
    offset = pos[None, :, :] - pos[:, None, :]
    ahead, right = _unit_vectors(orientation)
    forward = jnp.sum(offset * ahead[:, None, :], axis=-1)
    lateral = jnp.sum(offset * right[:, None, :], axis=-1)
    candidate = fires[:, None] & in_beam & present[None, :] & ~jnp.eye(num, dtype=bool)
    # blocked[f, j, k]: candidate k stands in j's lane, nearer to f.
    blocked = (
        candidate[:, None, :]
        & (lateral[:, None, :] == lateral[:, :, None])
        & (forward[:, None, :] < forward[:, :, None])
    )
    return candidate & ~blocked.any(axis=-1)


def remove_and_respawn(
    draws: jax.Array,
    pos: jax.Array,
    orientation: jax.Array,
    removed: jax.Array,
    hit: jax.Array,
    respawn_time: jax.Array,
    spawn: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The zap time-out: removal counters and respawns at the end of a step.

    ``removed[i]`` is how many more steps avatar ``i`` stays off the map (0: present).
    A present avatar hit this step gets ``respawn_time`` (with 0 it is not removed,
    SSD's rule). A removed avatar counts down; on reaching 0 it respawns on a
    uniformly random spawn cell free of present avatars (avatars respawning together
    get distinct cells), facing a random direction. So an avatar hit at step t takes
    no part in steps t+1 ... t+respawn_time and is back on the map after step
    t+respawn_time. ``draws``: :func:`spawn_draws` uniforms.

    Returns:
      ``(pos, orientation, removed)``.
    """
    num = pos.shape[0]
    was_removed = removed > 0
    removed = jnp.where(was_removed, removed - 1, jnp.where(hit, respawn_time, 0))
    respawning = was_removed & (removed == 0)
    staying = ~was_removed & (removed == 0)
    free = spawn & ~occupancy(pos, staying, spawn.shape)
    # `num` distinct free cells in random order (free cells outnumber the avatars
    # respawning: the constructors ensure spawn cells >= avatars); the k-th
    # respawning avatar takes the k-th, and faces a uniformly random way.
    cells, faces = spawn_positions(draws, free, num)
    slot = jnp.clip(jnp.cumsum(respawning) - 1, 0, num - 1)
    pos = jnp.where(respawning[:, None], cells[slot], pos)
    orientation = jnp.where(respawning, faces[slot], orientation)
    return pos, orientation.astype(jnp.int32), removed.astype(jnp.int32)


def occupancy(pos: jax.Array, present: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """``bool[H, W]``: the cells of the present avatars."""
    height, width = shape
    safe = jnp.where(present[:, None], pos, jnp.array([height, width]))
    cells = jnp.zeros(shape, bool)
    return cells.at[safe[:, 0], safe[:, 1]].set(True, mode="drop")


# ---------------------------------------------------------------- observation


def observe(
    terrain: jax.Array,
    pos: jax.Array,
    orientation: jax.Array,
    present: jax.Array,
    flags: jax.Array,
    view: tuple[int, int, int, int] | None,
) -> jax.Array:
    """``uint8[N, C, h, w]`` observation planes of every avatar.

    ``terrain`` (``[K, H, W]``, channel 0 the walls) is shared by all. Then come the
    avatar's own planes (one "self" plane in an egocentric view, four planes "self
    facing up/right/down/left" in the full view), four planes of the other present
    avatars by the way they face (relative to the viewer in an egocentric view:
    0 the same way, 1 to its right, 2 towards it, 3 to its left; absolute in the
    full view), and one constant plane per entry of ``flags: bool[N, F]`` (e.g.
    "ready to zap"). With ``view = (forward, backward, left, right)`` the planes are
    the window of :func:`grid.egocentric_view` (outside the map reads as wall);
    with ``None`` they cover the whole map unrotated. A removed avatar sees zeros.
    """
    num = pos.shape[0]
    _, height, width = terrain.shape
    safe = jnp.where(present[:, None], pos, jnp.array([height, width]))
    # Present avatars by absolute facing, and a plane of ones (to find the cells of
    # a window that lie outside the map).
    facing = jnp.zeros((4, height, width), jnp.uint8)
    facing = facing.at[orientation, safe[:, 0], safe[:, 1]].set(1, mode="drop")
    ones = jnp.ones((1, height, width), jnp.uint8)
    planes = jnp.concatenate([terrain.astype(jnp.uint8), facing, ones])
    num_terrain = terrain.shape[0]
    rotate = jnp.arange(4)
    own_flat = pos[:, 0] * width + pos[:, 1]

    if view is None:
        own = (
            jax.nn.one_hot(orientation, 4, dtype=jnp.uint8)[:, :, None]
            * (jax.nn.one_hot(own_flat, height * width, dtype=jnp.uint8)[:, None, :])
        )
        own = own.reshape(num, 4, height, width)
        others = facing[None] * (1 - own.sum(axis=1, keepdims=True, dtype=jnp.uint8))
        spatial = jnp.concatenate(
            [
                jnp.broadcast_to(
                    planes[None, :num_terrain], (num, num_terrain, height, width)
                ),
                own,
                others,
            ],
            axis=1,
        )
    else:
        forward, backward, left, right = view
        window = dict(forward=forward, backward=backward, left=left, right=right)
        seen = jax.vmap(
            lambda p, o: grid.egocentric_view(planes, p, o, pad_value=0, **window)
        )(pos, orientation)
        inside = seen[:, -1:]
        walls = jnp.maximum(seen[:, :1], 1 - inside)
        own_np = np.zeros((1, forward + backward + 1, left + right + 1), np.uint8)
        own_np[0, forward, left] = 1
        own = jnp.asarray(own_np)
        # Relative facing c of another avatar = absolute facing (c + own) % 4; the
        # viewer itself sits at (forward, left) and is not one of the others.
        absolute = jnp.mod(rotate[None, :] + orientation[:, None], 4)
        rotation = (absolute[:, :, None] == rotate[None, None, :]).astype(jnp.uint8)
        by_facing = seen[:, num_terrain : num_terrain + 4]
        others = jnp.einsum("ica,iahw->ichw", rotation, by_facing)
        others = others * jnp.asarray(1 - own_np)[None]
        spatial = jnp.concatenate(
            [
                walls,
                seen[:, 1:num_terrain],
                jnp.broadcast_to(own[None], (num, *own.shape)),
                others,
            ],
            axis=1,
        )
    constant = jnp.broadcast_to(
        flags.astype(jnp.uint8)[:, :, None, None],
        (num, flags.shape[1], *spatial.shape[2:]),
    )
    obs = jnp.concatenate([spatial, constant], axis=1)
    return obs * present.astype(jnp.uint8)[:, None, None, None]


def channel_names(
    terrain: tuple[str, ...], flags: tuple[str, ...], egocentric: bool
) -> tuple[str, ...]:
    """Names of the planes :func:`observe` returns, in order."""
    own = ("self",) if egocentric else tuple(f"self_facing_{d}" for d in "urdl")
    if egocentric:
        others = tuple(f"others_facing_{d}" for d in ("same", "right", "back", "left"))
    else:
        others = tuple(f"others_facing_{d}" for d in "urdl")
    return (*terrain, *own, *others, *flags)


# ---------------------------------------------------------------- rendering


def avatar_overlay(
    index: np.ndarray, pos: np.ndarray, removed: np.ndarray
) -> np.ndarray:
    """Palette indices with the present avatars painted on (host side)."""
    index = index.copy()
    colours = len(PALETTE) - FIRST_AVATAR
    for agent, (row, col) in enumerate(pos):
        if removed[agent] == 0:
            index[row, col] = FIRST_AVATAR + agent % colours
    return index


def colour(index: int) -> tuple[int, int, int]:
    """``PALETTE[index]`` as an ``(r, g, b)`` tuple of ints."""
    return tuple(int(v) for v in PALETTE[index])


def avatar_legend(num_agents: int) -> tuple[LegendEntry, ...]:
    """The legend rows of the avatars: digit and colour of each (removed avatars
    are not drawn)."""
    colours = len(PALETTE) - FIRST_AVATAR
    return tuple(
        LegendEntry(
            f"avatar {agent} (player_{agent})",
            _AVATAR_CHARS[agent % len(_AVATAR_CHARS)],
            colour(FIRST_AVATAR + agent % colours),
        )
        for agent in range(num_agents)
    )


def ansi_rows(
    chars: np.ndarray, pos: np.ndarray, orientation: np.ndarray, removed: np.ndarray
) -> list[str]:
    """Text rows of a map with the present avatars drawn as their index digit."""
    chars = chars.copy()
    for agent, (row, col) in enumerate(pos):
        if removed[agent] == 0:
            chars[row, col] = _AVATAR_CHARS[agent % len(_AVATAR_CHARS)]
    return ["".join(row) for row in chars]


def avatar_status(pos: np.ndarray, orientation: np.ndarray, removed: np.ndarray) -> str:
    """One line per avatar: position and facing, or its remaining time-out."""
    lines = []
    for agent, (row, col) in enumerate(pos):
        if removed[agent] > 0:
            lines.append(f"  {agent}: removed, back in {int(removed[agent])} steps")
        else:
            face = ORIENTATION_CHARS[int(orientation[agent])]
            lines.append(f"  {agent}: at ({int(row)}, {int(col)}) facing {face}")
    return "\n".join(lines)


# ---------------------------------------------------------------- navigation


def nearest_cell(pos: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The ``targets`` cell nearest to ``pos`` (Manhattan; ties go to the first in
    row-major order). Returns ``(cell: int32[2], found: bool[])``."""
    height, width = targets.shape
    rows = jnp.arange(height, dtype=jnp.int32)[:, None]
    cols = jnp.arange(width, dtype=jnp.int32)[None, :]
    distance = jnp.abs(rows - pos[0]) + jnp.abs(cols - pos[1])
    score = jnp.where(targets, distance, height + width)
    flat = jnp.argmin(score.reshape(-1)).astype(jnp.int32)
    return jnp.stack([flat // width, flat % width]), jnp.any(targets)


def step_toward(
    key: jax.Array,
    pos: jax.Array,
    orientation: jax.Array,
    target: jax.Array,
    blocked: jax.Array,
    avoid: jax.Array,
) -> jax.Array:
    """The action that steps from ``pos`` towards ``target`` (``NOOP`` if there).

    Prefers the axis with the longer way to go, takes the other axis if that step
    is ``blocked`` (walls, other avatars), and otherwise makes a random step into a
    free cell that is neither ``blocked`` nor in ``avoid`` (to break deadlocks);
    if there is none it waits. Steps are strafes, so the orientation is kept.
    """
    height, width = blocked.shape
    drow, dcol = target[0] - pos[0], target[1] - pos[1]
    vertical = jnp.where(drow < 0, grid.UP, grid.DOWN)
    horizontal = jnp.where(dcol > 0, grid.RIGHT, grid.LEFT)
    prefer_vertical = jnp.abs(drow) >= jnp.abs(dcol)
    first = jnp.where(prefer_vertical, vertical, horizontal)
    second = jnp.where(prefer_vertical, horizontal, vertical)
    first_needed = jnp.where(prefer_vertical, drow != 0, dcol != 0)
    second_needed = jnp.where(prefer_vertical, dcol != 0, drow != 0)

    cells = jnp.clip(pos + grid.DIRECTIONS, 0, jnp.array([height, width]) - 1)
    open_dirs = ~blocked[cells[:, 0], cells[:, 1]] & ~avoid[cells[:, 0], cells[:, 1]]
    first_ok = first_needed & open_dirs[first]
    second_ok = second_needed & open_dirs[second]
    # A uniformly random open direction: the largest of i.i.d. uniform scores.
    scores = jax.random.uniform(key, (4,)) + open_dirs
    random_dir = jnp.argmax(scores).astype(jnp.int32)
    direction = jnp.where(first_ok, first, jnp.where(second_ok, second, random_dir))
    action = _MOVE_FOR_RELATIVE[jnp.mod(direction - orientation, 4)]
    arrived = (drow == 0) & (dcol == 0)
    action = jnp.where(~first_ok & ~second_ok & ~open_dirs.any(), NOOP, action)
    return jnp.where(arrived, NOOP, action).astype(jnp.int32)


def turn_toward(orientation: jax.Array, desired: jax.Array) -> jax.Array:
    """``TURN_RIGHT``/``TURN_LEFT`` towards ``desired`` (``NOOP`` if facing it)."""
    relative = jnp.mod(desired - orientation, 4)
    action = jnp.where(relative == 3, TURN_LEFT, TURN_RIGHT)
    return jnp.where(relative == 0, NOOP, action).astype(jnp.int32)


def go_to_nearest(
    key: jax.Array,
    pos: jax.Array,
    orientation: jax.Array,
    targets: jax.Array,
    blocked: jax.Array,
    avoid: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """``(action, found)``: a step towards the nearest ``targets`` cell (NOOP if
    there is none); see :func:`step_toward` for ``blocked`` and ``avoid``."""
    cell, found = nearest_cell(pos, targets)
    action = step_toward(key, pos, orientation, cell, blocked, avoid)
    return jnp.where(found, action, NOOP).astype(jnp.int32), found


def others_blocking(
    walls: jax.Array, pos: jax.Array, removed: jax.Array, agent: int | jax.Array
) -> jax.Array:
    """``bool[H, W]``: walls and the cells of the present avatars other than
    ``agent``."""
    others = (removed == 0) & (jnp.arange(pos.shape[0]) != agent)
    return jnp.asarray(walls) | occupancy(pos, others, walls.shape)


def joint_actions(
    policies: tuple[Any, ...], key: jax.Array, state: Any, params: Any
) -> jax.Array:
    """``int32[N]``: ``policies[i].act(key_i, state, params, i)`` for every agent."""
    keys = jax.random.split(key, len(policies))
    return jnp.stack(
        [policy.act(keys[i], state, params, i) for i, policy in enumerate(policies)]
    ).astype(jnp.int32)


class CommonsGame(MultiAgentEnv):
    """What Cleanup and Harvest share beyond their rules: the observation set-up,
    params validation scaffolding, spaces and RGB rendering.

    Subclasses set ``GAME_NAME`` and ``DEFAULTS`` (the default params), and define
    ``layout``, ``height``, ``width``, ``_max_steps`` and ``_index_grid(state)``.
    """

    stochastic: ClassVar[bool] = True
    render_modes: ClassVar[tuple[str, ...]] = ("ansi", "rgb_array")
    PALETTE: ClassVar[np.ndarray] = PALETTE
    GAME_NAME: ClassVar[str]
    DEFAULTS: ClassVar[dict[str, Any]]

    def _init_observation(
        self,
        view: Any,
        terrain_channels: tuple[str, ...],
        flag_channels: tuple[str, ...],
    ) -> None:
        """Set ``view``, ``channel_names`` and ``obs_shape`` (``[C, h, w]``)."""
        self.view = check_view(view)
        self.channel_names = channel_names(
            terrain_channels, flag_channels, self.view is not None
        )
        if self.view is None:
            self.obs_shape = (len(self.channel_names), self.height, self.width)
        else:
            forward, backward, left, right = self.view
            self.obs_shape = (
                len(self.channel_names),
                forward + backward + 1,
                left + right + 1,
            )

    def _init_compact(
        self, compact_terrain: tuple[str, ...], flag_channels: tuple[str, ...]
    ) -> None:
        """Set ``code_names`` of the compact format and, with ``obs_format ==
        "compact"``, ``obs_shape`` to the window (``[h, w]``)."""
        self.code_names = grid.avatar_code_names(
            compact_terrain, flag_channels, self.view is not None
        )
        if self.obs_format == "compact":
            self.obs_shape = self.obs_shape[1:]

    def static_config(self) -> tuple:
        return (self.num_agents, self.layout, self.view, self.obs_format)

    @property
    def default_params(self) -> Any:
        return self.make_params()

    def _param_values(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """The defaults with ``overrides``, rejecting unknown names."""
        unknown = set(overrides) - set(self.DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown {self.GAME_NAME} params {sorted(unknown)}; "
                f"known: {sorted(self.DEFAULTS)}"
            )
        return {**self.DEFAULTS, "max_steps": self._max_steps, **overrides}

    def observation_space(self) -> gymnasium.spaces.Box:
        high = 1 if self.obs_format == "planes" else len(self.code_names) - 1
        return gymnasium.spaces.Box(0, high, self.obs_shape, np.uint8)

    def render_rgb(self, state: Any, params: Any, scale: int = 16) -> np.ndarray:
        """Host-side ``uint8[H * scale, W * scale, 3]`` picture of ``state``."""
        del params
        return grid.rgb_frame(self._index_grid(state), self.PALETTE, scale)
