"""Exact meta-gradients on the analytic IPD: shaping, pools and LOLA-DiCE.

COALA-PG §4 / App. C (spec ``coala_pg.md`` §5.2, §9, §11, §12.2). Every agent is a
tabular memory-one policy, five logits ``theta = [first move, CC, CD, DC, DD]`` in its
own perspective (the order of :mod:`dilemmas.envs.exact_ipd`), and every value is the
exact discounted value of the infinitely iterated PD, so all gradients, including those
through unrolled naive learners, come from ``jax.grad``.

* **Naive learner** (:func:`naive_step`): exact gradient ascent on its *own* value,
  ``psi <- psi + eta_naive * dJ^{-i}(theta, psi) / d psi`` (the spec's default for the
  ``J^i`` / ``J^{-i}`` ambiguity of Eq. 17).
* **Shaping objective** (:func:`shaping_objective`, Eq. 17):
  ``sum_{m=0}^{M} J^i(theta, psi_m)`` along the naive trajectory ``psi_0 .. psi_M``,
  an unrolled ``lax.scan`` differentiated exactly (second order through every naive
  step).
* **LOLA-DiCE look-ahead** (:func:`lola_dice_objective`): a naive learner
  initialised at the co-player's parameters takes ``M`` steps; the objective is the
  final return ``J^i(theta, psi_M)``.
* **Pool meta-gradient** (:func:`pool_gradients`): for each meta agent ``j``,
  ``p_naive * (shaping or look-ahead gradient) + (1 - p_naive) * mean_{k != j}
  dJ^j(theta_j, theta_k) / d theta_j`` (partial gradient against the *other* meta
  agents, the exact expectation of drawing one uniformly, never oneself). The
  shaping term averages over a meta-batch of fresh naive learners drawn every
  iteration.
* **Training** (:func:`make_train`): ``make_train(cfg) -> train(key)``, a jitted
  ``lax.scan`` over iterations; vmap ``train`` over keys for seeds.
* **Runs** (:class:`AnalyticExperiment`, ``cfg.experiment()``): the same iteration
  (:func:`train_step`) behind ``dilemmas train analytic-...``, with run
  directories, checkpoints and an exact ``evaluation.json``.

Value conventions. ``value_scale="unnormalised"`` (the paper's Eqs. 15-16) uses
``J = d0^T (I - gamma P)^-1 r`` (mutual cooperation is worth ``R / (1 - gamma)``)
for the naive steps and the meta objectives; ``"normalised"`` uses ``(1 - gamma) J``.
The choice rescales every naive step by ``1 / (1 - gamma)``, so ``eta_naive`` only
means something together with ``value_scale`` and ``gamma``. Reported metrics are
always rewards per step, ``(1 - gamma) J``.

The spec leaves the Fig. 3 hyperparameters open (``eta_naive``, ``M``, meta-batch,
naive initialisation, iterations); the presets below are the settings measured in
``docs/results.md``. Use float64 (``jax.enable_x64``) for gradient checks, and for
``gamma = 0.999`` when exact numbers matter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dilemmas.agents.policy import Trained
from dilemmas.agents.strategies import memory_one
from dilemmas.envs import exact_ipd
from dilemmas.training.configs import (
    check_choices,
    check_floats,
    check_ints,
    check_seeds,
    is_number,
)

#: Logit of "pure defection" (COALA-PG Fig. 9): ``log 0.01``, probability 0.0099.
DEFECTION_LOGIT = math.log(0.01)
#: Probabilities of named deterministic starts are clipped to [eps, 1 - eps] before
#: taking logits, so no logit is infinite.
PROBABILITY_CLIP = 0.01

INITS = (
    "defection",
    "cooperation",
    "uniform",
    "random",
    "tft",
    "zd_extortion",
)
NAIVE_INITS = ("normal", "defection", "cooperation", "uniform", "tft")
VALUE_SCALES = ("unnormalised", "normalised")
OBJECTIVES = ("shaping", "lola")
OPTIMISERS = ("adamw", "adam", "sgd")
VS_META_HORIZONS = ("episode", "trajectory")


# --------------------------------------------------------------------------------------
# Values and the naive learner


def values(
    theta_i: jax.Array,
    theta_j: jax.Array,
    *,
    payoffs: Any = "coala",
    gamma: float = 0.95,
    normalised: bool = False,
) -> jax.Array:
    """Values ``[J^i, J^j]`` of two logit vectors, ``theta_i`` playing as player 1.

    Args:
      theta_i, theta_j: ``[5]`` own-perspective cooperation logits.
      payoffs: anything :func:`dilemmas.envs.exact_ipd.values` accepts.
      gamma: discount in ``[0, 1)``.
      normalised: return ``(1 - gamma) J`` (reward per step) instead of ``J``.

    Returns:
      ``[2]`` values.
    """
    p_i, p_j = jax.nn.sigmoid(theta_i), jax.nn.sigmoid(theta_j)
    if normalised:
        return exact_ipd.average_rewards(p_i, p_j, payoffs, gamma)
    return exact_ipd.values(p_i, p_j, payoffs, gamma)


def naive_step(
    theta_meta: jax.Array,
    theta_naive: jax.Array,
    *,
    eta_naive: float,
    payoffs: Any = "coala",
    gamma: float = 0.95,
    normalised: bool = False,
) -> jax.Array:
    """One exact gradient-ascent step of a naive learner on its own value.

    ``psi' = psi + eta_naive * d J^{naive}(theta_meta, psi) / d psi``, where
    ``J^{naive}`` is the naive learner's value (player 2) against the fixed
    ``theta_meta``. Differentiable in ``theta_meta`` (the shaping channel).

    Args:
      theta_meta: ``[5]`` logits of the co-player, held fixed by the naive learner.
      theta_naive: ``[5]`` logits of the naive learner.
      eta_naive: learning rate of the naive learner.
      payoffs, gamma, normalised: as in :func:`values`.

    Returns:
      ``[5]`` updated naive logits.
    """

    def own_value(psi):
        return values(
            theta_meta, psi, payoffs=payoffs, gamma=gamma, normalised=normalised
        )[1]

    return theta_naive + eta_naive * jax.grad(own_value)(theta_naive)


class NaiveTrajectory(NamedTuple):
    """Values along an unrolled naive trajectory ``psi_0 .. psi_M``."""

    meta_values: jax.Array  # [M + 1] J^i(theta, psi_m), the configured scale
    naive_values: jax.Array  # [M + 1] J^{-i}(theta, psi_m), the configured scale
    final_naive: jax.Array  # [5] psi_M


def naive_trajectory(
    theta_meta: jax.Array,
    theta_naive: jax.Array,
    *,
    num_steps: int,
    eta_naive: float,
    payoffs: Any = "coala",
    gamma: float = 0.95,
    normalised: bool = False,
) -> NaiveTrajectory:
    """Unroll ``num_steps`` naive steps with ``lax.scan`` and record both values.

    Each scan step evaluates ``values(theta_meta, psi_m)`` once and reuses it for
    the naive gradient (``value_and_grad``), then the final ``psi_M`` is evaluated.
    """
    kwargs = {"payoffs": payoffs, "gamma": gamma, "normalised": normalised}

    def naive_value(psi):
        both = values(theta_meta, psi, **kwargs)
        return both[1], both

    def step(psi_m, _):
        (_, both_m), grad_m = jax.value_and_grad(naive_value, has_aux=True)(psi_m)
        return psi_m + eta_naive * grad_m, both_m

    psi_final, both = jax.lax.scan(step, theta_naive, None, length=num_steps)
    both_final = values(theta_meta, psi_final, **kwargs)
    both = jnp.concatenate([both, both_final[None]], axis=0)  # [M + 1, 2]
    return NaiveTrajectory(both[:, 0], both[:, 1], psi_final)


def _per_step(value: jax.Array, gamma: float, normalised: bool) -> jax.Array:
    return value if normalised else (1.0 - gamma) * value


def _rewards_aux(traj: NaiveTrajectory, gamma: float, normalised: bool):
    """Per-step rewards after the last naive step and averaged over the trajectory."""
    meta = _per_step(traj.meta_values, gamma, normalised)
    naive = _per_step(traj.naive_values, gamma, normalised)
    return {
        "meta_reward_last": meta[-1],
        "meta_reward_mean": jnp.mean(meta),
        "naive_reward_last": naive[-1],
        "naive_reward_mean": jnp.mean(naive),
    }


def shaping_objective(
    theta_meta: jax.Array,
    theta_naive: jax.Array,
    *,
    num_steps: int,
    eta_naive: float,
    payoffs: Any = "coala",
    gamma: float = 0.95,
    normalised: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Eq. 17: ``sum_{m=0}^{M} J^i(theta_meta, psi_m)`` along the naive trajectory.

    ``psi_0 = theta_naive`` and ``psi_{m+1} = naive_step(theta_meta, psi_m)``; the
    sum is differentiable in ``theta_meta`` through every naive step.

    Returns:
      ``(objective, aux)``: the scalar objective (configured scale) and per-step
      rewards ``meta_reward_last``, ``meta_reward_mean``, ``naive_reward_last``,
      ``naive_reward_mean`` (always ``(1 - gamma) J``).
    """
    traj = naive_trajectory(
        theta_meta,
        theta_naive,
        num_steps=num_steps,
        eta_naive=eta_naive,
        payoffs=payoffs,
        gamma=gamma,
        normalised=normalised,
    )
    return jnp.sum(traj.meta_values), _rewards_aux(traj, gamma, normalised)


def lola_dice_objective(
    theta_i: jax.Array,
    theta_other: jax.Array,
    *,
    num_steps: int,
    eta_naive: float,
    payoffs: Any = "coala",
    gamma: float = 0.95,
    normalised: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Exact LOLA-DiCE: final return after ``num_steps`` look-ahead naive steps.

    The look-ahead naive learner starts at the co-player's parameters
    ``theta_other`` (a constant: no gradient flows into it) and ascends its own value
    against ``theta_i``; the objective is ``J^i(theta_i, psi_M)``.

    Returns:
      ``(objective, aux)`` with the same aux keys as :func:`shaping_objective`
      (the "naive" entries describe the look-ahead learner).
    """
    traj = naive_trajectory(
        theta_i,
        jax.lax.stop_gradient(theta_other),
        num_steps=num_steps,
        eta_naive=eta_naive,
        payoffs=payoffs,
        gamma=gamma,
        normalised=normalised,
    )
    return traj.meta_values[-1], _rewards_aux(traj, gamma, normalised)


# --------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class AnalyticConfig:
    """Every hyperparameter of an analytic-IPD run, validated on construction.

    Attributes:
      name: label for reports.
      gamma: discount in ``[0, 1)``.
      payoffs: ``(R, S, T, P)``; COALA-PG uses ``(1, -1, 2, 0)``.
      value_scale: ``"unnormalised"`` (``J``, the paper) or ``"normalised"``
        (``(1 - gamma) J``) for naive steps and meta objectives.
      objective: ``"shaping"`` (Eq. 17 against fresh naive learners) or ``"lola"``
        (LOLA-DiCE look-ahead initialised at each other pool member).
      eta_naive: naive (or look-ahead) learning rate, in the ``value_scale`` units.
      num_naive_steps: ``M``, naive steps per meta-trajectory (look-ahead steps for
        LOLA).
      meta_batch: fresh naive learners per meta agent and iteration (shaping).
      naive_init: ``"normal"`` (logits ``~ N(0, naive_init_scale^2)``, the spec's
        default) or a fixed start: ``"defection"``, ``"cooperation"``, ``"uniform"``,
        ``"tft"``.
      naive_init_scale: standard deviation for ``naive_init="normal"``.
      eta_meta: meta learning rate.
      optimiser: ``"adamw"`` (optax defaults, the paper), ``"adam"`` or ``"sgd"``.
      weight_decay: AdamW weight decay (optax's default 1e-4).
      iterations: meta updates.
      pool_size: number of meta agents.
      p_naive: weight of the naive (shaping / look-ahead) gradient; the rest goes to
        the partial gradient against the other meta agents.
      vs_meta_horizon: ``"episode"``: the vs-meta term is ``dJ/dtheta`` of one
        inner game (spec §5.2); ``"trajectory"``: ``(M + 1) dJ/dtheta``, the same
        number of inner games as the shaping sum.
      init: meta-agent start: ``"defection"`` (logits ``log 0.01``),
        ``"cooperation"``, ``"uniform"`` (logits 0), ``"random"`` (logits
        ``~ N(0, init_scale^2)``), ``"tft"``, ``"zd_extortion"`` (Press-Dyson
        extortion with ``zd_chi`` at maximal phi and first move ``zd_p0``).
        Deterministic probabilities are clipped to ``[0.01, 0.99]``.
        ``train(key, init_params)`` overrides it (e.g. with a shaping result).
      init_scale: standard deviation for ``init="random"``.
      zd_chi, zd_p0: extortion factor and first-move probability for
        ``init="zd_extortion"``.
      num_seeds: independent runs, vmapped (``dilemmas train``).
      seed: base seed of ``dilemmas train``; seed ``s`` of a run is
        ``train(jax.random.split(jax.random.key(seed), num_seeds)[s])``.
    """

    name: str = "custom"
    gamma: float = 0.95
    payoffs: tuple[float, float, float, float] = (1.0, -1.0, 2.0, 0.0)
    value_scale: str = "unnormalised"
    objective: str = "shaping"
    eta_naive: float = 1.0
    num_naive_steps: int = 20
    meta_batch: int = 32
    naive_init: str = "normal"
    naive_init_scale: float = 1.0
    eta_meta: float = 0.005
    optimiser: str = "adamw"
    weight_decay: float = 1e-4
    iterations: int = 1000
    pool_size: int = 1
    p_naive: float = 1.0
    vs_meta_horizon: str = "episode"
    init: str = "defection"
    init_scale: float = 1.0
    zd_chi: float = 3.0
    zd_p0: float = 0.0
    num_seeds: int = 1
    seed: int = 0

    def __post_init__(self):
        if not is_number(self.gamma) or not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be a number in [0, 1), got {self.gamma!r}")
        payoffs = tuple(self.payoffs) if not isinstance(self.payoffs, str) else ()
        if len(payoffs) != 4 or not all(
            is_number(x) and math.isfinite(x) for x in payoffs
        ):
            raise ValueError(
                "payoffs must be four finite numbers (R, S, T, P), got "
                f"{self.payoffs!r}"
            )
        object.__setattr__(self, "payoffs", tuple(float(x) for x in payoffs))
        check_choices(
            self,
            {
                "value_scale": VALUE_SCALES,
                "objective": OBJECTIVES,
                "naive_init": NAIVE_INITS,
                "optimiser": OPTIMISERS,
                "vs_meta_horizon": VS_META_HORIZONS,
                "init": INITS,
            },
        )
        check_floats(
            self,
            ("eta_naive", "naive_init_scale", "init_scale", "weight_decay"),
            low=0.0,
        )
        check_floats(self, ("eta_meta",), low=0.0, low_open=True)
        check_floats(self, ("zd_chi", "zd_p0"))
        check_seeds(self)
        check_ints(
            self,
            {
                "num_naive_steps": 0,
                "meta_batch": 1,
                "iterations": 1,
                "pool_size": 1,
                "num_seeds": 1,
            },
        )
        if not is_number(self.p_naive) or not 0.0 <= self.p_naive <= 1.0:
            raise ValueError(f"p_naive must be in [0, 1], got {self.p_naive!r}")
        if self.p_naive < 1.0 and self.pool_size < 2:
            raise ValueError(
                f"p_naive = {self.p_naive} < 1 needs other meta agents to play, but "
                "pool_size = 1 (an agent never plays itself); use pool_size >= 2"
            )
        if self.objective == "lola" and self.pool_size < 2:
            raise ValueError(
                "objective='lola' initialises the look-ahead at another pool member's "
                "parameters; it needs pool_size >= 2"
            )
        if self.objective == "lola" and self.num_naive_steps < 1:
            raise ValueError("objective='lola' needs num_naive_steps >= 1")
        if self.init == "zd_extortion":
            memory_one(
                "zd_extort", chi=self.zd_chi, payoffs=self.payoffs, p0=self.zd_p0
            )

    def memory_estimate_bytes(self) -> dict[str, int]:
        """A lower bound of the bytes held at once, by the fields that size them
        (:func:`dilemmas.training.configs.check_memory` refuses a config whose
        estimate exceeds the devices' memory before anything is compiled).

        The exact gradients through unrolled naive learners keep, per naive step,
        at least 32 float32 values (logits, the transition matrix, the solve) for
        the backward pass: over ``num_naive_steps + 1`` steps of every fresh naive
        learner (shaping) or of every look-ahead (LOLA), and per pair of meta
        agents.
        """
        per_step = 32 * 4
        unroll = "num_seeds * pool_size * (num_naive_steps + 1)"
        steps = self.num_seeds * self.pool_size * (self.num_naive_steps + 1)
        terms = {}
        if self.p_naive > 0.0 and self.objective == "shaping":
            label = f"{unroll} * meta_batch (the unrolled naive learners)"
            terms[label] = per_step * steps * self.meta_batch
        if self.p_naive > 0.0 and self.objective == "lola":
            label = f"{unroll} * pool_size (the unrolled look-aheads)"
            terms[label] = per_step * steps * self.pool_size
        pairs = self.num_seeds * self.pool_size**2
        terms["num_seeds * pool_size**2 (the meta-agent pairs)"] = per_step * pairs
        return terms

    @property
    def normalised(self) -> bool:
        return self.value_scale == "normalised"

    @property
    def description(self) -> str:
        """One line for ``dilemmas presets``."""
        if self.p_naive == 0.0:
            what = f"pool of {self.pool_size} meta agents learning against each other"
        elif self.objective == "lola":
            what = (
                f"LOLA-DiCE, {self.num_naive_steps} look-ahead step(s), pool of "
                f"{self.pool_size}"
            )
        else:
            what = f"meta agent(s) shaping naive learners (M = {self.num_naive_steps})"
            if self.pool_size > 1:
                what = (
                    f"pool of {self.pool_size}: {self.p_naive:.0%} shaping naive "
                    f"learners (M = {self.num_naive_steps}), the rest vs each other"
                )
        return (
            f"exact IPD, {what}; gamma {self.gamma}, init {self.init}, "
            f"{self.iterations} iterations"
        )

    def replace(self, **changes: Any) -> AnalyticConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def experiment(self) -> AnalyticExperiment:
        """The run-driver view of this config (``dilemmas train``)."""
        return AnalyticExperiment(self)


def _logits(probs: Any) -> jax.Array:
    p = jnp.clip(jnp.asarray(probs, jnp.result_type(float)), 0.0, 1.0)
    p = jnp.clip(p, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    return jnp.log(p) - jnp.log1p(-p)


def _fixed_logits(name: str, cfg: AnalyticConfig) -> jax.Array:
    dtype = jnp.result_type(float)
    if name == "defection":
        return jnp.full((5,), DEFECTION_LOGIT, dtype)
    if name == "uniform":
        return jnp.zeros((5,), dtype)
    if name == "zd_extortion":
        return _logits(
            memory_one("zd_extort", chi=cfg.zd_chi, payoffs=cfg.payoffs, p0=cfg.zd_p0)
        )
    return _logits(memory_one({"cooperation": "allc", "tft": "tft"}[name]))


def initial_params(cfg: AnalyticConfig, key: jax.Array) -> jax.Array:
    """Meta-agent logits ``[pool_size, 5]`` from ``cfg.init``."""
    shape = (cfg.pool_size, 5)
    if cfg.init == "random":
        return cfg.init_scale * jax.random.normal(key, shape, jnp.result_type(float))
    return jnp.broadcast_to(_fixed_logits(cfg.init, cfg), shape)


def naive_initial_params(cfg: AnalyticConfig, key: jax.Array) -> jax.Array:
    """Fresh naive-learner logits ``[pool_size, meta_batch, 5]``."""
    shape = (cfg.pool_size, cfg.meta_batch, 5)
    if cfg.naive_init == "normal":
        dtype = jnp.result_type(float)
        return cfg.naive_init_scale * jax.random.normal(key, shape, dtype)
    return jnp.broadcast_to(_fixed_logits(cfg.naive_init, cfg), shape)


# --------------------------------------------------------------------------------------
# Meta-gradients


def _game_kwargs(cfg: AnalyticConfig) -> dict[str, Any]:
    return {"payoffs": cfg.payoffs, "gamma": cfg.gamma, "normalised": cfg.normalised}


def meta_vs_meta_rewards(cfg: AnalyticConfig, params: jax.Array) -> jax.Array:
    """Per-step rewards ``R[j, k] = (1 - gamma) J^j(theta_j, theta_k)``, ``[N, N]``."""

    def row(theta_j):
        return jax.vmap(
            lambda theta_k: exact_ipd.average_rewards_from_logits(
                theta_j, theta_k, cfg.payoffs, cfg.gamma
            )[0]
        )(params)

    return jax.vmap(row)(params)


def _vs_meta_gradients(cfg: AnalyticConfig, params: jax.Array) -> jax.Array:
    """``mean_{k != j} dJ^j(theta_j, theta_k) / d theta_j`` per agent, ``[N, 5]``."""
    n = cfg.pool_size
    kwargs = _game_kwargs(cfg)

    def value_j(theta_j, theta_k):
        return values(theta_j, theta_k, **kwargs)[0]

    grad_jk = jax.vmap(
        lambda theta_j: jax.vmap(lambda theta_k: jax.grad(value_j)(theta_j, theta_k))(
            params
        )
    )(params)  # [N, N, 5]
    others = 1.0 - jnp.eye(n, dtype=params.dtype)
    grads = jnp.einsum("jk,jkd->jd", others, grad_jk) / (n - 1)
    if cfg.vs_meta_horizon == "trajectory":
        grads = (cfg.num_naive_steps + 1) * grads
    return grads


def _shaping_gradients(
    cfg: AnalyticConfig, params: jax.Array, naive_init: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Meta-batch mean of the Eq. 17 gradient per meta agent, ``[N, 5]``, and aux."""
    kwargs = {
        "num_steps": cfg.num_naive_steps,
        "eta_naive": cfg.eta_naive,
        **_game_kwargs(cfg),
    }
    grad_fn = jax.grad(lambda t, psi: shaping_objective(t, psi, **kwargs), has_aux=True)
    per_naive = jax.vmap(grad_fn, in_axes=(None, 0))  # over the meta-batch
    grads, aux = jax.vmap(per_naive)(params, naive_init)  # [N, B, 5]
    return jnp.mean(grads, axis=1), jax.tree.map(lambda x: jnp.mean(x, axis=1), aux)


def _lola_gradients(
    cfg: AnalyticConfig, params: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean over ``k != j`` of the LOLA-DiCE gradient with look-ahead at ``theta_k``."""
    n = cfg.pool_size
    kwargs = {
        "num_steps": cfg.num_naive_steps,
        "eta_naive": cfg.eta_naive,
        **_game_kwargs(cfg),
    }
    grad_fn = jax.grad(
        lambda t, other: lola_dice_objective(t, other, **kwargs), has_aux=True
    )
    grads, aux = jax.vmap(lambda t: jax.vmap(lambda o: grad_fn(t, o))(params))(params)
    others = 1.0 - jnp.eye(n, dtype=params.dtype)

    def mean_others(x):  # [N, N, ...] -> [N, ...]
        weights = others.reshape(others.shape + (1,) * (x.ndim - 2))
        return jnp.sum(weights * x, axis=1) / (n - 1)

    return mean_others(grads), jax.tree.map(mean_others, aux)


def pool_gradients(
    cfg: AnalyticConfig, params: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Ascent directions of every meta agent, ``[N, 5]``, and per-agent metrics.

    ``g_j = p_naive * g_j^{naive} + (1 - p_naive) * mean_{k != j} dJ^j/dtheta_j``
    with ``g_j^{naive}`` the meta-batch mean of the Eq. 17 gradient against fresh
    naive learners (``objective="shaping"``) or the LOLA-DiCE gradient averaged over
    look-aheads started at each other agent (``objective="lola"``). Terms with zero
    weight are not computed.

    Args:
      cfg: the run configuration.
      params: ``[N, 5]`` meta-agent logits.
      key: randomness for the fresh naive initialisations.

    Returns:
      ``(grads, metrics)``; metrics hold ``[N]`` arrays: ``meta_reward_last``,
      ``meta_reward_mean``, ``naive_reward_last``, ``naive_reward_mean`` (when
      ``p_naive > 0``) and ``meta_vs_meta`` (mean per-step reward against the other
      agents, when ``pool_size >= 2``).
    """
    grads = jnp.zeros_like(params)
    metrics: dict[str, jax.Array] = {}
    if cfg.p_naive > 0.0:
        if cfg.objective == "shaping":
            naive_grads, aux = _shaping_gradients(
                cfg, params, naive_initial_params(cfg, key)
            )
        else:
            naive_grads, aux = _lola_gradients(cfg, params)
        grads = grads + cfg.p_naive * naive_grads
        metrics.update(aux)
    if cfg.p_naive < 1.0:
        grads = grads + (1.0 - cfg.p_naive) * _vs_meta_gradients(cfg, params)
    if cfg.pool_size >= 2:
        rewards = meta_vs_meta_rewards(cfg, params)
        others = 1.0 - jnp.eye(cfg.pool_size, dtype=rewards.dtype)
        metrics["meta_vs_meta"] = jnp.sum(others * rewards, 1) / (cfg.pool_size - 1)
    return grads, metrics


# --------------------------------------------------------------------------------------
# Training


def make_optimiser(cfg: AnalyticConfig) -> optax.GradientTransformation:
    """The meta optimiser named by ``cfg.optimiser`` (a minimiser of ``-J``)."""
    if cfg.optimiser == "adamw":
        return optax.adamw(cfg.eta_meta, weight_decay=cfg.weight_decay)
    if cfg.optimiser == "adam":
        return optax.adam(cfg.eta_meta)
    return optax.sgd(cfg.eta_meta)


class TrainCarry(NamedTuple):
    params: jax.Array  # [N, 5] meta-agent logits
    opt_state: optax.OptState
    key: jax.Array


class TrainOutput(NamedTuple):
    params: jax.Array  # [N, 5] final logits
    metrics: dict[str, jax.Array]  # each [iterations, N, ...], before each update


def initial_carry(
    cfg: AnalyticConfig,
    key: jax.Array,
    init_params: jax.Array | None = None,
    optimiser: optax.GradientTransformation | None = None,
) -> TrainCarry:
    """The training carry of one seed before the first iteration.

    ``key`` is split into the initialisation key and the carry's key, so
    ``initial_carry`` followed by :func:`train_step` is exactly ``train(key)`` of
    :func:`make_train`. ``init_params`` (``[N, 5]`` logits) overrides ``cfg.init``.
    """
    optimiser = make_optimiser(cfg) if optimiser is None else optimiser
    key, k_init = jax.random.split(key)
    if init_params is None:
        params = initial_params(cfg, k_init)
    else:
        params = jnp.asarray(init_params, jnp.result_type(float))
        if params.shape != (cfg.pool_size, 5):
            raise ValueError(
                f"init_params must have shape ({cfg.pool_size}, 5), got {params.shape}"
            )
    return TrainCarry(params, optimiser.init(params), key)


def train_step(
    cfg: AnalyticConfig,
    optimiser: optax.GradientTransformation,
    carry: TrainCarry,
) -> tuple[TrainCarry, dict[str, jax.Array]]:
    """One iteration: :func:`pool_gradients` at ``carry.params``, then one update.

    Metrics are recorded before the update (they describe ``carry.params``) and
    hold the :func:`pool_gradients` metrics plus ``probs`` ``[N, 5]``, the
    cooperation probabilities. All meta agents update simultaneously.
    """
    key, k_naive = jax.random.split(carry.key)
    grads, metrics = pool_gradients(cfg, carry.params, k_naive)
    metrics["probs"] = jax.nn.sigmoid(carry.params)
    # Optimisers minimise: descend on -J to ascend J.
    updates, opt_state = optimiser.update(
        jax.tree.map(jnp.negative, grads), carry.opt_state, carry.params
    )
    params = optax.apply_updates(carry.params, updates)
    return TrainCarry(params, opt_state, key), metrics


def make_train(
    cfg: AnalyticConfig,
) -> Callable[..., TrainOutput]:
    """``train(key, init_params=None) -> TrainOutput``, pure and jittable.

    One iteration is :func:`train_step`: :func:`pool_gradients` at the current
    parameters (metrics are recorded there, so ``metrics[t]`` describes the
    parameters before update ``t``), then a simultaneous optimiser update of all
    meta agents. Metrics also hold ``probs`` ``[N, 5]``, the cooperation
    probabilities.

    ``init_params`` (``[N, 5]`` logits) overrides ``cfg.init``, e.g. to start two
    agents from the result of a shaping run. Seeds:
    ``jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(key, n))``.
    """
    optimiser = make_optimiser(cfg)

    def update(carry: TrainCarry, _) -> tuple[TrainCarry, dict[str, jax.Array]]:
        return train_step(cfg, optimiser, carry)

    def train(key: jax.Array, init_params: jax.Array | None = None) -> TrainOutput:
        carry = initial_carry(cfg, key, init_params, optimiser)
        carry, metrics = jax.lax.scan(update, carry, None, length=cfg.iterations)
        return TrainOutput(carry.params, metrics)

    return train


# --------------------------------------------------------------------------------------
# The run-driver view (``dilemmas train``)

#: Key of the fixed naive learners that ``evaluation.json`` shapes.
EVALUATION_SEED = 12345


def _outcomes(cfg: AnalyticConfig, theta_row: jax.Array, theta_col: jax.Array):
    """Exact per-step rewards ``[2]`` and discounted cooperation rates ``[2]``."""
    p_row, p_col = jax.nn.sigmoid(theta_row), jax.nn.sigmoid(theta_col)
    rewards = exact_ipd.average_rewards(p_row, p_col, cfg.payoffs, cfg.gamma)
    d = exact_ipd.visitation(p_row, p_col, cfg.gamma)  # over (CC, CD, DC, DD)
    return rewards, jnp.stack([d[0] + d[1], d[0] + d[2]])


def _pairwise(cfg: AnalyticConfig, params: jax.Array):
    """:func:`_outcomes` of every ordered pair of ``params`` ``[N, 5]``:
    ``[N, N, 2]`` rewards and cooperation rates (row agent first)."""
    return jax.vmap(
        lambda t_row: jax.vmap(lambda t_col: _outcomes(cfg, t_row, t_col))(params)
    )(params)


def _naive_path(
    cfg: AnalyticConfig, theta_meta: jax.Array, theta_naive: jax.Array
) -> jax.Array:
    """Naive logits ``psi_0 .. psi_M`` ``[M + 1, 5]`` against a fixed meta agent."""

    def step(psi, _):
        return naive_step(
            theta_meta, psi, eta_naive=cfg.eta_naive, **_game_kwargs(cfg)
        ), psi

    psi_final, psis = jax.lax.scan(step, theta_naive, None, length=cfg.num_naive_steps)
    return jnp.concatenate([psis, psi_final[None]], axis=0)


def _mean_over_others(matrix: jax.Array) -> jax.Array:
    """``[N, N]`` pair values -> ``[N]`` means over the other agents."""
    n = matrix.shape[0]
    others = 1.0 - jnp.eye(n, dtype=matrix.dtype)
    return jnp.sum(others * matrix, axis=1) / (n - 1)


class AnalyticExperiment:
    """:class:`~dilemmas.training.experiment.Experiment` for ``dilemmas train``.

    The state is a :class:`TrainCarry` with a leading ``[num_seeds]`` axis; seed
    ``s`` starts as ``train(keys[s])`` of :func:`make_train` with
    ``keys = jax.random.split(key, num_seeds)``, and ``update`` is
    :func:`train_step` vmapped over seeds. Metrics (``[num_seeds, pool_size]``,
    per-step rewards, recorded before each update):

    * shaping (``p_naive > 0``): ``reward_vs_naive`` and ``naive_reward`` averaged
      over the naive trajectory ``m = 0..M`` (meta-batch mean), and
      ``last_episode_reward_vs_naive``, ``last_episode_naive_reward`` at ``psi_M``;
    * LOLA-DiCE (``p_naive > 0``): ``lookahead_reward``, the objective per step;
    * pools (``pool_size >= 2``): ``reward_vs_meta`` and ``cooperation_vs_meta``,
      exact means over the other meta agents.

    All rewards are loss metrics: a non-finite gradient makes them non-finite at
    the next iteration.
    """

    kind = "analytic"

    def __init__(self, config: AnalyticConfig):
        self.config = config
        self.iterations = config.iterations
        self.optimiser = make_optimiser(config)
        self.shaping = config.p_naive > 0.0 and config.objective == "shaping"
        self.lola = config.p_naive > 0.0 and config.objective == "lola"
        self.pool = config.pool_size >= 2
        rewards: list[str] = []
        progress: list[str] = []
        if self.shaping:
            rewards += [
                "reward_vs_naive",
                "naive_reward",
                "last_episode_reward_vs_naive",
                "last_episode_naive_reward",
            ]
            progress += ["reward_vs_naive", "naive_reward"]
        if self.lola:
            rewards.append("lookahead_reward")
            progress.append("lookahead_reward")
        if self.pool:
            rewards.append("reward_vs_meta")
            progress.append("reward_vs_meta")
        self.loss_metrics = tuple(rewards)
        self.progress_metrics = tuple(progress)

    def init(self, key: jax.Array) -> TrainCarry:
        """Carries of all seeds, ``[num_seeds, ...]`` leaves."""
        keys = jax.random.split(key, self.config.num_seeds)
        return jax.vmap(
            lambda k: initial_carry(self.config, k, optimiser=self.optimiser)
        )(keys)

    def update(self, state: TrainCarry) -> tuple[TrainCarry, dict[str, jax.Array]]:
        """One :func:`train_step` of every seed and its metrics (class docstring)."""
        cfg = self.config
        state_before = state
        state, raw = jax.vmap(lambda c: train_step(cfg, self.optimiser, c))(state)
        metrics: dict[str, jax.Array] = {}
        if self.shaping:
            metrics["reward_vs_naive"] = raw["meta_reward_mean"]
            metrics["naive_reward"] = raw["naive_reward_mean"]
            metrics["last_episode_reward_vs_naive"] = raw["meta_reward_last"]
            metrics["last_episode_naive_reward"] = raw["naive_reward_last"]
        if self.lola:
            metrics["lookahead_reward"] = raw["meta_reward_last"]
        if self.pool:
            metrics["reward_vs_meta"] = raw["meta_vs_meta"]
            _, cooperation = jax.vmap(lambda p: _pairwise(cfg, p))(state_before.params)
            metrics["cooperation_vs_meta"] = jax.vmap(_mean_over_others)(
                cooperation[..., 0]
            )
        return state, metrics

    def params(self, state: TrainCarry) -> jax.Array:
        """Meta-agent logits ``[num_seeds, pool_size, 5]``."""
        return state.params

    def policies(self, state: TrainCarry) -> dict[str, Trained]:
        """The meta agents as memory-one policies (``meta_0`` ...; see
        :func:`dilemmas.agents.load_policy`)."""
        return {
            f"meta_{i}": Trained("memory_one", state.params[:, i], (5,), "ipd-v0")
            for i in range(state.params.shape[1])
        }

    def summary(self, state: TrainCarry, metrics: Mapping[str, Any]) -> dict:
        """Per-seed headline numbers (means over the pool) of the last iteration."""
        del state
        names = (
            "last_episode_reward_vs_naive",
            "last_episode_naive_reward",
            "reward_vs_naive",
            "naive_reward",
            "lookahead_reward",
            "reward_vs_meta",
            "cooperation_vs_meta",
        )
        return {
            name: np.asarray(metrics[name], np.float64).mean(axis=-1).tolist()
            for name in names
            if name in metrics
        }

    def evaluate(self, state: TrainCarry) -> dict[str, Any]:
        """The ``evaluation.json`` record (``docs/run_directory.md``), all exact.

        ``pairs``: every ordered pair of meta agents (an agent against a copy of
        itself when ``pool_size = 1``) and, when shaping, each meta agent against
        the meta-batch of naive learners drawn with :data:`EVALUATION_SEED` after
        their ``M`` naive steps (meta-batch means). ``memory_one``: cooperation
        probabilities of every meta agent and, when shaping, of the naive learners
        at the end of their trajectory (meta-batch mean). ``profiles``: meta and
        naive reward and cooperation after each naive step ``m = 0..M``, averaged
        over the meta-batch and the pool.
        """
        cfg = self.config
        r, s, t, p = cfg.payoffs
        num_seeds, pool_size = state.params.shape[:2]
        record: dict[str, Any] = {
            "game": {
                "id": "ipd-v0",
                "actions": ["C", "D"],
                "payoffs": [[[r, r], [s, t]], [[t, s], [p, p]]],
                "gamma": cfg.gamma,
            },
            "num_seeds": int(num_seeds),
            "pairs": [],
            "memory_one": {},
        }
        params = jnp.asarray(state.params)
        rewards, cooperation = jax.device_get(
            jax.jit(jax.vmap(lambda x: _pairwise(cfg, x)))(params)
        )  # [S, N, N, 2]
        probs = np.asarray(jax.nn.sigmoid(params), np.float64)
        for j in range(pool_size):
            record["memory_one"][f"meta_{j}"] = probs[:, j].tolist()
            for k in range(pool_size):
                if k == j and pool_size > 1:
                    continue
                col = f"meta_{k}" if k != j else f"meta_{k} (copy)"
                record["pairs"].append(
                    {
                        "row": f"meta_{j}",
                        "col": col,
                        "reward": rewards[:, j, k].tolist(),
                        "cooperation": cooperation[:, j, k].tolist(),
                    }
                )
        if self.shaping:
            pairs, memory_one, profiles = self._evaluate_naive(params)
            record["pairs"] = pairs + record["pairs"]
            record["memory_one"].update(memory_one)
            record["profiles"] = profiles
        return record

    def _evaluate_naive(
        self, params: jax.Array
    ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        """Pairs, memory-one entries and profiles against fresh naive learners."""
        cfg = self.config
        naive_init = naive_initial_params(cfg, jax.random.key(EVALUATION_SEED))

        def per_agent(theta_meta, psi0):  # [5], [B, 5]
            paths = jax.vmap(lambda psi: _naive_path(cfg, theta_meta, psi))(psi0)
            outcomes = jax.vmap(jax.vmap(lambda psi: _outcomes(cfg, theta_meta, psi)))(
                paths
            )  # each [B, M + 1, 2]
            end_probs = jax.nn.sigmoid(paths[:, -1])
            return jax.tree.map(lambda x: jnp.mean(x, axis=0), (outcomes, end_probs))

        per_seed = jax.vmap(per_agent)  # over the pool
        (rewards, cooperation), end_probs = jax.device_get(
            jax.jit(jax.vmap(per_seed, in_axes=(0, None)))(params, naive_init)
        )  # [S, N, M + 1, 2] and [S, N, 5]
        pool_size = params.shape[1]
        pairs, memory_one = [], {}
        for j in range(pool_size):
            pairs.append(
                {
                    "row": f"meta_{j}",
                    "col": "naive",
                    "reward": rewards[:, j, -1].tolist(),
                    "cooperation": cooperation[:, j, -1].tolist(),
                }
            )
            name = "naive (end)" if pool_size == 1 else f"naive (end, vs meta_{j})"
            memory_one[name] = np.asarray(end_probs[:, j], np.float64).tolist()
        series = {
            "meta reward": rewards[..., 0].mean(axis=1).tolist(),
            "naive reward": rewards[..., 1].mean(axis=1).tolist(),
            "meta cooperation": cooperation[..., 0].mean(axis=1).tolist(),
            "naive cooperation": cooperation[..., 1].mean(axis=1).tolist(),
        }
        return pairs, memory_one, {"x": "naive step", "series": series}


# --------------------------------------------------------------------------------------
# Presets (settings measured in docs/results.md)

PRESETS: dict[str, AnalyticConfig] = {
    "analytic-shaping": AnalyticConfig(
        name="analytic-shaping",
        gamma=0.999,
        eta_naive=0.01,
        num_naive_steps=20,
        meta_batch=32,
        eta_meta=0.01,
        iterations=2000,
        init="defection",
    ),
    "analytic-extortion-vs-extortion": AnalyticConfig(
        name="analytic-extortion-vs-extortion",
        gamma=0.999,
        eta_meta=0.01,
        iterations=3000,
        pool_size=2,
        p_naive=0.0,
        init="zd_extortion",
        zd_chi=3.0,
        zd_p0=0.0,
    ),
    "analytic-mixed-pool": AnalyticConfig(
        name="analytic-mixed-pool",
        gamma=0.999,
        eta_naive=0.05,
        num_naive_steps=20,
        meta_batch=16,
        eta_meta=0.01,
        iterations=3000,
        pool_size=4,
        p_naive=0.5,
        init="defection",
    ),
    "analytic-meta-pool": AnalyticConfig(
        name="analytic-meta-pool",
        gamma=0.95,
        eta_meta=0.01,
        iterations=2000,
        pool_size=4,
        p_naive=0.0,
        init="defection",
    ),
    "analytic-lola-1": AnalyticConfig(
        name="analytic-lola-1",
        gamma=0.95,
        value_scale="normalised",
        objective="lola",
        eta_naive=10.0,
        num_naive_steps=1,
        eta_meta=0.005,
        iterations=3000,
        pool_size=2,
        p_naive=1.0,
        init="random",
    ),
    "analytic-lola-10": AnalyticConfig(
        name="analytic-lola-10",
        gamma=0.95,
        value_scale="normalised",
        objective="lola",
        eta_naive=5.0,
        num_naive_steps=10,
        eta_meta=0.005,
        iterations=3000,
        pool_size=2,
        p_naive=1.0,
        init="random",
    ),
}
