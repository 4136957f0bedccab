"""Hand-worked tests of the shared grid engine, :mod:`dilemmas.envs.grid`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.envs import grid

H, W = 4, 5


def _arr(x):
    return np.asarray(x).tolist()


def test_directions_table():
    assert _arr(grid.DIRECTIONS) == [[-1, 0], [0, 1], [1, 0], [0, -1]]
    assert (grid.UP, grid.RIGHT, grid.DOWN, grid.LEFT) == (0, 1, 2, 3)
    assert grid.DIRECTIONS.dtype == jnp.int32


@pytest.mark.parametrize(
    ("pos", "delta", "expected"),
    [
        ((1, 1), (-1, 0), (0, 1)),
        ((0, 1), (-1, 0), (0, 1)),  # clipped at the top
        ((3, 4), (1, 0), (3, 4)),  # clipped at the bottom
        ((2, 4), (0, 1), (2, 4)),  # clipped at the right
        ((2, 0), (0, -1), (2, 0)),  # clipped at the left
        ((2, 2), (0, 1), (2, 3)),
    ],
)
def test_move_clips_at_the_border(pos, delta, expected):
    out = grid.move(jnp.array(pos), jnp.array(delta), H, W)
    assert _arr(out) == list(expected)
    assert out.dtype == jnp.int32


@pytest.mark.parametrize(
    ("pos", "delta", "expected"),
    [
        ((0, 1), (-1, 0), (3, 1)),
        ((3, 4), (1, 0), (0, 4)),
        ((2, 4), (0, 1), (2, 0)),
        ((2, 0), (0, -1), (2, 4)),
    ],
)
def test_move_wraps_on_a_torus(pos, delta, expected):
    out = grid.move(jnp.array(pos), jnp.array(delta), H, W, torus=True)
    assert _arr(out) == list(expected)


def test_move_is_blocked_by_walls_and_broadcasts():
    walls = jnp.zeros((H, W), bool).at[1, 2].set(True).at[0, 0].set(True)
    pos = jnp.array([[1, 1], [2, 2], [3, 3], [3, 0]])
    delta = jnp.array([0, 1])  # broadcast against every position
    out = grid.move(pos, delta, H, W, walls=walls)
    # (1,1)->(1,2) is a wall; the others move right.
    assert _arr(out) == [[1, 1], [2, 3], [3, 4], [3, 1]]
    # On a torus, wrapping into a wall is blocked too: (0, 4) + right = (0, 0).
    out = grid.move(jnp.array([0, 4]), jnp.array([0, 1]), H, W, walls=walls, torus=True)
    assert _arr(out) == [0, 4]


def test_turn():
    assert _arr(grid.turn(jnp.array([0, 1, 2, 3]), 1)) == [1, 2, 3, 0]
    assert _arr(grid.turn(jnp.array([0, 1, 2, 3]), -1)) == [3, 0, 1, 2]
    assert int(grid.turn(2, 2)) == 0


def test_relative_delta():
    # Facing UP: forward is up, right is right, backward down, left left.
    assert _arr(grid.relative_delta(0, jnp.arange(4))) == [
        [-1, 0],
        [0, 1],
        [1, 0],
        [0, -1],
    ]
    # Facing RIGHT: forward is (0, 1), the agent's right is down, left is up.
    assert _arr(grid.relative_delta(1, 0)) == [0, 1]
    assert _arr(grid.relative_delta(1, 1)) == [1, 0]
    assert _arr(grid.relative_delta(1, 3)) == [-1, 0]
    # Facing LEFT: right is up.
    assert _arr(grid.relative_delta(3, 1)) == [-1, 0]
    # Facing DOWN: backward is up.
    assert _arr(grid.relative_delta(2, 2)) == [-1, 0]


def test_distances():
    a = jnp.array([[0, 0], [2, 3]])
    b = jnp.array([[3, 1], [2, 3]])
    assert _arr(grid.manhattan(a, b)) == [4, 0]
    assert _arr(grid.chebyshev(a, b)) == [3, 0]
    assert grid.manhattan(a, b).dtype == jnp.int32


def test_positions_one_hot():
    pos = jnp.array([[0, 0], [1, 2], [3, 4]])
    out = grid.positions_one_hot(pos, H, W)
    assert out.shape == (3, H * W) and out.dtype == jnp.float32
    expected = np.zeros((3, H * W), np.float32)
    expected[0, 0] = expected[1, 1 * W + 2] = expected[2, 3 * W + 4] = 1
    np.testing.assert_array_equal(out, expected)


def _cells(mask) -> set[tuple[int, int]]:
    return {
        (int(r), int(c)) for r, c in zip(*np.nonzero(np.asarray(mask)), strict=True)
    }


_NO_WALLS = jnp.zeros((7, 7), bool)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (grid.UP, {(2, 3), (1, 3)}),
        (grid.RIGHT, {(3, 4), (3, 5)}),
        (grid.DOWN, {(4, 3), (5, 3)}),
        (grid.LEFT, {(3, 2), (3, 1)}),
    ],
)
def test_beam_single_lane(orientation, expected):
    hit = grid.beam(jnp.array([3, 3]), orientation, 2, 0, _NO_WALLS)
    assert hit.shape == (7, 7) and hit.dtype == jnp.bool_
    assert _cells(hit) == expected


def test_beam_width_and_length():
    hit = grid.beam(jnp.array([3, 3]), grid.UP, 3, 1, _NO_WALLS)
    expected = {(r, c) for r in (0, 1, 2) for c in (2, 3, 4)}
    assert _cells(hit) == expected
    assert (3, 3) not in _cells(hit)
    # Facing right, lanes are rows 2..4 (the agent's left is row 2).
    hit = grid.beam(jnp.array([3, 3]), grid.RIGHT, 2, 1, _NO_WALLS)
    assert _cells(hit) == {(r, c) for r in (2, 3, 4) for c in (4, 5)}


def test_beam_stops_at_the_border():
    hit = grid.beam(jnp.array([1, 0]), grid.UP, 5, 1, _NO_WALLS)
    # Lanes at cols -1 (off-grid), 0, 1; only row 0 is ahead.
    assert _cells(hit) == {(0, 0), (0, 1)}


def test_beam_lanes_stop_at_walls():
    walls = _NO_WALLS.at[1, 3].set(True).at[2, 4].set(True)
    hit = grid.beam(jnp.array([3, 3]), grid.UP, 3, 1, walls)
    # Lane col 2: rows 2, 1, 0. Lane col 3: row 2, then the wall at (1, 3) stops it.
    # Lane col 4: the wall at (2, 4) is the first cell, so nothing.
    assert _cells(hit) == {(2, 2), (1, 2), (0, 2), (2, 3)}


def test_beam_never_hits_the_firer():
    # Even facing a wall directly, radius 0 or 2, the firer's cell stays clear.
    walls = _NO_WALLS.at[3, 4].set(True)
    for orientation in range(4):
        for radius in (0, 2):
            hit = grid.beam(jnp.array([3, 3]), orientation, 4, radius, walls)
            assert not bool(hit[3, 3])
    assert not grid.beam(jnp.array([3, 3]), grid.RIGHT, 4, 0, walls).any()


def test_beam_traced_length_under_jit():
    fire = jax.jit(grid.beam)
    hit = fire(jnp.array([6, 3]), grid.UP, jnp.int32(4), jnp.int32(0), _NO_WALLS)
    assert _cells(hit) == {(5, 3), (4, 3), (3, 3), (2, 3)}


@pytest.mark.parametrize(
    ("orientation", "ahead"),
    [
        (grid.UP, (1, 3)),
        (grid.RIGHT, (3, 5)),
        (grid.DOWN, (5, 3)),
        (grid.LEFT, (3, 1)),
    ],
)
def test_egocentric_view_puts_the_cell_ahead_on_top(orientation, ahead):
    # A mark two cells ahead of the agent appears two rows above it, same column.
    planes = jnp.zeros((2, 7, 7)).at[0, ahead[0], ahead[1]].set(1.0)
    planes = planes.at[1, 3, 3].set(1.0)  # the agent's own cell
    view = grid.egocentric_view(
        planes, jnp.array([3, 3]), orientation, forward=3, backward=1, left=2, right=2
    )
    assert view.shape == (2, 5, 5)
    marked = list(zip(*np.nonzero(np.asarray(view[0])), strict=True))
    assert marked == [(1, 2)]
    assert float(view[1, 3, 2]) == 1.0  # the agent sits at (forward, left)


@pytest.mark.parametrize(
    ("orientation", "left_cell"),
    [
        (grid.UP, (3, 2)),
        (grid.RIGHT, (2, 3)),
        (grid.DOWN, (3, 4)),
        (grid.LEFT, (4, 3)),
    ],
)
def test_egocentric_view_left_is_column_zero_side(orientation, left_cell):
    planes = jnp.zeros((1, 7, 7)).at[0, left_cell[0], left_cell[1]].set(1.0)
    view = grid.egocentric_view(
        planes, jnp.array([3, 3]), orientation, forward=1, backward=1, left=1, right=1
    )
    assert list(zip(*np.nonzero(np.asarray(view[0])), strict=True)) == [(1, 0)]


def test_egocentric_view_padding_and_values():
    planes = jnp.arange(H * W, dtype=jnp.int32).reshape(1, H, W)
    view = grid.egocentric_view(
        planes,
        jnp.array([0, 0]),
        grid.UP,
        forward=1,
        backward=1,
        left=1,
        right=1,
        pad_value=-1,
    )
    assert _arr(view[0]) == [[-1, -1, -1], [-1, 0, 1], [-1, 5, 6]]
    # Facing RIGHT from (1, 3): ahead is column 4, then off the grid.
    view = grid.egocentric_view(
        planes,
        jnp.array([1, 3]),
        grid.RIGHT,
        forward=2,
        backward=0,
        left=1,
        right=1,
        pad_value=-1,
    )
    assert _arr(view[0]) == [[-1, -1, -1], [4, 9, 14], [3, 8, 13]]


def test_egocentric_view_torus_wraps():
    planes = jnp.arange(9, dtype=jnp.int32).reshape(1, 3, 3)
    view = grid.egocentric_view(
        planes,
        jnp.array([0, 0]),
        grid.UP,
        forward=1,
        backward=1,
        left=1,
        right=1,
        torus=True,
    )
    # Recentred on (0, 0): rows -1, 0, 1 -> 2, 0, 1 and the same for columns.
    assert _arr(view[0]) == [[8, 6, 7], [2, 0, 1], [5, 3, 4]]


def test_sample_cell_is_uniform_over_true_cells():
    mask = jnp.zeros((H, W), bool)
    cells = [(0, 0), (0, 4), (1, 2), (2, 3), (3, 1), (3, 4)]
    for r, c in cells:
        mask = mask.at[r, c].set(True)
    n = 6000
    keys = jax.random.split(jax.random.key(0), n)
    pos, found = jax.jit(jax.vmap(grid.sample_cell, in_axes=(0, None)))(keys, mask)
    assert bool(found.all())
    flat = np.asarray(pos[:, 0] * W + pos[:, 1])
    counts = np.bincount(flat, minlength=H * W)
    allowed = [r * W + c for r, c in cells]
    assert counts.sum() == counts[allowed].sum()  # never a False cell
    # Per-cell binomial check with p = 1/6: sd = sqrt(n p (1-p)) ~ 28.9.
    expected = n / len(cells)
    sd = np.sqrt(n * (1 / 6) * (5 / 6))
    assert np.all(np.abs(counts[allowed] - expected) < 4.5 * sd)
    # Chi-square with 5 degrees of freedom: the 0.999 quantile is 20.5.
    chi2 = np.sum((counts[allowed] - expected) ** 2 / expected)
    assert chi2 < 20.5


def test_sample_cell_single_and_empty_mask():
    key = jax.random.key(1)
    one = jnp.zeros((H, W), bool).at[2, 3].set(True)
    pos, found = grid.sample_cell(key, one)
    assert _arr(pos) == [2, 3] and bool(found)
    assert pos.dtype == jnp.int32
    pos, found = grid.sample_cell(key, jnp.zeros((H, W), bool))
    assert _arr(pos) == [0, 0] and not bool(found)


def test_rgb_frame():
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    index = np.array([[0, 1], [2, 0], [1, 1]])
    frame = grid.rgb_frame(index, palette, scale=4)
    assert frame.shape == (12, 8, 3) and frame.dtype == np.uint8
    assert frame[0, 0].tolist() == [0, 0, 0]
    assert frame[3, 7].tolist() == [255, 0, 0]  # cell (0, 1)
    assert frame[4, 0].tolist() == [0, 0, 255]  # cell (1, 0)
    assert frame[7, 3].tolist() == [0, 0, 255]  # still cell (1, 0)
    assert frame[11, 4].tolist() == [255, 0, 0]  # cell (2, 1)
    assert grid.rgb_frame(jnp.asarray(index), palette).shape == (48, 32, 3)
    with pytest.raises(ValueError, match="scale"):
        grid.rgb_frame(index, palette, scale=0)


def test_save_png_writes_a_png(tmp_path):
    palette = np.array([[10, 20, 30], [200, 100, 50]], np.uint8)
    frame = grid.rgb_frame(np.array([[0, 1], [1, 0]]), palette, scale=3)
    path = tmp_path / "frame.png"
    grid.save_png(frame, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib import image as mpl_image

    back = mpl_image.imread(path)
    assert back.shape[:2] == (6, 6)
    np.testing.assert_allclose(back[0, 0, :3] * 255, [10, 20, 30], atol=1)
    with pytest.raises(ValueError, match="uint8"):
        grid.save_png(frame.astype(np.float32), path)
