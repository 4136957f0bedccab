"""What ``dilemmas envs``, ``dilemmas strategies`` and ``dilemmas presets`` list.

The listings are read off the registries, which import JAX and every game, agent and
training module: seconds on a small machine, for a table that changes only with the
code. So the commands print a copy kept here as data (:data:`ENVS`, :data:`PLAYERS`,
:data:`PRESETS`) and import nothing heavy. In a process that has already imported
``dilemmas.envs`` (a user's script that registered games of its own and then calls
``dilemmas.training.cli.main``) they read the live registries instead.

``python -m dilemmas.training.listings`` rewrites the copy from the live registries;
``tests/test_cli.py`` fails while it differs from them.
"""

from __future__ import annotations

import pprint
import sys
from pathlib import Path

#: ``(core id, PettingZoo id, Gymnasium id, description)`` of every game.
ENVS = (
    (
        "battle_of_the_sexes-v0",
        "dilemmas/battle_of_the_sexes-v0",
        "dilemmas/BattleOfTheSexes-v0",
        "iterated battle of the sexes, 2 players, payoffs "
        "'battle_of_the_sexes', 100 rounds by default",
    ),
    (
        "chicken-v0",
        "dilemmas/chicken-v0",
        "dilemmas/Chicken-v0",
        "iterated chicken (hawk-dove), 2 players, payoffs 'chicken', 100 "
        "rounds by default",
    ),
    (
        "cleanup-v0",
        "dilemmas/cleanup-v0",
        "dilemmas/Cleanup-v0",
        "Cleanup (Melting Pot rules): 5 players, 16 x 20 map with river and "
        "orchard bands, cleaning and zapping beams, 1000 steps",
    ),
    (
        "cleanup_lite-v0",
        "dilemmas/cleanup_lite-v0",
        "dilemmas/CleanupLite-v0",
        "CleanUp-lite (COALA-PG): 2 players, 5 x 4 grid, orchard and river "
        "columns, zapping, 64 steps",
    ),
    (
        "coin_game-v0",
        "dilemmas/coin_game-v0",
        "dilemmas/CoinGame-v0",
        "Coin Game, LOLA/POLA variant: 3x3 torus, one coin whose colour "
        "flips after each pickup, 4 actions, 50 steps",
    ),
    (
        "coin_game_two_coins-v0",
        "dilemmas/coin_game_two_coins-v0",
        "dilemmas/CoinGameTwoCoins-v0",
        "Coin Game, Pax/JaxMARL variant: 3x3 torus, a red and a blue coin at "
        "all times, 5 actions with stay, 50 steps",
    ),
    (
        "harvest-v0",
        "dilemmas/harvest-v0",
        "dilemmas/Harvest-v0",
        "Commons Harvest (Melting Pot rules): 5 players, 15 x 22 map with 6 "
        "apple patches, density-dependent regrowth, zapping, 1000 steps",
    ),
    (
        "ipd-v0",
        "dilemmas/ipd-v0",
        "dilemmas/IPD-v0",
        "iterated prisoner's dilemma, 2 players, payoffs 'coala', 100 rounds "
        "by default",
    ),
    (
        "matching_pennies-v0",
        "dilemmas/matching_pennies-v0",
        "dilemmas/MatchingPennies-v0",
        "iterated matching pennies, 2 players, payoffs 'matching_pennies', "
        "100 rounds by default",
    ),
    (
        "stag_hunt-v0",
        "dilemmas/stag_hunt-v0",
        "dilemmas/StagHunt-v0",
        "iterated stag hunt, 2 players, payoffs 'stag_hunt', 100 rounds by default",
    ),
)
#: ``(kind, game ids, ((name, description), ...))`` per catalogue.
PLAYERS = (
    (
        "Fixed strategies",
        (
            "battle_of_the_sexes-v0",
            "chicken-v0",
            "ipd-v0",
            "matching_pennies-v0",
            "stag_hunt-v0",
        ),
        (
            ("allc", "always cooperate (1; 1, 1, 1, 1)"),
            ("alld", "always defect (0; 0, 0, 0, 0)"),
            ("tft", "tit for tat: C first, then copy (1; 1, 0, 1, 0)"),
            ("stft", "suspicious tit for tat: D first, then copy (0; 1, 0, 1, 0)"),
            ("wsls", "win-stay lose-shift / Pavlov (1; 1, 0, 0, 1)"),
            (
                "grim",
                "grim trigger / Grudger: defect forever once the co-player defects",
            ),
            (
                "gtft",
                "generous TFT (1; 1, g, 1, g), g from the payoffs unless given "
                "(kwargs g, payoffs)",
            ),
            (
                "zd_extort",
                "zero-determinant extortion s_X - P = chi (s_Y - P) (kwargs chi, "
                "phi, payoffs, p0)",
            ),
            ("alternator", "alternate C, D, C, ... (1; 0, 0, 1, 1)"),
            (
                "tf2t",
                "tit for two tats: defect only after two co-player defections in a row",
            ),
            ("random", "cooperate with probability p each round (kwarg p)"),
            (
                "random_memory_one",
                "memory-one with 5 entries ~ U(0, 1) (kwarg seed or key)",
            ),
        ),
    ),
    (
        "Scripted policies",
        ("cleanup-v0",),
        (
            ("dedicated_cleaner", "Cleans the river and does nothing else."),
            ("harvester", "Collects apples and never cleans."),
            ("turn_taker", "Takes turns at cleaning and harvests otherwise."),
        ),
    ),
    (
        "Scripted policies",
        ("cleanup_lite-v0",),
        (
            (
                "always_harvest",
                "Walks to the orchard (column 0) and harvests; never cleans on "
                "purpose.",
            ),
            (
                "dedicated_cleaner",
                "Walks to the river (the last column) and cleans it; never "
                "harvests there.",
            ),
            (
                "turn_taker",
                "Cleans on its turn or when the river is dirty; harvests otherwise.",
            ),
            ("zapper", "Harvests like AlwaysHarvest and zaps the co-player in range."),
            ("random", "Plays a uniformly random action of the six."),
        ),
    ),
    (
        "Scripted policies",
        ("coin_game-v0", "coin_game_two_coins-v0"),
        (
            (
                "greedy",
                "Walks a shortest torus path to the nearest coin, whatever its colour.",
            ),
            (
                "own_coin",
                "Takes only coins of its own colour and never steps onto the "
                "co-player's.",
            ),
            ("random", "A uniformly random action."),
        ),
    ),
    (
        "Scripted policies",
        ("harvest-v0",),
        (
            (
                "greedy",
                "Goes to the nearest apple and eats it; waits when there is none.",
            ),
            (
                "restrained",
                "Goes to the nearest apple outside the patch cores; waits when "
                "there is none.",
            ),
        ),
    ),
)
#: ``(name, description)`` of every preset of ``dilemmas train``.
PRESETS = (
    (
        "analytic-shaping",
        "exact IPD, meta agent(s) shaping naive learners (M = 20); gamma "
        "0.999, init defection, 2000 iterations",
    ),
    (
        "analytic-extortion-vs-extortion",
        "exact IPD, pool of 2 meta agents learning against each other; gamma "
        "0.999, init zd_extortion, 3000 iterations",
    ),
    (
        "analytic-mixed-pool",
        "exact IPD, pool of 4: 50% shaping naive learners (M = 20), the rest "
        "vs each other; gamma 0.999, init defection, 3000 iterations",
    ),
    (
        "analytic-meta-pool",
        "exact IPD, pool of 4 meta agents learning against each other; gamma "
        "0.95, init defection, 2000 iterations",
    ),
    (
        "analytic-lola-1",
        "exact IPD, LOLA-DiCE, 1 look-ahead step(s), pool of 2; gamma 0.95, "
        "init random, 3000 iterations",
    ),
    (
        "analytic-lola-10",
        "exact IPD, LOLA-DiCE, 10 look-ahead step(s), pool of 2; gamma 0.95, "
        "init random, 3000 iterations",
    ),
    ("ipd-shaping", "shaping: default settings; 3000 iterations"),
    ("ipd-shaping-mfos", "shaping: estimator='mfos'; 3000 iterations"),
    (
        "ipd-shaping-batch-unaware",
        "shaping: estimator='batch_unaware'; 3000 iterations",
    ),
    ("ipd-mixed", "shaping: p_naive=0.75, pool_size=4; 3000 iterations"),
    (
        "ipd-mixed-mfos",
        "shaping: estimator='mfos', p_naive=0.75, pool_size=4; 3000 iterations",
    ),
    (
        "ipd-mixed-batch-unaware",
        "shaping: estimator='batch_unaware', p_naive=0.75, pool_size=4; 3000 "
        "iterations",
    ),
    ("ipd-meta-pool", "shaping: p_naive=0.0, pool_size=4; 3000 iterations"),
    (
        "ipd-shaping-cpu",
        "shaping: meta_batch=16, num_seeds=2, lr=0.001; 150 iterations",
    ),
    (
        "ipd-mixed-cpu",
        "shaping: meta_batch=8, p_naive=0.75, pool_size=4, lr=0.001; 300 iterations",
    ),
    (
        "ipd-shaping-cpu-mfos",
        "shaping: estimator='mfos', meta_batch=16, num_seeds=2, lr=0.001; "
        "150 iterations",
    ),
    (
        "ipd-mixed-cpu-mfos",
        "shaping: estimator='mfos', meta_batch=8, p_naive=0.75, pool_size=4, "
        "lr=0.001; 300 iterations",
    ),
    (
        "ipd-shaping-cpu-batch-unaware",
        "shaping: estimator='batch_unaware', meta_batch=16, num_seeds=2, "
        "lr=0.001; 150 iterations",
    ),
    (
        "ipd-mixed-cpu-batch-unaware",
        "shaping: estimator='batch_unaware', meta_batch=8, p_naive=0.75, "
        "pool_size=4, lr=0.001; 300 iterations",
    ),
    (
        "ipd-meta-pool-cpu",
        "shaping: meta_batch=8, p_naive=0.0, pool_size=4, lr=0.001; 300 iterations",
    ),
    (
        "ipd-coala-mfos",
        "shaping: p_naive=0.75, pool_size=4, "
        "pool_estimators='coala,coala,mfos,mfos'; 3000 iterations",
    ),
    (
        "ipd-coala-mfos-cpu",
        "shaping: meta_batch=8, p_naive=0.75, pool_size=4, "
        "pool_estimators='coala,coala,mfos,mfos', num_seeds=5, lr=0.001; 300 "
        "iterations",
    ),
    (
        "cleanup_lite-shaping",
        "shaping: env_id='cleanup_lite-v0', meta_batch=512, batch=32, "
        "num_inner_episodes=100, inner_episode_length=64, "
        "normalize_advantages=True, reward_scale=0.1, lr=0.001, "
        "naive_reward_scale=0.1; 3000 iterations",
    ),
    (
        "cleanup_lite-mixed",
        "shaping: env_id='cleanup_lite-v0', meta_batch=512, batch=64, "
        "num_inner_episodes=5, inner_episode_length=64, p_naive=0.75, "
        "pool_size=3, naive_pool_size=3, dynamic_naive_agents=True, "
        "algorithm='a2c', normalize_advantages=True, reward_scale=0.1, "
        "optimiser='sgd', lr=0.1, naive_lr=1.0, naive_optimiser='sgd', "
        "naive_reward_scale=0.1, naive_gamma=1.0; 30000 iterations",
    ),
    (
        "cleanup_lite-shaping-cpu",
        "shaping: env_id='cleanup_lite-v0', meta_batch=4, batch=8, "
        "num_inner_episodes=30, inner_episode_length=64, num_seeds=3, "
        "normalize_advantages=True, reward_scale=0.1, lr=0.001, "
        "naive_reward_scale=0.1; 200 iterations",
    ),
    (
        "cleanup_lite-mixed-cpu",
        "shaping: env_id='cleanup_lite-v0', meta_batch=8, batch=8, "
        "num_inner_episodes=5, inner_episode_length=64, p_naive=0.75, "
        "pool_size=3, naive_pool_size=3, dynamic_naive_agents=True, "
        "num_seeds=3, algorithm='a2c', normalize_advantages=True, "
        "reward_scale=0.1, optimiser='sgd', lr=0.1, naive_lr=1.0, "
        "naive_optimiser='sgd', naive_reward_scale=0.1, naive_gamma=1.0; 150 "
        "iterations",
    ),
    (
        "cleanup_lite-shaping-mfos",
        "shaping: env_id='cleanup_lite-v0', estimator='mfos', "
        "meta_batch=512, batch=32, num_inner_episodes=100, "
        "inner_episode_length=64, normalize_advantages=True, "
        "reward_scale=1.0, lr=0.003, naive_reward_scale=0.1; 3000 "
        "iterations",
    ),
    (
        "cleanup_lite-mixed-mfos",
        "shaping: env_id='cleanup_lite-v0', estimator='mfos', "
        "meta_batch=512, batch=64, num_inner_episodes=5, "
        "inner_episode_length=64, p_naive=0.75, pool_size=3, "
        "naive_pool_size=3, dynamic_naive_agents=True, algorithm='a2c', "
        "normalize_advantages=True, reward_scale=0.1, optimiser='sgd', "
        "lr=0.03, naive_lr=1.0, naive_optimiser='sgd', "
        "naive_reward_scale=0.1, naive_gamma=1.0; 30000 iterations",
    ),
    (
        "cleanup_lite-shaping-cpu-mfos",
        "shaping: env_id='cleanup_lite-v0', estimator='mfos', meta_batch=4, "
        "batch=8, num_inner_episodes=30, inner_episode_length=64, "
        "num_seeds=3, normalize_advantages=True, reward_scale=1.0, lr=0.003, "
        "naive_reward_scale=0.1; 200 iterations",
    ),
    (
        "cleanup_lite-mixed-cpu-mfos",
        "shaping: env_id='cleanup_lite-v0', estimator='mfos', meta_batch=8, "
        "batch=8, num_inner_episodes=5, inner_episode_length=64, "
        "p_naive=0.75, pool_size=3, naive_pool_size=3, "
        "dynamic_naive_agents=True, num_seeds=3, algorithm='a2c', "
        "normalize_advantages=True, reward_scale=0.1, optimiser='sgd', "
        "lr=0.03, naive_lr=1.0, naive_optimiser='sgd', "
        "naive_reward_scale=0.1, naive_gamma=1.0; 150 iterations",
    ),
    (
        "cleanup_lite-shaping-batch-unaware",
        "shaping: env_id='cleanup_lite-v0', estimator='batch_unaware', "
        "meta_batch=512, batch=32, num_inner_episodes=100, "
        "inner_episode_length=64, normalize_advantages=True, "
        "reward_scale=1.0, lr=0.001, naive_reward_scale=0.1; 3000 "
        "iterations",
    ),
    (
        "cleanup_lite-mixed-batch-unaware",
        "shaping: env_id='cleanup_lite-v0', estimator='batch_unaware', "
        "meta_batch=512, batch=64, num_inner_episodes=5, "
        "inner_episode_length=64, p_naive=0.75, pool_size=3, "
        "naive_pool_size=3, dynamic_naive_agents=True, algorithm='a2c', "
        "normalize_advantages=True, reward_scale=0.1, optimiser='sgd', "
        "lr=0.03, naive_lr=1.0, naive_optimiser='sgd', "
        "naive_reward_scale=0.1, naive_gamma=1.0; 30000 iterations",
    ),
    (
        "cleanup_lite-shaping-cpu-batch-unaware",
        "shaping: env_id='cleanup_lite-v0', estimator='batch_unaware', "
        "meta_batch=4, batch=8, num_inner_episodes=30, "
        "inner_episode_length=64, num_seeds=3, normalize_advantages=True, "
        "reward_scale=1.0, lr=0.001, naive_reward_scale=0.1; 200 iterations",
    ),
    (
        "cleanup_lite-mixed-cpu-batch-unaware",
        "shaping: env_id='cleanup_lite-v0', estimator='batch_unaware', "
        "meta_batch=8, batch=8, num_inner_episodes=5, "
        "inner_episode_length=64, p_naive=0.75, pool_size=3, "
        "naive_pool_size=3, dynamic_naive_agents=True, num_seeds=3, "
        "algorithm='a2c', normalize_advantages=True, reward_scale=0.1, "
        "optimiser='sgd', lr=0.03, naive_lr=1.0, naive_optimiser='sgd', "
        "naive_reward_scale=0.1, naive_gamma=1.0; 150 iterations",
    ),
    (
        "quickstart",
        "shaping: meta_batch=16, batch=8, num_inner_episodes=10, "
        "num_seeds=8, lr=0.001; 150 iterations",
    ),
    (
        "coplayer-a2c-step1",
        "coplayer: num_learners=1, learner_share=0.0, batch=2048, "
        "reward_scale=0.2, lambda_td=0.99, lambda_gae=0.99, "
        "entropy_coef=0.001, lr=0.005; 50000 iterations",
    ),
    (
        "coplayer-a2c-step2",
        "coplayer: num_learners=1, learner_share=0.0, "
        "pool='frozen:runs/coplayer-a2c-step1', batch=2048, "
        "normalize_advantages=False, reward_scale=0.05, entropy_coef=0.001, "
        "lr=0.005; 100000 iterations",
    ),
    (
        "coplayer-a2c-step3",
        "coplayer: learner_share=1.0, pool='', "
        "init_from='runs/coplayer-a2c-step2', lambda_td=0.95, "
        "lambda_gae=0.95, entropy_coef=0.001, lr=0.0005; 100000 iterations",
    ),
    ("coplayer-a2c-mixed", "coplayer: default settings; 200000 iterations"),
    ("coplayer-a2c-opponent-id", "coplayer: opponent_id=True; 200000 iterations"),
    (
        "coplayer-a2c-no-tabular",
        "coplayer: learner_share=1.0, pool=''; 200000 iterations",
    ),
    (
        "coplayer-a2c-step1-cpu",
        "coplayer: num_learners=1, learner_share=0.0, "
        "pool='random_tabular=1,tft=1', batch=256, reward_scale=0.2, "
        "lambda_td=0.99, lambda_gae=0.99, entropy_coef=0.001, lr=0.005, "
        "num_seeds=5; 600 iterations",
    ),
    (
        "coplayer-a2c-step2-cpu",
        "coplayer: num_learners=1, learner_share=0.0, "
        "pool='frozen:runs/coplayer-a2c-step1-cpu', batch=256, "
        "normalize_advantages=False, reward_scale=0.05, entropy_coef=0.001, "
        "lr=0.005, num_seeds=5; 500 iterations",
    ),
    (
        "coplayer-a2c-step3-cpu",
        "coplayer: learner_share=1.0, pool='', "
        "init_from='runs/coplayer-a2c-step2-cpu', batch=256, lambda_td=0.95, "
        "lambda_gae=0.95, entropy_coef=0.001, lr=0.0005, num_seeds=5; 300 "
        "iterations",
    ),
    ("coplayer-a2c-mixed-cpu", "coplayer: batch=256, num_seeds=5; 300 iterations"),
    (
        "coplayer-a2c-opponent-id-cpu",
        "coplayer: opponent_id=True, batch=256, num_seeds=5; 300 iterations",
    ),
    (
        "coplayer-a2c-no-tabular-cpu",
        "coplayer: learner_share=1.0, pool='', batch=256, num_seeds=5; 300 iterations",
    ),
    (
        "ppi-step1",
        "ppi: num_learners=1, learner_share=0.0, collect_chunks=10; 30 iterations",
    ),
    (
        "ppi-step2",
        "ppi: num_learners=1, learner_share=1.0, pool='', "
        "frozen_from='runs/ppi-step1', collect_chunks=10; 30 iterations",
    ),
    (
        "ppi-step3",
        "ppi: learner_share=1.0, pool='', init_from='runs/ppi-step2', "
        "pretrain_episodes=800000, collect_chunks=10; 30 iterations",
    ),
    ("ppi-mixed", "ppi: collect_chunks=10; 30 iterations"),
    ("ppi-opponent-id", "ppi: opponent_id=True, collect_chunks=10; 30 iterations"),
    (
        "ppi-no-tabular",
        "ppi: learner_share=1.0, pool='', pretrain='random', "
        "collect_chunks=10; 30 iterations",
    ),
    (
        "ppi-step1-cpu",
        "ppi: num_learners=1, learner_share=0.0, pretrain_episodes=8192, "
        "episodes=768, epochs=16, minibatch=64, hidden=64, lr=0.002, "
        "beta=100.0, rollouts=8, paired_rollouts=True, num_seeds=5, "
        "eval_episodes=64; 3 iterations",
    ),
    (
        "ppi-step2-cpu",
        "ppi: num_learners=1, learner_share=1.0, pool='', "
        "frozen_from='runs/ppi-step1-cpu', pretrain_episodes=8192, "
        "episodes=768, epochs=16, minibatch=64, hidden=64, lr=0.002, "
        "beta=100.0, rollouts=8, paired_rollouts=True, num_seeds=5, "
        "eval_episodes=64; 3 iterations",
    ),
    (
        "ppi-step3-cpu",
        "ppi: learner_share=1.0, pool='', init_from='runs/ppi-step2-cpu', "
        "pretrain_episodes=10496, episodes=768, epochs=16, minibatch=64, "
        "hidden=64, lr=0.002, beta=100.0, rollouts=8, paired_rollouts=True, "
        "num_seeds=5, eval_episodes=64; 3 iterations",
    ),
    (
        "ppi-mixed-cpu",
        "ppi: pretrain_episodes=8192, episodes=768, epochs=16, minibatch=64, "
        "hidden=64, lr=0.002, beta=100.0, rollouts=8, paired_rollouts=True, "
        "num_seeds=5, eval_episodes=64; 3 iterations",
    ),
    (
        "ppi-opponent-id-cpu",
        "ppi: opponent_id=True, pretrain_episodes=8192, episodes=768, "
        "epochs=16, minibatch=64, hidden=64, lr=0.002, beta=100.0, "
        "rollouts=8, paired_rollouts=True, num_seeds=5, eval_episodes=64; 3 "
        "iterations",
    ),
    (
        "ppi-no-tabular-cpu",
        "ppi: learner_share=1.0, pool='', pretrain='random', "
        "pretrain_episodes=8192, episodes=768, epochs=16, minibatch=64, "
        "hidden=64, lr=0.002, beta=100.0, rollouts=8, paired_rollouts=True, "
        "num_seeds=5, eval_episodes=64; 3 iterations",
    ),
)


def live_envs() -> tuple:
    """:data:`ENVS` read off the registry (imports JAX)."""
    from dilemmas.envs import registered, spec
    from dilemmas.envs.gymnasium import gymnasium_id

    return tuple(
        (i, f"dilemmas/{i}", gymnasium_id(i), spec(i).description) for i in registered()
    )


def live_players() -> tuple:
    """:data:`PLAYERS` read off the games' catalogues (imports JAX)."""
    from dilemmas.training.cli import _STRATEGIES, _catalogue, _game_catalogues

    games: dict[str, list[str]] = {}
    for env_id, catalogue in _game_catalogues().items():
        if catalogue is not None:
            games.setdefault(catalogue, []).append(env_id)
    return tuple(
        (
            "Fixed strategies" if catalogue == _STRATEGIES else "Scripted policies",
            tuple(env_ids),
            tuple(_catalogue(catalogue).items()),
        )
        for catalogue, env_ids in games.items()
    )


def live_presets() -> tuple:
    """:data:`PRESETS` read off the preset modules (imports JAX)."""
    from dilemmas.training.presets import describe, presets

    return tuple((name, describe(config)) for name, config in presets().items())


def _live() -> bool:
    return "dilemmas.envs" in sys.modules


def envs() -> tuple:
    """The games' listing (the copy, or live once ``dilemmas.envs`` is imported)."""
    return live_envs() if _live() else ENVS


def players() -> tuple:
    """The players' listing (the copy, or live once ``dilemmas.envs`` is imported)."""
    return live_players() if _live() else PLAYERS


def preset_list() -> tuple:
    """The presets' listing (the copy, or live once ``dilemmas.envs`` is imported)."""
    return live_presets() if _live() else PRESETS


_COMMENTS = {
    "ENVS": "``(core id, PettingZoo id, Gymnasium id, description)`` of every game.",
    "PLAYERS": "``(kind, game ids, ((name, description), ...))`` per catalogue.",
    "PRESETS": "``(name, description)`` of every preset of ``dilemmas train``.",
}


def source() -> str:
    """This module's text with the copy replaced by the live listings."""
    path = Path(__file__)
    text = path.read_text()
    head = text[: text.index("#: " + _COMMENTS["ENVS"])]
    tail = text[text.index("\n\ndef live_envs") :]
    data = []
    for name, value in (
        ("ENVS", live_envs()),
        ("PLAYERS", live_players()),
        ("PRESETS", live_presets()),
    ):
        comment = _COMMENTS[name]
        data.append(f"#: {comment}\n{name} = {pprint.pformat(value, width=72)}\n")
    return head + "".join(data) + tail


if __name__ == "__main__":
    Path(__file__).write_text(source())
    print(f"wrote {__file__}")
