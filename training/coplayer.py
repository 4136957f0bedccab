"""In-context co-player inference: independent A2C learners on sequence models
against mixed pools (Weis et al. 2026, arXiv:2602.16301; spec
``coplayer_inference.md`` §1, §2, §4).

No naive/meta split: every learner is one recurrent policy (a GRU over its own
stream, :class:`dilemmas.agents.networks.GRUPolicy`) trained by independent A2C on
whole episodes of ``T = 100`` rounds, and it can only become learning-aware *in
context*, by inferring from the history who it plays. One training iteration,
compiled end to end:

1. **Games.** Every learner plays ``batch`` episodes: a share ``learner_share``
   against the other learners (each unordered pair plays
   ``learner_share * batch / (N - 1)`` episodes, whose data serve both members)
   and the rest against the fixed co-players of ``pool``
   (:mod:`dilemmas.training.pool`: random tabular agents drawn fresh every
   episode, named strategies, frozen trained agents), one entry drawn per episode
   with the pool's weights. No identity signal reaches a learner, unless
   ``opponent_id`` gives it the spec's ``z`` vector as a first token (the
   ablation of §1.4). Both kinds of games are one ``lax.scan`` over rounds,
   vmapped over pairs or learners, with the episode axis sharded over the devices.
2. **Advantages.** GAE(λ) with a learned value, TD(λ) value targets, rewards
   multiplied by ``reward_scale``, the episode end terminal
   (:mod:`dilemmas.training.estimators` with one episode of ``T`` steps), optional
   centring of the advantages.
3. **Update.** One A2C gradient step per learner on its ``batch`` episodes
   (:func:`dilemmas.agents.losses.a2c_loss`), Adam after global-norm clipping,
   from the parameters every learner had at the start of the iteration.

:class:`CoplayerExperiment` runs this under ``dilemmas train`` (the presets at the
end: the paper's Table 2 columns and CPU-scale siblings); ``make_train(cfg)``
returns a jittable ``train(key)`` for scripts. The mechanism experiments chain run
directories: step 2 plays ``frozen:RUN_DIR`` of step 1, step 3 starts from
``init_from=RUN_DIR`` of step 2. The evaluation written at the end
(:mod:`dilemmas.training.coplayer_eval`) plays every learner against the other
learners, the pool and the probe strategies (AllC, AllD, TFT, random tabular)
and records within-episode curves and the gap to the exact best response.

Conventions: a learner is player 0 of its games against fixed co-players; rewards
in metrics are per round on the game's original scale; a metric of a pairing that
an iteration did not play is absent (no learner games, no pool).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dilemmas.agents import losses
from dilemmas.agents.networks import GRUPolicy, TabularPolicy
from dilemmas.agents.policy import NetworkPolicy, Trained, learners, own_payoffs
from dilemmas.agents.sequence import SequenceInputs
from dilemmas.envs import make as make_env
from dilemmas.envs.matrix_games import MatrixGame
from dilemmas.training import estimators
from dilemmas.training.configs import (
    check_choices,
    check_env_id,
    check_floats,
    check_ints,
    check_seeds,
)
from dilemmas.training.pool import (
    FixedPool,
    FrozenAgent,
    PoolState,
    check_pool_game,
    load_learners,
    parse_pool,
)
from dilemmas.training.sharding import batch_mesh, shard_leading

NETWORKS = ("gru", "tabular")


@dataclass(frozen=True)
class CoplayerConfig:
    """Every setting of an in-context co-player inference run (A2C learners).

    Defaults are the paper's mixed-pool run (Table 2, "Step 4"; spec §2): two GRU
    learners (hidden 128, embeddings 32, Swish), half of the episodes against each
    other and half against fresh random tabular agents, 100-round IPD episodes,
    batch 4096, reward scale 0.02, gamma 0.99, GAE and TD lambda 1, value
    coefficient 0.5, entropy 0.01, Adam 1e-3 (eps 1e-5), gradient norm 1.

    Attributes:
      name: label for reports.
      env_id: a registered two-player game; ``max_steps`` is set to
        ``episode_length``.
      episode_length: rounds per episode (``T``).
      num_learners: learners in the population (``N``), each with its own
        parameters.
      learner_share: share of each learner's episodes played against other
        learners; the rest are played against ``pool``.
      pool: the fixed co-players (:mod:`dilemmas.training.pool` syntax), e.g.
        ``"random_tabular"`` or ``"frozen:runs/step1"``; may be empty when
        ``learner_share == 1``.
      opponent_id: the Opponent-ID ablation: a first token with the co-player's
        log-probability table (zero for learners).
      input_prev_action, input_prev_reward: also feed the previous own action and
        reward (the observation alone by default, as the spec describes).
      init_from: a co-player inference run directory whose learners' parameters
        start this run (learner ``i`` of seed ``s`` takes the source's
        ``(seed, learner)`` entry number ``(s * N + i) mod count``); empty for a
        fresh initialisation. Its network settings must match.
      network: ``"gru"`` (the paper) or ``"tabular"`` (a memory-one table: the
        benchmark's upper reference; matrix games, observation input only).
      hidden, embed: GRU hidden size and input embedding size.
      iterations: updates (one A2C step per learner each).
      batch: episodes per learner and iteration.
      normalize_advantages: centre the advantages over the batch.
      reward_scale, gamma, lambda_td, lambda_gae: learning signals.
      value_coef, entropy_coef: loss weights.
      lr, adam_eps, max_grad_norm: Adam after global-norm clipping.
      num_seeds: independent runs, vmapped.
      seed: base seed.
      eval_episodes: episodes per learner and co-player in the final evaluation.
    """

    name: str = "custom"
    env_id: str = "ipd-v0"
    episode_length: int = 100
    num_learners: int = 2
    learner_share: float = 0.5
    pool: str = "random_tabular"
    opponent_id: bool = False
    input_prev_action: bool = False
    input_prev_reward: bool = False
    init_from: str = ""
    network: str = "gru"
    hidden: int = 128
    embed: int = 32
    iterations: int = 200_000
    batch: int = 4096
    normalize_advantages: bool = True
    reward_scale: float = 0.02
    gamma: float = 0.99
    lambda_td: float = 1.0
    lambda_gae: float = 1.0
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    lr: float = 1e-3
    adam_eps: float = 1e-5
    max_grad_norm: float = 1.0
    num_seeds: int = 1
    seed: int = 0
    eval_episodes: int = 256

    def __post_init__(self):
        check_seeds(self)
        check_ints(
            self,
            {
                "episode_length": (1, 100_000),
                "num_learners": (1, 1024),
                "hidden": (1, 65_536),
                "embed": (1, 65_536),
                "iterations": 1,
                "batch": (1, 1 << 24),
                "num_seeds": (1, 65_536),
                "eval_episodes": (1, 1 << 20),
            },
        )
        check_floats(
            self,
            ("learner_share", "gamma", "lambda_td", "lambda_gae"),
            low=0.0,
            high=1.0,
        )
        check_floats(
            self,
            ("lr", "adam_eps", "max_grad_norm", "reward_scale"),
            low=0.0,
            low_open=True,
        )
        check_floats(self, ("value_coef", "entropy_coef"), low=0.0)
        for field in ("opponent_id", "input_prev_action", "input_prev_reward"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{field} must be true or false")
        check_choices(self, {"network": NETWORKS})
        entries = parse_pool(self.pool)
        tabular_inputs = (self.opponent_id, self.input_prev_action)
        if self.network == "tabular" and (
            any(tabular_inputs) or self.input_prev_reward
        ):
            raise ValueError(
                "network='tabular' reads the observation only: it cannot take "
                "opponent_id, input_prev_action or input_prev_reward"
            )
        if self.learner_share > 0.0 and self.num_learners < 2:
            raise ValueError(
                f"learner_share = {self.learner_share} > 0 needs num_learners >= 2 "
                "(a learner never plays itself)"
            )
        if self.learner_share < 1.0 and not entries:
            raise ValueError(
                f"learner_share = {self.learner_share} < 1 needs co-players in pool "
                "(e.g. pool=random_tabular), or set learner_share=1"
            )
        vs_learners = self.learner_episodes
        if self.num_learners > 1 and vs_learners % (self.num_learners - 1):
            raise ValueError(
                f"learner_share * batch = {vs_learners} episodes against learners "
                f"must split evenly over the {self.num_learners - 1} other learners"
            )
        if self.opponent_id and any(not e.is_table for e in entries):
            raise ValueError(
                "opponent_id needs a pool of memory-one co-players (random_tabular "
                "or memory-one strategies); the spec's z is their log-probability "
                "table"
            )
        if not isinstance(self.init_from, str):
            raise ValueError(f"init_from must be a path string, got {self.init_from!r}")
        check_env_id(self)

    def memory_estimate_bytes(self) -> dict[str, int]:
        """A lower bound of one iteration's memory, by the fields that drive it
        (checked by the run driver before anything compiles)."""
        games = self.num_seeds * self.num_learners * self.batch * self.episode_length
        activations = 4 * games * (4 * self.hidden + 3 * self.embed)
        weights = (
            16
            * self.num_seeds
            * self.num_learners
            * (3 * self.hidden * (self.hidden + self.embed) + 64 * self.embed)
        )
        return {
            "num_seeds * num_learners * batch * episode_length * hidden "
            "(GRU activations kept for the gradient)": activations,
            "num_seeds * num_learners * hidden**2 (parameters, Adam)": weights,
        }

    @property
    def learner_episodes(self) -> int:
        """Episodes per learner and iteration against other learners."""
        if self.num_learners < 2:
            return 0
        return int(round(self.learner_share * self.batch))

    @property
    def pool_episodes(self) -> int:
        """Episodes per learner and iteration against the pool."""
        return self.batch - self.learner_episodes

    @property
    def steps_per_iteration(self) -> int:
        """Learner rounds played per iteration, over the whole population."""
        return self.num_learners * self.batch * self.episode_length

    def replace(self, **changes: Any) -> CoplayerConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def experiment(self) -> CoplayerExperiment:
        """The run-driver view of this config (``dilemmas train``); reads the
        run directories of frozen co-players and ``init_from``."""
        return CoplayerExperiment(self)


# --------------------------------------------------------------------------------------
# Networks


def sequence_inputs(cfg: CoplayerConfig, env: Any) -> SequenceInputs:
    """What a learner of ``cfg`` reads in ``env``."""
    return SequenceInputs(
        obs_shape=tuple(env.observation_space().shape),
        num_actions=int(env.action_space().n),
        prev_action=cfg.input_prev_action,
        prev_reward=cfg.input_prev_reward,
        opponent_id=cfg.opponent_id,
    )


def make_network(cfg: CoplayerConfig, num_actions: int) -> GRUPolicy | TabularPolicy:
    """The learners' policy-value network: the GRU (Swish on its output) or, as a
    reference, a memory-one table."""
    if cfg.network == "tabular":
        return TabularPolicy(num_actions=num_actions)
    return GRUPolicy(
        num_actions=num_actions, hidden_size=cfg.hidden, embed_dim=cfg.embed
    )


def learner_template(cfg: CoplayerConfig) -> Any:
    """Zero parameters of every learner of every seed, ``[S, N, ...]`` leaves
    (the layout of ``CoplayerState.params``)."""
    env, _ = make_env(cfg.env_id, max_steps=cfg.episode_length)
    inputs = sequence_inputs(cfg, env)
    net = make_network(cfg, inputs.num_actions)
    shapes = jax.eval_shape(
        lambda: net.init(
            jax.random.key(0), net.initial_state(), jnp.zeros(inputs.dim), True
        )
    )
    lead = (cfg.num_seeds, cfg.num_learners)
    return jax.tree.map(lambda s: np.zeros(lead + s.shape, s.dtype), shapes)


# --------------------------------------------------------------------------------------
# State and games


class CoplayerState(NamedTuple):
    """Training state of one seed (the experiment stacks seeds on a leading axis)."""

    params: Any  # learners, leaves [N, ...]
    opt_state: Any  # their optimiser states, leaves [N, ...]
    frozen: tuple  # frozen co-players' parameters, one pytree per frozen entry
    key: jax.Array
    iteration: jax.Array  # () int32


class Games(NamedTuple):
    """``B`` episodes of ``T`` rounds; leaves ``[B, T, ...]`` (``[B, T, 2]`` for
    both players, ``[B, 2, 10]`` for ``z``)."""

    obs: jax.Array  # [B, T, 2, *obs_shape] observations before acting
    actions: jax.Array  # [B, T, 2] int32
    rewards: jax.Array  # [B, T, 2] original scale
    value: jax.Array  # [B, T, 2] learners' V(h_t) (0 for fixed co-players)
    policy: jax.Array  # [B, T, 2, A] learners' action probabilities
    z: jax.Array  # [B, 2, 10] the Opponent-ID vector each player read


class Learner(NamedTuple):
    """One side of a game played by a learner network."""

    params: Any
    z: jax.Array | None  # [B, 10] the Opponent-ID vector, or None without it


class Fixed(NamedTuple):
    """One side of a game played by the fixed pool."""

    pool: FixedPool
    frozen_params: tuple
    start: PoolState  # the co-players of the B episodes (FixedPool.start)


# --------------------------------------------------------------------------------------
# The algorithm


class Coplayer:
    """The pure functions of one configuration (games, updates)."""

    def __init__(self, cfg: CoplayerConfig, frozen: tuple[FrozenAgent, ...] = ()):
        self.cfg = cfg
        self.env, self.env_params = make_env(cfg.env_id, max_steps=cfg.episode_length)
        if self.env.num_agents != 2:
            raise ValueError(
                f"{cfg.env_id} has {self.env.num_agents} agents; co-player inference "
                "plays two-player games"
            )
        self.is_matrix_game = isinstance(self.env, MatrixGame)
        self.entries = parse_pool(cfg.pool)
        check_pool_game(self.entries, self.env, cfg.env_id)
        self.inputs = sequence_inputs(cfg, self.env)
        self.num_actions = self.inputs.num_actions
        self.net = make_network(cfg, self.num_actions)
        self.optimiser = optax.chain(
            optax.clip_by_global_norm(cfg.max_grad_norm),
            optax.adam(cfg.lr, eps=cfg.adam_eps),
        )
        self.frozen = frozen
        self.pool = (
            FixedPool(self.entries, frozen, self.num_actions)
            if self.entries and cfg.pool_episodes
            else None
        )
        N = cfg.num_learners
        self.pairs = [(i, j) for i in range(N) for j in range(i + 1, N)]
        self.mesh = batch_mesh()

    # ---- initialisation -------------------------------------------------------------

    def init_network(self, key: jax.Array) -> Any:
        x = jnp.zeros((self.inputs.dim,), jnp.float32)
        return self.net.init(key, self.net.initial_state(), x, jnp.ones((), bool))

    def init(
        self, key: jax.Array, params: Any = None, frozen_params: tuple = ()
    ) -> CoplayerState:
        """Fresh learners (or ``params``, leaves ``[N, ...]``) and their optimisers."""
        key, k_init = jax.random.split(key)
        if params is None:
            keys = jax.random.split(k_init, self.cfg.num_learners)
            params = jax.vmap(self.init_network)(keys)
        return CoplayerState(
            params=params,
            opt_state=jax.vmap(self.optimiser.init)(params),
            frozen=tuple(frozen_params),
            key=key,
            iteration=jnp.zeros((), jnp.int32),
        )

    # ---- games ----------------------------------------------------------------------

    def _start(self, side: Any, key: jax.Array, batch: int):
        """The recurrent carry of one side at the start of ``batch`` episodes."""
        if hasattr(side, "start_carry"):
            return side.start_carry(key, batch)
        if isinstance(side, Fixed):
            return side.start
        carry = self.net.initial_state((batch,))
        if side.z is not None:
            carry, _ = self.net.apply(
                side.params, carry, self.inputs.z_token(side.z), jnp.ones(batch, bool)
            )
        return carry

    def _act(self, side, carry, obs, prev_action, prev_reward, key):
        """One round of one side: new carry, actions ``[B]``, value ``[B]`` and
        action probabilities ``[B, A]`` (zeros for fixed co-players)."""
        batch = prev_action.shape[0]
        if hasattr(side, "act"):
            return side.act(carry, obs, prev_action, prev_reward, key)
        if isinstance(side, Fixed):
            carry, action = side.pool.step(
                side.frozen_params, carry, obs, prev_action, prev_reward, key
            )
            zeros = jnp.zeros((batch,), jnp.float32)
            return carry, action, zeros, jnp.zeros((batch, self.num_actions))
        x = self.inputs.step(obs, prev_action, prev_reward)
        carry, out = self.net.apply(side.params, carry, x, jnp.zeros((batch,), bool))
        action = jax.random.categorical(key, out.logits).astype(jnp.int32)
        return carry, action, out.value, jax.nn.softmax(out.logits)

    def learner_side(self, params: Any, z: jax.Array | None) -> Any:
        """The side a learner with ``params`` plays (a :class:`Learner`; an
        algorithm with another kind of learner on the same games overrides it)."""
        return Learner(params, z)

    def play(self, side0, side1, key: jax.Array, batch: int) -> Games:
        """``batch`` episodes of ``side0`` (player 0) against ``side1``.

        A side is a :class:`Learner`, a :class:`Fixed` pool, or any object with
        ``start_carry(key, batch) -> carry`` and ``act(carry, obs, prev_action,
        prev_reward, key) -> (carry, actions [B], values [B], probs [B, A])``
        (another kind of agent, e.g. a model-based one).
        """
        env, env_params, T = self.env, self.env_params, self.cfg.episode_length
        k_reset, k_start0, k_start1, k_steps = jax.random.split(key, 4)
        obs, env_state = jax.vmap(env.reset, (0, None))(
            jax.random.split(k_reset, batch), env_params
        )
        obs, env_state = shard_leading(self.mesh, (obs, env_state))
        carries = (
            self._start(side0, k_start0, batch),
            self._start(side1, k_start1, batch),
        )
        prev_action = jnp.full((batch, 2), -1, jnp.int32)
        prev_reward = jnp.zeros((batch, 2), jnp.float32)

        def round_(carry, key):
            env_state, obs, (c0, c1), prev_action, prev_reward = carry
            k0, k1, k_env = jax.random.split(key, 3)
            c0, a0, v0, p0 = self._act(
                side0, c0, obs[:, 0], prev_action[:, 0], prev_reward[:, 0], k0
            )
            c1, a1, v1, p1 = self._act(
                side1, c1, obs[:, 1], prev_action[:, 1], prev_reward[:, 1], k1
            )
            actions = jnp.stack([a0, a1], axis=-1)
            ts = jax.vmap(env.step, (0, 0, 0, None))(
                jax.random.split(k_env, batch), env_state, actions, env_params
            )
            rewards = ts.reward.astype(jnp.float32)
            record = (
                obs,
                actions,
                rewards,
                jnp.stack([v0, v1], -1),
                jnp.stack([p0, p1], -2),
            )
            return (ts.state, ts.obs, (c0, c1), actions, rewards), record

        _, record = jax.lax.scan(
            round_,
            (env_state, obs, carries, prev_action, prev_reward),
            jax.random.split(k_steps, T),
        )
        obs, actions, rewards, value, policy = jax.tree.map(
            lambda x: jnp.swapaxes(x, 0, 1), record
        )
        z = [
            side.z if getattr(side, "z", None) is not None else jnp.zeros((batch, 10))
            for side in (side0, side1)
        ]
        return Games(obs, actions, rewards, value, policy, jnp.stack(z, axis=1))

    def learner_games(self, params: Any, key: jax.Array) -> Games:
        """Every pair's games, leaves ``[P, E_pair, ...]``."""
        cfg = self.cfg
        per_pair = cfg.learner_episodes // (cfg.num_learners - 1)
        first = jnp.asarray([i for i, _ in self.pairs])
        second = jnp.asarray([j for _, j in self.pairs])
        z = jnp.zeros((per_pair, 10)) if cfg.opponent_id else None

        def pair(p0, p1, key):
            side0, side1 = self.learner_side(p0, z), self.learner_side(p1, z)
            return self.play(side0, side1, key, per_pair)

        take = lambda idx: jax.tree.map(lambda x: x[idx], params)  # noqa: E731
        keys = jax.random.split(key, len(self.pairs))
        return jax.vmap(pair)(take(first), take(second), keys)

    def pool_games(self, params: Any, frozen_params: tuple, key: jax.Array) -> Games:
        """Every learner's games against the pool, leaves ``[N, E_pool, ...]``."""
        cfg = self.cfg
        E = cfg.pool_episodes
        pool = self.pool

        def games(p, key):
            k_draw, k_start, k_play = jax.random.split(key, 3)
            entry = shard_leading(self.mesh, pool.draw(k_draw, E))
            start = pool.start(frozen_params, k_start, entry)
            z = pool.opponent_id(start) if cfg.opponent_id else None
            fixed = Fixed(pool, frozen_params, start)
            return self.play(self.learner_side(p, z), fixed, k_play, E), start

        return jax.vmap(games)(params, jax.random.split(key, cfg.num_learners))

    # ---- the update -----------------------------------------------------------------

    def learner_data(self, vs_learners: Games | None, vs_pool: Games | None):
        """Each learner's own view of its games: ``Games`` with player 0 the
        learner, leaves ``[N, batch, ...]`` (learner games first)."""
        parts = []
        if vs_learners is not None:
            per_learner = []
            for i in range(self.cfg.num_learners):
                mine = []
                for p, (a, b) in enumerate(self.pairs):
                    if i in (a, b):
                        g = jax.tree.map(lambda x, p=p: x[p], vs_learners)
                        mine.append(g if a == i else swap_players(g))
                per_learner.append(jax.tree.map(lambda *x: jnp.concatenate(x), *mine))
            parts.append(jax.tree.map(lambda *x: jnp.stack(x), *per_learner))
        if vs_pool is not None:
            parts.append(vs_pool)
        if len(parts) == 1:
            return parts[0]
        return jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=1), *parts)

    def loss(self, params: Any, games: Games, advantages, targets):
        """A2C loss of one learner on its games (player 0), leaves ``[E, T, ...]``."""
        cfg = self.cfg
        E, T = games.actions.shape[:2]
        prev_action = jnp.concatenate(
            [jnp.full((E, 1), -1, jnp.int32), games.actions[:, :-1, 0]], axis=1
        )
        prev_reward = jnp.concatenate(
            [jnp.zeros((E, 1)), games.rewards[:, :-1, 0]], axis=1
        )
        x = self.inputs.step(games.obs[:, :, 0], prev_action, prev_reward)  # [E, T, D]
        x = jnp.swapaxes(x, 0, 1)  # [T, E, D]
        if cfg.opponent_id:
            x = jnp.concatenate([self.inputs.z_token(games.z[:, 0])[None], x])
        resets = jnp.zeros(x.shape[:2], bool).at[0].set(True)
        _, out = self.net.apply(
            params, self.net.initial_state((E,)), x, resets, method="unroll"
        )
        logits, values = out.logits[-T:], out.value[-T:]  # drop the z token
        dist = distrax.Categorical(logits=jnp.swapaxes(logits, 0, 1))
        actions = games.actions[..., 0]
        return losses.a2c_loss(
            dist.log_prob(actions),
            advantages,
            jnp.swapaxes(values, 0, 1),
            targets,
            dist.entropy(),
            value_coef=cfg.value_coef,
            entropy_coef=cfg.entropy_coef,
        )

    def learner_update(self, params, opt_state, games: Games):
        """One A2C step of one learner on its games (leaves ``[E, T, ...]``)."""
        cfg = self.cfg
        rewards = games.rewards[..., 0] * cfg.reward_scale
        values = games.value[..., 0]
        kwargs = {"discount": cfg.gamma, "inner_episode_length": cfg.episode_length}
        advantages = estimators.batch_unaware_gae(
            rewards, values, lambda_=cfg.lambda_gae, **kwargs
        )
        targets = estimators.td_lambda_targets(
            rewards, values, lambda_=cfg.lambda_td, **kwargs
        )
        if cfg.normalize_advantages:
            advantages = losses.normalize_advantages(advantages)
        # On a CPU the gradient is accumulated over chunks of episodes that stay
        # in cache (losses.grad_chunks): 3x faster at the mixed preset's shapes.
        value_and_grad = losses.chunked_value_and_grad(
            self.loss, losses.grad_chunks(*advantages.shape)
        )
        (_, metrics), grads = value_and_grad(params, games, advantages, targets)
        updates, opt_state = self.optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    def update(
        self, state: CoplayerState
    ) -> tuple[CoplayerState, dict[str, jax.Array]]:
        """One training iteration of one seed; metrics are ``[N]`` per learner."""
        cfg = self.cfg
        key, k_learners, k_pool = jax.random.split(state.key, 3)
        vs_learners = vs_pool = None
        if cfg.learner_episodes:
            vs_learners = self.learner_games(state.params, k_learners)
        if self.pool is not None:
            vs_pool, _ = self.pool_games(state.params, state.frozen, k_pool)
        data = self.learner_data(vs_learners, vs_pool)
        params, opt_state, metrics = jax.vmap(self.learner_update)(
            state.params, state.opt_state, data
        )
        metrics = dict(metrics)
        metrics.update(self.play_metrics(data))
        new_state = state._replace(
            params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1
        )
        return new_state, metrics

    def play_metrics(self, data: Games) -> dict[str, jax.Array]:
        """Per-learner ``[N]`` rewards (and cooperation) by co-player kind."""
        cfg = self.cfg
        E_l = cfg.learner_episodes
        reward = jnp.mean(data.rewards, axis=2)  # [N, E, 2]
        cooperation = jnp.mean(data.actions == 0, axis=2)
        metrics = {}
        kinds = []
        if E_l:
            kinds.append(("learner", slice(0, E_l)))
        if self.pool is not None:
            kinds.append(("fixed", slice(E_l, None)))
        for kind, rows in kinds:
            metrics[f"reward_vs_{kind}"] = jnp.mean(reward[:, rows, 0], axis=1)
            if kind == "fixed":
                metrics["fixed_reward"] = jnp.mean(reward[:, rows, 1], axis=1)
            if self.is_matrix_game:
                metrics[f"cooperation_vs_{kind}"] = jnp.mean(
                    cooperation[:, rows, 0], axis=1
                )
                if kind == "fixed":
                    metrics["fixed_cooperation"] = jnp.mean(
                        cooperation[:, rows, 1], axis=1
                    )
        return metrics


def swap_players(games: Games) -> Games:
    """The same games seen by player 1 (the player axes flipped)."""
    flip = {name: jnp.flip(x, axis=2) for name, x in games._asdict().items()}
    flip["z"] = jnp.flip(games.z, axis=1)
    return Games(**flip)


# --------------------------------------------------------------------------------------
# Training entry points


def make_train(cfg: CoplayerConfig) -> Callable[[jax.Array], tuple[CoplayerState, Any]]:
    """``train(key) -> (final state, metrics)`` for one seed, pure and jittable
    (fresh learners; pools with frozen agents and ``init_from`` need
    :class:`CoplayerExperiment`). Metrics are stacked over iterations."""
    if cfg.init_from or any(e.kind == "frozen" for e in parse_pool(cfg.pool)):
        raise ValueError("make_train runs fresh learners against fixed strategies only")
    algo = Coplayer(cfg)

    def train(key: jax.Array) -> tuple[CoplayerState, Any]:
        state = algo.init(key)
        return jax.lax.scan(lambda s, _: algo.update(s), state, length=cfg.iterations)

    return train


#: The printed result of a population run: rewards and cooperation by pairing.
HEADLINE_METRICS: tuple[str, ...] = (
    "reward_vs_learner",
    "cooperation_vs_learner",
    "reward_vs_fixed",
    "fixed_reward",
    "cooperation_vs_fixed",
    "fixed_cooperation",
)


def headline(metrics: Mapping[str, Any], names: tuple[str, ...]) -> dict:
    """Per-seed means over learners of the ``names`` present in ``metrics``."""
    return {
        name: np.asarray(metrics[name], np.float64).mean(axis=-1).tolist()
        for name in names
        if name in metrics
    }


class CoplayerExperiment:
    """:class:`~dilemmas.training.experiment.Experiment` for ``dilemmas train``.

    Construction reads the run directories of frozen co-players and of
    ``init_from`` (errors name the directory), before anything compiles.
    """

    kind = "coplayer"

    def __init__(self, config: CoplayerConfig):
        self.config = config
        entries = parse_pool(config.pool)
        env, _ = make_env(config.env_id, max_steps=config.episode_length)
        check_pool_game(entries, env, config.env_id)
        frozen, self.frozen_params = [], []
        for entry in entries:
            if entry.kind != "frozen":
                continue
            what = f"pool entry frozen:{entry.path}"
            source, params = load_learners(entry.path, config.env_id, what)
            net = make_network(source, int(env.action_space().n))
            frozen.append(FrozenAgent(entry.label, sequence_inputs(source, env), net))
            # learner 0 of seed s mod S of the source run
            seeds = np.arange(config.num_seeds) % source.num_seeds
            self.frozen_params.append(jax.tree.map(lambda x, s=seeds: x[s, 0], params))
        self.init_params = None
        if config.init_from:
            what = f"init_from {config.init_from}"
            source, params = load_learners(config.init_from, config.env_id, what)
            mine = (config.hidden, config.embed, config.opponent_id)
            mine += (config.input_prev_action, config.input_prev_reward)
            theirs = (source.hidden, source.embed, source.opponent_id)
            theirs += (source.input_prev_action, source.input_prev_reward)
            if mine != theirs:
                raise ValueError(
                    f"{what}: its network (hidden, embed, opponent_id, "
                    f"input_prev_action, input_prev_reward) = {theirs} differs from "
                    f"this run's {mine}"
                )
            count = source.num_seeds * source.num_learners
            flat = jax.tree.map(lambda x: x.reshape(count, *x.shape[2:]), params)
            N = config.num_learners
            pick = (np.arange(config.num_seeds * N) % count).reshape(-1, N)
            self.init_params = jax.tree.map(lambda x: x[pick], flat)
        self.algo = Coplayer(config, tuple(frozen))
        self.iterations = config.iterations
        self.loss_metrics = ("total_loss", "policy_loss", "value_loss")
        progress = []
        if config.learner_episodes:
            progress.append("reward_vs_learner")
        if self.algo.pool is not None:
            progress += ["reward_vs_fixed", "fixed_reward"]
        self.progress_metrics = tuple(progress)

    def init(self, key: jax.Array) -> CoplayerState:
        keys = jax.random.split(key, self.config.num_seeds)
        frozen = tuple(self.frozen_params)
        if self.init_params is None:
            return jax.vmap(lambda k, f: self.algo.init(k, None, f))(keys, frozen)
        return jax.vmap(self.algo.init)(keys, self.init_params, frozen)

    def update(
        self, state: CoplayerState
    ) -> tuple[CoplayerState, dict[str, jax.Array]]:
        return jax.vmap(self.algo.update)(state)

    def params(self, state: CoplayerState) -> Any:
        return state.params

    def policies(self, state: CoplayerState) -> dict[str, Trained]:
        """The learners as policies (``learner_0`` ...; see
        :func:`dilemmas.agents.load_policy`)."""
        algo = self.algo
        agent = NetworkPolicy(None, algo.net, algo.inputs, own_payoffs(algo.env_params))
        return learners(
            agent,
            state.params,
            self.config.num_learners,
            algo.inputs.obs_shape,
            self.config.env_id,
        )

    def summary(self, state: CoplayerState, metrics: Mapping[str, Any]) -> dict:
        del state
        return headline(metrics, HEADLINE_METRICS)

    def evaluate(self, state: CoplayerState) -> dict[str, Any]:
        from dilemmas.training.coplayer_eval import evaluate

        return evaluate(self.algo, state)


# --------------------------------------------------------------------------------------
# Presets (spec §2 Table 2; §4 the mechanism steps)

_MIXED = CoplayerConfig()
_STEP1 = _MIXED.replace(
    num_learners=1,
    learner_share=0.0,
    pool="random_tabular",
    batch=2048,
    reward_scale=0.2,
    lambda_td=0.99,
    lambda_gae=0.99,
    entropy_coef=0.001,
    lr=5e-3,
    iterations=50_000,
)
_STEP2 = _STEP1.replace(
    pool="frozen:runs/coplayer-a2c-step1",
    normalize_advantages=False,
    reward_scale=0.05,
    lambda_td=1.0,
    lambda_gae=1.0,
    iterations=100_000,
)
_STEP3 = _MIXED.replace(
    learner_share=1.0,
    pool="",
    init_from="runs/coplayer-a2c-step2",
    reward_scale=0.02,
    lambda_td=0.95,
    lambda_gae=0.95,
    entropy_coef=0.001,
    lr=5e-4,
    iterations=100_000,
)

PRESETS: dict[str, CoplayerConfig] = {
    # Paper scale (Table 2): for accelerators.
    "coplayer-a2c-step1": _STEP1.replace(name="coplayer-a2c-step1"),
    "coplayer-a2c-step2": _STEP2.replace(name="coplayer-a2c-step2"),
    "coplayer-a2c-step3": _STEP3.replace(name="coplayer-a2c-step3"),
    "coplayer-a2c-mixed": _MIXED.replace(name="coplayer-a2c-mixed"),
    "coplayer-a2c-opponent-id": _MIXED.replace(
        name="coplayer-a2c-opponent-id", opponent_id=True
    ),
    "coplayer-a2c-no-tabular": _MIXED.replace(
        name="coplayer-a2c-no-tabular", learner_share=1.0, pool=""
    ),
}

# CPU scale (docs/results.md): the paper's network and learning settings with 256
# episodes per learner and iteration instead of 2048-4096, a few hundred iterations
# and 5 seeds, so each step runs in minutes on two cores. One deviation, in step 1
# only: half of the pool is TFT. With the paper's pure random tabular pool the
# learner settles on always-defect within a few hundred updates (docs/results.md),
# and the in-context lesson (cooperate with reciprocators, defect against the rest)
# needs the paper's ~1e8 episodes. The chain reads the previous steps' run
# directories: `dilemmas train coplayer-a2c-step1-cpu --run-dir
# runs/coplayer-a2c-step1-cpu`, then step 2, then step 3.
_CPU = {"batch": 256, "num_seeds": 5}
PRESETS.update(
    {
        "coplayer-a2c-step1-cpu": _STEP1.replace(
            name="coplayer-a2c-step1-cpu",
            pool="random_tabular=1,tft=1",
            iterations=600,
            **_CPU,
        ),
        "coplayer-a2c-step2-cpu": _STEP2.replace(
            name="coplayer-a2c-step2-cpu",
            pool="frozen:runs/coplayer-a2c-step1-cpu",
            iterations=500,
            **_CPU,
        ),
        "coplayer-a2c-step3-cpu": _STEP3.replace(
            name="coplayer-a2c-step3-cpu",
            init_from="runs/coplayer-a2c-step2-cpu",
            iterations=300,
            **_CPU,
        ),
        "coplayer-a2c-mixed-cpu": _MIXED.replace(
            name="coplayer-a2c-mixed-cpu", iterations=300, **_CPU
        ),
        "coplayer-a2c-opponent-id-cpu": _MIXED.replace(
            name="coplayer-a2c-opponent-id-cpu",
            opponent_id=True,
            iterations=300,
            **_CPU,
        ),
        "coplayer-a2c-no-tabular-cpu": _MIXED.replace(
            name="coplayer-a2c-no-tabular-cpu",
            learner_share=1.0,
            pool="",
            iterations=300,
            **_CPU,
        ),
    }
)
