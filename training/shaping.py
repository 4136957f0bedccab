"""The batched co-player shaping loop on sampled games (COALA-PG §2-§4, App. A-B).

One training iteration, compiled end to end (spec ``coala_pg.md`` §4):

1. **Opponents.** For every meta agent ``i`` of the pool and every element of its
   meta-batch, draw the opponent kind (naive with probability ``p_naive``) and the
   opponent, uniformly with replacement and never oneself: one of the
   ``naive_pool_size`` naive initialisations, or another meta agent.
2. **Meta-episodes.** Each element plays ``M`` inner episodes of ``T`` steps on
   ``B`` environments in lockstep: a ``lax.scan`` over inner episodes around a
   ``lax.scan`` over steps, ``vmap``-ed over the meta-batch and the pool. The meta
   agent's recurrent state runs across inner episodes (reset only at the start of
   the meta-trajectory); a naive opponent's state resets every inner episode and,
   at every inner-episode boundary, the opponent takes one A2C step
   (:class:`dilemmas.agents.naive.A2CLearner`: Monte-Carlo returns, no
   bootstrapping) on the ``B``
   episodes just played, with its own optimiser state. A meta opponent keeps its
   long context and does not learn.
3. **Advantages.** Against naive opponents the configured estimator (COALA-GAE,
   M-FOS or batch-unaware GAE, :mod:`dilemmas.training.estimators`); against meta
   opponents ordinary GAE, whose trajectories are independent. Value targets are
   batch-unaware TD(λ) returns. Inner-episode ends are not terminal.
4. **Update.** Every meta agent takes PPO epochs (or one A2C step) on all of its
   meta-batch, from the parameters all agents had at the start of the iteration.

``ShapingExperiment`` wraps this for the run driver (``dilemmas train``); for
scripts, ``make_train(cfg)`` returns a jittable ``train(key)`` that runs every
iteration in one ``lax.scan``. The final evaluation is in
:mod:`dilemmas.training.shaping_eval`, the presets in
:mod:`dilemmas.training.shaping_presets`.

The meta-batch axis is sharded over ``jax.devices()`` when there is more than one
device (``jax.sharding`` constraints on the per-element inputs; XLA partitions the
rollouts and reduces the gradients), so the same code runs on one CPU, one GPU or
a many-device host.

Conventions: the meta agent is player 0 of every game (observations are
first-person, so this costs nothing in symmetric games); rewards reported in
metrics are per step on the game's original scale (``reward_scale`` only enters
the learning signals); a metric of one opponent kind is NaN in an iteration that
drew no opponent of that kind. In a 2x2 matrix game the metrics add cooperation
(action 0); in a grid game they add the game's own events instead (cleaning, zaps,
apples, pollution, coins: :data:`GRID_EVENTS`, :data:`GRID_LEVELS`), read from the
core's per-step ``info`` and state.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dilemmas.agents import losses
from dilemmas.agents.naive import A2CLearner, first_step_resets
from dilemmas.agents.networks import GRUPolicy, HawkPolicy, MLPPolicy, TabularPolicy
from dilemmas.agents.policy import NetworkPolicy, Trained
from dilemmas.envs import make as make_env
from dilemmas.training import estimators
from dilemmas.training.configs import (
    check_choices,
    check_env_id,
    check_ints,
    check_seeds,
    is_number,
)
from dilemmas.training.sharding import batch_mesh

ESTIMATORS = ("coala", "mfos", "batch_unaware")
NETWORKS = ("hawk", "gru", "mlp", "tabular")
ALGORITHMS = ("ppo", "a2c")
OPTIMISERS = ("adam", "sgd")

_GAE = {
    "coala": estimators.coala_gae,
    "mfos": estimators.mfos_gae,
    "batch_unaware": estimators.batch_unaware_gae,
}

#: Per-agent event counters of the grid games' ``Timestep.info`` (``int[2]`` per
#: step) that the shaping metrics report: info key, metric stem, and whether the
#: metric is per step (a mean over the inner episode's steps; for ``cells_cleaned``
#: of CleanUp-lite, where an agent cleans at most one cell a step, the share of
#: steps spent cleaning, spec A16) or per inner episode (a sum over its steps).
GRID_EVENTS: tuple[tuple[str, str, bool], ...] = (
    ("cells_cleaned", "cleaning", True),
    ("zaps_fired", "zap_rate", False),
    ("zaps_received", "zapped", False),
    ("apples_eaten", "apples", False),
    ("own_coins", "own_coins", False),
    ("other_coins", "other_coins", False),
)
#: Grid maps of the games' states whose level the metrics report: state field and
#: metric stem; the number of set cells after each step, averaged over the inner
#: episode's steps (spec A18: pollution = dirt cells, apple level = apples).
GRID_LEVELS: tuple[tuple[str, str], ...] = (
    ("dirt", "pollution"),
    ("apples", "apple_level"),
)


@dataclass(frozen=True)
class ShapingConfig:
    """Every setting of a sampled shaping run, validated on construction.

    Defaults are the paper's IPD settings (Tables 2-4 and 8; spec §7): pure
    shaping, meta-batch 128, B = 16, M = 20, T = 10, Hawk width 32, PPO with
    2 minibatches and 4 epochs, learning rate 3e-4, reward scale 0.05, and naive
    A2C learners with Adam at 0.005, gamma 0.99 and centred advantages.

    Attributes:
      name: label for reports.
      env_id: a registered two-player game; ``max_steps`` is set to
        ``inner_episode_length``.
      estimator: advantage rule against naive opponents: ``"coala"``,
        ``"mfos"`` or ``"batch_unaware"``.
      pool_estimators: one estimator per meta agent, comma-separated (e.g.
        ``"coala,mfos"`` with ``pool_size=2``: a COALA and an M-FOS agent trained
        in one pool, App. H.3); empty: every agent uses ``estimator``.
      network: ``"hawk"`` (the paper), ``"gru"``, ``"mlp"`` or ``"tabular"``
        (memory-one; matrix games only); meta agents and naive learners share it.
      hidden: width of the network (Hawk embedding, LRU and MLP width; GRU hidden
        size; MLP layer width).
      iterations: meta updates.
      meta_batch: meta-episodes per meta agent and iteration (B-bar).
      batch: ``B``, inner episodes played in lockstep against one co-player.
      num_inner_episodes: ``M``.
      inner_episode_length: ``T``.
      p_naive: probability that an opponent is a naive learner.
      pool_size: number of meta (learning-aware) agents.
      naive_pool_size: number of naive initialisations (static naive agents).
      dynamic_naive_agents: at the start of every iteration, naive
        initialisation ``k`` becomes a copy of meta agent ``k mod pool_size``
        (spec §1.7, the paper's Cleanup mixed pool): naive opponents start as
        capable policies, reset their context every inner episode and keep
        learning by A2C; the static initialisations are then unused.
      num_seeds: independent runs, vmapped.
      seed: base seed.
      algorithm: meta update, ``"ppo"`` or ``"a2c"`` (one step on all data).
      ppo_epochs, ppo_minibatches: PPO passes and minibatches per pass; the
        minibatches split whole sequences (``meta_batch * batch`` of them), never
        time.
      clip_eps: PPO ratio clip.
      value_clip: clip the value loss with ``clip_eps`` (PPO only).
      value_coef, entropy_coef: loss weights.
      normalize_advantages: centre advantages, separately over vs-naive and
        vs-meta samples (spec §3.4).
      scale_coala: multiply vs-naive COALA advantages by ``B`` before the
        mean-over-samples loss (spec §4 default).
      reward_scale: reward multiplier for values and advantages.
      gamma, lambda_td, lambda_gae: discount and lambdas of the meta agent.
      optimiser: the meta agents' optimiser, ``"adam"`` (the IPD and Cleanup
        pure shaping) or ``"sgd"`` (the Cleanup mixed pool, Table 7), after
        global-norm clipping.
      lr, adam_eps, max_grad_norm: its learning rate, Adam's eps, the clipping
        norm.
      naive_*: the naive learners' A2C: learning rate, optimiser, reward scale,
        discount, value and entropy coefficients, advantage centring, gradient
        clipping.
      eval_meta_batch: meta-episodes per agent and opponent in the final
        evaluation.
    """

    name: str = "custom"
    env_id: str = "ipd-v0"
    estimator: str = "coala"
    network: str = "hawk"
    hidden: int = 32
    iterations: int = 3000
    meta_batch: int = 128
    batch: int = 16
    num_inner_episodes: int = 20
    inner_episode_length: int = 10
    p_naive: float = 1.0
    pool_size: int = 1
    naive_pool_size: int = 10
    dynamic_naive_agents: bool = False
    pool_estimators: str = ""
    num_seeds: int = 1
    seed: int = 0
    algorithm: str = "ppo"
    ppo_epochs: int = 4
    ppo_minibatches: int = 2
    clip_eps: float = 0.2
    value_clip: bool = True
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    normalize_advantages: bool = False
    scale_coala: bool = True
    reward_scale: float = 0.05
    gamma: float = 1.0
    lambda_td: float = 1.0
    lambda_gae: float = 1.0
    optimiser: str = "adam"
    lr: float = 3e-4
    adam_eps: float = 1e-5
    max_grad_norm: float = 1.0
    naive_lr: float = 0.005
    naive_optimiser: str = "adam"
    naive_reward_scale: float = 0.05
    naive_gamma: float = 0.99
    naive_value_coef: float = 0.5
    naive_entropy_coef: float = 0.0
    naive_normalize_advantages: bool = True
    naive_max_grad_norm: float = 1.0
    eval_meta_batch: int = 64

    def __post_init__(self):
        check_choices(
            self,
            {
                "estimator": ESTIMATORS,
                "network": NETWORKS,
                "algorithm": ALGORITHMS,
                "optimiser": OPTIMISERS,
                "naive_optimiser": OPTIMISERS,
            },
        )
        positive = ("hidden", "iterations", "meta_batch", "batch", "pool_size")
        positive += ("num_inner_episodes", "inner_episode_length", "naive_pool_size")
        positive += ("num_seeds", "ppo_epochs", "ppo_minibatches", "eval_meta_batch")
        check_seeds(self)
        check_ints(self, dict.fromkeys(positive, 1))
        for field in ("p_naive", "gamma", "lambda_td", "lambda_gae", "naive_gamma"):
            value = getattr(self, field)
            if not is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{field} must be a number in [0, 1], got {value!r}")
        for field in (
            "lr",
            "adam_eps",
            "max_grad_norm",
            "naive_lr",
            "naive_max_grad_norm",
            "clip_eps",
            "reward_scale",
            "naive_reward_scale",
        ):
            value = getattr(self, field)
            if not is_number(value) or not (value > 0.0 and math.isfinite(value)):
                raise ValueError(f"{field} must be a finite number > 0, got {value!r}")
        for field in (
            "value_coef",
            "entropy_coef",
            "naive_value_coef",
            "naive_entropy_coef",
        ):
            value = getattr(self, field)
            if not is_number(value) or not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"{field} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.dynamic_naive_agents, bool):
            raise ValueError(
                "dynamic_naive_agents must be true or false, got "
                f"{self.dynamic_naive_agents!r}"
            )
        if not isinstance(self.pool_estimators, str):
            raise ValueError(
                "pool_estimators must be a comma-separated string such as "
                f"'coala,mfos', got {self.pool_estimators!r}"
            )
        if self.pool_estimators:
            names = [name.strip() for name in self.pool_estimators.split(",")]
            unknown = [name for name in names if name not in ESTIMATORS]
            if unknown:
                raise ValueError(
                    f"pool_estimators {self.pool_estimators!r}: unknown "
                    f"estimator(s) {unknown}; choose from {ESTIMATORS}"
                )
            if len(names) != self.pool_size:
                raise ValueError(
                    f"pool_estimators {self.pool_estimators!r} names {len(names)} "
                    f"estimators for pool_size = {self.pool_size} meta agents; give "
                    "one per agent"
                )
        if self.p_naive < 1.0 and self.pool_size < 2:
            raise ValueError(
                f"p_naive = {self.p_naive} < 1 needs other meta agents to play, but "
                "pool_size = 1 (an agent never plays itself); use pool_size >= 2"
            )
        sequences = self.meta_batch * self.batch
        if self.algorithm == "ppo" and sequences % self.ppo_minibatches:
            raise ValueError(
                f"ppo_minibatches = {self.ppo_minibatches} must divide "
                f"meta_batch * batch = {sequences}"
            )
        check_env_id(self)

    @property
    def minibatches(self) -> int:
        """Minibatches per pass over the meta-batch: ``ppo_minibatches`` under PPO,
        1 under A2C."""
        return self.ppo_minibatches if self.algorithm == "ppo" else 1

    @property
    def gradient_steps(self) -> int:
        """Meta gradient steps per iteration: ``ppo_epochs * ppo_minibatches`` under
        PPO, 1 under A2C."""
        return self.ppo_epochs * self.minibatches if self.algorithm == "ppo" else 1

    def memory_estimate_bytes(self) -> dict[str, int]:
        """A lower bound of the bytes held at once, by the fields that size them
        (:func:`dilemmas.training.configs.check_memory` refuses a config whose
        estimate exceeds the devices' memory before anything is compiled).

        float32 arrays: the rollout buffers of one iteration (at least 8 values per
        step), the activations kept for one gradient step (at least ``hidden`` per
        step of a PPO minibatch, or of a naive learner's inner episode), and the
        parameters with their optimiser states (at least ``hidden**2`` per network
        except tabular). The final evaluation's rollouts are a separate phase: the
        terms of the larger phase are returned.
        """
        steps = self.num_inner_episodes * self.inner_episode_length * self.batch
        seeds_agents = self.num_seeds * self.pool_size
        sizes = "num_seeds * pool_size * batch * num_inner_episodes"
        sizes += " * inner_episode_length"
        training = {
            f"{sizes} * meta_batch (rollout buffers)": 32
            * seeds_agents
            * self.meta_batch
            * steps
        }
        if self.network != "tabular":
            update = 4 * seeds_agents * self.meta_batch * steps * self.hidden
            update //= self.minibatches
            naive = 4 * seeds_agents * self.meta_batch * self.batch * self.hidden
            naive *= self.inner_episode_length
            if update >= naive:
                label = f"{sizes} * meta_batch * hidden / ppo_minibatches"
                training[f"{label} (activations of the meta update)"] = update
            else:
                label = "num_seeds * pool_size * meta_batch * batch"
                label += " * inner_episode_length * hidden"
                training[f"{label} (activations of the naive updates)"] = naive
            per_network = {"hawk": 7, "gru": 3, "mlp": 1}[self.network]
            per_network *= 4 * self.hidden**2
            optimiser_copies = 3 if self.naive_optimiser == "adam" else 1
            networks = self.num_seeds * (
                3 * self.pool_size
                + self.naive_pool_size
                + optimiser_copies * self.pool_size * self.meta_batch
            )
            label = "hidden**2 * num_seeds * (pool_size * meta_batch"
            label += " + naive_pool_size)"
            training[f"{label} (parameters and optimiser states)"] = (
                networks * per_network
            )
        evaluation = 2 if self.pool_size > 1 else 1
        evaluation *= 32 * seeds_agents * self.eval_meta_batch * steps
        evaluating = {f"{sizes} * eval_meta_batch (evaluation rollouts)": evaluation}
        if evaluation > sum(training.values()):
            return evaluating
        return training

    def replace(self, **changes: Any) -> ShapingConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @property
    def agent_estimators(self) -> tuple[str, ...]:
        """The estimator of each meta agent (``pool_estimators`` or ``estimator``)."""
        if self.pool_estimators:
            return tuple(name.strip() for name in self.pool_estimators.split(","))
        return (self.estimator,) * self.pool_size

    def experiment(self) -> ShapingExperiment:
        """The run-driver view of this config (``dilemmas train``)."""
        return ShapingExperiment(self)

    @property
    def steps_per_iteration(self) -> int:
        """Meta-agent environment steps per iteration, over the whole pool."""
        return (
            self.pool_size
            * self.meta_batch
            * self.batch
            * self.num_inner_episodes
            * self.inner_episode_length
        )


# --------------------------------------------------------------------------------------
# Networks and optimisers


def make_network(cfg: ShapingConfig, num_actions: int) -> nn.Module:
    """The policy-value network named by ``cfg.network``."""
    if cfg.network == "hawk":
        return HawkPolicy(
            num_actions=num_actions,
            embed_dim=cfg.hidden,
            lru_width=cfg.hidden,
            mlp_width=cfg.hidden,
        )
    if cfg.network == "gru":
        return GRUPolicy(num_actions=num_actions, hidden_size=cfg.hidden)
    if cfg.network == "mlp":
        return MLPPolicy(num_actions=num_actions, hidden_sizes=(cfg.hidden, cfg.hidden))
    return TabularPolicy(num_actions=num_actions)


def make_meta_optimiser(cfg: ShapingConfig) -> optax.GradientTransformation:
    inner = (
        optax.adam(cfg.lr, eps=cfg.adam_eps)
        if cfg.optimiser == "adam"
        else optax.sgd(cfg.lr)
    )
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), inner)


def make_naive_optimiser(cfg: ShapingConfig) -> optax.GradientTransformation:
    inner = (
        optax.adam(cfg.naive_lr, eps=1e-5)
        if cfg.naive_optimiser == "adam"
        else optax.sgd(cfg.naive_lr)
    )
    return optax.chain(optax.clip_by_global_norm(cfg.naive_max_grad_norm), inner)


# --------------------------------------------------------------------------------------
# State and trajectories


class ShapingState(NamedTuple):
    """Training state of one seed (the experiment stacks seeds on a leading axis)."""

    params: Any  # meta agents, leaves [N, ...]
    opt_state: Any  # their optimiser states, leaves [N, ...]
    naive_params: Any  # naive initialisations, leaves [K, ...]
    key: jax.Array
    iteration: jax.Array  # () int32


class Transition(NamedTuple):
    """One lockstep step of ``B`` games; every leaf has a leading ``[B]``."""

    obs: jax.Array  # [B, 2, obs_dim] first-person observations before acting
    actions: jax.Array  # [B, 2] int32
    rewards: jax.Array  # [B, 2] float32, original scale
    log_prob: jax.Array  # [B] meta agent's log pi(a|h)
    value: jax.Array  # [B] meta agent's V(h)


class MetaEpisode(NamedTuple):
    """A meta-episode, ``[B, M*T, ...]`` per step leaf (see :class:`Transition`),
    and per inner episode the naive opponent's loss and the game's events."""

    obs: jax.Array
    actions: jax.Array
    rewards: jax.Array
    log_prob: jax.Array
    value: jax.Array
    naive_loss: jax.Array  # [M] the naive opponent's loss at each boundary
    # grid games: metric stem -> [B, M, 2] per-agent event rates (GRID_EVENTS) or
    # [B, M] levels (GRID_LEVELS) of each inner episode; empty for matrix games
    events: dict[str, jax.Array]


# --------------------------------------------------------------------------------------
# The algorithm


class Shaping:
    """The pure functions of one configuration (rollouts, updates, evaluation)."""

    def __init__(self, cfg: ShapingConfig):
        self.cfg = cfg
        T = cfg.inner_episode_length
        self.env, self.env_params = make_env(cfg.env_id, max_steps=T)
        if self.env.num_agents != 2:
            raise ValueError(
                f"{cfg.env_id} has {self.env.num_agents} agents; the shaping loop "
                "plays two-player games"
            )
        if cfg.network == "tabular" and not hasattr(self.env, "obs_dim"):
            raise ValueError("network='tabular' needs a matrix game")
        self.num_actions = int(self.env.action_space().n)
        self.obs_shape = tuple(self.env.observation_space().shape)
        self.net = make_network(cfg, self.num_actions)
        self.meta_optimiser = make_meta_optimiser(cfg)
        self.naive = A2CLearner(
            net=self.net,
            optimiser=make_naive_optimiser(cfg),
            reward_scale=cfg.naive_reward_scale,
            gamma=cfg.naive_gamma,
            value_coef=cfg.naive_value_coef,
            entropy_coef=cfg.naive_entropy_coef,
            normalize_advantages=cfg.naive_normalize_advantages,
        )
        self.mesh = _batch_mesh(cfg.meta_batch)
        self.events, self.levels = self._grid_events()
        # The estimators the pool uses (in ESTIMATORS order) and, per meta agent,
        # the index of its own among them: a traced input of the vmapped update.
        agent_estimators = cfg.agent_estimators
        self.estimator_kinds = tuple(e for e in ESTIMATORS if e in agent_estimators)
        self.estimator_index = np.asarray(
            [self.estimator_kinds.index(e) for e in agent_estimators], np.int32
        )

    def _grid_events(
        self,
    ) -> tuple[tuple[tuple[str, str, bool], ...], tuple[tuple[str, str], ...]]:
        """The :data:`GRID_EVENTS` in this game's ``info`` (per agent) and the
        :data:`GRID_LEVELS` in its state; none in a 2x2 matrix game."""
        if is_matrix_game(self):
            return (), ()

        def one_step(key):
            _, state = self.env.reset(key, self.env_params)
            actions = jnp.zeros((2,), jnp.int32)
            return self.env.step(key, state, actions, self.env_params)

        ts = jax.eval_shape(one_step, jax.random.key(0))
        events = tuple(
            (key, stem, per_step)
            for key, stem, per_step in GRID_EVENTS
            if key in ts.info and ts.info[key].shape == (2,)
        )
        levels = tuple(
            (field, stem)
            for field, stem in GRID_LEVELS
            if getattr(ts.state, field, None) is not None
            and getattr(ts.state, field).ndim == 2
        )
        return events, levels

    def step_events(self, ts: Any) -> dict[str, jax.Array]:
        """The events of one lockstep step of ``B`` games (``ts`` leaves ``[B, ...]``):
        stem -> ``[B, 2]`` counts and ``[B]`` levels, float32."""
        events = {
            stem: ts.info[key].astype(jnp.float32) for key, stem, _ in self.events
        }
        for field, stem in self.levels:
            grid = getattr(ts.state, field)
            events[stem] = jnp.sum(grid, axis=(-2, -1)).astype(jnp.float32)
        return events

    def event_metric_names(self) -> tuple[str, ...]:
        """The names of the game-event metrics :meth:`play_metrics` reports."""
        names = []
        stems = [stem for _, stem, _ in self.events]
        if self.cfg.p_naive > 0.0:
            for stem in stems:
                names += [f"{stem}_vs_naive", f"naive_{stem}"]
                if stem == "cleaning":
                    names.append("cleaning_discrepancy_vs_naive")
            names += [f"{stem}_vs_naive" for _, stem in self.levels]
        if self.cfg.p_naive < 1.0:
            for stem in stems:
                names.append(f"{stem}_vs_meta")
                if stem == "cleaning":
                    names.append("cleaning_discrepancy_vs_meta")
            names += [f"{stem}_vs_meta" for _, stem in self.levels]
        return tuple(names)

    # ---- initialisation -------------------------------------------------------------

    def init_network(self, key: jax.Array) -> Any:
        obs = jnp.zeros(self.obs_shape, jnp.float32)
        return self.net.init(key, self.net.initial_state(), obs, jnp.ones((), bool))

    def init(self, key: jax.Array) -> ShapingState:
        """Fresh meta agents, optimiser states and naive initialisations."""
        cfg = self.cfg
        key, k_meta, k_naive = jax.random.split(key, 3)
        params = jax.vmap(self.init_network)(jax.random.split(k_meta, cfg.pool_size))
        naive = jax.vmap(self.init_network)(
            jax.random.split(k_naive, cfg.naive_pool_size)
        )
        return ShapingState(
            params=params,
            opt_state=jax.vmap(self.meta_optimiser.init)(params),
            naive_params=naive,
            key=key,
            iteration=jnp.zeros((), jnp.int32),
        )

    def naive_inits(self, state: ShapingState) -> Any:
        """The naive initialisations of this iteration, leaves ``[K, ...]``: the
        static ones, or with ``dynamic_naive_agents`` copies of the current meta
        agents (initialisation ``k`` from meta agent ``k mod pool_size``)."""
        if not self.cfg.dynamic_naive_agents:
            return state.naive_params
        source = np.arange(self.cfg.naive_pool_size) % self.cfg.pool_size
        return jax.tree.map(lambda x: x[source], state.params)

    # ---- rollouts -------------------------------------------------------------------

    def meta_episode(
        self,
        ego_params: Any,
        opp_params: Any,
        opp_is_naive: jax.Array,
        key: jax.Array,
        ego_action: int | None = None,
    ) -> MetaEpisode:
        """``M`` inner episodes on ``B`` games: the meta agent against one opponent.

        A naive opponent resets its state every inner episode and learns at every
        boundary; a meta opponent keeps its context and does not learn.
        ``ego_action`` (static) replaces the meta agent by a fixed action (e.g. 1,
        an always-defector in a matrix game: the evaluation's reference), with the
        same keys, so its opponents see the same random draws.
        """
        cfg = self.cfg
        B, T, M = cfg.batch, cfg.inner_episode_length, cfg.num_inner_episodes
        net, env, env_params = self.net, self.env, self.env_params

        def inner_episode(carry, m):
            opp, opp_opt, ego_h, opp_h, key = carry
            key, k_reset, k_steps = jax.random.split(key, 3)
            obs, env_state = jax.vmap(env.reset, (0, None))(
                jax.random.split(k_reset, B), env_params
            )

            def step(carry, inputs):
                env_state, obs, ego_h, opp_h = carry
                t, key = inputs
                k_ego, k_opp, k_env = jax.random.split(key, 3)
                first = t == 0
                ego_reset = jnp.full((B,), first & (m == 0))
                opp_reset = jnp.full((B,), first & (opp_is_naive | (m == 0)))
                ego_h, ego_out = net.apply(ego_params, ego_h, obs[:, 0], ego_reset)
                opp_h, opp_out = net.apply(opp, opp_h, obs[:, 1], opp_reset)
                ego_dist = distrax.Categorical(logits=ego_out.logits)
                a_ego = ego_dist.sample(seed=k_ego)
                if ego_action is not None:
                    a_ego = jnp.full_like(a_ego, ego_action)
                a_opp = distrax.Categorical(logits=opp_out.logits).sample(seed=k_opp)
                actions = jnp.stack([a_ego, a_opp], axis=-1).astype(jnp.int32)
                ts = jax.vmap(env.step, (0, 0, 0, None))(
                    jax.random.split(k_env, B), env_state, actions, env_params
                )
                transition = Transition(
                    obs=obs,
                    actions=actions,
                    rewards=ts.reward.astype(jnp.float32),
                    log_prob=ego_dist.log_prob(a_ego),
                    value=ego_out.value,
                )
                events = self.step_events(ts)
                return (ts.state, ts.obs, ego_h, opp_h), (transition, events)

            (_, _, ego_h, opp_h), (traj, events) = jax.lax.scan(
                step,
                (env_state, obs, ego_h, opp_h),
                (jnp.arange(T), jax.random.split(k_steps, T)),
            )  # traj leaves [T, B, ...]
            # Per inner episode: per-step events as means, counts as sums over T.
            per_step = {stem for _, stem, flag in self.events if flag}
            per_step |= {stem for _, stem in self.levels}
            events = {
                stem: jnp.mean(x, axis=0) if stem in per_step else jnp.sum(x, axis=0)
                for stem, x in events.items()
            }  # [B, ...]
            new_opp, new_opt, naive_metrics = self.naive.update(
                opp,
                opp_opt,
                traj.obs[:, :, 1],
                traj.actions[..., 1],
                traj.rewards[..., 1],
            )
            opp = _select(opp_is_naive, new_opp, opp)
            opp_opt = _select(opp_is_naive, new_opt, opp_opt)
            naive_loss = naive_metrics["total_loss"]
            return (opp, opp_opt, ego_h, opp_h, key), (traj, naive_loss, events)

        carry = (
            opp_params,
            self.naive.optimiser.init(opp_params),
            net.initial_state((B,)),
            net.initial_state((B,)),
            key,
        )
        _, (traj, naive_loss, events) = jax.lax.scan(
            inner_episode, carry, jnp.arange(M)
        )

        def batch_major(x):  # [M, T, B, ...] -> [B, M*T, ...]
            x = jnp.moveaxis(x, 2, 0)
            return x.reshape(B, M * T, *x.shape[3:])

        return MetaEpisode(
            *jax.tree.map(batch_major, tuple(traj)),
            naive_loss,
            {stem: jnp.moveaxis(x, 1, 0) for stem, x in events.items()},  # [B, M, ...]
        )

    def play(
        self,
        params: Any,
        naive_params: Any,
        opp_is_naive: jax.Array,
        opp_index: jax.Array,
        keys: jax.Array,
        shard: bool = True,
        ego_action: int | None = None,
    ) -> MetaEpisode:
        """Meta-episodes of every meta agent against its drawn opponents.

        Args:
          params: meta agents, leaves ``[N, ...]``.
          naive_params: naive initialisations, leaves ``[K, ...]``.
          opp_is_naive: ``[N, E]`` bool.
          opp_index: ``[N, E]`` int32, into the naive pool or the meta pool.
          keys: ``[N, E]`` keys.
          shard: split ``E`` over the devices (``False`` for any other ``E``,
            e.g. the evaluation's meta-batch).
          ego_action: play this fixed action in place of the meta agents
            (:meth:`meta_episode`).

        Returns:
          :class:`MetaEpisode` with leaves ``[N, E, B, M*T, ...]``.
        """
        if shard:
            opp_is_naive, opp_index, keys = (
                self._shard(x) for x in (opp_is_naive, opp_index, keys)
            )

        def opponent(is_naive, index):
            naive = jax.tree.map(lambda x: x[index], naive_params)
            meta = jax.tree.map(lambda x: x[index], params)
            return _select(is_naive, naive, meta)

        opponents = jax.vmap(jax.vmap(opponent))(opp_is_naive, opp_index)
        meta_episode = functools.partial(self.meta_episode, ego_action=ego_action)
        per_agent = jax.vmap(meta_episode, in_axes=(None, 0, 0, 0))
        return jax.vmap(per_agent)(params, opponents, opp_is_naive, keys)

    def draw_opponents(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``[N, E]`` opponent kinds and indices: naive w.p. ``p_naive``, uniform
        with replacement, never oneself."""
        cfg = self.cfg
        N, E = cfg.pool_size, cfg.meta_batch
        k_kind, k_naive, k_meta = jax.random.split(key, 3)
        is_naive = jax.random.uniform(k_kind, (N, E)) < cfg.p_naive
        naive_index = jax.random.randint(k_naive, (N, E), 0, cfg.naive_pool_size)
        offset = jax.random.randint(k_meta, (N, E), 1, max(N, 2))
        meta_index = (jnp.arange(N)[:, None] + offset) % N
        index = jnp.where(is_naive, naive_index, meta_index).astype(jnp.int32)
        return is_naive, index

    # ---- the meta update ------------------------------------------------------------

    def advantages(
        self, episode: MetaEpisode, is_naive: jax.Array, estimator: Any = 0
    ) -> tuple[jax.Array, jax.Array]:
        """Advantages and value targets ``[B, L]`` of one meta-episode of an agent
        whose estimator is ``estimator_kinds[estimator]`` (``()`` int; the only
        one in a pool of one estimator)."""
        cfg = self.cfg
        rewards = episode.rewards[..., 0] * cfg.reward_scale
        kwargs = {
            "discount": cfg.gamma,
            "inner_episode_length": cfg.inner_episode_length,
        }
        targets = estimators.td_lambda_targets(
            rewards, episode.value, lambda_=cfg.lambda_td, **kwargs
        )
        vs_naive = None
        for i, kind in enumerate(self.estimator_kinds):
            adv = _GAE[kind](rewards, episode.value, lambda_=cfg.lambda_gae, **kwargs)
            if kind == "coala" and cfg.scale_coala:
                adv = estimators.scale_coala_advantages(adv)
            vs_naive = (
                adv if vs_naive is None else jnp.where(estimator == i, adv, vs_naive)
            )
        vs_meta = estimators.batch_unaware_gae(
            rewards, episode.value, lambda_=cfg.lambda_gae, **kwargs
        )
        return jnp.where(is_naive, vs_naive, vs_meta), targets

    def meta_loss(
        self,
        params: Any,
        obs: jax.Array,
        actions: jax.Array,
        old_log_prob: jax.Array,
        old_value: jax.Array,
        advantages: jax.Array,
        targets: jax.Array,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """PPO or A2C loss on ``[S, L, ...]`` whole meta-trajectories."""
        cfg = self.cfg
        S, L = actions.shape
        _, out = self.net.apply(
            params,
            self.net.initial_state((S,)),
            jnp.swapaxes(obs, 0, 1),
            first_step_resets(L, S),
            method="unroll",
        )
        logits = jnp.swapaxes(out.logits, 0, 1)
        values = jnp.swapaxes(out.value, 0, 1)
        dist = distrax.Categorical(logits=logits)
        log_prob, entropy = dist.log_prob(actions), dist.entropy()
        if cfg.algorithm == "a2c":
            return losses.a2c_loss(
                log_prob,
                advantages,
                values,
                targets,
                entropy,
                value_coef=cfg.value_coef,
                entropy_coef=cfg.entropy_coef,
            )
        return losses.ppo_loss(
            log_prob,
            old_log_prob,
            advantages,
            values,
            targets,
            entropy,
            clip_eps=cfg.clip_eps,
            value_coef=cfg.value_coef,
            entropy_coef=cfg.entropy_coef,
            old_values=old_value if cfg.value_clip else None,
            value_clip_eps=cfg.clip_eps if cfg.value_clip else None,
        )

    def agent_update(
        self,
        params: Any,
        opt_state: Any,
        episodes: MetaEpisode,
        is_naive: jax.Array,
        key: jax.Array,
        estimator: jax.Array,
    ) -> tuple[Any, Any, dict[str, jax.Array]]:
        """One meta agent's update from its meta-batch (leaves ``[E, B, L, ...]``);
        ``estimator`` indexes :attr:`estimator_kinds`."""
        cfg = self.cfg
        advantages, targets = jax.vmap(self.advantages, in_axes=(0, 0, None))(
            episodes, is_naive, estimator
        )
        if cfg.normalize_advantages:
            advantages = _centre_by_kind(advantages, is_naive)
        E, B, L = advantages.shape

        def sequences(x):  # [E, B, L, ...] -> [E*B, L, ...]
            return x.reshape(E * B, *x.shape[2:])

        data = (
            sequences(episodes.obs[:, :, :, 0]),
            sequences(episodes.actions[..., 0]),
            sequences(episodes.log_prob),
            sequences(episodes.value),
            sequences(advantages),
            sequences(targets),
        )

        # The sequences of one gradient step, and the chunks their gradient is
        # accumulated over (several on a CPU, where chunks stay in cache).
        step_sequences = E * B // cfg.minibatches
        value_and_grad = losses.chunked_value_and_grad(
            self.meta_loss, losses.grad_chunks(step_sequences, L)
        )

        def gradient_step(carry, batch):
            params, opt_state = carry
            (_, metrics), grads = value_and_grad(params, *batch)
            metrics["grad_norm"] = optax.tree.norm(grads)
            updates, opt_state = self.meta_optimiser.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        if cfg.algorithm == "a2c":
            (params, opt_state), metrics = gradient_step((params, opt_state), data)
            return params, opt_state, metrics

        num_mb = cfg.ppo_minibatches

        def epoch(carry, key):
            order = jax.random.permutation(key, E * B)
            batches = jax.tree.map(
                lambda x: x[order].reshape(num_mb, -1, *x.shape[1:]), data
            )
            return jax.lax.scan(gradient_step, carry, batches)

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(key, cfg.ppo_epochs)
        )
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    def update(self, state: ShapingState) -> tuple[ShapingState, dict[str, jax.Array]]:
        """One training iteration of one seed; metrics are ``[N]`` per agent."""
        cfg = self.cfg
        N, E = cfg.pool_size, cfg.meta_batch
        key, k_opp, k_play, k_update = jax.random.split(state.key, 4)
        is_naive, index = self.draw_opponents(k_opp)
        keys = jax.random.split(k_play, N * E).reshape(N, E)
        naive_params = self.naive_inits(state)
        episodes = self.play(state.params, naive_params, is_naive, index, keys)
        params, opt_state, loss_metrics = jax.vmap(self.agent_update)(
            state.params,
            state.opt_state,
            episodes,
            is_naive,
            jax.random.split(k_update, N),
            jnp.asarray(self.estimator_index),
        )
        metrics = dict(loss_metrics)
        metrics.update(self.play_metrics(episodes, is_naive))
        naive_loss = jnp.mean(episodes.naive_loss, axis=-1)  # [N, E]
        metrics["naive_loss"] = _masked_mean(naive_loss, is_naive)
        # Always defined (0 without naive opponents), non-finite if any naive
        # learner's loss is: the finiteness check of the naive learners.
        metrics["naive_loss_max"] = jnp.max(
            jnp.where(is_naive, jnp.abs(naive_loss), 0.0), axis=-1
        )
        new_state = ShapingState(
            params=params,
            opt_state=opt_state,
            naive_params=state.naive_params,
            key=key,
            iteration=state.iteration + 1,
        )
        return new_state, metrics

    def play_metrics(
        self, episodes: MetaEpisode, is_naive: jax.Array
    ) -> dict[str, jax.Array]:
        """Per-agent ``[N]`` metrics against each opponent kind.

        Every game: rewards. 2x2 matrix games: cooperation (action 0). Grid games:
        the events of :attr:`events` and :attr:`levels` (:meth:`event_metric_names`):
        ``<stem>_vs_naive`` the meta agent's, ``naive_<stem>`` its naive
        co-player's, ``cleaning_discrepancy_vs_naive`` the meta agent's cleaning
        share minus its co-player's (signed), and the same ``_vs_meta`` for the
        meta agent against other meta agents; levels are of the shared map.
        """
        cfg = self.cfg
        reward = jnp.mean(episodes.rewards, axis=(2, 3))  # [N, E, 2]
        M, T = cfg.num_inner_episodes, cfg.inner_episode_length
        last = episodes.rewards[:, :, :, (M - 1) * T :]
        last_reward = jnp.mean(last, axis=(2, 3))  # [N, E, 2]
        matrix_game = is_matrix_game(self)
        if matrix_game:
            cooperation = jnp.mean(episodes.actions == 0, axis=(2, 3))  # [N, E, 2]
        # [N, E, 2] per-agent events, [N, E] levels: means over games and episodes
        events = {stem: jnp.mean(x, axis=(2, 3)) for stem, x in episodes.events.items()}
        metrics = {}
        if cfg.p_naive > 0.0:
            metrics.update(
                reward_vs_naive=_masked_mean(reward[..., 0], is_naive),
                naive_reward=_masked_mean(reward[..., 1], is_naive),
            )
            if matrix_game:
                metrics.update(
                    cooperation_vs_naive=_masked_mean(cooperation[..., 0], is_naive),
                    naive_cooperation=_masked_mean(cooperation[..., 1], is_naive),
                )
            metrics.update(
                last_episode_reward_vs_naive=_masked_mean(
                    last_reward[..., 0], is_naive
                ),
                last_episode_naive_reward=_masked_mean(last_reward[..., 1], is_naive),
            )
            metrics.update(self._event_metrics(events, is_naive, "naive"))
        if cfg.p_naive < 1.0:
            metrics["reward_vs_meta"] = _masked_mean(reward[..., 0], ~is_naive)
            if matrix_game:
                metrics["cooperation_vs_meta"] = _masked_mean(
                    cooperation[..., 0], ~is_naive
                )
            metrics.update(self._event_metrics(events, ~is_naive, "meta"))
        return metrics

    def _event_metrics(
        self, events: dict[str, jax.Array], mask: jax.Array, kind: str
    ) -> dict[str, jax.Array]:
        """The event metrics against one opponent kind (``"naive"`` or ``"meta"``)."""
        metrics = {}
        for _, stem, _ in self.events:
            x = events[stem]  # [N, E, 2]
            metrics[f"{stem}_vs_{kind}"] = _masked_mean(x[..., 0], mask)
            if kind == "naive":
                metrics[f"naive_{stem}"] = _masked_mean(x[..., 1], mask)
            if stem == "cleaning":
                metrics[f"cleaning_discrepancy_vs_{kind}"] = _masked_mean(
                    x[..., 0] - x[..., 1], mask
                )
        for _, stem in self.levels:
            metrics[f"{stem}_vs_{kind}"] = _masked_mean(events[stem], mask)
        return metrics

    # ---- sharding -------------------------------------------------------------------

    def _shard(self, x: jax.Array) -> jax.Array:
        """Constrain ``[N, E, ...]`` to be split along the meta-batch axis ``E``."""
        if self.mesh is None:
            return x
        spec = jax.sharding.PartitionSpec(None, "batch")
        return jax.lax.with_sharding_constraint(
            x, jax.sharding.NamedSharding(self.mesh, spec)
        )


def _batch_mesh(meta_batch: int) -> jax.sharding.Mesh | None:
    """:func:`~dilemmas.training.sharding.batch_mesh`, if the devices divide the
    meta-batch."""
    mesh = batch_mesh()
    if mesh is not None and meta_batch % mesh.devices.size:
        raise ValueError(
            f"meta_batch = {meta_batch} must be a multiple of the "
            f"{mesh.devices.size} devices to shard it; change meta_batch or limit "
            "the visible devices"
        )
    return mesh


def _select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``x`` ``[N, E]`` over ``E`` where ``mask``; NaN where none is."""
    count = jnp.sum(mask, axis=-1)
    total = jnp.sum(jnp.where(mask, x, 0.0), axis=-1)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def _centre_by_kind(advantages: jax.Array, is_naive: jax.Array) -> jax.Array:
    """Subtract the mean advantage of each opponent kind (``[E, B, L]``, ``[E]``)."""
    mask = jnp.broadcast_to(is_naive[:, None, None], advantages.shape)

    def mean_where(m):
        return jnp.sum(jnp.where(m, advantages, 0.0)) / jnp.maximum(jnp.sum(m), 1)

    return advantages - jnp.where(mask, mean_where(mask), mean_where(~mask))


def is_matrix_game(algo: Shaping) -> bool:
    """Whether ``algo`` plays a 2x2 matrix game (cooperation is action 0)."""
    return hasattr(algo.env_params, "payoffs") and algo.num_actions == 2


# --------------------------------------------------------------------------------------
# Training entry points


def make_train(cfg: ShapingConfig) -> Callable[[jax.Array], tuple[ShapingState, Any]]:
    """``train(key) -> (final state, metrics)`` for one seed, pure and jittable.

    Metrics are stacked over iterations (``[iterations, N]`` each). Seeds:
    ``jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(key, n))``.
    """
    algo = Shaping(cfg)

    def train(key: jax.Array) -> tuple[ShapingState, Any]:
        state = algo.init(key)
        return jax.lax.scan(lambda s, _: algo.update(s), state, length=cfg.iterations)

    return train


class ShapingExperiment:
    """:class:`~dilemmas.training.experiment.Experiment` for ``dilemmas train``."""

    kind = "shaping"

    def __init__(self, config: ShapingConfig):
        self.config = config
        self.algo = Shaping(config)
        self.iterations = config.iterations
        # naive_loss is undefined (NaN) in an iteration without naive opponents;
        # naive_loss_max is its always-defined stand-in for the finiteness check.
        self.loss_metrics = (
            "total_loss",
            "policy_loss",
            "value_loss",
            "naive_loss_max",
        )
        events = self.algo.event_metric_names()
        progress = []
        if config.p_naive > 0.0:
            progress += ["reward_vs_naive", "naive_reward"]
            progress += [
                name
                for name in ("cleaning_discrepancy_vs_naive", "zap_rate_vs_naive")
                if name in events
            ]
        if config.p_naive < 1.0:
            progress.append("reward_vs_meta")
        self.progress_metrics = tuple(progress)
        # The headline of summary.json: the reward metrics, cooperation in a matrix
        # game, the main events in a grid game (those that the run reports).
        headline = [
            "reward_vs_naive",
            "naive_reward",
            "last_episode_reward_vs_naive",
            "last_episode_naive_reward",
            "cooperation_vs_naive",
            "naive_cooperation",
        ]
        headline += [
            name
            for name in (
                "cleaning_vs_naive",
                "naive_cleaning",
                "cleaning_discrepancy_vs_naive",
                "zap_rate_vs_naive",
                "naive_zap_rate",
                "zapped_vs_naive",
                "naive_zapped",
                "pollution_vs_naive",
                "apple_level_vs_naive",
                "own_coins_vs_naive",
                "other_coins_vs_naive",
                "naive_own_coins",
                "naive_other_coins",
            )
            if name in events
        ]
        headline += ["reward_vs_meta", "cooperation_vs_meta"]
        headline += [
            name
            for name in (
                "cleaning_discrepancy_vs_meta",
                "zap_rate_vs_meta",
                "own_coins_vs_meta",
                "other_coins_vs_meta",
            )
            if name in events
        ]
        self.headline_metrics = tuple(headline)

    def init(self, key: jax.Array) -> ShapingState:
        keys = jax.random.split(key, self.config.num_seeds)
        return jax.vmap(self.algo.init)(keys)

    def update(self, state: ShapingState) -> tuple[ShapingState, dict[str, jax.Array]]:
        return jax.vmap(self.algo.update)(state)

    def params(self, state: ShapingState) -> Any:
        return state.params

    def policies(self, state: ShapingState) -> dict[str, Trained]:
        """The meta agents as policies (``meta_0`` ...; see
        :func:`dilemmas.agents.load_policy`)."""
        agent = NetworkPolicy(None, self.algo.net)
        return {
            f"meta_{i}": Trained(
                agent,
                jax.tree.map(lambda x, i=i: x[:, i], state.params),
                self.algo.obs_shape,
                self.config.env_id,
            )
            for i in range(self.config.pool_size)
        }

    def summary(self, state: ShapingState, metrics: Mapping[str, Any]) -> dict:
        """Per seed, each headline metric's mean over the pool; in a pool of
        several estimators also ``"<metric> [<estimator>]"``, the mean over the
        agents of that estimator."""
        del state
        agent_estimators = np.asarray(self.config.agent_estimators)
        kinds = self.algo.estimator_kinds
        summary = {}
        for name in self.headline_metrics:
            if name not in metrics:
                continue
            values = np.asarray(metrics[name], np.float64)  # [seeds, agents]
            summary[name] = values.mean(axis=-1).tolist()
            if len(kinds) > 1:
                for kind in kinds:
                    mine = values[..., agent_estimators == kind]
                    summary[f"{name} [{kind}]"] = mine.mean(axis=-1).tolist()
        return summary

    def evaluate(self, state: ShapingState) -> dict[str, Any]:
        """The ``evaluation.json`` record
        (:func:`dilemmas.training.shaping_eval.evaluate`)."""
        from dilemmas.training.shaping_eval import evaluate

        return evaluate(self.algo, state)
