"""Coin Game: the two-player grid social dilemma of Lerer & Peysakhovich and LOLA.

Not OpenSpiel's ``coin_game`` (a different game with hidden colour preferences).
One JAX core, :class:`CoinGame`, plays both variants used in the opponent-shaping
literature; the static ``num_coins`` picks one.

===================  ==============================================================
agents               2: ``player_0`` is red, ``player_1`` is blue
actions              ``num_coins=1``: ``Discrete(4)``: 0 right, 1 left, 2 down, 3 up
                     (the LOLA/POLA order; no stay). ``num_coins=2``: ``Discrete(5)``:
                     the same four then 4 stay (the Pax/JaxMARL order; their source
                     comments call 2 "up" and 3 "down", but 2 adds +1 to the row, which
                     is "down" with row 0 at the top, as here).
grid                 ``height`` x ``width`` torus (3 x 3 by default): moves wrap around
observation          ``float32[4 * H * W]`` (or ``[4, H, W]`` with ``flat_obs=False``),
                     own-first planes: own position, co-player position, own-colour
                     coin(s), other-colour coin(s); so swapping the agents swaps the
                     observations. ``egocentric=True`` rolls the torus so the observer
                     sits at ``(H // 2, W // 2)``. ``obs_format="compact"``:
                     ``uint8[H * W]`` (``[H, W]``) instead, one bit-field code
                     per cell (see below)
reward               per agent: ``pickup_reward`` (+1) for every coin it picks up,
                     whatever the colour, plus ``penalty`` (-2) for every coin of its
                     colour the co-player picks up this step
termination          never
truncation           after ``params.max_steps`` steps (50)
stochastic           yes: start positions, the first coin colour, coin respawns
info                 ``own_coins``, ``other_coins``: ``int32[2]`` pickups of coins of
                     the agent's own / the co-player's colour this step;
                     ``coin_lost``: ``int32[2]`` coins of the agent's colour taken by
                     the co-player
===================  ==============================================================

Compact observation (``obs_format="compact"``, issue #16): the same four planes as
one ``uint8`` code per cell, a bit field ``code = own_position + 2 * other_position
+ 4 * own_coin + 8 * other_coin`` (bit ``k`` is plane ``k`` of ``PLANES``, so codes
0 ... 15: several things may share a cell); ``flat_obs`` and ``egocentric`` act on
it as on the planes; ``observation_space`` is ``Box(0, 15, shape, uint8)``.

Variants (Ambiguity in ``specs/grid_dilemmas.md`` §4: which variant is the default):

* ``coin_game-v0`` (``num_coins=1``, LOLA/POLA: alshedivat/lola ``lola_dice``,
  Silent-Zebra/POLA ``coin_game_jax.py``): one coin at a time. Its colour is random at
  reset and flips after every pickup; the new coin appears on a uniformly random cell
  not occupied by either agent (after the agents moved). The agents start on distinct
  cells (LOLA; POLA allows the same cell: ``distinct_start=False``), the first coin on
  a cell free of both.
* ``coin_game_two_coins-v0`` (``num_coins=2``, Pax/JaxMARL: ucl-dark/pax,
  FLAIROx/JaxMARL ``coin_game``): one red and one blue coin at all times, each
  respawning on a uniformly random cell after a pickup (agents' cells included, both
  coins may share a cell); colours never change; start positions of agents and coins
  are independent and uniform. JaxMARL's inner/outer episodes are
  :class:`dilemmas.envs.MetaEpisodes` here; its default
  ``payoff_matrix=[[1, 1, -2], [1, 1, -2]]`` is our default params.

Rules of one step, both variants: both agents move at once (agents may share a cell);
an agent picks up every coin on its cell after moving, so staying on a coin picks it
up; a coin reached by both agents at once is credited to both (each +1, and the owner
also gets the -2 for the co-player's pickup), as in the DiCE/POLA and JaxMARL code
(the older LOLA-PG code gave the red agent priority, a bias we do not copy); then
picked coins respawn.

Params (``CoinGameParams``; every field can be vmapped):

* ``pickup_reward`` (1.0) and ``penalty`` (-2.0), from all four sources;
* ``max_steps`` (50, POLA/LOQA; LOLA used 150, JaxMARL 10 inner steps);
* ``distinct_start`` (bool): agents start on distinct cells. Default True for one
  coin (LOLA), False for two coins (JaxMARL);
* ``coins_avoid_agents`` (bool): coins (at reset and on respawn) go only to cells free
  of both agents. Default True for one coin (LOLA/POLA), False for two (Pax/JaxMARL).

Colours: coin colour 0 is red (``player_0``'s), 1 is blue (``player_1``'s). Scripted
reference policies: :mod:`dilemmas.agents.scripted.coin_game`.

Version history: v0, initial release.
"""

from __future__ import annotations

from typing import Any

import gymnasium.spaces
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dilemmas.envs import grid
from dilemmas.envs.core import LegendEntry, MultiAgentEnv, Timestep
from dilemmas.envs.registry import register

#: ``MOVES[a]`` is the ``(drow, dcol)`` of action ``a``: right, left, down, up, stay.
MOVES = jnp.array([[0, 1], [0, -1], [1, 0], [-1, 0], [0, 0]], jnp.int32)
ACTION_NAMES = ("right", "left", "down", "up", "stay")
RIGHT, LEFT, DOWN, UP, STAY = 0, 1, 2, 3, 4
RED, BLUE = 0, 1
PLANES = ("own_position", "other_position", "own_coin", "other_coin")

#: Palette of :meth:`CoinGame.render_rgb`: background, red agent, blue agent, both
#: agents, red coin, blue coin.
PALETTE = np.array(
    [
        [235, 235, 235],
        [214, 39, 40],
        [31, 119, 180],
        [148, 103, 189],
        [255, 152, 150],
        [174, 199, 232],
    ],
    np.uint8,
)


@struct.dataclass
class CoinGameState:
    """Positions, coin colours and the step counter of one Coin Game."""

    agent_pos: jax.Array  # [2, 2] int32: (row, col) of each agent
    coin_pos: jax.Array  # [C, 2] int32: (row, col) of each coin
    coin_colour: jax.Array  # [C] int32: 0 red (player_0's), 1 blue (player_1's)
    t: jax.Array  # () int32: steps taken in this episode


@struct.dataclass
class CoinGameParams:
    """The numbers of the game (see the module docstring for the defaults)."""

    pickup_reward: jax.Array  # () float32: to the agent picking up any coin
    penalty: jax.Array  # () float32: to a coin's owner when the co-player takes it
    max_steps: jax.Array  # () int32: steps per episode
    distinct_start: jax.Array  # () bool: agents start on distinct cells
    coins_avoid_agents: jax.Array  # () bool: coins never placed under an agent


def _draws(key: jax.Array, num: int) -> jax.Array:
    """``int32[num]`` uniform on ``[0, 2**31)`` from one call of the generator.

    ``draws % n`` is then uniform on ``[0, n)`` up to a modulo bias below
    ``n / 2**31`` (4e-9 on the 3 x 3 board), and one generator call for all choices
    is cheaper than one ``jax.random.randint`` each.
    """
    return (jax.random.bits(key, (num,), jnp.uint32) >> 1).astype(jnp.int32)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if value > np.iinfo(np.int32).max:
        raise ValueError(f"{name} must fit in int32, got {value}")
    return int(value)


class CoinGame(MultiAgentEnv[CoinGameState, CoinGameParams]):
    """The Coin Game on a ``height`` x ``width`` torus (see the module docstring).

    Args:
      height, width: grid size (static; 3 x 3 by default).
      num_coins: 1 for the LOLA/POLA variant (4 actions, colour flips), 2 for the
        Pax/JaxMARL variant (5 actions with stay, one coin of each colour).
      flat_obs: observations ``float32[4 * H * W]`` (True) or ``[4, H, W]`` planes.
      egocentric: recentre each agent's planes on its own position (torus roll).
      obs_format: ``"planes"`` (default, the four planes as float32) or
        ``"compact"`` (one ``uint8`` bit-field code per cell, see the module
        docstring).
      max_steps: default episode length.
      distinct_start, coins_avoid_agents: defaults of the params of the same name;
        ``None`` takes the variant's (True for one coin, False for two).
    """

    num_agents = 2
    stochastic = True
    render_modes = ("ansi", "rgb_array")
    co_players = "dilemmas.agents.scripted.coin_game"
    default_co_player = "greedy"
    action_names = ACTION_NAMES

    def __init__(
        self,
        height: int = 3,
        width: int = 3,
        num_coins: int = 1,
        flat_obs: bool = True,
        egocentric: bool = False,
        max_steps: int = 50,
        distinct_start: bool | None = None,
        coins_avoid_agents: bool | None = None,
        obs_format: str = "planes",
    ):
        self.obs_format = grid.check_obs_format(obs_format)
        self.height = _positive_int("height", height)
        self.width = _positive_int("width", width)
        if num_coins not in (1, 2) or isinstance(num_coins, bool):
            raise ValueError(f"num_coins must be 1 or 2, got {num_coins!r}")
        self.num_coins = int(num_coins)
        if self.height * self.width < 3:
            raise ValueError(
                f"a {self.height} x {self.width} grid has fewer than 3 cells: two "
                "agents and a coin need room"
            )
        self.flat_obs = bool(flat_obs)
        self.egocentric = bool(egocentric)
        self.num_actions = 4 if self.num_coins == 1 else 5
        self._max_steps = _positive_int("max_steps", max_steps)
        one_coin = self.num_coins == 1
        self._distinct_start = one_coin if distinct_start is None else distinct_start
        self._avoid = one_coin if coins_avoid_agents is None else coins_avoid_agents

    def static_config(self) -> tuple:
        return (
            self.height,
            self.width,
            self.num_coins,
            self.flat_obs,
            self.egocentric,
            self.obs_format,
        )

    @property
    def default_params(self) -> CoinGameParams:
        return self.make_params()

    def make_params(
        self,
        pickup_reward: float = 1.0,
        penalty: float = -2.0,
        max_steps: int | None = None,
        distinct_start: bool | None = None,
        coins_avoid_agents: bool | None = None,
    ) -> CoinGameParams:
        """Validated params; unset fields take the constructor's defaults."""
        steps = self._max_steps if max_steps is None else max_steps
        distinct = self._distinct_start if distinct_start is None else distinct_start
        avoid = self._avoid if coins_avoid_agents is None else coins_avoid_agents
        return CoinGameParams(
            pickup_reward=jnp.asarray(pickup_reward, jnp.float32),
            penalty=jnp.asarray(penalty, jnp.float32),
            max_steps=jnp.asarray(_positive_int("max_steps", steps), jnp.int32),
            distinct_start=jnp.asarray(bool(distinct), bool),
            coins_avoid_agents=jnp.asarray(bool(avoid), bool),
        )

    # -- dynamics -------------------------------------------------------------

    def _cells(self, flat: jax.Array) -> jax.Array:
        """Flat cell indices ``[...]`` to ``(row, col)`` ``int32[..., 2]``."""
        return jnp.stack([flat // self.width, flat % self.width], axis=-1)

    def _place_coins(
        self, draws: jax.Array, agent_pos: jax.Array, avoid: jax.Array
    ) -> jax.Array:
        """``num_coins`` independent uniform cells, free of the agents if ``avoid``.

        ``draws`` (``int32[num_coins]``, from :func:`_draws`) become indices over
        the free cells; the u-th free cell then skips the (at most two) occupied
        flat indices in increasing order. No per-step sort or mask over the grid.
        """
        flat = agent_pos[:, 0] * self.width + agent_pos[:, 1]
        low, high = jnp.min(flat), jnp.max(flat)
        two = avoid & (low != high)
        excluded = avoid.astype(jnp.int32) + two.astype(jnp.int32)
        u = draws % (self.height * self.width - excluded)
        u = u + (avoid & (u >= low)).astype(jnp.int32)
        u = u + (two & (u >= high)).astype(jnp.int32)
        return self._cells(u)

    def reset(
        self, key: jax.Array, params: CoinGameParams
    ) -> tuple[jax.Array, CoinGameState]:
        # One draw per random choice: two agents, the coins, the first colour.
        draws = _draws(key, 3 + self.num_coins)
        num_cells = self.height * self.width
        distinct = params.distinct_start.astype(jnp.int32)
        first = draws[0] % num_cells
        # With distinct_start the second agent draws from the other cells (skipping
        # the first's index), else from all of them.
        second = draws[1] % (num_cells - distinct)
        second = second + distinct * (second >= first).astype(jnp.int32)
        agent_pos = self._cells(jnp.stack([first, second]))
        coin_pos = self._place_coins(draws[3:], agent_pos, params.coins_avoid_agents)
        if self.num_coins == 1:
            coin_colour = draws[2:3] % 2
        else:
            coin_colour = jnp.array([RED, BLUE], jnp.int32)
        state = CoinGameState(
            agent_pos=agent_pos,
            coin_pos=coin_pos,
            coin_colour=coin_colour,
            t=jnp.zeros((), jnp.int32),
        )
        return self.observe(state), state

    def step(
        self,
        key: jax.Array,
        state: CoinGameState,
        actions: jax.Array,
        params: CoinGameParams,
    ) -> Timestep:
        size = jnp.array([self.height, self.width], jnp.int32)
        agent_pos = jnp.mod(state.agent_pos + MOVES[actions], size)
        on_coin = jnp.all(agent_pos[:, None, :] == state.coin_pos[None], -1)  # [2, C]
        owns = state.coin_colour[None, :] == jnp.arange(2, dtype=jnp.int32)[:, None]
        own_coins = jnp.sum(on_coin & owns, axis=1, dtype=jnp.int32)
        other_coins = jnp.sum(on_coin & ~owns, axis=1, dtype=jnp.int32)
        # Two agents, two colours: a coin that is not mine is my co-player's.
        coin_lost = other_coins[::-1]
        reward = (
            params.pickup_reward * (own_coins + other_coins)
            + params.penalty * coin_lost
        ).astype(jnp.float32)

        picked = jnp.any(on_coin, axis=0)  # [C]
        fresh = self._place_coins(
            _draws(key, self.num_coins), agent_pos, params.coins_avoid_agents
        )
        coin_pos = jnp.where(picked[:, None], fresh, state.coin_pos)
        coin_colour = state.coin_colour
        if self.num_coins == 1:
            coin_colour = jnp.where(picked, 1 - coin_colour, coin_colour)
        t = state.t + 1
        state = CoinGameState(
            agent_pos=agent_pos, coin_pos=coin_pos, coin_colour=coin_colour, t=t
        )
        return Timestep(
            obs=self.observe(state),
            state=state,
            reward=reward,
            terminated=jnp.zeros((), bool),
            truncated=t >= params.max_steps,
            info={
                "own_coins": own_coins,
                "other_coins": other_coins,
                "coin_lost": coin_lost,
            },
        )

    # -- observation ----------------------------------------------------------

    def observe(self, state: CoinGameState) -> jax.Array:
        """Own-first observations, ``[2, 4 * H * W]`` (or ``[2, 4, H, W]``);
        compact: ``uint8[2, H * W]`` (or ``[2, H, W]``) bit-field codes."""
        if self.obs_format == "compact":
            return self._observe_compact(state)
        # Every object (two agents, then the coins) has a flat cell and, for each
        # observer, a plane: 0 itself, 1 the co-player, 2 own-colour coin, 3 other.
        cells = jnp.concatenate([state.agent_pos, state.coin_pos])  # [K, 2]
        flat = cells[:, 0] * self.width + cells[:, 1]  # [K]
        observer = jnp.arange(2, dtype=jnp.int32)[:, None]
        plane = jnp.concatenate(
            [
                (observer != jnp.arange(2, dtype=jnp.int32)).astype(jnp.int32),
                2 + (observer != state.coin_colour).astype(jnp.int32),
            ],
            axis=1,
        )  # [2, K]
        grid_cells = jnp.arange(self.height * self.width, dtype=jnp.int32)
        hit = (plane[:, :, None, None] == jnp.arange(len(PLANES))[:, None]) & (
            flat[:, None, None] == grid_cells
        )  # [2, K, 4, N]
        planes = jnp.any(hit, axis=1).astype(jnp.float32)
        planes = planes.reshape(2, len(PLANES), self.height, self.width)
        if self.egocentric:
            planes = jax.vmap(self._recentre)(planes, state.agent_pos)
        return planes.reshape(2, -1) if self.flat_obs else planes

    def _observe_compact(self, state: CoinGameState) -> jax.Array:
        """``uint8[2, H * W]`` (or ``[2, H, W]``): ``sum(2**plane)`` per cell."""
        # Each plane holds one object (an agent, or the one coin of a colour), so
        # the sum of 2**plane over the objects on a cell is the bit field.
        cells = jnp.concatenate([state.agent_pos, state.coin_pos])  # [K, 2]
        flat = cells[:, 0] * self.width + cells[:, 1]  # [K]
        observer = jnp.arange(2, dtype=jnp.int32)[:, None]
        weight = jnp.concatenate(
            [
                1 + (observer != jnp.arange(2, dtype=jnp.int32)).astype(jnp.int32),
                4 << (observer != state.coin_colour).astype(jnp.int32),
            ],
            axis=1,
        )  # [2, K]: 1 self, 2 co-player, 4 own-colour coin, 8 other coin
        grid_cells = jnp.arange(self.height * self.width, dtype=jnp.int32)
        codes = jnp.sum(
            jnp.where(flat[:, None] == grid_cells, weight[:, :, None], 0), axis=1
        )  # [2, H * W]
        codes = codes.reshape(2, 1, self.height, self.width)
        if self.egocentric:
            codes = jax.vmap(self._recentre)(codes, state.agent_pos)
        codes = codes.astype(jnp.uint8)
        return codes.reshape(2, -1) if self.flat_obs else codes[:, 0]

    def _recentre(self, planes: jax.Array, pos: jax.Array) -> jax.Array:
        """Roll the torus so that ``pos`` lands on ``(H // 2, W // 2)``."""
        return grid.egocentric_view(
            planes,
            pos,
            grid.UP,
            forward=self.height // 2,
            backward=self.height - 1 - self.height // 2,
            left=self.width // 2,
            right=self.width - 1 - self.width // 2,
            torus=True,
        )

    def observation_space(self) -> gymnasium.spaces.Box:
        if self.obs_format == "compact":
            shape = (self.height, self.width)
            if self.flat_obs:
                shape = (self.height * self.width,)
            return gymnasium.spaces.Box(0, 15, shape=shape, dtype=np.uint8)
        shape = (len(PLANES), self.height, self.width)
        if self.flat_obs:
            shape = (int(np.prod(shape)),)
        return gymnasium.spaces.Box(0.0, 1.0, shape=shape, dtype=np.float32)

    # -- rendering (host side) --------------------------------------------------

    def render_ansi(self, state: CoinGameState, params: CoinGameParams) -> str:
        """One cell per 4 characters: agents ``R``/``B``, coins ``r``/``b``."""
        agents = np.asarray(state.agent_pos)
        coins, colours = np.asarray(state.coin_pos), np.asarray(state.coin_colour)
        lines = [f"step {int(state.t)}/{int(params.max_steps)}"]
        for row in range(self.height):
            cells = []
            for col in range(self.width):
                here = "".join(
                    name
                    for (r, c), name in zip(agents, "RB", strict=True)
                    if (r, c) == (row, col)
                )
                here += "".join(
                    "rb"[colour]
                    for (r, c), colour in zip(coins, colours, strict=True)
                    if (r, c) == (row, col)
                )
                cells.append((here or ".").ljust(4))
            lines.append("".join(cells).rstrip())
        return "\n".join(lines)

    def render_legend(self) -> tuple[LegendEntry, ...]:
        """The symbols of :meth:`render_ansi` and colours of :meth:`render_rgb`.

        In the text a cell lists everything on it (``RB``, ``Rb``, ...); in the
        frame an agent fills its cell and a coin is a square in its middle.
        """
        colour = [tuple(int(v) for v in rgb) for rgb in PALETTE]
        return (
            LegendEntry("empty cell", ".", colour[0]),
            LegendEntry("red agent (player_0)", "R", colour[1]),
            LegendEntry("blue agent (player_1)", "B", colour[2]),
            LegendEntry("both agents on one cell", "RB", colour[3]),
            LegendEntry("red coin (player_0's colour)", "r", colour[4]),
            LegendEntry("blue coin (player_1's colour)", "b", colour[5]),
        )

    def render_rgb(
        self, state: CoinGameState, params: CoinGameParams, scale: int = 16
    ) -> np.ndarray:
        """``uint8[H * scale, W * scale, 3]``: agents fill their cells (purple when
        both share one), coins are squares in the middle of theirs (split in two
        when both coins share a cell)."""
        del params
        index = np.zeros((self.height, self.width), np.int64)
        for agent, (r, c) in enumerate(np.asarray(state.agent_pos)):
            index[r, c] |= agent + 1  # 1 red, 2 blue, 3 both
        frame = grid.rgb_frame(index, PALETTE, scale)
        coins, colours = np.asarray(state.coin_pos), np.asarray(state.coin_colour)
        lo, hi = scale // 4, scale - scale // 4
        for (r, c), colour in zip(coins, colours, strict=True):
            shared = sum((r2, c2) == (r, c) for r2, c2 in coins) > 1
            left, right = lo, hi
            if shared:
                mid = scale // 2
                left, right = (lo, mid) if colour == RED else (mid, hi)
            frame[
                r * scale + lo : r * scale + hi, c * scale + left : c * scale + right
            ] = PALETTE[4 + colour]
        return frame


register(
    "coin_game-v0",
    CoinGame,
    kwargs={"num_coins": 1},
    description=(
        "Coin Game, LOLA/POLA variant: 3x3 torus, one coin whose colour flips after "
        "each pickup, 4 actions, 50 steps"
    ),
)
register(
    "coin_game_two_coins-v0",
    CoinGame,
    kwargs={"num_coins": 2},
    description=(
        "Coin Game, Pax/JaxMARL variant: 3x3 torus, a red and a blue coin at all "
        "times, 5 actions with stay, 50 steps"
    ),
)
