"""CleanUp-lite: the two-player tragedy of the commons of the COALA-PG paper.

The game of Meulemans et al., "Multi-agent cooperation through learning-aware policy
gradients" (arXiv:2410.18636, App. B.1.2), the temporally extended benchmark that the
learning-aware agents are evaluated on. A 5 x 4 grid: the leftmost column is the
orchard (apples grow only there), the rightmost column is the river (dirt appears only
there), the columns in between are plain ground. Apples grow less the dirtier the
river is, and nobody is paid for cleaning it.

===================  ==============================================================
agents               2 (symmetric)
actions              ``Discrete(6)``, the paper's order: 0 move right, 1 move left,
                     2 move up (row - 1), 3 move down (row + 1), 4 zap, 5 do nothing.
                     No orientation, no turning, no cleaning beam: an agent harvests
                     an apple and cleans dirt by standing on it.
observation          ``float32[102]`` (5 x 4 grid, C = H * W cells), own agent first:
                     ``[0, C)`` own position one-hot (row-major), ``[C, 2C)`` the
                     co-player's position one-hot, ``[2C, 5C)`` three per-cell
                     planes apple / dirt / empty (plane-major, each row-major),
                     ``[5C]`` own frozen status, ``[5C + 1]`` the co-player's.
                     With ``include_time=True`` a last entry ``t / max_steps``.
                     Swapping the two agents in the state swaps the observations.
reward               ``apple_reward`` (+1) per harvested apple, nothing else
termination          never
truncation           after ``max_steps`` (T = 64) steps
stochastic           yes: pollution, apple growth, zap success, start positions
info                 per-step ``int32[2]`` counts ``apples_eaten``, ``cells_cleaned``,
                     ``zaps_fired`` (attempts by an unfrozen agent),
                     ``zaps_received`` (successful zaps suffered; the successes of
                     agent i are ``zaps_received[1 - i]``) and ``frozen`` (1 if the
                     agent was frozen during this step and took no part in it)
render modes         ``ansi`` and ``rgb_array``
co-players           scripted policies of :mod:`dilemmas.agents.scripted.cleanup_lite`
                     (``always_harvest``, the default of the Gymnasium face,
                     ``dedicated_cleaner``, ``turn_taker``, ``zapper``, ``random``)
===================  ==============================================================

Step dynamics, in the paper's order (spec ``grid_dilemmas.md`` §1.3):

1. **Pollution.** If a river cell is free of dirt, with probability ``p_pollution``
   (0.35) one dirt patch appears on a uniformly random dirt-free river cell.
2. **Apples.** If an orchard cell is free, with probability
   ``1 - min(1, P / dirt_threshold)`` (``dirt_threshold`` = 3, P = number of dirt
   cells) one apple appears on a uniformly random free orchard cell: P = 0, 1, 2,
   >= 3 gives 1, 2/3, 1/3, 0.
3. **Harvest.** An unfrozen agent standing on an apple eats it (+1).
4. **Clean.** An unfrozen agent standing on dirt removes it.
5. **Zap.** An unfrozen agent choosing zap hits the co-player with probability
   ``p_zap`` (0.9) if it is at most ``zap_range`` (2) cells away and not frozen; a
   hit agent is frozen for ``freeze_steps`` (5) steps.
6. **Movement.** The four moves, clipped at the border.

Start: agents placed independently and uniformly, unfrozen; no apples; ``initial_dirt``
(3) dirt patches on distinct uniformly random river cells, so nothing grows until
someone cleans. With the defaults at most one apple appears per step, so the joint
return of an inner episode is at most T = 64.

Where each constant comes from: grid size, action order, 0.35, 3, 0.9, 2, 5, 3 initial
dirt, +1 and T = 64 are stated in the paper (App. B.1.2). The observation layout
(102 floats) is the paper's; the order of its blocks and of the object planes is ours.
Every point the paper leaves open is a documented option below (spec §1.7), set by
default to the recommended reading:

====  ===========================  ==================================================
#     question                     default, and where the alternative lives
====  ===========================  ==================================================
A1    grid orientation             5 rows x 4 columns; static ``height``/``width``
                                   (``CleanUpLite(height=4, width=5)`` for 4 x 5)
A2    apple spawn cells            a uniformly random apple-free orchard cell (the
                                   text's "not occupied by dirt" read as a typo);
                                   ``apple_spawn_literal=True`` draws among cells not
                                   occupied by dirt, i.e. any orchard cell (a draw on
                                   an apple changes nothing)
A3    apple under an agent         allowed, eaten in phase 3 of the same step;
                                   ``apple_under_agent=False`` forbids it (SSD)
A4    dirt under an agent          allowed, cleaned in phase 4 of the same step;
                                   ``dirt_under_agent=False`` forbids it
A5    which P drives p_apple       the count after this step's pollution phase;
                                   ``apple_dirt_after_pollution=False`` uses the
                                   count at the start of the step
A6    zap distance                 Manhattan; ``zap_metric`` = ``MANHATTAN`` (0),
                                   ``CHEBYSHEV`` (1) or ``EUCLIDEAN`` (2)
A7    simultaneous zaps            resolved together from the frozen status at the
                                   start of phase 5 (both may land, each with its
                                   own draw); ``sequential_zaps=True`` resolves them
                                   in a uniformly random order, so a zapper hit first
                                   cannot zap
A8    freeze timing                a target hit at step t does not move at step t and
                                   takes no part in steps t+1 ... t+freeze_steps (no
                                   harvest, clean, zap or move); it acts again at
                                   t+freeze_steps+1 and cannot be zapped while
                                   frozen; ``zap_stops_move=False`` lets it make its
                                   move of step t
A9    zap on a frozen or distant   no effect, still counted in ``zaps_fired`` (no
      co-player                    alternative)
A10   walls and collisions         moves clipped at the border, agents may share a
                                   cell; ``blocking=True``: a move into the cell the
                                   co-player keeps, or into the cell both move to
                                   (random winner), or a swap, fails
A11   both agents on one apple     one of them, uniformly at random, gets it;
                                   ``apple_tie`` = ``TIE_RANDOM`` (0), ``TIE_SPLIT``
                                   (1, 0.5 each) or ``TIE_BOTH`` (2, +1 each, which
                                   breaks the 64 bound); ``apples_eaten`` counts the
                                   credited agents (both under split and both)
A12   both agents on one dirt      removed, both credited in ``cells_cleaned``;
                                   ``clean_credit_random=True`` credits one at random
A13   move timing                  move last, so a move changes where harvest and
                                   clean happen at the next step; ``move_first=True``
                                   moves before pollution
A14   start placement              agents independent and uniform over all cells
                                   (may overlap); ``distinct_start=True`` (forced by
                                   ``blocking``) puts them on distinct cells; dirt
                                   on ``initial_dirt`` distinct river cells
A15   frozen status in the obs     a 0/1 flag; ``obs_freeze_fraction=True`` shows the
                                   remaining frozen steps / ``freeze_steps``
A16   "average cleaning time"      metric, not dynamics: c_i = (steps in which agent
                                   i removed dirt) / T = ``sum_t cells_cleaned[i] /
                                   T`` (an agent cleans at most one cell a step);
                                   discrepancy ``|c_0 - c_1|``, and log the signed
                                   difference too
A17   "zap rate"                   metric: successful zaps received per inner
                                   episode, ``sum_t zaps_received``; attempts are
                                   ``sum_t zaps_fired``
A18   pollution / apple level      metric: mean number of dirt cells / apples over
                                   the episode, measured after each full step (the
                                   state the next observation shows)
A19   time in the observation      not included; static ``include_time=True``
                                   appends ``t / max_steps``
====  ===========================  ==================================================

Params (``env.make_params(**overrides)`` validates them): ``p_pollution`` 0.35,
``dirt_threshold`` 3.0, ``p_zap`` 0.9, ``zap_range`` 2, ``freeze_steps`` 5,
``apple_reward`` 1.0, ``initial_dirt`` 3 (``min(3, height)`` on shorter maps),
``max_steps`` 64, and the option fields of the table. Meta-trajectories of M inner
episodes (M = 100 pure shaping, M = 5 mixed pool in the paper) come from
:class:`dilemmas.envs.MetaEpisodes`.

Version history: v0, initial release.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium.spaces
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dilemmas.envs import grid
from dilemmas.envs.core import LegendEntry, MultiAgentEnv, Timestep
from dilemmas.envs.registry import register

MOVE_RIGHT, MOVE_LEFT, MOVE_UP, MOVE_DOWN, ZAP, NOOP = range(6)
ACTION_NAMES = ("right", "left", "up", "down", "zap", "noop")
#: ``MOVE_DELTAS[a]`` is the ``(drow, dcol)`` of action ``a`` (zero for zap, no-op).
MOVE_DELTAS: jax.Array = jnp.stack(
    [
        grid.DIRECTIONS[grid.RIGHT],
        grid.DIRECTIONS[grid.LEFT],
        grid.DIRECTIONS[grid.UP],
        grid.DIRECTIONS[grid.DOWN],
        jnp.zeros(2, jnp.int32),
        jnp.zeros(2, jnp.int32),
    ]
)

#: ``zap_metric`` values (A6).
MANHATTAN, CHEBYSHEV, EUCLIDEAN = 0, 1, 2
#: ``apple_tie`` values (A11).
TIE_RANDOM, TIE_SPLIT, TIE_BOTH = 0, 1, 2

#: Info keys, each ``int32[2]`` on every step.
INFO_KEYS = ("apples_eaten", "cells_cleaned", "zaps_fired", "zaps_received", "frozen")

_OTHER = jnp.array([1, 0], jnp.int32)  # _OTHER[i] is the co-player of agent i
_OWN_FIRST = jnp.array([[0, 1], [1, 0]], jnp.int32)  # row i: agent i, then 1 - i


@struct.dataclass
class CleanUpLiteState:
    agent_pos: jax.Array  # [2, 2] int32, (row, col) per agent
    dirt: jax.Array  # [H, W] bool, only ever True in the river column
    apples: jax.Array  # [H, W] bool, only ever True in the orchard column
    freeze: jax.Array  # [2] int32, steps each agent stays frozen (0: free to act)
    t: jax.Array  # () int32, steps played in this episode


@struct.dataclass
class CleanUpLiteParams:
    """Numbers and rule options of CleanUp-lite (see the module docstring)."""

    p_pollution: jax.Array  # () float32, 0.35
    dirt_threshold: jax.Array  # () float32, 3: p_apple = 1 - min(1, P / threshold)
    p_zap: jax.Array  # () float32, 0.9
    zap_range: jax.Array  # () int32, 2
    freeze_steps: jax.Array  # () int32, 5
    apple_reward: jax.Array  # () float32, 1
    initial_dirt: jax.Array  # () int32, 3
    max_steps: jax.Array  # () int32, T = 64
    apple_spawn_literal: jax.Array  # () bool, A2
    apple_under_agent: jax.Array  # () bool, A3
    dirt_under_agent: jax.Array  # () bool, A4
    apple_dirt_after_pollution: jax.Array  # () bool, A5
    zap_metric: jax.Array  # () int32, A6
    sequential_zaps: jax.Array  # () bool, A7
    zap_stops_move: jax.Array  # () bool, A8
    blocking: jax.Array  # () bool, A10
    apple_tie: jax.Array  # () int32, A11
    clean_credit_random: jax.Array  # () bool, A12
    move_first: jax.Array  # () bool, A13
    distinct_start: jax.Array  # () bool, A14
    obs_freeze_fraction: jax.Array  # () bool, A15


_FLOAT_FIELDS = ("p_pollution", "dirt_threshold", "p_zap", "apple_reward")
_INT_FIELDS = ("zap_range", "freeze_steps", "initial_dirt", "max_steps")
_INT_CHOICES = {
    "zap_metric": (MANHATTAN, CHEBYSHEV, EUCLIDEAN),
    "apple_tie": (TIE_RANDOM, TIE_SPLIT, TIE_BOTH),
}
_BOOL_FIELDS = (
    "apple_spawn_literal",
    "apple_under_agent",
    "dirt_under_agent",
    "apple_dirt_after_pollution",
    "sequential_zaps",
    "zap_stops_move",
    "blocking",
    "clean_credit_random",
    "move_first",
    "distinct_start",
    "obs_freeze_fraction",
)
_DEFAULTS: dict[str, Any] = {
    "p_pollution": 0.35,
    "dirt_threshold": 3.0,
    "p_zap": 0.9,
    "zap_range": 2,
    "freeze_steps": 5,
    "apple_reward": 1.0,
    "initial_dirt": 3,
    "max_steps": 64,
    "apple_spawn_literal": False,
    "apple_under_agent": True,
    "dirt_under_agent": True,
    "apple_dirt_after_pollution": True,
    "zap_metric": MANHATTAN,
    "sequential_zaps": False,
    "zap_stops_move": True,
    "blocking": False,
    "apple_tie": TIE_RANDOM,
    "clean_credit_random": False,
    "move_first": False,
    "distinct_start": False,
    "obs_freeze_fraction": False,
}


def _check_size(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not 0 <= value <= np.iinfo(np.int32).max:
        raise ValueError(f"{name} must be a non-negative int32, got {value}")
    return int(value)


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _picked(coin: jax.Array) -> jax.Array:
    """``bool[2]``: the agent picked by a uniform draw (below 1/2: agent 1)."""
    one = coin < 0.5
    return jnp.stack([~one, one])


def in_zap_range(a: jax.Array, b: jax.Array, params: CleanUpLiteParams) -> jax.Array:
    """Whether positions ``a`` and ``b`` are within ``params.zap_range`` (A6 metric)."""
    diff = jnp.asarray(a, jnp.int32) - jnp.asarray(b, jnp.int32)
    squared = jnp.sum(diff * diff, axis=-1)
    within = jnp.stack(
        [
            grid.manhattan(a, b) <= params.zap_range,
            grid.chebyshev(a, b) <= params.zap_range,
            squared <= params.zap_range * params.zap_range,
        ]
    )
    return within[params.zap_metric]


def apple_probability(num_dirt: jax.Array, params: CleanUpLiteParams) -> jax.Array:
    """``1 - min(1, num_dirt / dirt_threshold)``: the chance that an apple appears."""
    ratio = jnp.asarray(num_dirt, jnp.float32) / params.dirt_threshold
    return 1.0 - jnp.minimum(1.0, ratio)


class CleanUpLite(MultiAgentEnv[CleanUpLiteState, CleanUpLiteParams]):
    """CleanUp-lite (COALA-PG App. B.1.2) on a ``height`` x ``width`` grid.

    Args:
      height: number of rows (the orchard and the river each have ``height`` cells).
      width: number of columns; column 0 is the orchard, column ``width - 1`` the
        river, so at least 2.
      include_time: append ``t / max_steps`` to the observation (A19).
      max_steps: default episode length of :attr:`default_params` (64, the paper's
        T); ``make_params(max_steps=...)`` overrides it per params.
    """

    num_agents = 2
    num_actions = 6
    stochastic: ClassVar[bool] = True
    render_modes: ClassVar[tuple[str, ...]] = ("ansi", "rgb_array")
    co_players: ClassVar[str | None] = "dilemmas.agents.scripted.cleanup_lite"
    default_co_player: ClassVar[str | None] = "always_harvest"
    #: A cleaner feeding a free-rider: two harvesters alone eat nothing.
    demo_players: ClassVar[tuple[str, str] | None] = (
        "dedicated_cleaner",
        "always_harvest",
    )
    action_names: ClassVar[tuple[str, ...]] = ACTION_NAMES
    #: Palette of :meth:`render_rgb`: ground, orchard, apple, river, dirt, agent 0,
    #: agent 1, both agents on one cell, a frozen agent.
    PALETTE: ClassVar[np.ndarray] = np.array(
        [
            [200, 180, 140],
            [120, 170, 90],
            [220, 30, 40],
            [70, 130, 220],
            [110, 80, 40],
            [250, 220, 40],
            [170, 60, 200],
            [255, 255, 255],
            [130, 130, 130],
        ],
        np.uint8,
    )

    def __init__(
        self,
        height: int = 5,
        width: int = 4,
        include_time: bool = False,
        max_steps: int = 64,
    ):
        self.height = _check_size("height", height, 1)
        self.width = _check_size("width", width, 1)
        if self.width < 2:
            raise ValueError(
                "CleanUp-lite needs width >= 2 (column 0 is the orchard and column "
                f"width - 1 the river), got width={width}: the map would have no "
                "separate river and orchard"
            )
        if not isinstance(include_time, bool):
            raise ValueError(f"include_time must be a bool, got {include_time!r}")
        self.include_time = include_time
        self.num_cells = self.height * self.width
        self.obs_dim = 5 * self.num_cells + 2 + int(include_time)
        cols = np.arange(self.width)[None, :]
        self.orchard = jnp.asarray(
            np.broadcast_to(cols == 0, (self.height, self.width))
        )
        self.river = jnp.asarray(
            np.broadcast_to(cols == self.width - 1, (self.height, self.width))
        )
        self._max_steps = max_steps
        self.make_params()  # validates max_steps

    def static_config(self) -> tuple:
        return (self.height, self.width, self.include_time)

    @property
    def default_params(self) -> CleanUpLiteParams:
        return self.make_params()

    def make_params(self, **overrides: Any) -> CleanUpLiteParams:
        """Validated params: the defaults of the module docstring, with overrides."""
        unknown = set(overrides) - set(_DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown CleanUp-lite params {sorted(unknown)}; "
                f"known: {sorted(_DEFAULTS)}"
            )
        values = {
            **_DEFAULTS,
            "initial_dirt": min(3, self.height),
            "max_steps": self._max_steps,
            **overrides,
        }
        fields: dict[str, jax.Array] = {}
        for name in _FLOAT_FIELDS:
            fields[name] = jnp.asarray(_check_float(name, values[name]), jnp.float32)
        for name in ("p_pollution", "p_zap"):
            if not 0.0 <= float(fields[name]) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {values[name]}")
        if float(fields["dirt_threshold"]) <= 0.0:
            raise ValueError(
                f"dirt_threshold must be positive, got {values['dirt_threshold']}"
            )
        for name in _INT_FIELDS:
            fields[name] = jnp.asarray(_check_int(name, values[name]), jnp.int32)
        if int(fields["max_steps"]) < 1:
            raise ValueError(f"max_steps must be positive, got {values['max_steps']}")
        if int(fields["initial_dirt"]) > self.height:
            raise ValueError(
                f"initial_dirt={values['initial_dirt']} exceeds the {self.height} "
                "river cells"
            )
        for name, choices in _INT_CHOICES.items():
            if values[name] not in choices or isinstance(values[name], bool):
                raise ValueError(
                    f"{name} must be one of {choices}, got {values[name]!r}"
                )
            fields[name] = jnp.asarray(values[name], jnp.int32)
        for name in _BOOL_FIELDS:
            if not isinstance(values[name], bool | np.bool_):
                raise ValueError(f"{name} must be a bool, got {values[name]!r}")
            fields[name] = jnp.asarray(values[name], bool)
        return CleanUpLiteParams(**fields)

    # ------------------------------------------------------------------ dynamics

    def reset(
        self, key: jax.Array, params: CleanUpLiteParams
    ) -> tuple[jax.Array, CleanUpLiteState]:
        key_first, key_second, key_dirt = jax.random.split(key, 3)
        every_cell = jnp.ones((self.height, self.width), bool)
        first, _ = grid.sample_cell(key_first, every_cell)
        distinct = params.distinct_start | params.blocking
        taken = self._cells(first)[0]
        second, _ = grid.sample_cell(key_second, every_cell & ~(distinct & taken))
        # A uniformly random set of `initial_dirt` river rows: those whose i.i.d.
        # uniform scores rank lowest (rank_i = #{j: s_j < s_i}, ties by index).
        scores = jax.random.uniform(key_dirt, (self.height,))
        index = jnp.arange(self.height)
        before = (scores[None, :] < scores[:, None]) | (
            (scores[None, :] == scores[:, None]) & (index[None, :] < index[:, None])
        )
        rank = jnp.sum(before, axis=1)
        dirt = self.river & (rank < params.initial_dirt)[:, None]
        state = CleanUpLiteState(
            agent_pos=jnp.stack([first, second]).astype(jnp.int32),
            dirt=dirt,
            apples=jnp.zeros((self.height, self.width), bool),
            freeze=jnp.zeros((2,), jnp.int32),
            t=jnp.zeros((), jnp.int32),
        )
        return self.observe(state, params), state

    def _cells(self, pos: jax.Array) -> jax.Array:
        """``bool[N, H, W]``: one plane per position of ``pos`` (``int32[N, 2]``)."""
        planes = grid.positions_one_hot(pos, self.height, self.width) > 0
        return planes.reshape(-1, self.height, self.width)

    def _move(
        self,
        coin: jax.Array,
        pos: jax.Array,
        actions: jax.Array,
        movers: jax.Array,
        params: CleanUpLiteParams,
    ) -> jax.Array:
        """Positions after the moves of the agents in ``movers`` (A10 collisions)."""
        delta = MOVE_DELTAS[actions] * movers[:, None].astype(jnp.int32)
        target = grid.move(pos, delta, self.height, self.width)
        stayed = jnp.all(target == pos, axis=-1)
        same_target = jnp.all(target[0] == target[1])
        swap = (
            jnp.all(target[0] == pos[1]) & jnp.all(target[1] == pos[0]) & ~stayed.any()
        )
        # Two agents heading for one cell: one that keeps its cell wins; if both
        # moved, the fair `coin` (a uniform draw in [0, 1)) picks who is sent back.
        sent_back = jnp.where(stayed.any(), ~stayed, _picked(coin))
        revert = params.blocking & ((same_target & sent_back) | swap)
        return jnp.where(revert[:, None], pos, target)

    def step(
        self,
        key: jax.Array,
        state: CleanUpLiteState,
        actions: jax.Array,
        params: CleanUpLiteParams,
    ) -> Timestep:
        key_pollution, key_apple, key_draws = jax.random.split(key, 3)
        # Uniform draws for the Bernoulli events; a coin below 1/2 picks agent 1.
        (
            u_pollution,
            u_apple,
            u_zap_0,
            u_zap_1,
            coin_apple,
            coin_clean,
            coin_zap_order,
            coin_early_move,
            coin_late_move,
        ) = jax.random.uniform(key_draws, (9,))
        actions = jnp.asarray(actions, jnp.int32)
        active = state.freeze == 0  # frozen agents take no part in this step

        # A13 option: move before everything else.
        pos = jnp.where(
            params.move_first,
            self._move(coin_early_move, state.agent_pos, actions, active, params),
            state.agent_pos,
        )
        agent_cells = self._cells(pos)  # [2, H, W]
        everyone = agent_cells.any(0)

        # 1. Pollution.
        dirt = state.dirt
        free_river = self.river & ~dirt & ~(everyone & ~params.dirt_under_agent)
        cell, found = grid.sample_cell(key_pollution, free_river)
        polluted = found & (u_pollution < params.p_pollution)
        dirt = dirt | (self._cells(cell)[0] & polluted)

        # 2. Apples.
        num_dirt = jnp.where(
            params.apple_dirt_after_pollution, dirt.sum(), state.dirt.sum()
        )
        apples = state.apples
        spawnable = jnp.where(params.apple_spawn_literal, ~dirt, ~apples)
        free_orchard = (
            self.orchard & spawnable & ~(everyone & ~params.apple_under_agent)
        )
        cell, found = grid.sample_cell(key_apple, free_orchard)
        grows = found & (u_apple < apple_probability(num_dirt, params))
        apples = apples | (self._cells(cell)[0] & grows)

        # 3. Harvest.
        same_cell = jnp.all(pos[0] == pos[1])
        on_apple = active & (agent_cells & apples).any((1, 2))
        apple_tie = same_cell & on_apple.all()
        random_credit = jnp.where(apple_tie, _picked(coin_apple), on_apple)
        eaten = jnp.where(params.apple_tie == TIE_RANDOM, random_credit, on_apple)
        share = jnp.where(
            params.apple_tie == TIE_SPLIT,
            jnp.where(apple_tie, 0.5, 1.0) * on_apple,
            eaten.astype(jnp.float32),
        )
        reward = (params.apple_reward * share).astype(jnp.float32)
        apples = apples & ~(agent_cells & on_apple[:, None, None]).any(0)

        # 4. Clean.
        on_dirt = active & (agent_cells & dirt).any((1, 2))
        dirt_tie = same_cell & on_dirt.all()
        cleaned = jnp.where(
            params.clean_credit_random & dirt_tie, _picked(coin_clean), on_dirt
        )
        dirt = dirt & ~(agent_cells & on_dirt[:, None, None]).any(0)

        # 5. Zap, from the frozen status at the start of this phase.
        fired = active & (actions == ZAP)
        lands = (
            fired
            & in_zap_range(pos[0], pos[1], params)
            & active[_OTHER]
            & (jnp.stack([u_zap_0, u_zap_1]) < params.p_zap)
        )
        first = _picked(coin_zap_order)
        lands_in_order = lands & (first | ~(lands & first).any())
        lands = jnp.where(params.sequential_zaps, lands_in_order, lands)
        hit = lands[_OTHER]

        # 6. Movement (a target hit this step stays put, A8).
        movers = active & ~(hit & params.zap_stops_move) & ~params.move_first
        pos = self._move(coin_late_move, pos, actions, movers, params)

        freeze = jnp.where(hit, params.freeze_steps, jnp.maximum(state.freeze - 1, 0))
        state = CleanUpLiteState(
            agent_pos=pos,
            dirt=dirt,
            apples=apples,
            freeze=freeze.astype(jnp.int32),
            t=state.t + 1,
        )
        info = {
            "apples_eaten": eaten.astype(jnp.int32),
            "cells_cleaned": cleaned.astype(jnp.int32),
            "zaps_fired": fired.astype(jnp.int32),
            "zaps_received": hit.astype(jnp.int32),
            "frozen": (~active).astype(jnp.int32),
        }
        return Timestep(
            obs=self.observe(state, params),
            state=state,
            reward=reward,
            terminated=jnp.zeros((), bool),
            truncated=state.t >= params.max_steps,
            info=info,
        )

    def observe(self, state: CleanUpLiteState, params: CleanUpLiteParams) -> jax.Array:
        """Own-first observations ``float32[2, obs_dim]`` (layout in the docstring)."""
        positions = grid.positions_one_hot(state.agent_pos, self.height, self.width)
        own_then_other = positions[_OWN_FIRST].reshape(2, 2 * self.num_cells)
        empty = ~(state.apples | state.dirt)
        objects = jnp.stack([state.apples, state.dirt, empty]).astype(jnp.float32)
        objects = jnp.broadcast_to(objects.reshape(-1), (2, 3 * self.num_cells))
        fraction = state.freeze / jnp.maximum(params.freeze_steps, 1)
        status = jnp.where(params.obs_freeze_fraction, fraction, state.freeze > 0)
        status = jnp.clip(status.astype(jnp.float32), 0.0, 1.0)[_OWN_FIRST]
        parts = [own_then_other, objects, status]
        if self.include_time:
            time = jnp.clip(state.t / params.max_steps, 0.0, 1.0).astype(jnp.float32)
            parts.append(jnp.broadcast_to(time, (2, 1)))
        return jnp.concatenate(parts, axis=-1)

    def observation_space(self) -> gymnasium.spaces.Box:
        return gymnasium.spaces.Box(0.0, 1.0, (self.obs_dim,), np.float32)

    # ------------------------------------------------------------------ rendering

    def _index_grid(self, state: CleanUpLiteState) -> np.ndarray:
        """Palette indices ``int[H, W]`` of :attr:`PALETTE` for ``state``."""
        index = np.zeros((self.height, self.width), np.int64)
        index[:, 0] = 1
        index[:, -1] = 3
        index[np.asarray(state.apples)] = 2
        index[np.asarray(state.dirt)] = 4
        pos = np.asarray(state.agent_pos)
        freeze = np.asarray(state.freeze)
        for agent in range(2):
            row, col = pos[agent]
            index[row, col] = 8 if freeze[agent] > 0 else 5 + agent
        if (pos[0] == pos[1]).all():
            index[pos[0][0], pos[0][1]] = 7
        return index

    def render_legend(self) -> tuple[LegendEntry, ...]:
        """The symbols of :meth:`render_ansi` and colours of :meth:`render_rgb`.

        A frozen agent keeps its digit in the text (the header says it is frozen).
        """
        colour = [tuple(int(v) for v in rgb) for rgb in self.PALETTE]
        return (
            LegendEntry("ground", ".", colour[0]),
            LegendEntry("orchard cell without an apple (column 0)", ":", colour[1]),
            LegendEntry("apple", "a", colour[2]),
            LegendEntry("clean river cell (last column)", "~", colour[3]),
            LegendEntry("dirt", "#", colour[4]),
            LegendEntry("agent 0 (player_0)", "0", colour[5]),
            LegendEntry("agent 1 (player_1)", "1", colour[6]),
            LegendEntry("both agents on one cell", "*", colour[7]),
            LegendEntry("a frozen agent (zapped)", None, colour[8]),
        )

    def render_rgb(
        self, state: CleanUpLiteState, params: CleanUpLiteParams, scale: int = 16
    ) -> np.ndarray:
        """Host-side ``uint8[H * scale, W * scale, 3]`` picture of ``state``."""
        del params
        return grid.rgb_frame(self._index_grid(state), self.PALETTE, scale)

    def render_ansi(self, state: CleanUpLiteState, params: CleanUpLiteParams) -> str:
        """Text picture: ``a`` apple, ``#`` dirt, ``~`` clean river, ``:`` empty
        orchard, ``.`` ground, ``0``/``1`` agents (``*`` both on one cell)."""
        rows = []
        apples, dirt = np.asarray(state.apples), np.asarray(state.dirt)
        pos = np.asarray(state.agent_pos)
        for r in range(self.height):
            line = []
            for c in range(self.width):
                char = ":" if c == 0 else "~" if c == self.width - 1 else "."
                char = "a" if apples[r, c] else "#" if dirt[r, c] else char
                here = [a for a in range(2) if (pos[a] == (r, c)).all()]
                if len(here) == 2:
                    char = "*"
                elif here:
                    char = str(here[0])
                line.append(char)
            rows.append("".join(line))
        freeze = np.asarray(state.freeze)
        status = ", ".join(
            f"agent {a} " + (f"frozen {freeze[a]}" if freeze[a] > 0 else "free")
            for a in range(2)
        )
        header = (
            f"step {int(state.t)}/{int(params.max_steps)}: {int(dirt.sum())} dirt, "
            f"{int(apples.sum())} apples; {status}"
        )
        return "\n".join([header, *rows])


register(
    "cleanup_lite-v0",
    CleanUpLite,
    description=(
        "CleanUp-lite (COALA-PG): 2 players, 5 x 4 grid, orchard and river columns, "
        "zapping, 64 steps"
    ),
)
