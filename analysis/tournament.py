"""Tournaments against the Axelrod library's strategies.

:class:`AxelrodPlayer` makes any policy of ours an ``axelrod.Player``: at every turn
it builds our first-person observation from the two Axelrod histories (the start
state on the first move, then the one-hot over (start, CC, CD, DC, DD) with its own
move first, as :class:`dilemmas.envs.matrix_games.MatrixGame` does) and asks the
policy for an action, 0 = C, 1 = D. A *policy* is any object with
``__call__(obs) -> int`` and ``reset(seed=None)`` (see :class:`Policy`), such as
:class:`dilemmas.agents.strategies.NumpyPolicy`; the player builds it with
``policy_factory(seed)``, so a trained agent plugs in through a factory that loads
its parameters. :func:`from_strategy` wraps a strategy of our catalogue,
:func:`from_memory_one` any memory-one vector, :func:`from_policy` any policy
(:mod:`dilemmas.agents.policy`), :func:`players_from_policies` the trained agents of
a run themselves (one player per agent and seed, from its ``policies/``), and
:func:`players_from_run` the memory-one vectors of a run's ``evaluation.json`` (for
recurrent agents their memory-one probe).

:func:`run_tournament` plays our players against Axelrod's strategies with
``axelrod.Tournament`` and returns a :class:`TournamentResult`: Axelrod's own
``ResultSet`` plus a tidy per-opponent table and the overall standing (score per
turn, cooperation rate, rank) of each of our players; :func:`format_report` renders
it as Markdown.

Example::

    result = run_tournament(["tft", "wsls"], opponents=["Defector", "Grudger"],
                            payoffs="coala", turns=200, repetitions=5, seed=0)
    print(format_report(result))

Opponent sets:

================  ==============================================================
``opponents``     strategies
================  ==============================================================
``None``          :data:`DEFAULT_FILTERSET`: Axelrod's short-run-time strategies
                  that neither inspect nor manipulate their opponent and accept
                  the game (219 of 244 for COALA payoffs)
``"all"``         ``axl.all_strategies`` that accept the game (227 for COALA),
                  including the 19 long-run-time ones and the cheater ``Darwin``
a dict            an ``axl.filtered_strategies`` filterset, e.g.
                  ``{"memory_depth": 1, "stochastic": False}``
names / classes   Axelrod class names (``"TitForTat"``) or player names
/ instances       (``"Tit For Tat"``), ``axl.Player`` classes or instances
================  ==============================================================

By default our players play each opponent and not each other, and the opponents do
not play each other (``round_robin=False``): n matches per player and repetition,
and the rank is among our players. ``round_robin=True`` runs Axelrod's standard
round robin, everybody against everybody (n^2 / 2 matches), whose rank places our
players among all the strategies.

Cost, measured with Axelrod 4.14 on a shared 2-core machine, one process, 200 turns,
COALA payoffs (deterministic pairs are replayed from Axelrod's cache, so extra
repetitions cost only for pairs with a stochastic player):

=================================  ===============================================
``opponents=None``, default        23 s for ``tft`` (deterministic), 69 s for
(10 repetitions)                   ``gtft`` (stochastic), per player
``opponents=None``,                97 s for 1 repetition, 138 s for 2 (about
``round_robin=True``               +40 s per repetition: ~8 min for 10)
``"all"``, 1 repetition            7 min for ``tft``, mostly the long-run
                                   strategies (``EvolvedAttention`` alone takes
                                   ~12 s per match)
``"all"``, ``round_robin=True``    not measured: the 19 long-run strategies
                                   against ~240 opponents each, on the order of
                                   a day per repetition
=================================  ===============================================

Pitfalls handled here:

* the Axelrod ``Game`` is built from OUR payoff table, ``axl.Game(r=R, s=S, t=T,
  p=P)``, and always passed explicitly (Axelrod's default is (3, 0, 5, 1)); its
  ``RPST()`` accessor returns (R, P, S, T), so we never read it positionally;
* the match length reaches the players through Axelrod's match attributes (known
  by default; ``known_length=False`` passes ``{"length": -1, "game": game, "noise":
  noise}``, a dict that replaces the defaults and so must carry the game);
* strategies whose construction fails under the game (Axelrod's ZD players with a
  baseline hard-coded for (3, 0, 5, 1), such as ``ZDGen2`` and ``ZDSet2``, and the
  meta players containing them) are left out of ``None``/``"all"``/filter subsets
  and listed in :attr:`TournamentResult.excluded`; named ones raise. Those that
  accept the game with a baseline l meant for (3, 0, 5, 1) stay, playing what
  they play (under COALA payoffs l = 1 = R makes ``ZDExtort3`` generous);
* ``axl.GTFT`` in Axelrod 4.14 fixes its generosity from the default game at
  construction (g = 1/3 in every game); given by class or name it is built as
  ``axl.GTFT(p=g)`` with g from our payoffs (1/2 for COALA);
* ``Tournament.play(processes=1)`` would start one worker per CPU: ``processes <= 1``
  runs serially; more processes spawn workers that re-import JAX and Axelrod (~25 s
  of start-up), so they pay off only for long tournaments (the results are the
  same: Axelrod seeds every pair of players from the tournament seed);
* players classified deterministic are replayed from Axelrod's deterministic cache,
  so :func:`from_strategy` declares ``stochastic`` from the strategy's probabilities;
* ``AxelrodPlayer.strategy`` is idempotent within a turn (a second call answers
  from a one-turn cache instead of stepping the policy again), so code that queries
  a player out of turn cannot advance its state or RNG; the only cheater left in
  Axelrod 4.14's ``all_strategies``, ``Darwin``, keeps a class-level genome across
  matches, so its results depend on what it played before in the process.

Importing this module imports Axelrod (several seconds: it pulls in torch), which
also sets multiprocessing's start method to ``"spawn"`` for the whole process.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from dilemmas.agents import strategies
from dilemmas.envs.matrix_games import STATES
from dilemmas.envs.payoffs import PayoffsLike, payoff_table, rstp

try:
    import axelrod as axl
    from axelrod.history import History
except ModuleNotFoundError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        "dilemmas.analysis.tournament needs the Axelrod library: "
        'pip install "dilemmas[axelrod]" (or axelrod>=4.14)'
    ) from err

C, D = axl.Action.C, axl.Action.D
_ACTIONS = (C, D)

#: Classifier filter of the default opponents: Axelrod's short-run-time strategies
#: that neither inspect nor manipulate their opponent.
DEFAULT_FILTERSET: dict[str, bool] = {
    "long_run_time": False,
    "inspects_source": False,
    "manipulates_source": False,
    "manipulates_state": False,
}

#: ``axl.filtered_strategies`` keys: classifier and comparison with the wanted value
#: (``None``: every wanted entry in the classifier's set). Axelrod silently ignores
#: other keys; we reject them.
_FILTERS: dict[str, tuple[str, Callable[[Any, Any], bool] | None]] = {
    "stochastic": ("stochastic", operator.eq),
    "long_run_time": ("long_run_time", operator.eq),
    "inspects_source": ("inspects_source", operator.eq),
    "manipulates_source": ("manipulates_source", operator.eq),
    "manipulates_state": ("manipulates_state", operator.eq),
    "memory_depth": ("memory_depth", operator.eq),
    "min_memory_depth": ("memory_depth", operator.ge),
    "max_memory_depth": ("memory_depth", operator.le),
    "makes_use_of": ("makes_use_of", None),
}
#: Filterset keys :func:`resolve_opponents` accepts.
FILTER_KEYS: tuple[str, ...] = tuple(_FILTERS)

#: What :func:`resolve_opponents` takes: ``None``, ``"all"``, a filterset, or a
#: sequence of Axelrod names, classes or players.
OpponentsLike = (
    str | Mapping[str, Any] | Sequence[str | type[axl.Player] | axl.Player] | None
)

#: Memory depth of the catalogue's state machines (memory-one ones are derived).
_MACHINE_MEMORY_DEPTH: dict[str, float] = {"grim": math.inf, "tf2t": 2}


class Policy(Protocol):
    """What :class:`AxelrodPlayer` drives: one agent's observation to an action.

    ``__call__`` maps one observation (``float32[5]``, or ``[6]`` with the previous
    reward) to 0 = C or 1 = D, keeping whatever state the policy needs;
    ``reset(seed)`` restarts that state and, given a seed, reseeds the policy.
    """

    def __call__(self, obs: np.ndarray) -> int: ...

    def reset(self, seed: int | None = None) -> None: ...


def observation(
    own_history: Sequence[axl.Action],
    opponent_history: Sequence[axl.Action],
    game: axl.Game | None = None,
) -> np.ndarray:
    """Our first-person observation from two Axelrod histories.

    Returns ``float32[5]``, the one-hot over (start, CC, CD, DC, DD) of the last
    round with the own move first (``1 + 2 a_own + a_other``; the start state when
    no round has been played). Given ``game``, a sixth entry holds the own previous
    reward in that game (0 at the start), as ``MatrixGame(include_reward=True)``.

    Raises:
      ValueError: the histories have different lengths.
    """
    if len(own_history) != len(opponent_history):
        raise ValueError(
            f"histories of different lengths: own {len(own_history)}, "
            f"opponent {len(opponent_history)}"
        )
    obs = np.zeros(len(STATES) + (game is not None), np.float32)
    if len(own_history) == 0:
        obs[0] = 1.0
        return obs
    own, other = own_history[-1], opponent_history[-1]
    obs[1 + 2 * own.value + other.value] = 1.0
    if game is not None:
        obs[-1] = game.score((own, other))[0]
    return obs


class AxelrodPlayer(axl.Player):
    """A policy of ours as an Axelrod player.

    Args:
      policy_factory: ``policy_factory(seed) -> policy`` (see :class:`Policy`); it
        must be picklable for ``processes > 1`` (a module-level function or a
        ``functools.partial`` of one).
      name: the player's name in Axelrod's tables (unique within a tournament).
      stochastic: whether the policy can act at random. Declare it honestly:
        Axelrod replays matches between deterministic players from a cache and
        reseeds only stochastic players, at the start of each match.
      memory_depth: how many past rounds the policy reads (``math.inf`` if
        unbounded); Axelrod's filters and analyses use it.
      seed: seed of the policy built at construction (a match reseeds stochastic
        players through :meth:`set_seed`).
      include_reward: append the own previous reward in the match's game to the
        observation (for policies trained with ``include_reward=True``).

    The policy is reset (not rebuilt) by :meth:`reset`, reseeded by
    :meth:`set_seed`, and built afresh by :meth:`clone` and on unpickling.
    """

    name = "dilemmas policy"
    classifier = {
        "memory_depth": math.inf,
        "stochastic": True,
        "long_run_time": False,
        "inspects_source": False,
        "manipulates_source": False,
        "manipulates_state": False,
        "makes_use_of": set(),
    }

    def __init__(
        self,
        policy_factory: Callable[[int], Policy],
        name: str = "dilemmas policy",
        stochastic: bool = True,
        memory_depth: float = math.inf,
        seed: int = 0,
        include_reward: bool = False,
    ):
        super().__init__()
        if not callable(policy_factory):
            raise ValueError(f"policy_factory must be callable, got {policy_factory!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if not memory_depth >= 0:
            raise ValueError(f"memory_depth must be >= 0, got {memory_depth!r}")
        self.policy_factory = policy_factory
        self.name = name
        self.initial_seed = int(seed)
        self.include_reward = bool(include_reward)
        self.classifier["stochastic"] = bool(stochastic)
        self.classifier["memory_depth"] = memory_depth
        self.classifier["makes_use_of"] = {"game"} if include_reward else set()
        self._policy = policy_factory(self.initial_seed)
        self._last_move: tuple[int, int, axl.Action] | None = None

    def __repr__(self) -> str:
        return self.name

    @property
    def policy(self) -> Policy:
        """The policy this player drives."""
        return self._policy

    def strategy(self, opponent: axl.Player) -> axl.Action:
        game = self.match_attributes["game"] if self.include_reward else None
        obs = observation(self.history, opponent.history, game)
        turn, state = len(self.history), int(np.argmax(obs[: len(STATES)]))
        if self._last_move is not None and self._last_move[:2] == (turn, state):
            return self._last_move[2]
        action = self._policy(obs)
        if action not in (0, 1):
            raise ValueError(
                f"policy of {self.name!r} returned {action!r}; expected 0 (C) or 1 (D)"
            )
        move = _ACTIONS[int(action)]
        self._last_move = (turn, state, move)
        return move

    def reset(self) -> None:
        """Clear the history and restart the policy (its RNG stream continues)."""
        self._history = History()
        self._policy.reset()
        self._last_move = None

    def set_seed(self, seed: int | None) -> None:
        """Seed Axelrod's generator and restart the policy with the same seed."""
        super().set_seed(seed)
        self._policy.reset(int(self._seed))
        self._last_move = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_policy"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._policy = self.policy_factory(self.initial_seed)
        self._last_move = None


# --------------------------------------------------------------------------------------
# Our catalogue


def _catalogue_policy(
    name: str, kwargs: Mapping[str, Any], seed: int
) -> strategies.NumpyPolicy:
    return strategies.NumpyPolicy(strategies.make(name, **kwargs), seed)


@functools.cache
def _takes_payoffs(name: str) -> bool:
    """Whether a catalogue strategy adapts to the payoffs (``payoffs=`` kwarg)."""
    try:
        strategies.make(name, payoffs="coala")
    except ValueError:
        return False
    return True


def _player_label(name: str, kwargs: Mapping[str, Any]) -> str:
    if not kwargs:
        return f"dilemmas {name}"
    args = ", ".join(f"{key}={value}" for key, value in sorted(kwargs.items()))
    return f"dilemmas {name}({args})"


def from_strategy(
    name: str, *, seed: int = 0, label: str | None = None, **kwargs: Any
) -> AxelrodPlayer:
    """A strategy of our catalogue (:data:`dilemmas.agents.strategies.NAMES`) as an
    Axelrod player.

    ``stochastic`` and ``memory_depth`` are declared from the strategy: a
    memory-one vector is stochastic iff an entry lies strictly between 0 and 1, and
    reads 0 rounds if all five entries agree, else 1; ``grim`` reads the whole
    history, ``tf2t`` two rounds.

    Args:
      name: catalogue name, e.g. ``"tft"``.
      seed: seed of the policy's key (matches reseed stochastic players).
      label: the player's name; default ``"dilemmas NAME"`` plus the kwargs.
      **kwargs: catalogue kwargs, e.g. ``payoffs="axelrod"`` for ``gtft``.

    Raises:
      ValueError: unknown name (the message lists the catalogue) or kwargs.
    """
    strategy = strategies.make(name, **kwargs)
    if isinstance(strategy, strategies.MemoryOne):
        stochastic, memory_depth = _memory_one_classifier(strategy.probs)
    else:
        stochastic = False
        memory_depth = _MACHINE_MEMORY_DEPTH.get(name, math.inf)
    return AxelrodPlayer(
        functools.partial(_catalogue_policy, name, dict(kwargs)),
        name=label or _player_label(name, kwargs),
        stochastic=stochastic,
        memory_depth=memory_depth,
        seed=seed,
    )


def _memory_one_classifier(probs: Any) -> tuple[bool, float]:
    """``(stochastic, memory_depth)`` of a memory-one vector (first move first)."""
    probs = np.asarray(probs, np.float64)
    stochastic = bool(np.any((probs > 0) & (probs < 1)))
    return stochastic, 0 if np.all(probs == probs[0]) else 1


def _vector_policy(probs: tuple[float, ...], seed: int) -> strategies.NumpyPolicy:
    return strategies.NumpyPolicy(
        strategies.MemoryOne(probs=np.asarray(probs, np.float32)), seed
    )


def from_memory_one(
    probs: Sequence[float], name: str, *, seed: int = 0
) -> AxelrodPlayer:
    """A memory-one vector as an Axelrod player.

    The player cooperates with probability ``probs[state]`` in (first move; after
    CC, CD, DC, DD), own move first, exactly as a catalogue memory-one strategy
    (:class:`dilemmas.agents.strategies.MemoryOne` driven by
    :class:`~dilemmas.agents.strategies.NumpyPolicy`); ``stochastic`` and
    ``memory_depth`` are declared as in :func:`from_strategy`.

    Args:
      probs: five cooperation probabilities in ``[0, 1]``.
      name: the player's name in Axelrod's tables.
      seed: seed of the policy's key (matches reseed stochastic players).

    Raises:
      ValueError: not five probabilities in ``[0, 1]``.
    """
    try:
        vector = np.asarray(probs, np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"probs must be 5 probabilities, got {probs!r}") from err
    if vector.shape != (len(STATES),) or not np.all((vector >= 0) & (vector <= 1)):
        raise ValueError(
            "probs must be 5 probabilities in [0, 1] (first move; after CC, CD, DC, "
            f"DD); got {vector.tolist()}"
        )
    stochastic, memory_depth = _memory_one_classifier(vector)
    return AxelrodPlayer(
        functools.partial(_vector_policy, tuple(float(x) for x in vector)),
        name=name,
        stochastic=stochastic,
        memory_depth=memory_depth,
        seed=seed,
    )


def _loaded_policy(
    run_dir: str, agent: str, run_seed: int, seed: int
) -> strategies.NumpyPolicy:
    from dilemmas.agents.policy import load_policy

    return strategies.NumpyPolicy(load_policy(run_dir, agent, seed=run_seed), seed)


def from_policy(
    policy: Any, name: str, *, seed: int = 0, include_reward: bool = False
) -> AxelrodPlayer:
    """A policy (an object with ``init()`` and ``act(key, state, obs)``, e.g. from
    :func:`dilemmas.agents.load_policy` or :func:`dilemmas.agents.from_function`)
    as an Axelrod player, declared stochastic and of unbounded memory.

    The policy is built into the player: with ``processes > 1`` it is pickled to
    the workers (use :func:`players_from_policies` for trained agents, which
    reload from the run directory instead).
    """
    if not callable(getattr(policy, "act", None)) or not callable(
        getattr(policy, "init", None)
    ):
        raise ValueError(
            f"policy must have init() and act(key, state, obs); got {policy!r}"
        )
    return AxelrodPlayer(
        functools.partial(strategies.NumpyPolicy, policy),
        name=name,
        seed=seed,
        include_reward=include_reward,
    )


def players_from_policies(run_dir: str | Path) -> list[AxelrodPlayer]:
    """One Axelrod player per trained agent and seed of a run, playing with the
    trained agent itself (its ``policies/``, see :func:`dilemmas.agents.load_policy`):
    the network with its recurrent state, the PPI learner with its rollouts, the
    analytic agent's memory-one vector. Named ``"<run name>:<agent>[seed <i>]"``
    like :func:`players_from_run`.

    Raises:
      ValueError: no policies in ``run_dir`` (the message says how to write them)
        or an agent that cannot play a matrix game's observation.
    """
    import json

    from dilemmas.agents.policy import POLICY_DIR, load_policy, policy_names

    run_dir = Path(run_dir)
    names = policy_names(run_dir)
    if not names:
        load_policy(run_dir)  # raises the error that says how to write them
    run_name = run_dir.resolve().name
    players = []
    for agent in names:
        spec = json.loads((run_dir / POLICY_DIR / f"{agent}.json").read_text())
        obs_shape = spec.get("obs_shape", [len(STATES)])
        if len(obs_shape) != 1 or obs_shape[0] not in (len(STATES), len(STATES) + 1):
            raise ValueError(
                f"{run_dir}: {agent} reads observations of shape {obs_shape}, not a "
                "2x2 matrix game's"
            )
        for run_seed in range(spec["num_seeds"]):
            players.append(
                AxelrodPlayer(
                    functools.partial(_loaded_policy, str(run_dir), agent, run_seed),
                    name=f"{run_name}:{agent}[seed {run_seed}]",
                    seed=run_seed,
                    include_reward=obs_shape[0] == len(STATES) + 1,
                )
            )
    return players


def players_from_run(run_dir: str | Path) -> list[AxelrodPlayer]:
    """One Axelrod player per agent and seed of a trained run.

    Reads the ``memory_one`` record of the run's ``evaluation.json`` (see
    ``docs/run_directory.md``): per agent, one vector P(C | s0, CC, CD, DC, DD) per
    seed, own move first. Each becomes a :func:`from_memory_one` player named
    ``"<run name>:<agent>[seed <i>]"`` (``<run name>`` is the run directory's name,
    ``i`` the seed's index in the run). A ``null`` entry (a state the agent never
    visited in evaluation) is played as 0.5; a vector that has one is listed in the
    warning this function emits.

    For recurrent (in-context) agents the stored vector is their memory-one
    *probe*, the cooperation frequencies measured in their play, not the network
    itself: the player reproduces the probe, not the agent's longer memory.

    The players do not carry the run's game: pass its payoffs (``evaluation.json``'s
    ``game.payoffs``) to :func:`run_tournament` as ``payoffs=``.

    Raises:
      dilemmas.analysis.report.RunDirectoryError: not a readable run directory
        (missing ``config.json``, unknown ``format_version``), no
        ``evaluation.json`` (a run that has not finished), no ``memory_one`` record
        or no vector in it, or a malformed vector.
    """
    from dilemmas.analysis.report import RunDirectoryError, read_evaluation

    run_dir = Path(run_dir)
    evaluation = read_evaluation(run_dir)
    memory = evaluation.get("memory_one")
    if not isinstance(memory, Mapping) or not memory:
        raise RunDirectoryError(
            f"{run_dir}/evaluation.json has no memory_one record (per agent, one "
            "P(C | s0, CC, CD, DC, DD) vector per seed): this run's agents cannot be "
            "played as memory-one players"
        )
    run_name = run_dir.resolve().name
    players: list[AxelrodPlayer] = []
    filled: list[str] = []
    for agent, vectors in memory.items():
        if not isinstance(vectors, list):
            raise RunDirectoryError(
                f"{run_dir}/evaluation.json: memory_one[{agent!r}] must be a list of "
                f"5-vectors (one per seed); got {vectors!r}"
            )
        for seed, vector in enumerate(vectors):
            name = f"{run_name}:{agent}[seed {seed}]"
            if (
                not isinstance(vector, list)
                or len(vector) != len(STATES)
                or not all(
                    x is None or (isinstance(x, int | float) and 0 <= x <= 1)
                    for x in vector
                )
            ):
                raise RunDirectoryError(
                    f"{run_dir}/evaluation.json: memory_one[{agent!r}][{seed}] must "
                    "be 5 probabilities in [0, 1] or null (first move; after CC, CD, "
                    f"DC, DD); got {vector!r}"
                )
            if any(x is None for x in vector):
                filled.append(name)
            probs = [0.5 if x is None else float(x) for x in vector]
            players.append(from_memory_one(probs, name, seed=seed))
    if not players:
        raise RunDirectoryError(
            f"{run_dir}/evaluation.json: memory_one holds no vector"
        )
    if filled:
        warnings.warn(
            "unvisited states (null in memory_one) are played as P(C) = 0.5 by: "
            + ", ".join(filled),
            stacklevel=2,
        )
    return players


# --------------------------------------------------------------------------------------
# Games and opponents


def axelrod_game(payoffs: PayoffsLike = "coala") -> axl.Game:
    """``axl.Game`` of a symmetric payoff table (preset, (R, S, T, P) or table).

    Raises:
      ValueError: the table is not symmetric (Axelrod's games are).
    """
    table = payoff_table(payoffs)
    if not np.array_equal(table[..., 1], table[..., 0].T):
        raise ValueError(
            "Axelrod games are symmetric: need payoffs[a, b, 1] == payoffs[b, a, 0]; "
            f"got {table.tolist()}"
        )
    r, s, t, p = rstp(table)
    return axl.Game(r=r, s=s, t=t, p=p)


@functools.cache
def _axelrod_names() -> dict[str, type[axl.Player]]:
    names: dict[str, type[axl.Player]] = {}
    for cls in axl.all_strategies:
        names[cls.__name__] = cls
        names[cls.name] = cls
    return names


def _axelrod_class(name: str) -> type[axl.Player]:
    names = _axelrod_names()
    if name in names:
        return names[name]
    close = difflib.get_close_matches(name, list(names), n=8, cutoff=0.6)
    alternatives = close or sorted(cls.__name__ for cls in axl.all_strategies)
    raise ValueError(
        f"unknown Axelrod strategy {name!r}; "
        + ("did you mean " if close else "known strategies: ")
        + ", ".join(alternatives)
    )


def _instantiate(cls: type[axl.Player], payoffs: PayoffsLike) -> axl.Player:
    if cls is axl.GTFT:
        try:
            return axl.GTFT(p=strategies.gtft_generosity(payoffs))
        except ValueError:
            return axl.GTFT()
    return cls()


def _accepts(player: axl.Player, game: axl.Game, turns: int) -> bool:
    """Whether ``player`` takes the game (it is configured, as a match would)."""
    with warnings.catch_warnings():
        # ZD players divide by zero on their way to rejecting some games.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            player.set_match_attributes(length=turns, game=game, noise=0)
        except (ValueError, ZeroDivisionError):
            return False
    return True


def _passes(player: axl.Player, filterset: Mapping[str, Any]) -> bool:
    """``axl.filtered_strategies``'s test, on one instance (it builds one per key)."""
    for key, wanted in filterset.items():
        if wanted is None:
            continue
        classifier, compare = _FILTERS[key]
        value = axl.Classifiers[classifier](player)
        if compare is None:  # makes_use_of: every listed entry
            if not set(wanted) <= set(value or ()):
                return False
        elif not compare(value, wanted):
            return False
    return True


def resolve_opponents(
    opponents: OpponentsLike, payoffs: PayoffsLike = "coala", turns: int = 200
) -> tuple[list[axl.Player], list[str]]:
    """Axelrod players for ``opponents`` and the names left out of a subset.

    ``None`` is :data:`DEFAULT_FILTERSET`, ``"all"`` is ``axl.all_strategies``, a
    dict is an ``axl.filtered_strategies`` filterset (keys :data:`FILTER_KEYS`,
    judged on instances, as Axelrod does); from these, strategies that cannot be
    built for the game are left out (second return value). A sequence names
    opponents one by one (class names, player names, classes or instances), and each
    must accept the game. Selecting a subset builds every Axelrod strategy once
    (a few seconds: the meta players build their teams).

    Raises:
      ValueError: unknown names (with close matches or the full list), unknown
        filterset keys, an empty selection or a named opponent that rejects the
        game.
    """
    game = axelrod_game(payoffs)
    players: list[axl.Player] = []
    excluded: list[str] = []
    if opponents is None or isinstance(opponents, str | Mapping):
        if opponents is None:
            filterset: Mapping[str, Any] = DEFAULT_FILTERSET
        elif isinstance(opponents, Mapping):
            filterset = opponents
        elif opponents == "all":
            filterset = {}
        else:
            raise ValueError(
                f"opponents must be None, 'all', a filterset dict or a sequence of "
                f"strategies; got {opponents!r}"
            )
        unknown = sorted(set(filterset) - set(FILTER_KEYS))
        if unknown:
            raise ValueError(
                f"unknown keys {unknown} in the Axelrod filterset; known keys: "
                f"{list(FILTER_KEYS)}"
            )
        for cls in axl.all_strategies:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    player = _instantiate(cls, payoffs)
            except (ValueError, ZeroDivisionError):
                player = None
            if player is not None and not _passes(player, filterset):
                continue
            if player is not None and _accepts(player, game, turns):
                players.append(player)
            else:
                excluded.append(cls.name)
    else:
        for entry in opponents:
            if isinstance(entry, str):
                player = _instantiate(_axelrod_class(entry), payoffs)
            elif isinstance(entry, type) and issubclass(entry, axl.Player):
                player = _instantiate(entry, payoffs)
            elif isinstance(entry, axl.Player):
                player = entry
            else:
                raise ValueError(
                    f"opponent must be an Axelrod name, class or player; got {entry!r}"
                )
            if not _accepts(player.clone(), game, turns):
                raise ValueError(
                    f"Axelrod strategy {player.name!r} cannot play the game "
                    f"(R, S, T, P) = {rstp(payoffs)} (its construction fails, e.g. a "
                    "zero-determinant baseline hard-coded for (3, 0, 5, 1))"
                )
            players.append(player)
    if not players:
        raise ValueError(f"no opponents selected by {opponents!r}")
    return players, excluded


# --------------------------------------------------------------------------------------
# Tournaments


class OpponentScore(NamedTuple):
    """One of our players against one opponent, averaged over repetitions."""

    player: str
    opponent: str
    score_per_turn: float
    opponent_score_per_turn: float
    cooperation_rate: float
    opponent_cooperation_rate: float


class Standing(NamedTuple):
    """One of our players over the whole tournament.

    ``score_per_turn`` is Axelrod's ranking score: the median over repetitions of
    the mean score per turn over all opponents (self-play excluded);
    ``cooperation_rate`` is Axelrod's cooperating rating; ``rank`` is 1-based
    among ``out_of`` players (everybody in a round robin, our players otherwise).
    """

    player: str
    rank: int
    out_of: int
    score_per_turn: float
    cooperation_rate: float


@dataclass(frozen=True)
class TournamentResult:
    """What :func:`run_tournament` returns."""

    results: axl.ResultSet  # Axelrod's own results (all players, in `names` order)
    names: tuple[str, ...]  # every player, ours first
    players: tuple[str, ...]  # our players
    opponents: tuple[str, ...]  # Axelrod's
    per_opponent: tuple[OpponentScore, ...]
    standings: tuple[Standing, ...]  # ours, best first
    excluded: tuple[str, ...]  # opponents left out: they reject the game
    payoffs: str  # the payoffs as given (preset name or values)
    rstp: tuple[float, float, float, float]  # (R, S, T, P)
    turns: int
    prob_end: float | None
    repetitions: int
    seed: int
    noise: float
    round_robin: bool
    known_length: bool


def _our_player(player: Any, payoffs: PayoffsLike) -> AxelrodPlayer:
    if isinstance(player, AxelrodPlayer):
        return player
    if isinstance(player, str):
        if player in strategies.NAMES and _takes_payoffs(player):
            # Built for the tournament's game; the report names the payoffs.
            return from_strategy(player, label=f"dilemmas {player}", payoffs=payoffs)
        return from_strategy(player)
    raise ValueError(
        f"players must be catalogue names or AxelrodPlayer objects; got {player!r}"
    )


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def run_tournament(
    players: Sequence[str | AxelrodPlayer],
    opponents: OpponentsLike = None,
    payoffs: PayoffsLike = "coala",
    turns: int = 200,
    repetitions: int = 10,
    seed: int = 0,
    processes: int = 1,
    prob_end: float | None = None,
    *,
    noise: float = 0.0,
    round_robin: bool = False,
    known_length: bool = True,
    progress: bool = False,
) -> TournamentResult:
    """Play our players against Axelrod's strategies.

    Args:
      players: catalogue names (game-adaptive ones, ``gtft`` and ``zd_extort``,
        built for ``payoffs``) or :class:`AxelrodPlayer` objects.
      opponents: ``None`` (the fast default, :data:`DEFAULT_FILTERSET`),
        ``"all"``, an ``axl.filtered_strategies`` filterset dict, or a sequence of
        Axelrod names, classes or players; see :func:`resolve_opponents`.
      payoffs: our payoff preset, (R, S, T, P) or a symmetric ``[2, 2, 2]`` table.
      turns: rounds per match (the maximum, given ``prob_end``).
      repetitions: matches per pair.
      seed: ``axl.Tournament`` seed; every match, and so every stochastic player
        (reseeded at the start of each match), draws from it.
      processes: ``<= 1`` plays serially; more spawn worker processes.
      prob_end: per-turn probability that a match ends (geometric lengths, capped
        at ``turns``; players then see an unknown length). With it, the mean per-turn
        score is not (1 - gamma) times the expected discounted return (ratio bias).
      noise: probability that an intended action is flipped.
      round_robin: only our players against each opponent (the default; rank
        among ours), or everybody against everybody (Axelrod's standard
        tournament and rank; about n^2 / 2 matches, minutes for the default
        opponents).
      known_length: tell players the match length (Axelrod's default); ``False``
        tells them -1, unknown.
      progress: show Axelrod's progress bars on stderr (tqdm): one over the
        matches (a step per pair of players, all repetitions), then one over the
        analysis of the results.

    Raises:
      ValueError: bad names (listing alternatives), duplicate player names, an
        asymmetric game, or bad counts or probabilities.
    """
    turns = _check_count("turns", turns)
    repetitions = _check_count("repetitions", repetitions)
    if prob_end is not None and not 0.0 < prob_end <= 1.0:
        raise ValueError(f"prob_end must be in (0, 1] or None, got {prob_end!r}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise!r}")
    if isinstance(players, str | AxelrodPlayer):
        players = [players]
    ours = [_our_player(player, payoffs) for player in players]
    if not ours:
        raise ValueError("run_tournament needs at least one player of ours")
    game = axelrod_game(payoffs)
    theirs, excluded = resolve_opponents(opponents, payoffs, turns)
    everyone = ours + theirs
    names = [str(player) for player in everyone]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"player names must be unique; repeated: {duplicates}")

    n_ours = len(ours)
    edges = None
    if not round_robin:
        edges = [(i, j) for i in range(n_ours) for j in range(n_ours, len(everyone))]
    match_attributes = None
    if not known_length:
        match_attributes = {"length": -1, "game": game, "noise": noise}
    tournament = axl.Tournament(
        everyone,
        game=game,
        turns=turns,
        prob_end=prob_end,
        repetitions=repetitions,
        noise=noise,
        edges=edges,
        match_attributes=match_attributes,
        seed=seed,
    )
    with warnings.catch_warnings():
        # Dask and Axelrod warn about their own internals (e.g. pandas options).
        warnings.simplefilter("ignore", FutureWarning)
        results = tournament.play(
            processes=processes if processes > 1 else None,
            progress_bar=bool(progress),
        )

    per_opponent = []
    for i in range(n_ours):
        for j in range(len(everyone)):
            if j == i or (edges is not None and j < n_ours):
                continue
            per_opponent.append(
                OpponentScore(
                    player=names[i],
                    opponent=names[j],
                    score_per_turn=float(results.payoff_matrix[i][j]),
                    opponent_score_per_turn=float(results.payoff_matrix[j][i]),
                    cooperation_rate=float(results.normalised_cooperation[i][j]),
                    opponent_cooperation_rate=float(
                        results.normalised_cooperation[j][i]
                    ),
                )
            )
    ranking = (
        results.ranking if edges is None else [i for i in results.ranking if i < n_ours]
    )
    standings = tuple(
        Standing(
            player=names[i],
            rank=ranking.index(i) + 1,
            out_of=len(ranking),
            score_per_turn=float(np.nanmedian(results.normalised_scores[i])),
            cooperation_rate=float(results.cooperating_rating[i]),
        )
        for i in sorted(range(n_ours), key=ranking.index)
    )
    return TournamentResult(
        results=results,
        names=tuple(names),
        players=tuple(names[:n_ours]),
        opponents=tuple(names[n_ours:]),
        per_opponent=tuple(per_opponent),
        standings=standings,
        excluded=tuple(excluded),
        payoffs=payoffs if isinstance(payoffs, str) else str(rstp(payoffs)),
        rstp=rstp(payoffs),
        turns=turns,
        prob_end=prob_end,
        repetitions=repetitions,
        seed=int(seed),
        noise=float(noise),
        round_robin=bool(round_robin),
        known_length=bool(known_length),
    )


def _cell(name: str) -> str:
    """A player name as a Markdown table cell."""
    return name.replace("|", "\\|")


def format_report(result: TournamentResult) -> str:
    """A Markdown report: settings (payoffs, seeds), standings, per-opponent table."""
    r, s, t, p = result.rstp
    length = f"{result.turns} turns"
    if result.prob_end is not None:
        length += f" at most, prob_end = {result.prob_end:g}"
    if not result.known_length:
        length += ", length hidden from players"
    mode = (
        "round robin (everybody plays everybody)"
        if result.round_robin
        else "our players against each opponent"
    )
    lines = [
        "# Tournament against Axelrod strategies",
        "",
        f"- payoffs: {result.payoffs} (R, S, T, P) = ({r:g}, {s:g}, {t:g}, {p:g})",
        f"- matches: {length}, {result.repetitions} repetitions, noise "
        f"{result.noise:g}, {mode}",
        f"- seed: {result.seed} (axelrod.Tournament seed; stochastic players are "
        "reseeded from it at the start of every match)",
        f"- opponents: {len(result.opponents)} Axelrod strategies",
    ]
    if result.excluded:
        lines.append(
            f"- left out (cannot play this game): {', '.join(result.excluded)}"
        )
    lines += [
        "",
        "## Standings",
        "",
        "| player | rank | score per turn (median) | cooperation rate |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(row.player)} | {row.rank} / {row.out_of} | "
        f"{row.score_per_turn:.4f} | "
        f"{row.cooperation_rate:.4f} |"
        for row in result.standings
    ]
    lines += [
        "",
        "## Per opponent",
        "",
        "| player | opponent | score per turn | opponent's | cooperation rate | "
        "opponent's |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(row.player)} | {_cell(row.opponent)} | {row.score_per_turn:.4f} | "
        f"{row.opponent_score_per_turn:.4f} | {row.cooperation_rate:.4f} | "
        f"{row.opponent_cooperation_rate:.4f} |"
        for row in result.per_opponent
    ]
    return "\n".join(lines) + "\n"
