"""The grid-world engine shared by the grid games (Coin Game, CleanUp, Harvest, ...).

Pure JAX with static shapes and no game rules: each game module holds only its own
rules and calls these functions for movement, beams, observations and rendering.

Conventions:

* positions are ``int32[..., 2]`` as ``(row, col)``; row 0 is the top, and "up"
  decreases the row;
* orientations are int32 in ``{0 UP, 1 RIGHT, 2 DOWN, 3 LEFT}``, so turning right is
  ``+1`` and turning left ``-1`` (mod 4);
* grids are ``[H, W]`` and stacks of planes ``[C, H, W]``.

Everything here is jit/vmap/scan-able except :func:`rgb_frame` and :func:`save_png`,
which run on the host (numpy) for rendering.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3

#: ``DIRECTIONS[o]`` is the ``(drow, dcol)`` of one step facing orientation ``o``.
DIRECTIONS: jax.Array = jnp.array([[-1, 0], [0, 1], [1, 0], [0, -1]], jnp.int32)


def move(
    pos: jax.Array,
    delta: jax.Array,
    height: int,
    width: int,
    *,
    walls: jax.Array | None = None,
    torus: bool = False,
) -> jax.Array:
    """``pos + delta``, kept on the grid.

    On a torus the result wraps around; otherwise it is clipped at the border. A
    move into a wall cell (``walls: bool[H, W]``) leaves the agent where it was.
    ``pos`` and ``delta`` (``int32[..., 2]``) broadcast against each other.

    Returns:
      ``int32[..., 2]``, the new positions.
    """
    pos = jnp.asarray(pos, jnp.int32)
    delta = jnp.asarray(delta, jnp.int32)
    size = jnp.array([height, width], jnp.int32)
    target = pos + delta
    target = jnp.mod(target, size) if torus else jnp.clip(target, 0, size - 1)
    if walls is None:
        return target
    blocked = jnp.asarray(walls, bool)[target[..., 0], target[..., 1]]
    return jnp.where(blocked[..., None], jnp.broadcast_to(pos, target.shape), target)


def turn(orientation: jax.Array, direction: jax.Array) -> jax.Array:
    """``(orientation + direction) % 4``: ``direction`` -1 turns left, +1 right."""
    return jnp.mod(
        jnp.asarray(orientation, jnp.int32) + jnp.asarray(direction, jnp.int32), 4
    )


def relative_delta(orientation: jax.Array, relative: jax.Array) -> jax.Array:
    """The ``(drow, dcol)`` of one step ``relative`` to ``orientation``.

    ``relative`` is 0 forward, 1 right, 2 backward, 3 left, so the result is
    ``DIRECTIONS[(orientation + relative) % 4]`` (``int32[..., 2]``).
    """
    return DIRECTIONS[turn(orientation, relative)]


def manhattan(a: jax.Array, b: jax.Array) -> jax.Array:
    """The L1 distance between positions, over the last axis (int32)."""
    diff = jnp.asarray(a, jnp.int32) - jnp.asarray(b, jnp.int32)
    return jnp.sum(jnp.abs(diff), axis=-1)


def chebyshev(a: jax.Array, b: jax.Array) -> jax.Array:
    """The L-infinity distance between positions, over the last axis (int32)."""
    diff = jnp.asarray(a, jnp.int32) - jnp.asarray(b, jnp.int32)
    return jnp.max(jnp.abs(diff), axis=-1)


def positions_one_hot(pos: jax.Array, height: int, width: int) -> jax.Array:
    """``float32[N, H * W]``: the row-major flattened one-hot planes of ``N`` positions.

    ``pos`` is ``int32[N, 2]``; row ``i`` of the result has a single 1 at
    ``pos[i, 0] * width + pos[i, 1]``.
    """
    pos = jnp.asarray(pos, jnp.int32).reshape(-1, 2)
    flat = pos[:, 0] * width + pos[:, 1]
    return jax.nn.one_hot(flat, height * width, dtype=jnp.float32)


def beam(
    pos: jax.Array,
    orientation: jax.Array,
    length: jax.Array | int,
    radius: jax.Array | int,
    walls: jax.Array,
) -> jax.Array:
    """``bool[H, W]``: the cells hit by a beam from ``pos`` facing ``orientation``.

    The beam has ``2 * radius + 1`` parallel lanes (the agent's own lane and
    ``radius`` on each side). Each lane starts one cell in front of the agent and
    runs ``length`` cells forward; it stops at (and does not include) its first wall
    cell, and at the grid border (beams never wrap). The firing agent's own cell is
    never hit. ``length`` and ``radius`` may be traced (e.g. read from ``Params``).
    """
    walls = jnp.asarray(walls, bool)
    height, width = walls.shape
    pos = jnp.asarray(pos, jnp.int32)
    orientation = jnp.asarray(orientation, jnp.int32)
    rows = jnp.arange(height, dtype=jnp.int32)[:, None]
    cols = jnp.arange(width, dtype=jnp.int32)[None, :]
    dr, dc = rows - pos[0], cols - pos[1]
    ahead, side = DIRECTIONS[orientation], DIRECTIONS[turn(orientation, 1)]
    forward = dr * ahead[0] + dc * ahead[1]  # [H, W] cells ahead of the agent
    lateral = dr * side[0] + dc * side[1]  # [H, W] cells to its right
    in_reach = (forward >= 1) & (forward <= length) & (jnp.abs(lateral) <= radius)

    # Walls between the agent (exclusive) and each cell (inclusive) along the lane,
    # from exclusive prefix sums down columns (vertical lanes) and along rows.
    w = walls.astype(jnp.int32)
    down_col = jnp.concatenate([jnp.zeros((1, width), jnp.int32), jnp.cumsum(w, 0)])
    along_row = jnp.concatenate(
        [jnp.zeros((height, 1), jnp.int32), jnp.cumsum(w, 1)], axis=1
    )
    r0 = jnp.clip(pos[0], 0, height - 1)
    c0 = jnp.clip(pos[1], 0, width - 1)
    rr = jnp.broadcast_to(rows, (height, width))
    cc = jnp.broadcast_to(cols, (height, width))
    walls_up = down_col[r0][None, :] - down_col[rr, cc]
    walls_down = down_col[rr + 1, cc] - down_col[r0 + 1][None, :]
    walls_right = along_row[rr, cc + 1] - along_row[:, c0 + 1][:, None]
    walls_left = along_row[:, c0][:, None] - along_row[rr, cc]
    crossed = jnp.stack([walls_up, walls_right, walls_down, walls_left])[orientation]
    return in_reach & (crossed == 0)


def egocentric_view(
    planes: jax.Array,
    pos: jax.Array,
    orientation: jax.Array,
    *,
    forward: int,
    backward: int,
    left: int,
    right: int,
    pad_value: float | int = 0,
    torus: bool = False,
) -> jax.Array:
    """The window of ``planes`` (``[C, H, W]``) around ``pos``, as the agent sees it.

    The result is ``[C, forward + backward + 1, left + right + 1]``, rotated so that
    the agent faces up: row 0 is the farthest cell ahead and column 0 the farthest to
    the agent's left; the agent sits at ``(forward, left)``. The window sizes are
    static.

    ``torus`` says what lies beyond the border. ``False`` (bounded maps, such as
    Cleanup's and Harvest's): cells outside the grid take ``pad_value``. ``True``
    (toroidal maps, the Coin Game's): the grid wraps around, row ``r`` read as ``r
    mod H`` and column ``c`` as ``c mod W``, so ``pad_value`` is unused and a window
    larger than the grid shows some cells twice; facing UP with an ``H`` x ``W``
    window, the result is the whole grid rolled so that ``pos`` lands on
    ``(forward, left)`` (how the Coin Game recentres an agent's observation).
    """
    planes = jnp.asarray(planes)
    _, height, width = planes.shape
    pos = jnp.asarray(pos, jnp.int32)
    orientation = jnp.asarray(orientation, jnp.int32)
    ahead = forward - jnp.arange(forward + backward + 1, dtype=jnp.int32)[:, None]
    aside = jnp.arange(left + right + 1, dtype=jnp.int32)[None, :] - left
    fwd, side = DIRECTIONS[orientation], DIRECTIONS[turn(orientation, 1)]
    rows = pos[0] + ahead * fwd[0] + aside * side[0]
    cols = pos[1] + ahead * fwd[1] + aside * side[1]
    if torus:
        return planes[:, jnp.mod(rows, height), jnp.mod(cols, width)]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    window = planes[:, jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1)]
    return jnp.where(inside[None], window, jnp.asarray(pad_value, planes.dtype))


#: The values of the grid games' ``obs_format`` option: ``"planes"`` (one-hot planes,
#: the default) or ``"compact"`` (one small-integer code per cell).
OBS_FORMATS: tuple[str, ...] = ("planes", "compact")


def check_obs_format(obs_format: object) -> str:
    """``obs_format`` if it is one of :data:`OBS_FORMATS`, else a ValueError."""
    if not isinstance(obs_format, str) or obs_format not in OBS_FORMATS:
        allowed = ", ".join(repr(name) for name in OBS_FORMATS)
        raise ValueError(f"obs_format must be one of {allowed}, got {obs_format!r}")
    return obs_format


def avatar_code_names(
    terrain: tuple[str, ...], flags: tuple[str, ...], egocentric: bool
) -> tuple[str, ...]:
    """Names of the codes :func:`compact_avatar_view` writes, ``names[code]``.

    A code is ``terrain + len(terrain) * avatar``; ``avatar`` is 0 (none), then
    ``self`` (``self_facing_u/r/d/l`` in the full view) with every combination
    of ``flags`` (bit ``k`` of the combination is ``flags[k]``; the flags are
    written on the viewer's own cell only), then ``others_facing_*`` (relative to
    the viewer in an egocentric view, absolute in the full view). A name reads
    ``"<terrain>"`` or ``"<terrain>+<avatar>"``, e.g. ``"apple+self+ready_to_zap"``.
    """
    own = ("self",) if egocentric else tuple(f"self_facing_{d}" for d in "urdl")
    if egocentric:
        others = tuple(f"others_facing_{d}" for d in ("same", "right", "back", "left"))
    else:
        others = tuple(f"others_facing_{d}" for d in "urdl")
    with_flags = []
    for bits in range(2 ** len(flags)):
        set_flags = [name for k, name in enumerate(flags) if bits >> k & 1]
        with_flags += ["+".join([name, *set_flags]) for name in own]
    avatars = ("", *with_flags, *others)
    return tuple(
        f"{cell}+{avatar}" if avatar else cell for avatar in avatars for cell in terrain
    )


def compact_avatar_view(
    terrain: jax.Array,
    num_terrain: int,
    pos: jax.Array,
    orientation: jax.Array,
    present: jax.Array,
    flags: jax.Array,
    view: tuple[int, int, int, int] | None,
    *,
    wall_code: int = 1,
) -> jax.Array:
    """``uint8[N, h, w]``: one code per cell of every avatar's window.

    The compact counterpart of one-hot observation planes of avatars on a bounded
    map (Cleanup's and Harvest's): ``terrain`` (``int[H, W]``, values in
    ``[0, num_terrain)``, as is ``wall_code``) is each cell's terrain code;
    ``pos``, ``orientation`` and ``present`` the avatars; ``flags``
    (``bool[N, F]``) each avatar's non-spatial flags. A cell's code is
    ``terrain + num_terrain * avatar`` with ``avatar`` as
    :func:`avatar_code_names` lists: 0 no avatar; ``1 + s + S * b`` the viewer
    itself (``S`` = 1 self kind in an egocentric view, 4 by absolute facing ``s``
    in the full view; ``b`` = ``sum(flags[k] << k)``); ``1 + S * 2**F + r``
    another present avatar facing ``r`` (relative to the viewer in an egocentric
    view: 0 the same way, 1 to its right, 2 towards it, 3 to its left; absolute in
    the full view). The rules keep avatars on distinct cells, so one avatar code
    per cell suffices. With ``view = (forward, backward, left, right)`` the window
    is :func:`egocentric_view`'s and cells outside the map read ``wall_code``;
    with ``None`` it is the whole map unrotated. A removed viewer (``present``
    False) sees code 0 everywhere.
    """
    num = pos.shape[0]
    height, width = terrain.shape
    num_flags = flags.shape[1]
    bits = jnp.sum(
        flags.astype(jnp.int32) << jnp.arange(num_flags, dtype=jnp.int32), axis=1
    )
    pos = jnp.asarray(pos, jnp.int32)
    orientation = jnp.asarray(orientation, jnp.int32)
    safe = jnp.where(present[:, None], pos, jnp.array([height, width]))
    # Absolute facing + 1 of the present avatar on each cell, 0 where none stands.
    facing = jnp.zeros((height, width), jnp.int32)
    facing = facing.at[safe[:, 0], safe[:, 1]].set(orientation + 1, mode="drop")
    terrain = jnp.asarray(terrain, jnp.int32)
    num_self = 1 if view is not None else 4
    first_other = 1 + num_self * 2**num_flags
    if view is None:
        others = jnp.where(facing > 0, first_other + facing - 1, 0)
        avatar = jnp.broadcast_to(others, (num, height, width))
        own = 1 + orientation + num_self * bits
        avatar = avatar.at[jnp.arange(num), pos[:, 0], pos[:, 1]].set(own)
        cells = jnp.broadcast_to(terrain, (num, height, width))
    else:
        forward, backward, left, right = view
        window = dict(forward=forward, backward=backward, left=left, right=right)
        # One gathered grid: terrain and facing packed as terrain + T * facing
        # (outside the map: a wall and no avatar).
        packed = (terrain + num_terrain * facing)[None]
        seen = jax.vmap(
            lambda p, o: egocentric_view(packed, p, o, pad_value=wall_code, **window)
        )(pos, orientation)[:, 0]
        cells, facing_seen = seen % num_terrain, seen // num_terrain
        relative = jnp.mod(facing_seen - 1 - orientation[:, None, None], 4)
        avatar = jnp.where(facing_seen > 0, first_other + relative, 0)
        own_cell = np.zeros((forward + backward + 1, left + right + 1), bool)
        own_cell[forward, left] = True
        avatar = jnp.where(own_cell, (1 + bits)[:, None, None], avatar)
    codes = (cells + num_terrain * avatar) * present[:, None, None]
    return codes.astype(jnp.uint8)


def sample_cell(key: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A uniformly random ``True`` cell of ``mask`` (``bool[H, W]``).

    Returns:
      ``(pos, found)``: the cell as ``int32[2]`` and a ``bool[]`` saying whether any
      cell was ``True``; if none was, ``pos`` is ``(0, 0)``.
    """
    mask = jnp.asarray(mask, bool)
    width = mask.shape[1]
    flat = mask.reshape(-1)
    count = jnp.sum(flat, dtype=jnp.int32)
    rank = jax.random.randint(key, (), 0, jnp.maximum(count, 1), jnp.int32)
    # The cell whose running count of True cells first exceeds `rank`.
    index = jnp.argmax(jnp.cumsum(flat, dtype=jnp.int32) > rank).astype(jnp.int32)
    found = count > 0
    index = jnp.where(found, index, 0)
    return jnp.stack([index // width, index % width]), found


def rgb_frame(
    index_grid: np.ndarray | jax.Array,
    palette: np.ndarray | jax.Array,
    scale: int = 16,
) -> np.ndarray:
    """Host-side: ``uint8[H * scale, W * scale, 3]`` from a grid of palette indices.

    ``palette`` is ``uint8[K, 3]``; each grid cell becomes a ``scale`` x ``scale``
    block of colour ``palette[index_grid[row, col]]``.
    """
    if scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale}")
    grid = np.asarray(index_grid)
    colours = np.asarray(palette, np.uint8)
    if grid.ndim != 2:
        raise ValueError(f"index_grid must be 2-D [H, W], got shape {grid.shape}")
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ValueError(f"palette must be uint8[K, 3], got shape {colours.shape}")
    image = colours[grid.astype(np.intp)]
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def save_png(frame: np.ndarray, path) -> None:
    """Write an RGB ``uint8[H, W, 3]`` frame as a PNG file (needs matplotlib)."""
    try:
        from matplotlib import image as mpl_image
    except ImportError as error:
        raise ImportError(
            "save_png needs matplotlib: pip install dilemmas[plot]"
        ) from error
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame must be uint8[H, W, 3], got {frame.dtype}{list(frame.shape)}"
        )
    mpl_image.imsave(path, frame, format="png")
