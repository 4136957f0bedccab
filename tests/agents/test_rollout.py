"""One compiled episode of fixed players, strategies and scripted policies alike."""

import jax
import numpy as np
import pytest

from dilemmas.agents.rollout import named_player, play_episode
from dilemmas.agents.strategies import play
from dilemmas.envs import make
from dilemmas.training.cli import main


def _episode(env_id, names, seed=0, **kwargs):
    env, params = make(env_id, **kwargs)
    players = [named_player(env, name) for name in names]
    steps = int(params.max_steps)
    return jax.device_get(
        play_episode(jax.random.key(seed), players, params, env=env, steps=steps)
    )


def test_strategies_play_as_in_the_matrix_game_helper():
    episode = _episode("ipd-v0", ["tft", "stft"], max_steps=12)
    assert [tuple(a) for a in episode.actions.tolist()] == play("tft", "stft", 12)
    assert episode.done.tolist() == [False] * 11 + [True]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nobody_cleaning_means_no_apples_in_cleanup_lite(seed):
    # The start has 3 dirt cells and nobody cleans, so the apple probability
    # 1 - min(1, dirt / 3) is 0 for the whole episode: not one reward.
    episode = _episode("cleanup_lite-v0", ["always_harvest"] * 2, seed=seed)
    assert not episode.rewards.any()
    assert episode.info["cells_cleaned"].sum() == 0


def test_coin_game_rewards_follow_the_pickup_counts():
    episode = _episode("coin_game-v0", ["greedy", "own_coin"], seed=3)
    info = {k: v.sum(axis=0) for k, v in episode.info.items()}
    # +1 per pickup of any coin, -2 per own coin taken by the co-player.
    expected = info["own_coins"] + info["other_coins"] - 2 * info["coin_lost"]
    np.testing.assert_array_equal(episode.rewards.sum(axis=0), expected)
    assert info["other_coins"][1] == 0  # the cooperator never takes the other's
    np.testing.assert_array_equal(info["coin_lost"], info["other_coins"][::-1])
    assert info["other_coins"][0] > 0


def test_player_count_must_match():
    env, params = make("coin_game-v0")
    with pytest.raises(ValueError, match="2 agents, got 1 players"):
        play_episode(
            jax.random.key(0), [named_player(env, "greedy")], params, env=env, steps=3
        )


def test_cli_plays_a_grid_game(capsys):
    argv = ["play", "cleanup_lite-v0", "--player", "always_harvest"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "64 steps" in out
    assert "group total +0.00" in out
    assert "apples_eaten 0" in out
