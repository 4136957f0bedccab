"""Iterated two-player 2x2 matrix games: prisoner's dilemma, stag hunt, chicken, ...

One JAX core, :class:`MatrixGame`, plays any 2x2 payoff table; the registered ids are
presets of it.

===================  ==============================================================
agents               2 (``player_0`` is the row player, ``player_1`` the column)
actions              ``Discrete(2)``: 0 = cooperate (C), 1 = defect (D)
observation          ``float32[5]`` one-hot over (start, CC, CD, DC, DD), first-person:
                     own previous move first, so ``obs_i = 1 + 2 a_i + a_-i`` and 0 at
                     the start of every episode. With ``include_reward=True`` a sixth
                     entry holds the agent's previous reward (0 at the start).
reward               ``payoffs[a_0, a_1]`` (``float32[2]``), from ``params.payoffs``
termination          never (the game has no natural end)
truncation           after ``params.max_steps`` rounds
stochastic           no: the same actions give the same trajectory
params               ``payoffs: float32[2, 2, 2]`` (``payoffs[a_row, a_col, agent]``),
                     ``max_steps: int32``
===================  ==============================================================

Registered ids (``dilemmas.envs.make(id)``): ``ipd-v0`` (COALA payoffs (R, S, T, P) =
(1, -1, 2, 0) by default; pass ``payoffs="lola"`` or ``"axelrod"`` for the other
conventions), ``stag_hunt-v0``, ``chicken-v0``, ``battle_of_the_sexes-v0``,
``matching_pennies-v0``. Every id takes ``payoffs=``, ``max_steps=`` and
``include_reward=``.

The start state (s0) sits at position 0 of the one-hot, so a memory-one policy's
5 logits are indexed by the observation directly. Pax puts START last:
``obs[..., PAX_OBS_ORDER]`` converts to its order.

Meta-episodes (M inner episodes back to back, as learning-aware training needs) come
from :class:`dilemmas.envs.MetaEpisodes`, which flags every inner-episode boundary.

Version history: v0, initial release.
"""

from __future__ import annotations

from typing import Any

import gymnasium.spaces
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dilemmas.envs.core import LegendEntry, MultiAgentEnv, Timestep
from dilemmas.envs.payoffs import PayoffsLike, payoff_table
from dilemmas.envs.registry import register

#: Observation states, in one-hot order.
STATES = ("start", "CC", "CD", "DC", "DD")
#: ``obs[..., PAX_OBS_ORDER]`` is the Pax order ``[CC, CD, DC, DD, START]``.
PAX_OBS_ORDER = (1, 2, 3, 4, 0)
ACTION_NAMES = ("C", "D")


@struct.dataclass
class MatrixGameState:
    last_actions: jax.Array  # [2] int32, -1 before the first round
    last_rewards: jax.Array  # [2] float32, 0 before the first round
    t: jax.Array  # () int32, rounds played in this episode


@struct.dataclass
class MatrixGameParams:
    payoffs: jax.Array  # [2, 2, 2] float32: payoffs[a_row, a_col, agent]
    max_steps: jax.Array  # () int32: rounds per episode


def _check_max_steps(max_steps: Any) -> int:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer):
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    if max_steps > np.iinfo(np.int32).max:
        raise ValueError(f"max_steps must fit in int32, got {max_steps}")
    return int(max_steps)


class MatrixGame(MultiAgentEnv[MatrixGameState, MatrixGameParams]):
    """An iterated two-player 2x2 matrix game.

    Args:
      payoffs: default payoff table: a preset name (see
        :mod:`dilemmas.envs.payoffs`), an (R, S, T, P) 4-vector, or a
        ``[2, 2, 2]`` table ``payoffs[a_row, a_col, agent]``.
      max_steps: default episode length (rounds).
      include_reward: append the agent's previous reward to its observation.
    """

    num_agents = 2
    num_actions = 2
    co_players = "dilemmas.agents.strategies"
    default_co_player = "tft"
    action_names = ACTION_NAMES

    def __init__(
        self,
        payoffs: PayoffsLike = "coala",
        max_steps: int = 100,
        include_reward: bool = False,
    ):
        self._payoffs = payoff_table(payoffs)
        self._max_steps = _check_max_steps(max_steps)
        self.include_reward = bool(include_reward)
        self.obs_dim = len(STATES) + int(self.include_reward)

    def static_config(self) -> tuple:
        return (self.include_reward,)

    @property
    def default_params(self) -> MatrixGameParams:
        return self.make_params()

    def make_params(
        self, payoffs: PayoffsLike | None = None, max_steps: int | None = None
    ) -> MatrixGameParams:
        """Validated params; unset fields take the constructor's defaults."""
        table = self._payoffs if payoffs is None else payoff_table(payoffs)
        steps = self._max_steps if max_steps is None else _check_max_steps(max_steps)
        return MatrixGameParams(
            payoffs=jnp.asarray(table, jnp.float32),
            max_steps=jnp.asarray(steps, jnp.int32),
        )

    def reset(
        self, key: jax.Array, params: MatrixGameParams
    ) -> tuple[jax.Array, MatrixGameState]:
        del key, params
        state = MatrixGameState(
            last_actions=jnp.full((2,), -1, jnp.int32),
            last_rewards=jnp.zeros((2,), jnp.float32),
            t=jnp.zeros((), jnp.int32),
        )
        return self.observe(state), state

    def step(
        self,
        key: jax.Array,
        state: MatrixGameState,
        actions: jax.Array,
        params: MatrixGameParams,
    ) -> Timestep:
        del key
        actions = jnp.asarray(actions, jnp.int32)
        reward = params.payoffs[actions[0], actions[1]]
        state = MatrixGameState(
            last_actions=actions, last_rewards=reward, t=state.t + 1
        )
        return Timestep(
            obs=self.observe(state),
            state=state,
            reward=reward,
            terminated=jnp.zeros((), bool),
            truncated=state.t >= params.max_steps,
            info={},
        )

    def observe(self, state: MatrixGameState) -> jax.Array:
        """First-person observations ``[2, obs_dim]``."""
        own, other = state.last_actions, state.last_actions[::-1]
        index = jnp.where(state.t == 0, 0, 1 + 2 * own + other)
        obs = jax.nn.one_hot(index, len(STATES), dtype=jnp.float32)
        if self.include_reward:
            obs = jnp.concatenate([obs, state.last_rewards[:, None]], axis=-1)
        return obs

    def observation_space(self) -> gymnasium.spaces.Box:
        low = np.zeros(self.obs_dim, np.float32)
        high = np.ones(self.obs_dim, np.float32)
        if self.include_reward:
            low[-1], high[-1] = -np.inf, np.inf
        return gymnasium.spaces.Box(low, high, dtype=np.float32)

    def render_legend(self) -> tuple[LegendEntry, ...]:
        """The symbols of :meth:`render_ansi` (there is no RGB picture)."""
        return (
            LegendEntry("cooperate (action 0)", "C", None),
            LegendEntry("defect (action 1)", "D", None),
            LegendEntry("the player's reward this round", "(+1)", None),
        )

    def render_ansi(self, state: MatrixGameState, params: MatrixGameParams) -> str:
        t, max_steps = int(state.t), int(params.max_steps)
        if t == 0:
            return f"round 0/{max_steps}: no moves yet"
        a0, a1 = (int(a) for a in np.asarray(state.last_actions))
        r0, r1 = (float(r) for r in np.asarray(state.last_rewards))
        return (
            f"round {t}/{max_steps}: player_0 {ACTION_NAMES[a0]} ({r0:+g}), "
            f"player_1 {ACTION_NAMES[a1]} ({r1:+g})"
        )


GAMES: dict[str, tuple[str, str]] = {
    "ipd-v0": ("coala", "iterated prisoner's dilemma"),
    "stag_hunt-v0": ("stag_hunt", "iterated stag hunt"),
    "chicken-v0": ("chicken", "iterated chicken (hawk-dove)"),
    "battle_of_the_sexes-v0": ("battle_of_the_sexes", "iterated battle of the sexes"),
    "matching_pennies-v0": ("matching_pennies", "iterated matching pennies"),
}

for _env_id, (_preset, _what) in GAMES.items():
    register(
        _env_id,
        MatrixGame,
        kwargs={"payoffs": _preset},
        description=f"{_what}, 2 players, payoffs {_preset!r}, 100 rounds by default",
    )
