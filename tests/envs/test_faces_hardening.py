"""Hardening of the PettingZoo (parallel, AEC) and Gymnasium faces against bad input.

Each face must refuse a bad action or seed in the call that receives it, with a
``ValueError`` naming the problem (and the agent), and stay exactly where it was: the
property test drives every face of every registered id with random mixes of valid
and invalid inputs and compares it, call by call, with a twin that saw only the valid
ones.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pettingzoo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dilemmas.agents  # noqa: F401  (registers the catalogues of named co-players)
import dilemmas.envs
from dilemmas.envs import make, registered
from dilemmas.envs.gymnasium import SingleAgentEnv, named_co_player
from dilemmas.envs.pettingzoo import env as aec_env
from dilemmas.envs.pettingzoo import parallel_env

IDS = registered()
MAX_STEPS = 4
#: What a ``SingleAgentEnv`` carries from step to step, besides its key.
GYM_STATE = ("_state", "_co_state", "_obs_all")

#: Distinct seeds that ``jax.random.key`` aliases (0 and 2**32, -1 and 2**64 - 1) or
#: refuses (2**64 and beyond).
DISTINCT_SEEDS = (0, 2**32, -1, 2**63 - 1, 2**64, 2**70, -(2**70))
BAD_SEEDS = (True, np.bool_(False), 1.5, np.float64(2.0), "7", [7], np.array([1]))

#: Ways to spell a valid action ``a``.
ACTION_FORMS = (
    int,
    np.int64,
    np.int32,
    np.uint8,
    np.array,
    jnp.int32,
    functools.partial(jnp.asarray, dtype=jnp.uint32),
)


def _bad_actions(n: int) -> tuple:
    """Invalid actions for an action space of size ``n``."""
    return (
        -1,
        n,
        7 if n <= 7 else n + 7,
        2**64,
        -(2**70),
        np.int64(-1),
        jnp.int32(n),
        None,
        0.0,
        1.5,
        np.float32(0),
        jnp.float32(0),
        np.array(0.0),
        True,
        np.bool_(False),
        "0",
        [0],
        np.array([0]),
        jnp.zeros((1,), jnp.int32),
        {},
    )


def _same(a: Any, b: Any) -> bool:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(leaves_a, leaves_b, strict=True)
    )


def _key_data(key: Any) -> np.ndarray | None:
    return None if key is None else np.asarray(jax.random.key_data(key))


# --------------------------------------------------------------------------------------
# The faces behind one interface, for the property test


class ParallelFace:
    """``JaxParallelEnv``: a step is a dict of every live agent's action."""

    name = "parallel"

    def __init__(self, env_id: str, make_env=parallel_env):
        self.env = make_env(env_id, max_steps=MAX_STEPS)
        self.agents = self.env.possible_agents

    def reset(self, seed: Any) -> Any:
        return self.env.reset(seed=seed)

    def running(self) -> bool:
        return bool(self.env.agents)

    def act(self, actions: list[int], form) -> Any:
        joint = {a: form(actions[self.agents.index(a)]) for a in self.env.agents}
        return self.env.step(joint)

    def bad_action(self, index: int, action: Any) -> tuple[str, Callable]:
        agent = self.agents[index]
        joint = {**dict.fromkeys(self.agents, 0), agent: action}
        return agent, lambda: self.env.step(joint)

    def bad_call(self, index: int) -> tuple[str, Callable]:
        agent = self.agents[index]
        kind = index % 3
        if kind == 0:
            missing = {a: 0 for a in self.agents if a != agent}
            return agent, lambda: self.env.step(missing)
        if kind == 1:
            extra = {**dict.fromkeys(self.agents, 0), "ghost": 0}
            return "ghost", lambda: self.env.step(extra)
        return "dict", lambda: self.env.step([0] * len(self.agents))

    def snapshot(self) -> Any:
        env = self.env.unwrapped
        return (
            _key_data(env._key),
            jax.device_get(env._state),
            list(env.agents),
            env._num_steps,
        )


class AECFace:
    """The AEC env: a step is the selected agent's action (``None`` once done)."""

    name = "aec"

    def __init__(self, env_id: str, make_env=aec_env):
        self.env = make_env(env_id, max_steps=MAX_STEPS)
        self.agents = self.env.possible_agents

    def _view(self) -> Any:
        env = self.env
        if not env.agents:
            return list(env.agents)
        return (
            env.agent_selection,
            list(env.agents),
            env.last(),
            dict(env.rewards),
            dict(env.terminations),
            dict(env.truncations),
            {agent: env.observe(agent) for agent in env.agents},
        )

    def reset(self, seed: Any) -> Any:
        self.env.reset(seed=seed)
        return self._view()

    def running(self) -> bool:
        return bool(self.env.agents)

    def _done(self) -> bool:
        agent = self.env.agent_selection
        return self.env.terminations[agent] or self.env.truncations[agent]

    def act(self, actions: list[int], form) -> Any:
        if not self.env.agents or self._done():
            self.env.step(None)
        else:
            index = self.agents.index(self.env.agent_selection)
            self.env.step(form(actions[index]))
        return self._view()

    def bad_action(self, index: int, action: Any) -> tuple[str, Callable]:
        del index
        if not self.env.agents:
            return "", lambda: self.env.step(action)
        agent = self.env.agent_selection
        if self._done() and action is None:
            action = 0  # a done agent's step takes only None
        return agent, lambda: self.env.step(action)

    def bad_call(self, index: int) -> tuple[str, Callable]:
        return self.bad_action(index, 0.0)

    def snapshot(self) -> Any:
        aec = self.env.env
        return (
            ParallelFace.snapshot(self),
            aec.agent_selection,
            dict(aec._cumulative_rewards),
            {agent: aec._actions.get(agent) for agent in self.agents},
        )


class GymFace:
    """``SingleAgentEnv`` against a seeded stochastic co-player where there is one."""

    name = "gymnasium"

    def __init__(self, env_id: str, make_env=SingleAgentEnv):
        core = make(env_id)[0]
        co_player = "random" if core.default_co_player == "tft" else None
        self.env = make_env(env_id, co_player=co_player, max_steps=MAX_STEPS)
        self.agents = ["player_0"]
        self._done = True

    def reset(self, seed: Any) -> Any:
        out = self.env.reset(seed=seed)
        self._done = False
        return out

    def running(self) -> bool:
        return not self._done

    def act(self, actions: list[int], form) -> Any:
        out = self.env.step(form(actions[0]))
        self._done = out[2] or out[3]
        return out

    def bad_action(self, index: int, action: Any) -> tuple[str, Callable]:
        del index
        return "player_0", lambda: self.env.step(action)

    def bad_call(self, index: int) -> tuple[str, Callable]:
        return self.bad_action(index, 1.0)

    def snapshot(self) -> Any:
        env = self.env
        return (
            _key_data(env._key),
            jax.device_get([getattr(env, name, None) for name in GYM_STATE]),
            getattr(env, "_done", None),
        )


FACES = {"parallel": ParallelFace, "aec": AECFace, "gymnasium": GymFace}


# --------------------------------------------------------------------------------------
# The driver: one input sequence against a face and its twin


@dataclass
class Tally:
    """What one or more input sequences did to a face."""

    inputs: int = 0
    invalid: int = 0
    wrongly_accepted: int = 0
    unclear_crashes: int = 0
    valid_refused: int = 0
    corruptions: int = 0

    def add(self, other: Tally) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _ops(num_agents: int, num_actions: int):
    """A hypothesis strategy of input sequences (valid inputs weighted up)."""
    act = st.tuples(
        st.just("act"),
        st.lists(
            st.integers(0, num_actions - 1), min_size=num_agents, max_size=num_agents
        ),
        st.integers(0, len(ACTION_FORMS) - 1),
    )
    bad = st.tuples(
        st.just("bad_action"),
        st.integers(0, num_agents - 1),
        st.integers(0, len(_bad_actions(num_actions)) - 1),
    )
    op = st.one_of(
        act,
        act,
        act,
        bad,
        bad,
        st.tuples(st.just("bad_call"), st.integers(0, num_agents - 1)),
        st.tuples(st.just("reset"), st.sampled_from(range(len(DISTINCT_SEEDS)))),
        st.tuples(st.just("bad_seed"), st.sampled_from(range(len(BAD_SEEDS)))),
    )
    return st.tuples(
        st.sampled_from(range(len(DISTINCT_SEEDS))), st.lists(op, max_size=14)
    )


def _act(actions: list[int], form: Callable, env: Any) -> Any:
    return env.act(actions, form)


def _reset(seed: Any, env: Any) -> Any:
    return env.reset(seed)


def drive(face, twin, start: int, ops: list, num_actions: int) -> tuple[Tally, list]:
    """Apply ``ops`` to ``face`` and only the valid ones to ``twin``.

    Returns the tally and a description of each problem: an invalid input accepted,
    or refused other than by a ``ValueError`` naming the agent (or the seed); a valid
    input refused (a step may only be refused, by ``ValueError``, once the episode is
    over); a valid input whose result differs from the twin's (after which the
    sequence stops).
    """
    tally, problems = Tally(), []
    seed = DISTINCT_SEEDS[start]
    ops = [("reset", start), *ops]
    bad_actions = _bad_actions(num_actions)
    for op in ops:
        tally.inputs += 1
        kind = op[0]
        if kind in ("act", "reset"):
            if kind == "act":
                call = functools.partial(_act, op[1], ACTION_FORMS[op[2]])
            else:
                seed = DISTINCT_SEEDS[op[1]]
                call = functools.partial(_reset, seed)
            may_refuse = kind == "act" and not twin.running()
            results = []
            for env in (twin, face):
                try:
                    results.append(("ok", call(env)))
                except ValueError as error:
                    results.append(("ValueError", str(error)))
                except Exception as error:
                    results.append((type(error).__name__, str(error)))
            if not _same(results[0], results[1]):
                tally.corruptions += 1
                problems.append(
                    f"{op} (seed {seed}): twin {results[0]!r:.200}, "
                    f"face {results[1]!r:.200}"
                )
                return tally, problems
            if results[0][0] != "ok" and not (
                may_refuse and results[0][0] == "ValueError"
            ):
                tally.valid_refused += 1
                problems.append(f"{op} (seed {seed}): valid input refused {results[0]}")
            continue
        tally.invalid += 1
        if kind == "bad_action":
            value = bad_actions[op[2]]
            named, call = face.bad_action(op[1], value)
            label = f"action {value!r}"
        elif kind == "bad_call":
            named, call = face.bad_call(op[1])
            label = "bad call"
        else:
            value = BAD_SEEDS[op[1]]
            named, label = "seed", f"seed {value!r}"
            call = functools.partial(face.reset, value)
        must_name = kind == "bad_seed" or face.running()
        try:
            call()
        except ValueError as error:
            if must_name and named not in str(error):
                tally.unclear_crashes += 1
                problems.append(
                    f"{op}: {label} refused without naming {named!r}: {error}"
                )
        except Exception as error:
            tally.unclear_crashes += 1
            problems.append(f"{op}: {type(error).__name__}: {error}")
        else:
            tally.wrongly_accepted += 1
            problems.append(f"{op}: {label} accepted")
    if not _same(face.snapshot(), twin.snapshot()):
        tally.corruptions += 1
        problems.append(f"internal state differs from the twin's after {ops}")
    return tally, problems


@functools.cache
def _pair(kind: str, env_id: str) -> tuple[Any, Any]:
    """A face of ``kind`` over ``env_id`` and its twin, built once per test run."""
    return FACES[kind](env_id), FACES[kind](env_id)


def _shape(env_id: str) -> tuple[int, int]:
    core = make(env_id)[0]
    return core.num_agents, core.num_actions


FACE_IDS = [(kind, env_id) for kind in FACES for env_id in IDS]


# --------------------------------------------------------------------------------------
# 1. The AEC face refuses a bad action in the call that receives it


def test_aec_bad_action_is_refused_at_once_and_the_env_goes_on():
    aec = pettingzoo.make("aec", "dilemmas/ipd-v0")
    aec.reset(seed=0)
    with pytest.raises(ValueError, match="action of 'player_0' is 7, outside"):
        aec.step(7)
    assert aec.agent_selection == "player_0"
    aec.step(1)
    aec.step(0)
    assert aec.rewards == {"player_0": 2.0, "player_1": -1.0}
    aec.step(0)
    aec.step(0)
    assert aec.rewards == {"player_0": 1.0, "player_1": 1.0}


@pytest.mark.parametrize("env_id", IDS)
def test_aec_bad_action_at_any_turn_leaves_the_env_as_its_twin(env_id):
    face, twin = _pair("aec", env_id)
    num_agents, num_actions = _shape(env_id)
    for turn in sorted({0, num_agents - 1}):
        for bad in (-1, None, 0.0, 7 if num_actions <= 7 else num_actions):
            for env in (face, twin):
                env.reset(0)
            for _ in range(turn):
                for env in (face, twin):
                    env.env.step(0)
            with pytest.raises(ValueError, match=f"'{face.agents[turn]}'"):
                face.env.step(bad)
            assert _same(face.snapshot(), twin.snapshot())
            for _ in range(2 * num_agents):
                assert _same(
                    face.act([1] * num_agents, int), twin.act([1] * num_agents, int)
                )


def test_aec_done_agent_takes_only_none_and_the_end_is_final():
    face, twin = _pair("aec", "ipd-v0")
    for env in (face, twin):
        env.reset(3)
    for _ in range(2 * MAX_STEPS):
        for env in (face, twin):
            env.act([0, 1], int)
    assert face.env.truncations["player_0"]
    with pytest.raises(ValueError, match="'player_0' is done: its step takes None"):
        face.env.step(0)
    assert _same(face.snapshot(), twin.snapshot())
    face.env.step(None)
    face.env.step(None)
    assert face.env.agents == []
    with pytest.raises(ValueError, match="after every agent is done"):
        face.env.step(None)


def test_aec_step_and_bad_seed_before_reset_are_value_errors():
    aec = aec_env("ipd-v0")
    with pytest.raises(ValueError, match="seed must be an integer"):
        aec.reset(seed=1.5)
    with pytest.raises(ValueError, match="before reset"):
        aec.step(0)
    aec.reset(seed=0)
    aec.step(0)


# --------------------------------------------------------------------------------------
# 2. Seeds: every integer, none aliased; anything else refused


def _keys_after_reset(kind: str, seeds: tuple) -> list[tuple]:
    face, _ = _pair(kind, "ipd-v0")
    keys = []
    for seed in seeds:
        face.reset(seed)
        keys.append(tuple(_key_data(face.env.unwrapped._key).tolist()))
    return keys


@pytest.mark.parametrize("kind", FACES)
def test_distinct_seeds_give_distinct_keys_and_equal_seeds_equal_keys(kind):
    keys = _keys_after_reset(kind, DISTINCT_SEEDS)
    assert len(set(keys)) == len(DISTINCT_SEEDS)
    spellings = (5, np.int64(5), np.uint64(5), np.int8(5), np.array(5), jnp.int32(5))
    assert len(set(_keys_after_reset(kind, spellings))) == 1
    big = (2**64 - 1, np.uint64(2**64 - 1), -1, np.int64(-1))
    assert _keys_after_reset(kind, big)[::2] == _keys_after_reset(kind, big)[1::2]


def test_small_seeds_keep_the_key_jax_random_key_gives():
    expected = jax.random.split(jax.random.key(123))[0]
    assert _keys_after_reset("parallel", (123,)) == [tuple(_key_data(expected))]


def _stream(env, seed: Any, steps: int) -> list:
    out = [env.reset(seed=seed)]
    for t in range(steps):
        if isinstance(env, SingleAgentEnv):
            out.append(env.step(t % 2))
        else:
            out.append(env.step(dict.fromkeys(env.agents, t % 4)))
    return out


@pytest.mark.parametrize(
    ("make_env", "steps"),
    [
        (lambda: parallel_env("coin_game-v0", max_steps=8), 8),
        (lambda: SingleAgentEnv("ipd-v0", co_player="random", max_steps=64), 64),
    ],
    ids=["parallel-coin_game", "gymnasium-ipd-random"],
)
def test_distinct_seeds_give_distinct_streams(make_env, steps):
    env, twin = make_env(), make_env()
    streams = [_stream(env, seed, steps) for seed in DISTINCT_SEEDS]
    for seed, stream in zip(DISTINCT_SEEDS, streams, strict=True):
        assert _same(_stream(twin, seed, steps), stream)
    for i, first in enumerate(streams):
        for second in streams[i + 1 :]:
            assert not _same(first, second)


@pytest.mark.parametrize(("kind", "env_id"), [(k, "coin_game-v0") for k in FACES])
@pytest.mark.parametrize("seed", BAD_SEEDS, ids=repr)
def test_non_integer_seeds_are_refused_and_the_env_is_kept(kind, env_id, seed):
    face, _ = _pair(kind, env_id)
    face.reset(7)
    face.act([1, 2], int)
    before = face.snapshot()
    with pytest.raises(ValueError, match="seed must be an integer"):
        face.reset(seed)
    assert _same(face.snapshot(), before)


def test_gymnasium_np_random_is_seeded_by_every_integer_seed():
    face, _ = _pair("gymnasium", "ipd-v0")
    env = face.env

    def state_after(seed):
        env.reset(seed=seed)
        return env.np_random.bit_generator.state

    for seed in (0, 2**32, 2**70):
        assert (
            state_after(seed)
            == gymnasium.utils.seeding.np_random(seed)[0].bit_generator.state
        )
    negative = [state_after(seed) for seed in (-1, -2, -(2**70))]
    assert state_after(-1) == negative[0]
    assert len({repr(s) for s in [*negative, state_after(1), state_after(2)]}) == 5
    episodes = []
    for _ in range(2):
        env.reset(seed=-1)
        episodes.append([env.reset(), *(env.step(0) for _ in range(3))])
    assert _same(episodes[0], episodes[1])


# --------------------------------------------------------------------------------------
# 3. Actions: integer scalars of every kind; huge integers are refused, not overflowed


@pytest.mark.parametrize(("kind", "env_id"), [(k, "coin_game-v0") for k in FACES])
def test_integer_scalars_of_every_kind_are_actions(kind, env_id):
    face, twin = _pair(kind, env_id)
    for form in ACTION_FORMS:
        for env in (face, twin):
            env.reset(1)
        for _ in range(2):
            assert _same(face.act([3, 2], form), twin.act([3, 2], int))


@pytest.mark.parametrize(("kind", "env_id"), [(k, "ipd-v0") for k in FACES])
@pytest.mark.parametrize(
    "action", [2**63, 2**64, -(2**70), np.uint64(2**64 - 1)], ids=repr
)
def test_huge_integer_actions_are_refused_naming_the_agent(kind, env_id, action):
    face, _ = _pair(kind, env_id)
    face.reset(0)
    before = face.snapshot()
    agent, call = face.bad_action(0, action)
    with pytest.raises(
        ValueError, match=f"action of '{agent}' is {int(action)}, outside"
    ):
        call()
    assert _same(face.snapshot(), before)


# --------------------------------------------------------------------------------------
# 4. Gymnasium: the end of an episode is final until reset


@pytest.mark.parametrize("env_id", ["ipd-v0", "coin_game-v0"])
def test_gymnasium_step_after_the_end_is_refused_until_reset(env_id):
    face, twin = _pair("gymnasium", env_id)
    for env in (face, twin):
        env.reset(0)
    for _ in range(MAX_STEPS):
        *_, truncated, _ = face.act([0], int)
    assert truncated
    before = face.snapshot()
    for action in (0, 1):
        with pytest.raises(ValueError, match="after the episode ended; call reset"):
            face.env.step(action)
    assert _same(face.snapshot(), before)
    assert _same(face.reset(5), twin.reset(5))
    assert _same(face.act([1], int), twin.act([1], int))


# --------------------------------------------------------------------------------------
# 5. Any mix of valid and invalid inputs: the face ends where its twin does


@pytest.mark.parametrize(("kind", "env_id"), FACE_IDS)
@settings(
    max_examples=6,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_invalid_inputs_never_change_a_face(kind, env_id, data):
    face, twin = _pair(kind, env_id)
    num_agents, num_actions = _shape(env_id)
    start, ops = data.draw(_ops(num_agents, num_actions))
    _, problems = drive(face, twin, start, ops, num_actions)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# 6. Layering: dilemmas.envs imports nothing from the layers above it


def test_envs_import_nothing_from_agents_training_or_analysis():
    above = ("dilemmas.agents", "dilemmas.training", "dilemmas.analysis", "importlib")
    for path in sorted(pathlib.Path(dilemmas.envs.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(above), f"envs/{path.name} imports {name}"


@pytest.mark.parametrize("env_id", IDS)
def test_every_catalogue_is_registered_by_the_agents(env_id):
    core = make(env_id)[0]
    co_player = named_co_player(core, core.default_co_player)
    assert callable(co_player.act)


def test_gymnasium_make_with_a_named_co_player_after_importing_envs_only():
    script = (
        "import sys, gymnasium, dilemmas.envs\n"
        "assert not [m for m in sys.modules if m.startswith('dilemmas.agents')]\n"
        "env = gymnasium.make('dilemmas/IPD-v0', co_player='tft')\n"
        "env.reset(seed=0)\n"
        "print(env.step(1)[4]['co_player_action'], env.step(0)[4]['co_player_action'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0", "1"]
