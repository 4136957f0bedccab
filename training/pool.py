"""Co-player pools: the fixed co-players a population of learners plays against.

A pool is written as one string (the ``pool`` field of
:class:`dilemmas.training.coplayer.CoplayerConfig`, so ``--set pool=...`` works):
comma-separated entries, each ``NAME`` or ``NAME=WEIGHT`` (weight 1 by default).
Every episode against the pool draws one entry with probability proportional to its
weight. Entries:

=======================  ===========================================================
``random_tabular``       a memory-one agent whose 5 cooperation probabilities are
                         drawn from U(0, 1) **fresh for every episode** (spec
                         ``coplayer_inference.md`` §1.3); 2-action matrix games
``allc``, ``tft``, ...   any strategy of :mod:`dilemmas.agents.strategies` with its
                         default arguments: memory-one vectors (``allc``, ``alld``,
                         ``tft``, ``stft``, ``wsls``, ``gtft``, ``zd_extort``,
                         ``alternator``, ``random``) and the state machines
                         ``grim`` and ``tf2t``; matrix games
``frozen:RUN_DIR``       learner 0 of a co-player inference run directory, frozen
                         (its latest checkpoint); seed ``s`` of this run plays seed
                         ``s mod S`` of that run's ``S`` seeds. Any game, as long as
                         it is the run's game
``policy:RUN_DIR``       the first trained agent of any run directory, as
                         :func:`dilemmas.agents.load_policy` returns it (seed 0 of
                         its ``policies/``: a shaping meta agent, an A2C or PPI
                         learner, an analytic memory-one agent); the run's game
=======================  ===========================================================

Example: ``random_tabular=3,tft,frozen:runs/step1`` plays random tabular agents in
3/5 of the pool's episodes, TFT in 1/5 and the frozen agent in 1/5.

:func:`parse_pool` checks the syntax and the names without touching the disk;
:func:`load_learners` reads a run directory's learner parameters (the frozen
entries, and ``init_from`` of the co-player inference config); :class:`FixedPool`
is the pool in JAX: per-episode entries, states and one step of every co-player,
inside the compiled rollout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from dilemmas.agents import strategies
from dilemmas.agents.policy import load_policy
from dilemmas.agents.sequence import Z_DIM, SequenceInputs
from dilemmas.envs.matrix_games import MatrixGame

RANDOM_TABULAR = "random_tabular"
FROZEN_PREFIX = "frozen:"
POLICY_PREFIX = "policy:"
#: Probabilities are clipped to [EPS, 1 - EPS] before taking logs (opponent ID).
EPS = 1e-6


@dataclass(frozen=True)
class PoolEntry:
    """One entry of a pool.

    Attributes:
      label: its name in metrics and reports (``random_tabular``, ``tft``,
        ``frozen_0``, ...).
      kind: ``"random_tabular"``, ``"memory_one"``, ``"machine"`` (a strategy with
        state), ``"frozen"`` or ``"policy"``.
      weight: relative frequency.
      path: the run directory of a frozen or policy entry.
    """

    label: str
    kind: str
    weight: float
    path: str | None = None

    @property
    def is_table(self) -> bool:
        """Whether the entry is a memory-one table (random or fixed)."""
        return self.kind in ("random_tabular", "memory_one")


def parse_pool(text: str) -> tuple[PoolEntry, ...]:
    """The entries of a pool string (see the module docstring); ``()`` for ``""``.

    Raises:
      ValueError: an empty entry, a bad or non-positive weight, an unknown
        strategy name, a frozen entry without a path, or a repeated entry.
    """
    if not isinstance(text, str):
        raise ValueError(f"pool must be a string, got {text!r}")
    if not text.strip():
        return ()
    entries: list[PoolEntry] = []
    seen: set[str] = set()
    frozen = 0
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"pool {text!r} has an empty entry")
        name, weight = item, 1.0
        if "=" in item:
            name, _, weight_text = item.rpartition("=")
            name = name.strip()
            try:
                weight = float(weight_text)
            except ValueError:
                raise ValueError(
                    f"pool entry {item!r}: weight {weight_text!r} is not a number"
                ) from None
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError(
                f"pool entry {item!r}: the weight must be a finite number > 0"
            )
        if name in seen:
            raise ValueError(f"pool entry {name!r} appears twice in {text!r}")
        seen.add(name)
        if name.startswith(FROZEN_PREFIX):
            path = name[len(FROZEN_PREFIX) :].strip()
            if not path:
                raise ValueError(f"pool entry {item!r} needs a run directory")
            entries.append(PoolEntry(f"frozen_{frozen}", "frozen", weight, path))
            frozen += 1
        elif name.startswith(POLICY_PREFIX):
            path = name[len(POLICY_PREFIX) :].strip()
            if not path:
                raise ValueError(f"pool entry {item!r} needs a run directory")
            label = f"policy_{sum(e.kind == 'policy' for e in entries)}"
            entries.append(PoolEntry(label, "policy", weight, path))
        elif name == RANDOM_TABULAR:
            entries.append(PoolEntry(name, "random_tabular", weight))
        elif name in strategies.NAMES and name != "random_memory_one":
            kind = "memory_one" if _is_memory_one(name) else "machine"
            entries.append(PoolEntry(name, kind, weight))
        else:
            known = [n for n in strategies.NAMES if n != "random_memory_one"]
            raise ValueError(
                f"unknown pool entry {name!r}; use {RANDOM_TABULAR!r}, a strategy "
                f"({', '.join(known)}), 'frozen:RUN_DIR' or 'policy:RUN_DIR'"
            )
    return tuple(entries)


def _is_memory_one(name: str) -> bool:
    try:
        strategies.memory_one(name)
    except ValueError:
        return False
    return True


def check_pool_game(entries: tuple[PoolEntry, ...], env: Any, env_id: str) -> None:
    """Raise ``ValueError`` if an entry cannot play ``env`` (strategies and random
    tabular agents need a 2-action matrix game)."""
    for entry in entries:
        if entry.kind == "policy":
            load_policy(entry.path, env_id=env_id)
        elif entry.kind != "frozen" and not isinstance(env, MatrixGame):
            raise ValueError(
                f"pool entry {entry.label!r} plays 2x2 matrix games only; {env_id} "
                "is not one (use learners or frozen:RUN_DIR co-players)"
            )


# --------------------------------------------------------------------------------------
# Frozen learners from run directories


def load_learners(run_dir: str | Path, env_id: str, what: str) -> tuple[Any, Any]:
    """The config and learner parameters of a co-player inference run directory.

    Args:
      run_dir: a run directory written by ``dilemmas train`` for a co-player
        inference preset, with at least one checkpoint.
      env_id: the game the caller plays; the run must have been trained on it.
      what: how the caller names the directory in error messages.

    Returns:
      ``(config, params)``: the run's :class:`CoplayerConfig` and its learners'
      parameters at the latest checkpoint, leaves ``[num_seeds, num_learners, ...]``.

    Raises:
      ValueError: a missing directory, another kind of run, another game, no
        checkpoint, or a checkpoint that does not hold learner parameters.
    """
    from dilemmas.training.configs import config_from_json
    from dilemmas.training.coplayer import CoplayerConfig
    from dilemmas.training.runner import read_checkpoint, read_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{what}: run directory {str(run_dir)!r} does not exist")
    try:
        record = read_config(run_dir)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if record.get("kind") != "coplayer":
        raise ValueError(
            f"{what}: {run_dir} is a {record.get('kind')!r} run, not a co-player "
            "inference run"
        )
    try:
        config = config_from_json(CoplayerConfig, record["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{what}: cannot read the config of {run_dir}: {err}"
        ) from None
    if config.env_id != env_id:
        raise ValueError(
            f"{what}: {run_dir} was trained on {config.env_id}, this run plays {env_id}"
        )
    try:
        found = read_checkpoint(run_dir)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if found is None:
        raise ValueError(f"{what}: {run_dir} has no checkpoint yet")
    try:
        raw = flax.serialization.msgpack_restore(found[1])
    except Exception as err:  # msgpack raises several unrelated types
        raise ValueError(f"{what}: unreadable checkpoint ({err})") from None
    where = f"{run_dir} (iteration {found[0]})"
    if not isinstance(raw, dict) or "params" not in raw:
        raise ValueError(f"{what}: {where} does not hold learner parameters")
    from dilemmas.training.coplayer import learner_template

    template = learner_template(config)
    try:
        params = flax.serialization.from_state_dict(template, raw["params"])
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{what}: {where}: unexpected parameters ({err})") from None
    params = jax.tree.map(jnp.asarray, params)
    leaves = jax.tree.leaves(params)
    expected = (config.num_seeds, config.num_learners)
    if not leaves or any(leaf.shape[:2] != expected for leaf in leaves):
        raise ValueError(
            f"{what}: {where}: parameters are not [num_seeds, num_learners, ...] = "
            f"{list(expected)}"
        )
    return config, params


# --------------------------------------------------------------------------------------
# The pool in JAX


class PoolState(NamedTuple):
    """Per-episode state of the fixed co-players of ``B`` episodes."""

    entry: jax.Array  # [B] int32 index into the entries
    table: jax.Array  # [B, 5] cooperation probabilities (table entries)
    machines: tuple  # per machine entry: its strategy state, leaves [B, ...]
    frozen: tuple  # per frozen entry: its recurrent carry, leaves [B, ...]


@dataclass(frozen=True)
class FrozenAgent:
    """A frozen learner: its network and how it builds its inputs."""

    label: str
    inputs: SequenceInputs
    net: Any


class FixedPool:
    """The fixed co-players of a pool, as pure functions for the rollout.

    Args:
      entries: the pool entries (training pool or an evaluation list).
      frozen: one :class:`FrozenAgent` per frozen entry, in entry order.
      num_actions: actions of the game.
    """

    def __init__(
        self,
        entries: tuple[PoolEntry, ...],
        frozen: tuple[FrozenAgent, ...],
        num_actions: int,
    ):
        if not entries:
            raise ValueError("a fixed pool needs at least one entry")
        self.entries = entries
        self.frozen = frozen
        self.num_actions = num_actions
        weights = np.array([e.weight for e in entries], np.float64)
        self.log_weights = jnp.asarray(np.log(weights / weights.sum()), jnp.float32)
        self.machines = tuple(
            (
                i,
                strategies.make(e.label)
                if e.kind == "machine"
                else load_policy(e.path),
            )
            for i, e in enumerate(entries)
            if e.kind in ("machine", "policy")
        )
        self.frozen_index = tuple(
            i for i, e in enumerate(entries) if e.kind == "frozen"
        )
        if len(self.frozen_index) != len(frozen):
            raise ValueError("one FrozenAgent per frozen entry is needed")
        vectors = np.zeros((len(entries), 5), np.float32)
        for i, e in enumerate(entries):
            if e.kind == "memory_one":
                vectors[i] = np.asarray(strategies.memory_one(e.label))
        self.vectors = jnp.asarray(vectors)
        self.is_random = jnp.asarray([e.kind == "random_tabular" for e in entries])
        self.is_table = jnp.asarray([e.is_table for e in entries])

    def draw(self, key: jax.Array, batch: int) -> jax.Array:
        """``[batch]`` entries drawn with the pool's weights."""
        return jax.random.categorical(key, self.log_weights, shape=(batch,)).astype(
            jnp.int32
        )

    def start(
        self, frozen_params: tuple, key: jax.Array, entry: jax.Array
    ) -> PoolState:
        """The co-players of ``len(entry)`` new episodes (fresh random tables).

        A frozen agent trained with Opponent ID first reads the ``z = 0`` token of
        a learning co-player.
        """
        batch = entry.shape[0]
        fresh = jax.random.uniform(key, (batch, 5))
        table = jnp.where(self.is_random[entry][:, None], fresh, self.vectors[entry])
        machines = tuple(
            jax.vmap(lambda _, s=strategy: s.init())(jnp.arange(batch))
            for _, strategy in self.machines
        )
        frozen = []
        for agent, params in zip(self.frozen, frozen_params, strict=True):
            carry = agent.net.initial_state((batch,))
            if agent.inputs.opponent_id:
                token = agent.inputs.z_token(jnp.zeros((batch, Z_DIM)))
                carry, _ = agent.net.apply(params, carry, token, jnp.ones(batch, bool))
            frozen.append(carry)
        return PoolState(entry, table, machines, tuple(frozen))

    def opponent_id(self, state: PoolState) -> jax.Array:
        """``[B, 10]`` log-probability vector z of each episode's co-player: log p and
        log(1 - p) for (CC, CD, DC, DD, start), in the co-player's own perspective
        (spec §1.4); zero for co-players that are not tables."""
        p = jnp.clip(state.table[:, (1, 2, 3, 4, 0)], EPS, 1.0 - EPS)
        z = jnp.stack([jnp.log(p), jnp.log1p(-p)], axis=-1).reshape(-1, 10)
        return jnp.where(self.is_table[state.entry][:, None], z, 0.0)

    def step(
        self,
        frozen_params: tuple,
        state: PoolState,
        obs: jax.Array,
        prev_action: jax.Array,
        prev_reward: jax.Array,
        key: jax.Array,
    ) -> tuple[PoolState, jax.Array]:
        """Every episode's co-player acts once: ``[B]`` actions and the new state.

        ``obs`` ``[B, ...]`` is the co-player's own observation; ``prev_action`` and
        ``prev_reward`` ``[B]`` its previous action (-1 at the start) and reward.
        """
        batch = state.entry.shape[0]
        k_table, k_machines, k_frozen = jax.random.split(key, 3)
        action = jnp.zeros((batch,), jnp.int32)
        if bool(np.any([e.is_table for e in self.entries])):
            index = jnp.argmax(obs.reshape(batch, -1)[:, :5], axis=-1)
            p = jnp.take_along_axis(state.table, index[:, None], axis=-1)[:, 0]
            table_action = (jax.random.uniform(k_table, (batch,)) >= p).astype(
                jnp.int32
            )
            action = jnp.where(self.is_table[state.entry], table_action, action)
        machines = []
        for (i, strategy), m_state, k in zip(
            self.machines,
            state.machines,
            jax.random.split(k_machines, max(len(self.machines), 1)),
            strict=False,
        ):
            a, m_state = jax.vmap(strategy.act)(
                jax.random.split(k, batch), m_state, obs
            )
            action = jnp.where(state.entry == i, a.astype(jnp.int32), action)
            machines.append(m_state)
        frozen = []
        for i, agent, params, carry, k in zip(
            self.frozen_index,
            self.frozen,
            frozen_params,
            state.frozen,
            jax.random.split(k_frozen, max(len(self.frozen), 1)),
            strict=False,
        ):
            x = agent.inputs.step(obs, prev_action, prev_reward)
            carry, out = agent.net.apply(params, carry, x, jnp.zeros((batch,), bool))
            a = jax.random.categorical(k, out.logits).astype(jnp.int32)
            action = jnp.where(state.entry == i, a, action)
            frozen.append(carry)
        return PoolState(
            state.entry, state.table, tuple(machines), tuple(frozen)
        ), action
