"""Cooperation metrics for iterated matrix games and grid social dilemmas.

Every function is pure ``jax.numpy`` on recorded arrays: it runs inside ``jit`` and
``jax.lax.scan`` (for logging during training) and on saved rollouts (numpy arrays
are accepted). The public functions other than :func:`reward_per_step` are wrapped
in ``jax.jit`` (Python options such as ``episode_length``, ``confidence``,
``signed`` and ``pooled`` are static), so offline calls compile once per shape.
Shape checks are static, so they also run under ``jit`` and raise ``ValueError``
naming the argument. Values (e.g. that actions are 0 or 1) are not checked: that
would need concrete arrays.

Conventions
-----------
* **Time and agents.** Per-step arrays are ``[..., T, A]``: any leading batch axes
  (seeds, parallel episodes), then time, then agent. One ``[..., T, A]`` slice is
  one episode unless ``episode_length`` says that ``T`` holds several consecutive
  inner episodes of a meta-trajectory (``T = M * episode_length``). Grid maps are
  ``[..., T, H, W]``.
* **Actions.** Matrix-game actions are integers, 0 = cooperate (C), 1 = defect (D).
  A joint outcome is written with agent 0's action first (CC, CD, DC, DD); pass
  ``actions[..., ::-1]`` to read it from agent 1's side.
* **Per-episode versus pooled.** Per-episode metrics keep the leading axes
  (``[..., T, A] -> [..., A]``). Curves (:func:`cooperation_by_round`,
  :func:`cooperation_by_episode`) and the memory-one probe pool every leading axis:
  ``jax.vmap`` them for one curve or probe per seed.
* **Undefined values.** Where a metric is undefined for an episode (equality with a
  zero total return, sustainability for an agent that was never rewarded, a
  proportion of zero events) the value is NaN and a :class:`PerEpisode` result
  also counts the affected episodes (spec ``grid_dilemmas.md`` §5.5).

Reward per step (spec ``matrix_games.md`` §1): :func:`reward_per_step` is the mean
reward over the episode, or ``(1 - gamma) sum_t gamma^t r_t`` when ``gamma`` is given
(the LOLA-DiCE convention); the exact game's ``(1 - gamma) V`` is
:func:`dilemmas.envs.exact_ipd.average_rewards`.

CleanUp-lite (spec ``grid_dilemmas.md`` §1.7, A16-A18): cleaning time
``c_i = (steps in which agent i removed dirt) / T``, discrepancy ``|c_0 - c_1|`` and
the signed ``c_0 - c_1`` (agent 0 minus agent 1, e.g. meta agent minus co-player);
zap rate = successful zaps received per episode, attempts logged separately; pollution
and apple levels = mean number of dirt cells / apples over the episode, measured
after each full step, i.e. on the states the env returns from ``step`` (not the state
it was called on).

Social outcome metrics (Perolat et al. 2017, arXiv:1707.06600; spec §5.5), with
``R^i = sum_t r^i_t`` and N agents: efficiency ``sum_i R^i / T``; equality
``1 - Gini = 1 - sum_ij |R^i - R^j| / (2 N sum_i R^i)``; sustainability, the mean
over agents of ``t^i = E[t | r^i_t > 0]`` with steps counted from ``t = 0`` (the
repository's time convention; add 1 for a count from 1); peace
``(N T - sum_{i,t} tagged^i_t) / T``, the mean number of untagged agents per step.
None of the grid games here removes a player for good, so "tagged" is whatever the
game reports: CleanUp-lite's ``info["frozen"]`` (the freeze after a zap),
Cleanup's and Harvest's ``info["removed"]``.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: Conditioning states of :func:`memory_one_probe`, in the order of its outputs
#: (own action first, as in the matrix games' observation).
PROBE_STATES: tuple[str, ...] = ("start", "CC", "CD", "DC", "DD")


class PerEpisode(NamedTuple):
    """Per-episode values that may be undefined.

    Attributes:
      value: ``[...]`` or ``[..., A]`` float, NaN where the metric is undefined.
      num_undefined: ``()`` int32, number of episodes (entries of the leading axes)
        with at least one NaN value.
    """

    value: jax.Array
    num_undefined: jax.Array


class ProbeResult(NamedTuple):
    """Memory-one probe of a policy: P(C | state) for ``PROBE_STATES``.

    Attributes:
      p: ``[5]`` cooperation frequency per state, NaN for an unvisited state.
      cooperations: ``[5]`` int32, cooperative actions taken in each state.
      counts: ``[5]`` int32, visits of each state.
      lower, upper: ``[5]`` Wilson score interval; ``(0, 1)`` for an unvisited state.
    """

    p: jax.Array
    cooperations: jax.Array
    counts: jax.Array
    lower: jax.Array
    upper: jax.Array


class SocialOutcomes(NamedTuple):
    """Perolat et al.'s social outcome metrics, averaged over episodes.

    ``equality`` and ``sustainability`` average over the episodes where they are
    defined (NaN if none is); the ``num_*_undefined`` fields count the others.
    """

    efficiency: jax.Array
    equality: jax.Array
    sustainability: jax.Array
    peace: jax.Array
    num_equality_undefined: jax.Array
    num_sustainability_undefined: jax.Array


class CleanUpLiteMetrics(NamedTuple):
    """Per-episode CleanUp-lite metrics (spec ``grid_dilemmas.md`` §1.6-1.7).

    Shapes: ``[..., 2]`` per agent, ``[...]`` per episode.
    """

    returns: jax.Array  # [..., 2]
    apples_eaten: jax.Array  # [..., 2]
    cleaning_time: jax.Array  # [..., 2], A16
    cleaning_discrepancy: jax.Array  # [...], |c_0 - c_1|
    cleaning_difference: jax.Array  # [...], c_0 - c_1
    cleaning_share: PerEpisode  # [..., 2], NaN when nobody cleaned
    zaps_fired: jax.Array  # [..., 2], attempts
    zaps_received: jax.Array  # [..., 2], successful zaps suffered (A17)
    pollution_level: jax.Array  # [...], A18
    apple_level: jax.Array  # [...], A18


# --------------------------------------------------------------------------------------
# Validation


def _array(x: Any, name: str, min_ndim: int, layout: str) -> jax.Array:
    try:
        x = jnp.asarray(x)
    except TypeError as err:
        raise ValueError(f"{name} must be an array {layout}, got {x!r}") from err
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have shape {layout}; got shape {x.shape}")
    return x


def _per_step(x: Any, name: str, num_agents: int | None = None) -> jax.Array:
    """A ``[..., T, A]`` array (with ``A == num_agents`` when given)."""
    layout = "[..., T, A]" if num_agents is None else f"[..., T, {num_agents}]"
    x = _array(x, name, 2, layout)
    if num_agents is not None and x.shape[-1] != num_agents:
        raise ValueError(
            f"{name} must have shape {layout} (last axis: agents); got shape {x.shape}"
        )
    if x.shape[-2] == 0:
        raise ValueError(f"{name} must have at least one time step; got {x.shape}")
    return x


def _same_shape(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape; got {a.shape} and "
            f"{b.shape}"
        )


def _float(x: jax.Array) -> jax.Array:
    return x.astype(jnp.result_type(float))


def _num_undefined(value: jax.Array, batch_ndim: int) -> jax.Array:
    """Number of leading-axes entries with a NaN among their trailing entries."""
    nan = jnp.isnan(value)
    trailing = tuple(range(batch_ndim, value.ndim))
    if trailing:
        nan = jnp.any(nan, axis=trailing)
    return jnp.sum(nan, dtype=jnp.int32)


def _ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, NaN where the denominator is 0 (no warnings)."""
    defined = denominator != 0
    safe = jnp.where(defined, denominator, 1)
    return jnp.where(defined, numerator / safe, jnp.nan)


def _split_episodes(x: jax.Array, name: str, episode_length: int | None) -> jax.Array:
    """``[..., M * L, A] -> [..., M, L, A]`` (``M = 1`` without ``episode_length``)."""
    steps = x.shape[-2]
    if episode_length is None:
        episode_length = steps
    if (
        isinstance(episode_length, bool)
        or not isinstance(episode_length, int | np.integer)
        or episode_length <= 0
    ):
        raise ValueError(
            f"episode_length must be a positive int or None, got {episode_length!r}"
        )
    if steps % episode_length:
        raise ValueError(
            f"the time axis of {name} ({steps} steps) is not a multiple of "
            f"episode_length = {episode_length}"
        )
    shape = (*x.shape[:-2], steps // episode_length, int(episode_length), x.shape[-1])
    return jnp.reshape(x, shape)


# --------------------------------------------------------------------------------------
# Iterated matrix games


@jax.jit
def cooperation_rate(actions: jax.Array) -> jax.Array:
    """Fraction of cooperative moves per agent and episode.

    Args:
      actions: ``[..., T, A]`` integers, 0 = C, 1 = D.

    Returns:
      ``[..., A]`` float in ``[0, 1]``.
    """
    actions = _per_step(actions, "actions")
    return jnp.mean(_float(actions == 0), axis=-2)


@jax.jit
def joint_outcome_distribution(actions: jax.Array) -> jax.Array:
    """Share of rounds ending in CC, CD, DC, DD (agent 0's action first).

    Args:
      actions: ``[..., T, 2]`` integers, 0 = C, 1 = D, agent 0 first.

    Returns:
      ``[..., 4]`` frequencies over (CC, CD, DC, DD), summing to 1.
    """
    actions = _per_step(actions, "actions", num_agents=2)
    outcome = 2 * actions[..., 0] + actions[..., 1]
    one_hot = jax.nn.one_hot(outcome, 4, dtype=jnp.result_type(float))
    return jnp.mean(one_hot, axis=-2)


def reward_per_step(
    rewards: jax.Array, gamma: float | jax.Array | None = None
) -> jax.Array:
    """Reward per step of each agent in each episode (spec §1 "Reporting").

    Args:
      rewards: ``[..., T, A]`` per-step rewards.
      gamma: ``None`` for the plain mean over the episode; a discount in
        ``[0, 1)`` for ``(1 - gamma) sum_t gamma^t r_t`` (t from 0), as LOLA-DiCE
        reports. A traced ``gamma`` is not range-checked.

    Returns:
      ``[..., A]`` float.
    """
    rewards = _float(_per_step(rewards, "rewards"))
    if gamma is None:
        return jnp.mean(rewards, axis=-2)
    if not isinstance(gamma, jax.core.Tracer):
        value = np.asarray(gamma, dtype=np.float64)
        if value.shape != () or not 0.0 <= value < 1.0:
            raise ValueError(f"gamma must be None or a scalar in [0, 1); got {gamma}")
    discounts = jnp.asarray(gamma, rewards.dtype) ** jnp.arange(
        rewards.shape[-2], dtype=rewards.dtype
    )
    return (1.0 - gamma) * jnp.einsum("...ta,t->...a", rewards, discounts)


@functools.partial(jax.jit, static_argnames="episode_length")
def cooperation_by_round(
    actions: jax.Array, episode_length: int | None = None
) -> jax.Array:
    """Cooperation rate at each round of an (inner) episode, pooled over episodes.

    Args:
      actions: ``[..., T, A]`` integers, 0 = C, 1 = D.
      episode_length: static int ``L`` when ``T = M * L`` holds ``M`` consecutive
        inner episodes (each then counts as one more episode); ``None``: ``L = T``.

    Returns:
      ``[L, A]``: ``out[t, i]`` is agent i's cooperation rate at round t, averaged
      over every leading axis (and over inner episodes).
    """
    actions = _split_episodes(_per_step(actions, "actions"), "actions", episode_length)
    cooperate = _float(actions == 0)
    return jnp.mean(jnp.reshape(cooperate, (-1, *cooperate.shape[-2:])), axis=0)


@functools.partial(jax.jit, static_argnames="episode_length")
def cooperation_by_episode(actions: jax.Array, episode_length: int) -> jax.Array:
    """Cooperation rate of each inner episode of a meta-trajectory, pooled over batch.

    Args:
      actions: ``[..., M * L, A]`` integers, 0 = C, 1 = D: ``M`` consecutive inner
        episodes of ``L`` steps each.
      episode_length: static int ``L``.

    Returns:
      ``[M, A]``: agent i's cooperation rate in inner episode m, averaged over the
      rounds of that episode and over every leading axis.
    """
    if episode_length is None:
        raise ValueError("episode_length must be a positive int, got None")
    actions = _split_episodes(_per_step(actions, "actions"), "actions", episode_length)
    per_episode = jnp.mean(_float(actions == 0), axis=-2)  # [..., M, A]
    return jnp.mean(jnp.reshape(per_episode, (-1, *per_episode.shape[-2:])), axis=0)


@functools.partial(jax.jit, static_argnames="confidence")
def wilson_interval(
    successes: jax.Array, trials: jax.Array, confidence: float = 0.95
) -> tuple[jax.Array, jax.Array]:
    """Wilson score interval of a binomial proportion.

    ``(p + z^2 / 2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)`` with
    ``p = successes / trials`` and ``z`` the two-sided normal quantile of
    ``confidence`` (1.96 for 0.95). Where ``trials == 0`` the interval is ``(0, 1)``.

    Args:
      successes, trials: arrays of the same shape, ``0 <= successes <= trials``.
      confidence: a Python float in ``(0, 1)``.

    Returns:
      ``(lower, upper)`` arrays of that shape.
    """
    successes, trials = jnp.asarray(successes), jnp.asarray(trials)
    _same_shape(successes, trials, "successes", "trials")
    if not isinstance(confidence, float | int) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)
    n = _float(trials)
    seen = n > 0
    n_safe = jnp.where(seen, n, 1.0)
    p = successes / n_safe
    denominator = 1.0 + z**2 / n_safe
    centre = (p + z**2 / (2.0 * n_safe)) / denominator
    half = z * jnp.sqrt(p * (1.0 - p) / n_safe + z**2 / (4.0 * n_safe**2)) / denominator
    lower = jnp.where(seen, jnp.clip(centre - half, 0.0, 1.0), 0.0)
    upper = jnp.where(seen, jnp.clip(centre + half, 0.0, 1.0), 1.0)
    return lower, upper


@functools.partial(jax.jit, static_argnames=("episode_length", "confidence"))
def memory_one_probe(
    actions: jax.Array,
    episode_length: int | None = None,
    confidence: float = 0.95,
) -> ProbeResult:
    """Memory-one "probe" of any policy: P(C | start, CC, CD, DC, DD) from play.

    Works for any policy, recurrent ones included: it only counts, in recorded
    play, how often the agent cooperated in each memory-one situation. The first
    round of every inner episode is the ``start`` state; round ``t > 0`` is
    conditioned on the previous joint move in the agent's own perspective (own
    action first, so CD = "I cooperated, the co-player defected").

    Args:
      actions: ``[..., T, 2]`` integers, 0 = C, 1 = D, **(own, co-player)**: pass
        ``actions[..., ::-1]`` to probe agent 1 of a recorded pair.
      episode_length: static int ``L`` when ``T = M * L`` holds ``M`` consecutive
        inner episodes (a meta-trajectory; each starts in ``start``); ``None``: one
        episode per ``[T, 2]`` slice.
      confidence: level of the Wilson intervals (Python float in ``(0, 1)``).

    Returns:
      :class:`ProbeResult` of ``[5]`` arrays, pooled over every leading axis.
    """
    actions = _per_step(actions, "actions", num_agents=2)
    actions = _split_episodes(actions, "actions", episode_length)  # [..., M, L, 2]
    own, co = actions[..., 0], actions[..., 1]
    previous = 1 + 2 * own[..., :-1] + co[..., :-1]
    start = jnp.zeros_like(previous[..., :1])
    state = jnp.concatenate([start, previous], axis=-1)  # [..., M, L]
    visits = jax.nn.one_hot(state, len(PROBE_STATES), dtype=jnp.int32)
    visits = jnp.reshape(visits, (-1, len(PROBE_STATES)))
    cooperate = jnp.reshape(own == 0, (-1, 1)).astype(jnp.int32)
    counts = jnp.sum(visits, axis=0, dtype=jnp.int32)
    cooperations = jnp.sum(visits * cooperate, axis=0, dtype=jnp.int32)
    lower, upper = wilson_interval(cooperations, counts, confidence)
    return ProbeResult(
        p=_ratio(_float(cooperations), _float(counts)),
        cooperations=cooperations,
        counts=counts,
        lower=lower,
        upper=upper,
    )


# --------------------------------------------------------------------------------------
# Grid games


@jax.jit
def episode_returns(rewards: jax.Array) -> jax.Array:
    """Undiscounted return of each agent: ``[..., T, A] -> [..., A]``."""
    return jnp.sum(_float(_per_step(rewards, "rewards")), axis=-2)


@jax.jit
def episode_totals(counts: jax.Array) -> jax.Array:
    """Per-agent episode totals of per-step counts, ``[..., T, A] -> [..., A]``.

    For the grid games' ``info`` counters: ``apples_eaten``, ``zaps_fired``
    (attempts), ``zaps_received`` (successful zaps suffered: CleanUp-lite's "zap
    rate", A17), ``own_coins`` ... The result keeps the input's dtype family
    (int32 counts stay integers).
    """
    counts = _per_step(counts, "counts")
    return jnp.sum(counts, axis=-2)


@jax.jit
def cleaning_time(cells_cleaned: jax.Array) -> jax.Array:
    """A16: ``c_i`` = (steps in which agent i removed dirt) / T.

    Args:
      cells_cleaned: ``[..., T, A]`` per-step counts of cells each agent cleaned.

    Returns:
      ``[..., A]`` float in ``[0, 1]``.
    """
    cells_cleaned = _per_step(cells_cleaned, "cells_cleaned")
    return jnp.mean(_float(cells_cleaned > 0), axis=-2)


@functools.partial(jax.jit, static_argnames="signed")
def cleaning_discrepancy(cells_cleaned: jax.Array, signed: bool = False) -> jax.Array:
    """A16: ``|c_0 - c_1|``, or the signed ``c_0 - c_1`` with ``signed=True``.

    Args:
      cells_cleaned: ``[..., T, 2]`` per-step cleaning counts; agent 0 first (the
        meta agent, if any, so the signed value is meta minus co-player).
      signed: static bool.

    Returns:
      ``[...]`` float.
    """
    cells_cleaned = _per_step(cells_cleaned, "cells_cleaned", num_agents=2)
    c = cleaning_time(cells_cleaned)
    difference = c[..., 0] - c[..., 1]
    return difference if signed else jnp.abs(difference)


@jax.jit
def cleaning_share(cells_cleaned: jax.Array) -> PerEpisode:
    """Each agent's share of all the cells cleaned in the episode.

    Args:
      cells_cleaned: ``[..., T, A]`` per-step cleaning counts.

    Returns:
      :class:`PerEpisode` with ``[..., A]`` shares summing to 1, NaN (and counted)
      in episodes where nobody cleaned.
    """
    totals = _float(episode_totals(_per_step(cells_cleaned, "cells_cleaned")))
    share = _ratio(totals, jnp.sum(totals, axis=-1, keepdims=True))
    return PerEpisode(share, _num_undefined(share, share.ndim - 1))


def _mean_cell_count(grid: jax.Array, name: str) -> jax.Array:
    grid = _array(grid, name, 3, "[..., T, H, W]")
    if grid.shape[-3] == 0:
        raise ValueError(f"{name} must have at least one time step; got {grid.shape}")
    return jnp.mean(jnp.sum(_float(grid), axis=(-2, -1)), axis=-1)


@jax.jit
def pollution_level(dirt: jax.Array) -> jax.Array:
    """A18: mean number of dirt cells over the episode.

    Args:
      dirt: ``[..., T, H, W]`` bool, the dirt map of the state returned by each
        step (after the step, as the next observation shows it).

    Returns:
      ``[...]`` float.
    """
    return _mean_cell_count(dirt, "dirt")


@jax.jit
def apple_level(apples: jax.Array) -> jax.Array:
    """A18: mean number of apples over the episode.

    Args:
      apples: ``[..., T, H, W]`` bool, the apple map of the state returned by each
        step.

    Returns:
      ``[...]`` float.
    """
    return _mean_cell_count(apples, "apples")


def _info_entry(info: Mapping[str, Any], key: str) -> jax.Array:
    if not isinstance(info, Mapping):
        raise ValueError(f"info must be a mapping of per-step arrays, got {info!r}")
    if key not in info:
        raise ValueError(f"info is missing the key {key!r}; got keys {sorted(info)}")
    return _per_step(info[key], f"info[{key!r}]", num_agents=2)


@jax.jit
def cleanup_lite_metrics(
    rewards: jax.Array,
    info: Mapping[str, jax.Array],
    dirt: jax.Array,
    apples: jax.Array,
) -> CleanUpLiteMetrics:
    """Every CleanUp-lite metric of the COALA-PG paper for recorded episodes.

    Args:
      rewards: ``[..., T, 2]`` per-step rewards.
      info: the stacked per-step ``info`` of the env, ``[..., T, 2]`` int arrays
        under ``apples_eaten``, ``cells_cleaned``, ``zaps_fired``,
        ``zaps_received`` (other keys are ignored).
      dirt, apples: ``[..., T, H, W]`` bool maps of the states after each step.

    Returns:
      :class:`CleanUpLiteMetrics`.
    """
    rewards = _per_step(rewards, "rewards", num_agents=2)
    cleaned = _info_entry(info, "cells_cleaned")
    fired = _info_entry(info, "zaps_fired")
    received = _info_entry(info, "zaps_received")
    eaten = _info_entry(info, "apples_eaten")
    return CleanUpLiteMetrics(
        returns=episode_returns(rewards),
        apples_eaten=episode_totals(eaten),
        cleaning_time=cleaning_time(cleaned),
        cleaning_discrepancy=cleaning_discrepancy(cleaned),
        cleaning_difference=cleaning_discrepancy(cleaned, signed=True),
        cleaning_share=cleaning_share(cleaned),
        zaps_fired=episode_totals(fired),
        zaps_received=episode_totals(received),
        pollution_level=pollution_level(dirt),
        apple_level=apple_level(apples),
    )


@functools.partial(jax.jit, static_argnames="pooled")
def own_coin_proportion(
    own_coins: jax.Array, other_coins: jax.Array, pooled: bool = False
) -> PerEpisode:
    """Coin Game: own-colour pickups / all pickups (spec §5.2).

    Selfish play gives about 0.5, full cooperation 1.

    Args:
      own_coins, other_coins: ``[..., T, A]`` per-step pickups of coins of the
        agent's own / the other colour (the Coin Game's ``info`` entries).
      pooled: static bool; ``True`` pools the pickups of all agents.

    Returns:
      :class:`PerEpisode` of ``[..., A]`` (``[...]`` when pooled) proportions, NaN
      (and counted) in episodes with no pickup (by that agent, or at all).
    """
    own_coins = _per_step(own_coins, "own_coins")
    other_coins = _per_step(other_coins, "other_coins")
    _same_shape(own_coins, other_coins, "own_coins", "other_coins")
    own = _float(jnp.sum(own_coins, axis=-2))
    total = own + _float(jnp.sum(other_coins, axis=-2))
    if pooled:
        own, total = jnp.sum(own, axis=-1), jnp.sum(total, axis=-1)
    proportion = _ratio(own, total)
    batch_ndim = own_coins.ndim - 2
    return PerEpisode(proportion, _num_undefined(proportion, batch_ndim))


# --------------------------------------------------------------------------------------
# Social outcome metrics (Perolat et al. 2017)


@jax.jit
def gini(x: jax.Array) -> PerEpisode:
    """Gini coefficient ``sum_ij |x_i - x_j| / (2 N sum_i x_i)`` over the last axis.

    Args:
      x: ``[..., N]`` e.g. per-agent returns.

    Returns:
      :class:`PerEpisode` of ``[...]``, NaN (and counted) where ``sum_i x_i = 0``.
    """
    x = _float(_array(x, "x", 1, "[..., N]"))
    if x.shape[-1] == 0:
        raise ValueError(f"x must have at least one entry on its last axis; {x.shape}")
    gaps = jnp.sum(jnp.abs(x[..., :, None] - x[..., None, :]), axis=(-2, -1))
    value = _ratio(gaps, 2.0 * x.shape[-1] * jnp.sum(x, axis=-1))
    return PerEpisode(value, _num_undefined(value, value.ndim))


@jax.jit
def efficiency(rewards: jax.Array) -> jax.Array:
    """Utilitarian efficiency ``sum_i R^i / T`` of each episode.

    Args:
      rewards: ``[..., T, A]`` per-step rewards.

    Returns:
      ``[...]`` float.
    """
    rewards = _per_step(rewards, "rewards")
    return jnp.sum(episode_returns(rewards), axis=-1) / rewards.shape[-2]


@jax.jit
def equality(rewards: jax.Array) -> PerEpisode:
    """Equality ``1 - Gini`` of the agents' returns in each episode.

    Args:
      rewards: ``[..., T, A]`` per-step rewards.

    Returns:
      :class:`PerEpisode` of ``[...]``, NaN (and counted) where the agents' total
      return is 0.
    """
    g = gini(episode_returns(rewards))
    return PerEpisode(1.0 - g.value, g.num_undefined)


@jax.jit
def reward_times(rewards: jax.Array) -> jax.Array:
    """``t^i = E[t | r^i_t > 0]``, the mean step (from 0) of agent i's rewards.

    Args:
      rewards: ``[..., T, A]`` per-step rewards.

    Returns:
      ``[..., A]`` float, NaN for an agent never rewarded in the episode.
    """
    rewards = _per_step(rewards, "rewards")
    rewarded = _float(rewards > 0)
    t = jnp.arange(rewards.shape[-2], dtype=rewarded.dtype)
    return _ratio(jnp.einsum("...ta,t->...a", rewarded, t), jnp.sum(rewarded, -2))


@jax.jit
def sustainability(rewards: jax.Array) -> PerEpisode:
    """Sustainability ``(1/N) sum_i t^i`` of each episode (see :func:`reward_times`).

    Args:
      rewards: ``[..., T, A]`` per-step rewards.

    Returns:
      :class:`PerEpisode` of ``[...]``, NaN (and counted) where some agent was
      never rewarded.
    """
    value = jnp.mean(reward_times(rewards), axis=-1)
    return PerEpisode(value, _num_undefined(value, value.ndim))


@jax.jit
def peace(tagged: jax.Array) -> jax.Array:
    """Peace ``(N T - sum_{i,t} tagged^i_t) / T``: mean number of untagged agents.

    Args:
      tagged: ``[..., T, A]``, nonzero when agent i is tagged out (CleanUp-lite:
        frozen; Cleanup, Harvest: removed) at step t.

    Returns:
      ``[...]`` float in ``[0, A]``.
    """
    tagged = _per_step(tagged, "tagged")
    steps, agents = tagged.shape[-2:]
    out = jnp.sum(_float(tagged != 0), axis=(-2, -1))
    return (agents * steps - out) / steps


@jax.jit
def social_outcomes(
    rewards: jax.Array, tagged: jax.Array | None = None
) -> SocialOutcomes:
    """The four social outcome metrics, averaged over every leading axis.

    Args:
      rewards: ``[..., T, A]`` per-step rewards.
      tagged: ``[..., T, A]`` tagged-out flags (see :func:`peace`); ``None`` for a
        game without tagging (peace is then ``A``).

    Returns:
      :class:`SocialOutcomes` of scalars.
    """
    rewards = _per_step(rewards, "rewards")
    if tagged is None:
        tagged = jnp.zeros(rewards.shape, jnp.int32)
    tagged = _per_step(tagged, "tagged")
    _same_shape(rewards, tagged, "rewards", "tagged")
    fair = equality(rewards)
    lasting = sustainability(rewards)
    return SocialOutcomes(
        efficiency=jnp.mean(efficiency(rewards)),
        equality=jnp.nanmean(fair.value),
        sustainability=jnp.nanmean(lasting.value),
        peace=jnp.mean(peace(tagged)),
        num_equality_undefined=fair.num_undefined,
        num_sustainability_undefined=lasting.num_undefined,
    )
