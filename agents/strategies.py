"""Fixed strategies for iterated 2x2 games, in pure JAX.

Every strategy is a ``flax.struct`` dataclass (a pytree: pass it into ``jit`` or
``vmap`` it) with two pure methods:

* ``init() -> state``: a pytree of int32/float32 scalars (a dummy int32 zero for
  stateless strategies, so every strategy has an array state);
* ``act(key, state, obs) -> (action, new_state)``: ``obs`` is ONE agent's observation
  from :class:`dilemmas.envs.matrix_games.MatrixGame` (``float32[obs_dim]``, the first
  five entries a one-hot over (start, CC, CD, DC, DD) in the agent's own perspective;
  extra entries are ignored); ``action`` is an int32 scalar, 0 = C, 1 = D.

State machines reinitialise themselves when they see the start observation, so a
strategy state can be carried across episodes (meta-episodes) without resets.

Catalogue (``make(name, **kwargs)``), memory-one vectors in the agent's own perspective
as (first move; after CC, CD, DC, DD), cooperation probabilities:

=====================  ============================  ==================================
name                   memory-one vector             Axelrod library class
=====================  ============================  ==================================
``allc``               (1; 1, 1, 1, 1)               ``Cooperator``
``alld``               (0; 0, 0, 0, 0)               ``Defector``
``tft``                (1; 1, 0, 1, 0)               ``TitForTat``
``stft``               (0; 1, 0, 1, 0)               ``SuspiciousTitForTat``
``wsls``               (1; 1, 0, 0, 1)               ``WinStayLoseShift``
``grim``               not memory-one (a state       ``Grudger``
                       machine; (1; 1, 0, 0, 0)
                       only without noise)
``gtft``               (1; 1, g, 1, g)               ``GTFT`` (see the note below)
``zd_extort``          (p0; p1, p2, p3, 0)           ``ZDExtort2`` is chi = 2,
                       Press & Dyson 2012            phi = 1/18 (own-game adaptive)
``alternator``         (1; 0, 0, 1, 1)               ``Alternator``
``tf2t``               not memory-one (memory two)   ``TitFor2Tats``
``random``             (p; p, p, p, p)               ``Random``
``random_memory_one``  each entry ~ U(0, 1)          ``MemoryOnePlayer``
=====================  ============================  ==================================

GTFT's generosity defaults to g = min(1 - (T-R)/(R-S), (R-P)/(T-P)) (Nowak & Sigmund):
1/2 for COALA and LOLA payoffs, 1/3 for Axelrod's. (``axl.GTFT()`` in Axelrod 4.14
computes it once, at construction, from the default game, so it plays g = 1/3 in every
game unless given ``p=``.)

Extortion with factor chi >= 1 and Press-Dyson scale phi (Press & Dyson, PNAS 2012):
p1 = 1 - phi (chi-1)(R-P), p2 = 1 - phi [(P-S) + chi (T-P)],
p3 = phi [(T-P) + chi (P-S)], p4 = 0, feasible for 0 < phi <= 1 / [(P-S) + chi (T-P)];
the default phi is that maximum. The first move p0 is explicit (1 by default, as in
Axelrod's ZD players). chi = 1 with maximal phi is TFT.

Helpers: :func:`memory_one` gives the vector of a memory-one strategy, :func:`play` a
quick match as a list of action pairs, :func:`rollout` the jittable episode behind it,
and :class:`NumpyPolicy` drives a strategy from a host-side numpy loop.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.agents.pytrees import policy_dataclass
from dilemmas.envs.matrix_games import STATES, MatrixGame, MatrixGameParams
from dilemmas.envs.payoffs import PayoffsLike, rstp

# Observation indices (own perspective, own action first).
_START, _CC, _CD, _DC, _DD = range(len(STATES))


def _obs_index(obs: jax.Array) -> jax.Array:
    """Index into (start, CC, CD, DC, DD) of one agent's observation."""
    return jnp.argmax(jnp.asarray(obs)[: len(STATES)]).astype(jnp.int32)


def _other_defected(index: jax.Array) -> jax.Array:
    """Whether the co-player defected last round (False at the start)."""
    return (index == _CD) | (index == _DD)


class Strategy(Protocol):
    """What every fixed strategy provides (structural type)."""

    def init(self) -> Any: ...

    def act(
        self, key: jax.Array, state: Any, obs: jax.Array
    ) -> tuple[jax.Array, Any]: ...


@policy_dataclass
class MemoryOne:
    """A memory-one strategy given by five cooperation probabilities.

    Attributes:
      probs: ``float32[5]``, cooperation probabilities for (first move, after CC, CD,
        DC, DD) in the agent's own perspective. The agent defects iff
        ``uniform(key) >= probs[index]``, so entries 0 and 1 are deterministic.
    """

    probs: jax.Array  # [5] float32

    def init(self) -> jax.Array:
        return jnp.zeros((), jnp.int32)

    def act(
        self, key: jax.Array, state: jax.Array, obs: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        p_cooperate = jnp.asarray(self.probs, jnp.float32)[_obs_index(obs)]
        action = (jax.random.uniform(key) >= p_cooperate).astype(jnp.int32)
        return action, state


@policy_dataclass
class Grim:
    """Grim trigger (Axelrod's ``Grudger``): cooperate until the co-player defects,
    then defect for the rest of the episode.

    Not memory-one: the state is a grudge flag (int32 0/1), cleared at the start
    observation. Without execution noise it behaves like (1; 1, 0, 0, 0).
    """

    def init(self) -> jax.Array:
        return jnp.zeros((), jnp.int32)

    def act(
        self, key: jax.Array, state: jax.Array, obs: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        del key
        index = _obs_index(obs)
        grudge = (index != _START) & ((state == 1) | _other_defected(index))
        grudge = grudge.astype(jnp.int32)
        return grudge, grudge


@policy_dataclass
class TitForTwoTats:
    """Tit for two tats (Axelrod's ``TitFor2Tats``): defect only if the co-player
    defected in both of the last two rounds.

    The state (int32 0/1) records whether the co-player defected two rounds ago,
    as seen last step; the start observation clears it.
    """

    def init(self) -> jax.Array:
        return jnp.zeros((), jnp.int32)

    def act(
        self, key: jax.Array, state: jax.Array, obs: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        del key
        other_defected = _other_defected(_obs_index(obs))
        action = (other_defected & (state == 1)).astype(jnp.int32)
        return action, other_defected.astype(jnp.int32)


# --------------------------------------------------------------------------------------
# Memory-one vectors


def _probability(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return x


def gtft_generosity(payoffs: PayoffsLike = "coala") -> float:
    """GTFT's default forgiveness g = min(1 - (T-R)/(R-S), (R-P)/(T-P)).

    Raises:
      ValueError: the payoffs are not a prisoner's dilemma (T > R > P > S and
        2R > T + S), where the formula does not give a probability.
    """
    r, s, t, p = rstp(payoffs)
    if not (t > r > p > s and 2 * r > t + s):
        raise ValueError(
            "GTFT's default g needs a prisoner's dilemma (T > R > P > S, 2R > T + S); "
            f"got (R, S, T, P) = {(r, s, t, p)}; pass g explicitly"
        )
    return min(1 - (t - r) / (r - s), (r - p) / (t - p))


def zd_extortion(
    chi: float = 3.0,
    phi: float | None = None,
    payoffs: PayoffsLike = "coala",
    p0: float = 1.0,
) -> np.ndarray:
    """Press-Dyson extortion vector (p0; p1, p2, p3, 0), ``float64[5]``.

    Enforces s_X - P = chi (s_Y - P) on time-averaged payoffs.

    Args:
      chi: extortion factor, >= 1 (chi = 1 is fair: TFT at maximal phi).
      phi: Press-Dyson scale, 0 < phi <= 1 / [(P-S) + chi (T-P)]; ``None`` takes
        that maximum. (COALA-PG's phi_C = phi (P-S); Hilbe et al.'s phi_H = chi phi.)
      payoffs: preset name, (R, S, T, P) or a ``[2, 2, 2]`` table (row player's).
      p0: first-move cooperation probability.

    Raises:
      ValueError: chi < 1, phi outside (0, max], or an entry outside [0, 1].
    """
    r, s, t, p = rstp(payoffs)
    try:
        chi = float(chi)
    except (TypeError, ValueError):
        raise ValueError(f"chi must be a number >= 1, got {chi!r}") from None
    if not chi >= 1.0:
        raise ValueError(f"extortion needs chi >= 1, got {chi}")
    denominator = (p - s) + chi * (t - p)
    if denominator <= 0:
        raise ValueError(
            f"no feasible phi for (R, S, T, P) = {(r, s, t, p)}: need "
            "(P-S) + chi (T-P) > 0"
        )
    phi_max = 1.0 / denominator
    if phi is None:
        phi = phi_max
    try:
        phi = float(phi)
    except (TypeError, ValueError):
        raise ValueError(f"phi must be a number, got {phi!r}") from None
    if not 0.0 < phi <= phi_max * (1 + 1e-9):
        raise ValueError(
            f"phi must be in (0, {phi_max:.6g}] for chi = {chi} and (R, S, T, P) = "
            f"{(r, s, t, p)}; got {phi}"
        )
    q = np.array(
        [
            _probability("p0", p0),
            1.0 - phi * (chi - 1.0) * (r - p),
            1.0 - phi * ((p - s) + chi * (t - p)),
            phi * ((t - p) + chi * (p - s)),
            0.0,
        ]
    )
    tolerance = 1e-9
    if np.any(q < -tolerance) or np.any(q > 1 + tolerance):
        raise ValueError(
            f"chi = {chi}, phi = {phi} give probabilities outside [0, 1] for "
            f"(R, S, T, P) = {(r, s, t, p)}: {q[1:].tolist()}"
        )
    return np.clip(q, 0.0, 1.0)


def _fixed(*vector: float) -> Callable[[], tuple[float, ...]]:
    """A factory, taking no kwargs, of a fixed memory-one vector."""

    def factory() -> tuple[float, ...]:
        return tuple(float(p) for p in vector)

    return factory


def _gtft(g: float | None = None, payoffs: PayoffsLike = "coala") -> tuple[float, ...]:
    g = gtft_generosity(payoffs) if g is None else _probability("g", g)
    return (1.0, 1.0, g, 1.0, g)


def _random(p: float = 0.5) -> tuple[float, ...]:
    p = _probability("p", p)
    return (p,) * 5


def _random_memory_one(seed: int | None = None, key: jax.Array | None = None):
    if seed is not None and key is not None:
        raise ValueError("random_memory_one takes seed or key, not both")
    if key is None:
        key = jax.random.key(0 if seed is None else seed)
    return jax.random.uniform(key, (len(STATES),), jnp.float32)


@dataclass(frozen=True)
class _Entry:
    description: str
    vector: Callable[..., Any] | None = None  # memory-one vector factory
    machine: Callable[[], Strategy] | None = None  # state-machine class

    @property
    def factory(self) -> Callable[..., Any]:
        return self.vector if self.vector is not None else self.machine


_CATALOGUE: dict[str, _Entry] = {
    "allc": _Entry("always cooperate (1; 1, 1, 1, 1)", vector=_fixed(1, 1, 1, 1, 1)),
    "alld": _Entry("always defect (0; 0, 0, 0, 0)", vector=_fixed(0, 0, 0, 0, 0)),
    "tft": _Entry(
        "tit for tat: C first, then copy (1; 1, 0, 1, 0)", vector=_fixed(1, 1, 0, 1, 0)
    ),
    "stft": _Entry(
        "suspicious tit for tat: D first, then copy (0; 1, 0, 1, 0)",
        vector=_fixed(0, 1, 0, 1, 0),
    ),
    "wsls": _Entry(
        "win-stay lose-shift / Pavlov (1; 1, 0, 0, 1)", vector=_fixed(1, 1, 0, 0, 1)
    ),
    "grim": _Entry(
        "grim trigger / Grudger: defect forever once the co-player defects",
        machine=Grim,
    ),
    "gtft": _Entry(
        "generous TFT (1; 1, g, 1, g), g from the payoffs unless given "
        "(kwargs g, payoffs)",
        vector=_gtft,
    ),
    "zd_extort": _Entry(
        "zero-determinant extortion s_X - P = chi (s_Y - P) "
        "(kwargs chi, phi, payoffs, p0)",
        vector=zd_extortion,
    ),
    "alternator": _Entry(
        "alternate C, D, C, ... (1; 0, 0, 1, 1)", vector=_fixed(1, 0, 0, 1, 1)
    ),
    "tf2t": _Entry(
        "tit for two tats: defect only after two co-player defections in a row",
        machine=TitForTwoTats,
    ),
    "random": _Entry(
        "cooperate with probability p each round (kwarg p)", vector=_random
    ),
    "random_memory_one": _Entry(
        "memory-one with 5 entries ~ U(0, 1) (kwarg seed or key)",
        vector=_random_memory_one,
    ),
}

#: Every strategy name :func:`make` accepts.
NAMES: tuple[str, ...] = tuple(_CATALOGUE)
#: One-line description per name.
DESCRIPTIONS: dict[str, str] = {name: e.description for name, e in _CATALOGUE.items()}


def _entry(name: str, kwargs: dict[str, Any]) -> _Entry:
    if not isinstance(name, str) or name not in _CATALOGUE:
        raise ValueError(f"unknown strategy {name!r}; known strategies: {list(NAMES)}")
    entry = _CATALOGUE[name]
    accepted = inspect.signature(entry.factory).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"strategy {name!r} got unexpected keyword arguments {unknown}; "
            f"it accepts {sorted(accepted) or 'none'}"
        )
    return entry


def memory_one(name: str, **kwargs: Any) -> jax.Array:
    """The memory-one vector of a catalogue strategy, ``float32[5]``.

    Cooperation probabilities (first move; after CC, CD, DC, DD), own perspective.
    Example: ``memory_one("zd_extort", chi=3, payoffs="coala")`` is
    (1; 5/7, 0, 5/7, 0). ``random_memory_one`` accepts a traced ``key`` inside
    ``jit`` (a fresh draw per episode).

    Raises:
      ValueError: unknown name or keyword arguments, invalid values, or a strategy
        that is not memory-one (``grim``, ``tf2t``).
    """
    entry = _entry(name, kwargs)
    if entry.vector is None:
        raise ValueError(
            f"{name!r} is not a memory-one strategy: it is a state machine "
            f"({entry.description}). "
            + (
                "Without noise it behaves like (1; 1, 0, 0, 0), but not under "
                "execution noise. "
                if name == "grim"
                else "It needs the last two rounds. "
            )
            + f"Use make({name!r}) for the state machine."
        )
    return jnp.asarray(entry.vector(**kwargs), jnp.float32)


def make(name: str, **kwargs: Any) -> Strategy:
    """A catalogue strategy by name (see :data:`NAMES`, :data:`DESCRIPTIONS`).

    Memory-one names give a :class:`MemoryOne`; ``grim`` and ``tf2t`` give state
    machines.

    Raises:
      ValueError: unknown name, unknown keyword arguments or invalid values.
    """
    entry = _entry(name, kwargs)
    if entry.machine is not None:
        return entry.machine(**kwargs)
    return MemoryOne(probs=memory_one(name, **kwargs))


def co_player(name: str, env: Any = None, **kwargs: Any) -> Strategy:
    """The catalogue hook of the Gymnasium face: ``make(name, **kwargs)``.

    ``env`` is accepted for a uniform interface with the scripted grid-game
    catalogues and ignored: matrix-game strategies read only their observation.
    """
    del env
    return make(name, **kwargs)


def _resolve(strategy: str | Strategy) -> Strategy:
    if isinstance(strategy, str):
        return make(strategy)
    methods = (getattr(strategy, name, None) for name in ("init", "act"))
    if not all(callable(method) for method in methods):
        raise ValueError(
            f"expected a strategy name or object with init() and act(), "
            f"got {strategy!r}"
        )
    return strategy


# --------------------------------------------------------------------------------------
# Playing


class Rollout(NamedTuple):
    """One episode of two fixed strategies."""

    actions: jax.Array  # [T, 2] int32, (row player, column player)
    rewards: jax.Array  # [T, 2] float32


@functools.partial(jax.jit, static_argnames=("steps",))
def rollout(
    key: jax.Array,
    strategy_0: Strategy,
    strategy_1: Strategy,
    params: MatrixGameParams,
    steps: int,
) -> Rollout:
    """Play one episode of ``steps`` rounds in :class:`MatrixGame` (one ``scan``).

    Pure, unbatched and jitted (``steps`` static; one compilation per pair of
    strategy types and horizon): vmap it over keys or strategies, or call it inside
    your own jitted code. Each player acts on its own observation row.

    Args:
      key: PRNG key.
      strategy_0, strategy_1: row and column player.
      params: game params (payoffs); rounds beyond ``params.max_steps`` are still
        played, as ``step`` never resets.
      steps: number of rounds (a Python int: the scan length).
    """
    env = MatrixGame(max_steps=steps)
    key, k_reset = jax.random.split(key)
    obs, env_state = env.reset(k_reset, params)

    def round_(carry, keys_t):
        env_state, obs, state_0, state_1 = carry
        k_0, k_1, k_env = keys_t
        action_0, state_0 = strategy_0.act(k_0, state_0, obs[0])
        action_1, state_1 = strategy_1.act(k_1, state_1, obs[1])
        actions = jnp.stack([action_0, action_1]).astype(jnp.int32)
        ts = env.step(k_env, env_state, actions, params)
        return (ts.state, ts.obs, state_0, state_1), (actions, ts.reward)

    carry = (env_state, obs, strategy_0.init(), strategy_1.init())
    # All round keys up front: the scan body then holds no key splitting.
    keys = jax.random.split(key, (steps, 3))
    _, (actions, rewards) = jax.lax.scan(round_, carry, keys)
    return Rollout(actions=actions, rewards=rewards)


def play(
    strategy_0: str | Strategy,
    strategy_1: str | Strategy,
    steps: int,
    seed: int = 0,
    payoffs: PayoffsLike = "coala",
) -> list[tuple[int, int]]:
    """A quick match: the list of (row, column) actions, 0 = C, 1 = D.

    Played in the JAX core (:func:`rollout`, jitted once per pair of strategy
    types and horizon).

    Args:
      strategy_0, strategy_1: row and column player: names (default kwargs) or
        strategy objects.
      steps: rounds to play.
      seed: seed of the match's PRNG key (stochastic strategies only).
      payoffs: payoff preset, (R, S, T, P) or ``[2, 2, 2]`` table; it changes the
        rewards, not the actions, of the catalogue strategies (which are built
        beforehand: pass ``make("gtft", payoffs=...)`` to adapt them).

    Raises:
      ValueError: unknown names, non-strategies, bad ``steps`` or ``payoffs``.
    """
    game = MatrixGame(payoffs, max_steps=steps)
    out = rollout(
        jax.random.key(seed),
        _resolve(strategy_0),
        _resolve(strategy_1),
        game.default_params,
        steps=steps,
    )
    return [(int(a), int(b)) for a, b in np.asarray(out.actions)]


@jax.jit
def _policy_step(
    strategy: Strategy, key: jax.Array, state: Any, obs: jax.Array
) -> tuple[jax.Array, Any, jax.Array]:
    key, k_act = jax.random.split(key)
    action, state = strategy.act(k_act, state, obs)
    return action, state, key


class NumpyPolicy:
    """Drive a strategy from a host-side, stateful numpy loop (e.g. PettingZoo).

    Keeps the strategy state and its own PRNG key between calls; each call is one
    jitted ``act``. State machines reset themselves at the start observation, so
    the same policy can play episode after episode without :meth:`reset`, which
    restarts the strategy state and optionally reseeds (e.g. on ``env.reset(seed)``).

    Example::

        policy = NumpyPolicy("tft")
        observations, _ = env.reset(seed=0)
        action = policy(observations["player_1"])

    Args:
      strategy: a strategy object or catalogue name (default kwargs).
      seed: seed of the policy's own PRNG key.
    """

    def __init__(self, strategy: str | Strategy, seed: int = 0):
        self.strategy = _resolve(strategy)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Restart the strategy state; reseed the key if ``seed`` is given."""
        if seed is not None:
            self._key = jax.random.key(seed)
        self._state = self.strategy.init()

    def __call__(self, obs: np.ndarray) -> int:
        """The action (0 = C, 1 = D) for one agent's observation ``[obs_dim]``."""
        obs = np.asarray(obs, np.float32)
        if obs.ndim != 1 or obs.shape[0] < len(STATES):
            raise ValueError(
                f"expected one agent's observation of shape [>= {len(STATES)}], "
                f"got shape {obs.shape}"
            )
        action, self._state, self._key = _policy_step(
            self.strategy, self._key, self._state, obs
        )
        return int(action)
