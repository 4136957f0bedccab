"""Fixed strategies against outside references.

References: the catalogue and ZD formulas of ``specs/matrix_games.md`` (sections 5, 6),
Press & Dyson's own example, the Axelrod library's players (action traces, the
``ZDExtort2`` and ``GTFT`` four-vectors, ``normalised_state_distribution``) and an
exact finite-horizon Markov-chain computation written here from section 4.1.
"""

from __future__ import annotations

import functools
import itertools

import axelrod as axl
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dilemmas.agents import strategies
from dilemmas.agents.strategies import (
    DESCRIPTIONS,
    NAMES,
    Grim,
    MemoryOne,
    NumpyPolicy,
    TitForTwoTats,
    make,
    memory_one,
    play,
    rollout,
)
from dilemmas.envs.matrix_games import MatrixGame
from dilemmas.envs.payoffs import PD_CONVENTIONS

C, D = axl.Action.C, axl.Action.D
COALA_GAME = axl.Game(r=1, s=-1, t=2, p=0)
ONE_HOTS = np.eye(5, dtype=np.float32)
# One horizon for every deterministic match, so play() and rollout() compile once
# per pair of strategy types for the whole file.
TURNS = 50
ENV = MatrixGame()
ENV_STEP = jax.jit(ENV.step)


@jax.jit
def _act(strategy, key, state, obs):
    return strategy.act(key, state, obs)


# specs/matrix_games.md section 6: (p0; pCC, pCD, pDC, pDD), own perspective.
CATALOGUE = {
    "allc": (1, 1, 1, 1, 1),
    "alld": (0, 0, 0, 0, 0),
    "tft": (1, 1, 0, 1, 0),
    "stft": (0, 1, 0, 1, 0),
    "wsls": (1, 1, 0, 0, 1),
    "alternator": (1, 0, 0, 1, 1),
    "gtft": (1, 1, 0.5, 1, 0.5),
    "random": (0.5, 0.5, 0.5, 0.5, 0.5),
}

AXELROD_CLASSES = {
    "allc": axl.Cooperator,
    "alld": axl.Defector,
    "tft": axl.TitForTat,
    "stft": axl.SuspiciousTitForTat,
    "wsls": axl.WinStayLoseShift,
    "grim": axl.Grudger,
    "alternator": axl.Alternator,
    "tf2t": axl.TitFor2Tats,
}


def _to_ints(actions) -> list[tuple[int, int]]:
    return [(int(a == D), int(b == D)) for a, b in actions]


# --------------------------------------------------------------------------------------
# Memory-one vectors


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_memory_one_matches_catalogue(name):
    vector = memory_one(name)
    assert vector.dtype == jnp.float32 and vector.shape == (5,)
    np.testing.assert_allclose(vector, CATALOGUE[name], atol=1e-7)
    np.testing.assert_allclose(make(name).probs, CATALOGUE[name], atol=1e-7)


def test_zd_extort_coala_example():
    np.testing.assert_allclose(
        memory_one("zd_extort", chi=3, payoffs="coala"),
        (1, 5 / 7, 0, 5 / 7, 0),
        atol=1e-7,
    )


def test_zd_extort_press_dyson_example():
    np.testing.assert_allclose(
        memory_one("zd_extort", chi=3, phi=1 / 26, payoffs="axelrod"),
        (1, 11 / 13, 1 / 2, 7 / 26, 0),
        atol=1e-7,
    )


@pytest.mark.parametrize("payoffs", ["coala", "lola", "axelrod"])
def test_zd_extort_chi_one_maximal_phi_is_tft(payoffs):
    np.testing.assert_allclose(
        memory_one("zd_extort", chi=1, payoffs=payoffs), CATALOGUE["tft"], atol=1e-7
    )


@pytest.mark.parametrize("payoffs", ["coala", "lola", "axelrod"])
def test_zd_extort_matches_axelrod_zdextort2(payoffs):
    # ZDExtort2 is Hilbe et al.'s (phi_H, s, l) = (1/9, 1/2, P): chi = 1/s = 2 and
    # Press-Dyson phi = phi_H / chi = 1/18, adapted by Axelrod to the match's game.
    r, s, t, p = PD_CONVENTIONS[payoffs]
    player = axl.ZDExtort2()
    player.set_match_attributes(length=10, game=axl.Game(r=r, s=s, t=t, p=p))
    expected = [
        player._four_vector[state] for state in ((C, C), (C, D), (D, C), (D, D))
    ]
    ours = memory_one("zd_extort", chi=2, phi=1 / 18, payoffs=payoffs, p0=0.25)
    np.testing.assert_allclose(ours, [0.25, *expected], atol=1e-7)


def test_zd_extort_p0_and_phi_below_maximum():
    vector = memory_one("zd_extort", chi=2, phi=0.1, payoffs="coala", p0=0)
    # COALA-PG Eq. 18 with phi = 0.1: p1 = 1 - phi (chi-1), p2 = 1 - phi (1 + 2 chi),
    # p3 = phi (chi + 2).
    np.testing.assert_allclose(vector, (0, 0.9, 0.5, 0.4, 0), atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"chi": 0.5}, "chi >= 1"),
        ({"chi": 3, "phi": 1 / 7 + 1e-3}, "phi must be in"),
        ({"chi": 3, "phi": 0.0}, "phi must be in"),
        ({"chi": 3, "phi": -0.1}, "phi must be in"),
        ({"chi": "three"}, "chi"),
        ({"p0": 1.5}, "p0"),
        ({"payoffs": "no_such_game"}, "unknown payoff preset"),
    ],
)
def test_zd_extort_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        memory_one("zd_extort", **kwargs)
    with pytest.raises(ValueError, match=match):
        make("zd_extort", **kwargs)


@pytest.mark.parametrize(
    "payoffs, g", [("coala", 1 / 2), ("lola", 1 / 2), ("axelrod", 1 / 3)]
)
def test_gtft_generosity_from_payoffs(payoffs, g):
    np.testing.assert_allclose(
        memory_one("gtft", payoffs=payoffs), (1, 1, g, 1, g), atol=1e-7
    )


def test_gtft_matches_axelrod_gtft_in_axelrod_game():
    # axl.GTFT computes p from the default (3, 0, 5, 1) game at construction, so it
    # is an outside reference only for Axelrod payoffs.
    player = axl.GTFT()
    player.set_match_attributes(length=10, game=axl.Game())
    expected = [
        player._four_vector[state] for state in ((C, C), (C, D), (D, C), (D, D))
    ]
    np.testing.assert_allclose(
        memory_one("gtft", payoffs="axelrod"), [1, *expected], atol=1e-7
    )


def test_gtft_explicit_g_and_non_dilemma_payoffs():
    np.testing.assert_allclose(memory_one("gtft", g=0.1), (1, 1, 0.1, 1, 0.1))
    with pytest.raises(ValueError, match="prisoner's dilemma"):
        memory_one("gtft", payoffs="stag_hunt")
    with pytest.raises(ValueError, match="g must be in"):
        memory_one("gtft", g=1.5)


@pytest.mark.parametrize("name", ["grim", "tf2t"])
def test_state_machines_are_not_memory_one(name):
    with pytest.raises(ValueError, match="not a memory-one strategy"):
        memory_one(name)


def test_grim_message_explains_noise_free_equivalence():
    with pytest.raises(ValueError, match=r"\(1; 1, 0, 0, 0\)"):
        memory_one("grim")


def test_random_memory_one_draws():
    a = memory_one("random_memory_one", seed=1)
    b = memory_one("random_memory_one", seed=2)
    assert a.shape == (5,) and a.dtype == jnp.float32
    assert np.all((np.asarray(a) >= 0) & (np.asarray(a) < 1))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, memory_one("random_memory_one", seed=1))
    np.testing.assert_array_equal(
        a, memory_one("random_memory_one", key=jax.random.key(1))
    )
    with pytest.raises(ValueError, match="not both"):
        memory_one("random_memory_one", seed=1, key=jax.random.key(1))
    # A traced key works inside jit: a fresh draw per episode.
    draws = jax.jit(jax.vmap(lambda k: memory_one("random_memory_one", key=k)))(
        jax.random.split(jax.random.key(0), 2000)
    )
    assert draws.shape == (2000, 5)
    np.testing.assert_allclose(draws.mean(0), 0.5, atol=4 * np.sqrt(1 / 12 / 2000))


def test_random_p():
    np.testing.assert_allclose(memory_one("random", p=0.2), (0.2,) * 5)
    with pytest.raises(ValueError, match="p must be in"):
        make("random", p=-0.1)


# --------------------------------------------------------------------------------------
# Names and errors


def test_names_and_descriptions():
    assert set(NAMES) == {
        "allc",
        "alld",
        "tft",
        "stft",
        "wsls",
        "grim",
        "gtft",
        "zd_extort",
        "alternator",
        "tf2t",
        "random",
        "random_memory_one",
    }
    assert set(DESCRIPTIONS) == set(NAMES)
    assert all(
        isinstance(d, str) and d and "\n" not in d for d in DESCRIPTIONS.values()
    )
    assert isinstance(make("grim"), Grim)
    assert isinstance(make("tf2t"), TitForTwoTats)
    for name in set(NAMES) - {"grim", "tf2t"}:
        assert isinstance(make(name), MemoryOne), name


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown strategy 'titfortat'") as err:
        make("titfortat")
    assert all(name in str(err.value) for name in NAMES)
    with pytest.raises(ValueError, match="unknown strategy"):
        memory_one("TFT")


def test_bad_kwargs_are_named():
    with pytest.raises(ValueError, match=r"unexpected keyword arguments \['chii'\]"):
        make("zd_extort", chii=3)
    with pytest.raises(ValueError, match=r"\['p'\]"):
        make("tft", p=0.3)
    with pytest.raises(ValueError, match=r"\['g'\]"):
        make("grim", g=0.1)
    with pytest.raises(ValueError, match=r"\['noise'\]"):
        memory_one("gtft", noise=0.1)


# --------------------------------------------------------------------------------------
# Axelrod cross-check (spec section 7, check 1)


@pytest.mark.parametrize(
    "name_0, name_1", list(itertools.product(AXELROD_CLASSES, repeat=2))
)
def test_deterministic_traces_match_axelrod(name_0, name_1):
    players = (AXELROD_CLASSES[name_0](), AXELROD_CLASSES[name_1]())
    expected = _to_ints(axl.Match(players, turns=TURNS, game=COALA_GAME).play())
    assert play(name_0, name_1, steps=TURNS) == expected


# --------------------------------------------------------------------------------------
# Stochastic strategies (spec section 7, check 2)

STEPS = 12


def _exact_visits(p: np.ndarray, q: np.ndarray, steps: int) -> np.ndarray:
    """Distribution of the joint outcome at each round, ``[steps, 4]``.

    Global order (CC, CD, DC, DD), row player first; player 1's own-perspective
    vector is re-ordered by swapping CD and DC (spec section 4.1).
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    q_global = q[[1, 3, 2, 4]]

    def joint(a, b):
        return np.stack([a * b, a * (1 - b), (1 - a) * b, (1 - a) * (1 - b)], axis=-1)

    transition = joint(p[1:], q_global)  # [4, 4], rows: current state
    visits = [joint(p[0], q[0])]
    for _ in range(steps - 1):
        visits.append(visits[-1] @ transition)
    return np.stack(visits)


@jax.jit
@functools.partial(jax.vmap, in_axes=(0, None, None))
def _batched_rollout(key, strategy_0, strategy_1):
    return rollout(key, strategy_0, strategy_1, ENV.default_params, STEPS)


def _core_outcomes(strategy_0, strategy_1, episodes: int, seed: int):
    """Per-episode outcome frequencies, first outcomes and mean rewards."""
    keys = jax.random.split(jax.random.key(seed), episodes)
    batch = _batched_rollout(keys, strategy_0, strategy_1)
    actions = np.asarray(batch.actions)  # [N, T, 2]
    one_hot = np.eye(4)[2 * actions[..., 0] + actions[..., 1]]  # [N, T, 4]
    return one_hot.mean(1), one_hot[:, 0], np.asarray(batch.rewards).mean(1)


def _axelrod_outcomes(p, q, matches: int, seed: int):
    """The same statistics from seeded Axelrod matches of memory-one players."""
    rng = np.random.default_rng(seed)
    states = [(C, C), (C, D), (D, C), (D, D)]
    frequencies, first, scores = [], [], []
    for i in range(matches):
        players = tuple(
            axl.MemoryOnePlayer(
                four_vector=tuple(float(x) for x in v[1:]),
                initial=C if rng.random() < v[0] else D,
            )
            for v in (p, q)
        )
        match = axl.Match(players, turns=STEPS, game=COALA_GAME, seed=i + 1)
        result = match.play()
        distribution = match.normalised_state_distribution()
        frequencies.append([distribution.get(s, 0.0) for s in states])
        first.append([float(result[0] == s) for s in states])
        scores.append(match.final_score_per_turn())
    return np.array(frequencies), np.array(first), np.array(scores, np.float64)


def _assert_close(samples: np.ndarray, expected: np.ndarray, z: float = 4.5):
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(len(samples)) + 1e-9
    assert np.all(np.abs(mean - expected) <= z * se), (mean, expected, se)


@pytest.mark.parametrize(
    "strategy_0, strategy_1",
    [
        (("random_memory_one", {"seed": 11}), ("random_memory_one", {"seed": 12})),
        (("zd_extort", {"chi": 2, "p0": 0.5}), ("random_memory_one", {"seed": 13})),
    ],
)
def test_stochastic_play_matches_exact_chain_and_axelrod(strategy_0, strategy_1):
    p = np.asarray(memory_one(strategy_0[0], **strategy_0[1]), np.float64)
    q = np.asarray(memory_one(strategy_1[0], **strategy_1[1]), np.float64)
    visits = _exact_visits(p, q, STEPS)
    average = visits.mean(0)
    r_0 = np.array([1.0, -1.0, 2.0, 0.0])  # COALA (R, S, T, P), row player
    r_1 = r_0[[0, 2, 1, 3]]
    scores = np.array([average @ r_0, average @ r_1])

    freq, first, rewards = _core_outcomes(MemoryOne(p), MemoryOne(q), 8192, seed=3)
    _assert_close(freq, average)
    _assert_close(first, visits[0])
    _assert_close(rewards, scores)

    ax_freq, ax_first, ax_scores = _axelrod_outcomes(p, q, 1500, seed=4)
    _assert_close(ax_freq, average)
    _assert_close(ax_first, visits[0])
    _assert_close(ax_scores, scores)

    # The comparison has power: the classic bug (no CD <-> DC swap for player 1's
    # vector) gives a distribution the core's samples reject.
    wrong = _exact_visits(p, q[[0, 1, 3, 2, 4]], STEPS).mean(0)
    with pytest.raises(AssertionError):
        _assert_close(freq, wrong)


def test_memory_one_cooperation_frequency_per_observation():
    probs = jnp.array([0.1, 0.3, 0.5, 0.7, 0.9], jnp.float32)
    keys = jax.random.split(jax.random.key(5), 20000)
    act = jax.vmap(
        jax.vmap(
            lambda k, o: MemoryOne(probs).act(k, jnp.zeros((), jnp.int32), o)[0],
            in_axes=(0, None),
        ),
        in_axes=(None, 0),
    )
    actions = np.asarray(jax.jit(act)(keys, jnp.asarray(ONE_HOTS)))  # [5, N]
    cooperation = 1 - actions.mean(1)
    se = np.sqrt(np.asarray(probs) * (1 - np.asarray(probs)) / len(keys))
    assert np.all(np.abs(cooperation - np.asarray(probs)) <= 4.5 * se)


# --------------------------------------------------------------------------------------
# Closed forms, episodes and state machines


@pytest.mark.parametrize("name", ["tft", "grim"])
def test_rollout_rewards_against_alld(name):
    # spec section 4.4: TFT (or Grim) vs AllD, undiscounted mean per step is
    # (S + (T_ep - 1) P) / T_ep for the first and (T + (T_ep - 1) P) / T_ep for AllD.
    steps = TURNS
    for payoffs in ("coala", "axelrod"):
        r, s, t, p = PD_CONVENTIONS[payoffs]
        params = MatrixGame(payoffs).default_params
        out = rollout(jax.random.key(0), make(name), make("alld"), params, steps)
        np.testing.assert_allclose(
            np.asarray(out.rewards).mean(0),
            [(s + (steps - 1) * p) / steps, (t + (steps - 1) * p) / steps],
            rtol=1e-6,
        )


def _episode(strategy_0, strategy_1, states, steps):
    """One episode in the env, carrying in the strategies' states."""
    params = ENV.default_params
    obs, env_state = ENV.reset(jax.random.key(0), params)
    state_0, state_1 = states
    actions = []
    for t in range(steps):
        k_0, k_1 = jax.random.split(jax.random.key(t))
        a_0, state_0 = _act(strategy_0, k_0, state_0, obs[0])
        a_1, state_1 = _act(strategy_1, k_1, state_1, obs[1])
        ts = ENV_STEP(k_0, env_state, jnp.stack([a_0, a_1]), params)
        obs, env_state = ts.obs, ts.state
        actions.append((int(a_0), int(a_1)))
    return actions, (state_0, state_1)


@pytest.mark.parametrize(
    "machine, warmup, opponent",
    [("grim", "alld", "tft"), ("tf2t", "alld", "stft"), ("tf2t", "alld", "alternator")],
)
def test_state_machine_resets_at_start_observation(machine, warmup, opponent):
    strategy = make(machine)
    _, (carried, _) = _episode(
        strategy, make(warmup), (strategy.init(), jnp.zeros((), jnp.int32)), 6
    )
    assert int(carried) == 1  # the warm-up left a non-initial state behind
    fresh = _to_ints(
        axl.Match(
            (AXELROD_CLASSES[machine](), AXELROD_CLASSES[opponent]()),
            turns=8,
            game=COALA_GAME,
        ).play()
    )
    actions, _ = _episode(
        strategy, make(opponent), (carried, jnp.zeros((), jnp.int32)), 8
    )
    assert actions == fresh


@pytest.mark.parametrize("machine", ["grim", "tf2t"])
def test_numpy_policy_over_back_to_back_episodes(machine):
    # Seven rounds against the alternator end with the machine in a non-initial
    # state, so the second episode only matches if the start observation resets it.
    params = ENV.default_params
    policies = (NumpyPolicy(machine), NumpyPolicy(make("alternator")))
    expected = play(machine, "alternator", steps=TURNS)[:7]
    for _ in range(2):
        obs, state = ENV.reset(jax.random.key(0), params)
        actions = []
        for _ in range(7):
            pair = [policies[i](np.asarray(obs[i])) for i in range(2)]
            assert all(type(a) is int for a in pair)
            ts = ENV_STEP(jax.random.key(0), state, jnp.array(pair), params)
            obs, state = ts.obs, ts.state
            actions.append(tuple(pair))
        assert actions == expected


def test_numpy_policy_seeding_and_validation():
    obs = ONE_HOTS[0]

    def draws(policy):
        return [policy(obs) for _ in range(40)]

    first = draws(NumpyPolicy("random", seed=3))
    assert first == draws(NumpyPolicy("random", seed=3))
    assert first != draws(NumpyPolicy("random", seed=4))
    assert 0 < sum(first) < 40  # the key advances between calls
    policy = NumpyPolicy("random", seed=3)
    draws(policy)
    policy.reset(seed=3)
    assert draws(policy) == first
    with pytest.raises(ValueError, match="shape"):
        policy(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="shape"):
        policy(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="unknown strategy"):
        NumpyPolicy("nope")


# --------------------------------------------------------------------------------------
# play, jit and vmap


def test_play_accepts_objects():
    tft = MemoryOne(jnp.array(CATALOGUE["tft"], jnp.float32))
    assert play(tft, TitForTwoTats(), TURNS) == play("tft", "tf2t", TURNS)
    assert play(Grim(), make("stft"), TURNS) == play("grim", "stft", TURNS)
    zd = make("zd_extort", chi=2, p0=0.0)
    trace = play(zd, "allc", TURNS, seed=1)
    assert trace[0] == (1, 0)  # p0 = 0: ZD opens with D
    assert trace == play(zd, "allc", TURNS, seed=1)  # seeded
    assert len({tuple(play(zd, "allc", TURNS, seed=s)) for s in range(4)}) > 1


def test_play_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown strategy"):
        play("tit_for_tat", "alld", 10)
    with pytest.raises(ValueError, match="init"):
        play(object(), "alld", 10)
    with pytest.raises(ValueError, match="max_steps"):
        play("tft", "alld", 0)
    with pytest.raises(ValueError, match="unknown payoff preset"):
        play("tft", "alld", 10, payoffs="nope")


def test_extra_observation_entries_are_ignored():
    env = MatrixGame(max_steps=4, include_reward=True)
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    ts = env.step(jax.random.key(0), state, jnp.array([0, 1]), params)
    assert ts.obs.shape == (2, 6) and float(ts.obs[0, 5]) == -1.0
    for name in NAMES:
        strategy = make(name)
        key = jax.random.key(7)
        with_reward = strategy.act(key, strategy.init(), ts.obs[0])
        without = strategy.act(key, strategy.init(), ts.obs[0, :5])
        assert int(with_reward[0]) == int(without[0]), name


@pytest.mark.parametrize("name", NAMES)
def test_act_under_jit_equals_eager(name):
    strategy = make(name)
    states = [strategy.init(), jnp.ones((), jnp.int32)]
    for i, (obs, state) in enumerate(itertools.product(ONE_HOTS, states)):
        key = jax.random.key(i)
        eager = strategy.act(key, state, obs)
        jitted = _act(strategy, key, state, obs)
        assert eager[0].dtype == jnp.int32 and eager[0].shape == ()
        assert int(eager[0]) == int(jitted[0])
        assert jax.tree.all(
            jax.tree.map(lambda a, b: bool(jnp.all(a == b)), eager[1], jitted[1])
        )
        assert jax.tree.structure(eager[1]) == jax.tree.structure(strategy.init())


def test_vmap_over_strategies_and_states():
    names = ["allc", "alld", "tft", "stft", "wsls", "alternator"]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *[make(n) for n in names])
    assert batch.probs.shape == (len(names), 5)
    obs = jnp.asarray(ONE_HOTS)
    actions, _ = jax.jit(
        jax.vmap(
            jax.vmap(lambda s, o: s.act(jax.random.key(0), s.init(), o), (None, 0)),
            (0, None),
        )
    )(batch, obs)
    expected = 1 - np.array([CATALOGUE[n] for n in names])
    np.testing.assert_array_equal(actions, expected)

    # State machines: a batch of states and observations.
    grim_states = jnp.array([0, 1, 1, 0, 1], jnp.int32)
    obs = jnp.asarray(ONE_HOTS[[0, 0, 1, 2, 3]])
    actions, new_states = jax.vmap(Grim().act, (None, 0, 0))(
        jax.random.key(0), grim_states, obs
    )
    np.testing.assert_array_equal(actions, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(new_states, [0, 0, 1, 1, 1])
    actions, new_states = jax.vmap(TitForTwoTats().act, (None, 0, 0))(
        jax.random.key(0),
        jnp.array([1, 1, 0, 1, 1], jnp.int32),
        jnp.asarray(ONE_HOTS[[0, 2, 2, 4, 3]]),
    )
    np.testing.assert_array_equal(actions, [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(new_states, [0, 1, 1, 1, 0])


def test_vmapped_rollout_over_memory_one_pool():
    # A fresh random memory-one co-player per episode, drawn inside jit.
    params = MatrixGame("coala").default_params

    def episode(key):
        k_draw, k_play = jax.random.split(key)
        opponent = MemoryOne(memory_one("random_memory_one", key=k_draw))
        return rollout(k_play, make("alld"), opponent, params, 5).rewards

    rewards = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(0), 64))
    assert rewards.shape == (64, 5, 2)
    # AllD only ever meets C (reward T) or D (reward P); the co-player S or P.
    assert set(np.unique(rewards[..., 0]).tolist()) == {0.0, 2.0}
    assert set(np.unique(rewards[..., 1]).tolist()) == {-1.0, 0.0}


def test_package_reexports_strategies():
    import dilemmas.agents

    assert dilemmas.agents.strategies is strategies
