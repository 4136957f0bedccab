"""Trained agents as policies anywhere: one protocol, one file format, ``load_policy``.

**The policy protocol** is the one every fixed strategy already follows
(:mod:`dilemmas.agents.strategies`): an object with two pure methods,

* ``init() -> state``: a pytree of arrays, the state at the start of an episode;
* ``act(key, state, obs) -> (action, new_state)``: ``obs`` is ONE agent's
  observation from the core env, ``action`` an int32 scalar.

So a policy plays wherever a strategy does: in JAX loops
(:func:`dilemmas.agents.strategies.rollout`, ``jit`` and ``vmap`` over it), as the
co-player of the Gymnasium face (``gymnasium.make("dilemmas/IPD-v0",
co_player=policy)``), as an Axelrod player
(:func:`dilemmas.analysis.tournament.from_strategy`), and as a frozen co-player of
the co-player inference pools (``pool="policy:RUN_DIR"``). A function of the
observation becomes a policy through :func:`from_function`.

**Trained agents.** At the end of every run ``dilemmas train`` writes each trained
agent to ``RUN_DIR/policies/``: ``<agent>.json`` says how to rebuild it (network
class and sizes, what it reads, the game) and ``<agent>.msgpack`` holds its
parameters for every seed (flax's msgpack serialisation, never pickle).
``dilemmas export-policies RUN_DIR`` writes them for a run from its latest
checkpoint (a run that stopped early, or one written before this format).
:func:`load_policy` reads them back:

* :class:`NetworkPolicy`: a policy-value network acting on its own recurrent state
  (the meta agents of the shaping loop, the A2C learners of co-player inference);
* :class:`PPIPolicy`: a PPI learner, its sequence model and the improved policy
  (Monte-Carlo rollouts inside the model at every decision);
* :class:`~dilemmas.agents.strategies.MemoryOne`: a meta agent of the analytic
  (exact infinite IPD) loop, its five cooperation probabilities.

The previous own action and reward that some agents read are tracked in the
policy's state: the action it took, and the reward it got, recovered from the
matrix-game observation (the last joint action) and the game's payoffs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization, struct

from dilemmas.agents import networks
from dilemmas.agents.ppi import Planner, decide
from dilemmas.agents.sequence import SequenceInputs
from dilemmas.agents.sequence_model import SequenceModel
from dilemmas.agents.strategies import MemoryOne

FORMAT_VERSION = 1
POLICY_DIR = "policies"
_NETWORKS = {
    cls.__name__: cls
    for cls in (
        networks.TabularPolicy,
        networks.MLPPolicy,
        networks.GRUPolicy,
        networks.HawkPolicy,
    )
}


class PolicyState(NamedTuple):
    """What a trained policy carries between rounds of one episode."""

    carry: Any  # the network's (or sequence model's) recurrent state
    prev_action: jax.Array  # () int32, -1 before the first round
    t: jax.Array  # () int32, rounds played


def _prev_reward(payoffs: jax.Array | None, obs: jax.Array) -> jax.Array:
    """The reward of the last round from a matrix-game observation: entries 1-4
    one-hot the last joint action (own, other), entry 0 the start (reward 0)."""
    if payoffs is None:
        return jnp.zeros((), jnp.float32)
    table = jnp.concatenate([jnp.zeros(1), jnp.reshape(payoffs, -1)])
    return table[jnp.argmax(obs[:5])].astype(jnp.float32)


def own_payoffs(env_params: Any) -> tuple[float, ...] | None:
    """The row player's rewards ``(R, S, T, P)`` of a symmetric 2x2 game (what a
    policy needs to recover its previous reward from the observation), or
    ``None`` for other games."""
    payoffs = getattr(env_params, "payoffs", None)
    if payoffs is None:
        return None
    table = np.asarray(payoffs, np.float64)
    if table.shape != (2, 2, 2) or not np.allclose(table[..., 0], table[..., 1].T):
        return None
    return tuple(float(x) for x in table[..., 0].reshape(-1))


@struct.dataclass
class NetworkPolicy:
    """A trained policy-value network as a policy.

    Attributes:
      params: the network's parameters (one agent, one seed).
      network: the flax module (``TabularPolicy``, ``MLPPolicy``, ``GRUPolicy`` or
        ``HawkPolicy``).
      inputs: how the co-player inference agents build their input from the
        observation, previous action and previous reward; ``None``: the raw
        observation (the shaping loop's meta agents).
      payoffs: the row player's ``(R, S, T, P)``, to recover the previous reward
        from the observation when ``inputs`` reads it.
      greedy: take the most likely action instead of sampling.
    """

    params: Any
    network: nn.Module = struct.field(pytree_node=False)
    inputs: SequenceInputs | None = struct.field(pytree_node=False, default=None)
    payoffs: tuple[float, ...] | None = struct.field(pytree_node=False, default=None)
    greedy: bool = struct.field(pytree_node=False, default=False)

    def init(self) -> PolicyState:
        return PolicyState(
            self.network.initial_state(),
            jnp.full((), -1, jnp.int32),
            jnp.zeros((), jnp.int32),
        )

    def logits(self, state: PolicyState, obs: jax.Array) -> tuple[Any, jax.Array]:
        """The network's new carry and action logits for ``obs``."""
        x = jnp.asarray(obs, jnp.float32)
        if self.inputs is not None:
            payoffs = None if self.payoffs is None else jnp.asarray(self.payoffs)
            x = self.inputs.step(x, state.prev_action, _prev_reward(payoffs, x))
        carry, out = self.network.apply(self.params, state.carry, x, state.t == 0)
        return carry, out.logits

    def act(self, key: jax.Array, state: PolicyState, obs: jax.Array):
        carry, logits = self.logits(state, obs)
        if self.greedy:
            action = jnp.argmax(logits).astype(jnp.int32)
        else:
            action = jax.random.categorical(key, logits).astype(jnp.int32)
        return action, PolicyState(carry, action, state.t + 1)


@struct.dataclass
class PPIPolicy:
    """A PPI learner as a policy: each round it feeds the observation and the
    previous reward to its sequence model, samples from the improved policy
    ``pi ∝ p exp(beta Q)`` (Q from rollouts inside the model) and feeds its action.

    Attributes:
      params: the sequence model's parameters (one learner, one seed).
      model: the :class:`~dilemmas.agents.sequence_model.SequenceModel`.
      planner: the improved policy's settings.
      payoffs: the row player's ``(R, S, T, P)`` (the model reads rewards).
    """

    params: Any
    model: SequenceModel = struct.field(pytree_node=False)
    planner: Planner = struct.field(pytree_node=False)
    payoffs: tuple[float, ...] = struct.field(pytree_node=False)

    def init(self) -> PolicyState:
        return PolicyState(
            self.model.initial_state((1,)),
            jnp.full((), -1, jnp.int32),
            jnp.zeros((), jnp.int32),
        )

    def act(self, key: jax.Array, state: PolicyState, obs: jax.Array):
        k_plan, k_act = jax.random.split(key)
        obs = jnp.asarray(obs, jnp.float32)
        reward = _prev_reward(jnp.asarray(self.payoffs), obs)
        index = jnp.argmax(obs[:5]).astype(jnp.int32)[None]
        h = self.model.feed_obs(self.params, state.carry, index)
        h = self.model.feed_reward(self.params, h, reward[None])
        decision = decide(
            self.model, self.params, h, state.t[None], k_plan, self.planner
        )
        action = jax.random.categorical(k_act, decision.logits[0]).astype(jnp.int32)
        h = self.model.feed_action(self.params, h, action[None])
        return action, PolicyState(h, action, state.t + 1)


@struct.dataclass
class FunctionPolicy:
    """``fn(key, obs) -> action`` as a stateless policy (see :func:`from_function`)."""

    fn: Callable[[jax.Array, jax.Array], Any] = struct.field(pytree_node=False)

    def init(self) -> jax.Array:
        return jnp.zeros((), jnp.int32)

    def act(self, key: jax.Array, state: jax.Array, obs: jax.Array):
        return jnp.asarray(self.fn(key, obs), jnp.int32), state


def from_function(fn: Callable[..., Any]) -> FunctionPolicy:
    """A policy from ``fn(key, obs) -> action`` (jittable JAX code).

    For a policy with a memory, write a small class with ``init()`` and
    ``act(key, state, obs)`` instead: that is the whole protocol.
    """
    if not callable(fn):
        raise ValueError(f"from_function takes a callable fn(key, obs); got {fn!r}")
    return FunctionPolicy(fn)


# --------------------------------------------------------------------------------------
# The policy files of a run directory


def _is_json(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


def _module_kwargs(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of a network that a JSON file can hold; the others
    (activation functions, initialisers) must keep their defaults."""
    kwargs = {}
    for f in dataclasses.fields(module):
        if not f.init or f.name in ("parent", "name"):
            continue
        value = getattr(module, f.name)
        if _is_json(value):
            kwargs[f.name] = value
        elif value is not f.default:
            raise ValueError(
                f"cannot write {type(module).__name__}.{f.name} = {value!r} to a "
                "policy file: only its default can be rebuilt"
            )
    return kwargs


class Trained(NamedTuple):
    """One trained agent of a run, as an experiment hands it to the run driver.

    Attributes:
      agent: a :class:`NetworkPolicy` or :class:`PPIPolicy` whose ``params`` are
        ignored (it names the network and what it reads), or ``"memory_one"``
        for cooperation logits ``[num_seeds, 5]``.
      params: the agent's parameters for every seed, leaves ``[num_seeds, ...]``.
      obs_shape: the shape of one agent's observation in its env.
      env_id: the core env id it was trained on.
    """

    agent: Any
    params: Any
    obs_shape: tuple[int, ...]
    env_id: str


def learners(
    agent: Any, params: Any, count: int, obs_shape: tuple[int, ...], env_id: str
) -> dict[str, Trained]:
    """``learner_0`` ... ``learner_{count-1}`` of a co-player inference run: one
    :class:`Trained` each, from ``params`` with leaves ``[num_seeds, count, ...]``."""
    return {
        f"learner_{i}": Trained(
            agent, jax.tree.map(lambda x, i=i: x[:, i], params), obs_shape, env_id
        )
        for i in range(count)
    }


def policy_files(trained: Trained) -> tuple[bytes, bytes]:
    """The two files (``.json`` spec, ``.msgpack`` parameters) of one trained agent."""
    agent, params, obs_shape, env_id = trained
    if isinstance(agent, str) and agent == "memory_one":
        spec = {"kind": "memory_one"}
    elif isinstance(agent, NetworkPolicy):
        spec = {
            "kind": "network",
            "network": type(agent.network).__name__,
            "network_kwargs": _module_kwargs(agent.network),
            "inputs": None
            if agent.inputs is None
            else dataclasses.asdict(agent.inputs),
            "payoffs": agent.payoffs,
        }
    elif isinstance(agent, PPIPolicy):
        spec = {
            "kind": "ppi",
            "model": dataclasses.asdict(agent.model),
            "planner": dataclasses.asdict(agent.planner),
            "payoffs": agent.payoffs,
        }
    else:
        raise ValueError(f"cannot write a policy file for {agent!r}")
    params = jax.tree.map(np.asarray, params)
    spec = {
        "format_version": FORMAT_VERSION,
        **spec,
        "env_id": env_id,
        "obs_shape": [int(n) for n in obs_shape],
        "num_seeds": int(np.shape(jax.tree.leaves(params)[0])[0]),
    }
    data = serialization.msgpack_serialize(
        serialization.to_state_dict({"params": params})
    )
    return (json.dumps(spec, indent=2) + "\n").encode(), data


def _template(spec: dict[str, Any]) -> tuple[Any, Any]:
    """An agent with ``params=None`` and the shapes of one seed's parameters."""
    if spec["kind"] == "network":
        cls = _NETWORKS.get(spec["network"])
        if cls is None:
            raise ValueError(f"unknown network {spec['network']!r}")
        kwargs = dict(spec["network_kwargs"])
        for name, value in kwargs.items():
            if isinstance(value, list):
                kwargs[name] = tuple(value)
        network = cls(**kwargs)
        inputs = None
        if spec["inputs"] is not None:
            raw = dict(spec["inputs"])
            raw["obs_shape"] = tuple(raw["obs_shape"])
            inputs = SequenceInputs(**raw)
        payoffs = None if spec["payoffs"] is None else tuple(spec["payoffs"])
        if inputs is not None and inputs.opponent_id:
            raise ValueError(
                "this agent was trained with Opponent ID: it acts on its co-player's "
                "z vector, which a policy is not given"
            )
        if inputs is not None and inputs.prev_reward and payoffs is None:
            raise ValueError(
                f"this agent reads its previous reward, which a policy recovers only "
                f"from a symmetric 2x2 game's observation, not {spec['env_id']}'s"
            )
        agent = NetworkPolicy(None, network, inputs, payoffs)
        shape = (inputs.dim,) if inputs is not None else tuple(spec["obs_shape"])
        shapes = jax.eval_shape(
            lambda: network.init(
                jax.random.key(0), network.initial_state(), jnp.zeros(shape), True
            )
        )
        return agent, shapes
    if spec["kind"] == "ppi":
        model = SequenceModel(**spec["model"])
        if model.z_dim or spec["payoffs"] is None:
            raise ValueError(
                "a PPI policy needs a symmetric 2x2 game and no Opponent-ID vector"
            )
        agent = PPIPolicy(
            None, model, Planner(**spec["planner"]), tuple(spec["payoffs"])
        )
        return agent, jax.eval_shape(model.init, jax.random.key(0))
    if spec["kind"] == "memory_one":
        return "memory_one", jax.ShapeDtypeStruct((5,), jnp.float32)
    raise ValueError(f"unknown policy kind {spec['kind']!r}")


def policy_names(run_dir: str | Path) -> list[str]:
    """The agents whose policies ``run_dir`` holds (``meta_0``, ``learner_1``...)."""
    folder = Path(run_dir) / POLICY_DIR
    return sorted(p.stem for p in folder.glob("*.json"))


def load_policy(
    run_dir: str | Path,
    agent: str | None = None,
    *,
    seed: int = 0,
    greedy: bool = False,
    env_id: str | None = None,
) -> NetworkPolicy | PPIPolicy | MemoryOne:
    """A trained agent of a run directory as a policy (see the module docstring).

    Args:
      run_dir: a run directory written by ``dilemmas train``.
      agent: which agent (``meta_0``, ``learner_0``, ...); ``None`` takes the first
        of :func:`policy_names`.
      seed: which of the run's seeds.
      greedy: network policies take their most likely action.
      env_id: if given, the core env id the caller plays: an agent trained on
        another game is refused.

    Raises:
      ValueError: no such directory, no policy files (the message says how to
        write them), an unknown agent or seed, or parameters that do not match
        the spec (a corrupted or foreign file).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} does not exist")
    names = policy_names(run_dir)
    if not names:
        raise ValueError(
            f"{run_dir} holds no policies/ (written at the end of a run): run "
            f"`dilemmas export-policies {run_dir}` to write them from its latest "
            "checkpoint"
        )
    agent = names[0] if agent is None else agent
    if agent not in names:
        raise ValueError(f"{run_dir} has no agent {agent!r}; it has {names}")
    folder = run_dir / POLICY_DIR
    try:
        spec = json.loads((folder / f"{agent}.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read the policy spec of {agent}: {err}") from None
    if spec.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{agent}.json has format_version {spec.get('format_version')!r}; this "
            f"version of dilemmas reads {FORMAT_VERSION}"
        )
    if env_id is not None and spec.get("env_id") != env_id:
        raise ValueError(
            f"{run_dir}: {agent} was trained on {spec.get('env_id')}, not {env_id}"
        )
    num_seeds = spec["num_seeds"]
    if not isinstance(seed, int) or not 0 <= seed < num_seeds:
        raise ValueError(f"seed must be an int in [0, {num_seeds}), got {seed!r}")
    template, shapes = _template(spec)
    try:
        raw = serialization.msgpack_restore((folder / f"{agent}.msgpack").read_bytes())
        params = serialization.from_state_dict(
            jax.tree.map(lambda s: np.zeros((num_seeds, *s.shape), s.dtype), shapes),
            raw["params"],
        )
    except Exception as err:  # msgpack and flax raise many kinds
        raise ValueError(f"cannot read the parameters of {agent}: {err}") from None
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(shapes), strict=True):
        if np.shape(got) != (num_seeds, *want.shape):
            raise ValueError(
                f"the parameters of {agent} do not match its spec: shape "
                f"{np.shape(got)} where ({num_seeds}, *{want.shape}) is expected"
            )
    one = jax.tree.map(lambda x: jnp.asarray(x[seed]), params)
    if isinstance(template, str):
        return MemoryOne(jax.nn.sigmoid(one))
    if isinstance(template, NetworkPolicy):
        return template.replace(params=one, greedy=bool(greedy))
    return template.replace(params=one)
