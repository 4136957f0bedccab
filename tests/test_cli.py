"""The dilemmas command line."""

import re
import subprocess
import sys

import pytest

from dilemmas.training.cli import main


def test_envs_lists_every_id_with_a_description(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in ("ipd-v0", "stag_hunt-v0", "chicken-v0", "matching_pennies-v0"):
        assert env_id in out
    assert "iterated prisoner's dilemma" in out
    assert "dilemmas/IPD-v0" in out


def test_envs_lists_each_gymnasium_id_beside_the_core_and_pettingzoo_ids(capsys):
    assert main(["envs"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    for core, camel in (
        ("ipd-v0", "IPD-v0"),
        ("cleanup-v0", "Cleanup-v0"),
        ("harvest-v0", "Harvest-v0"),
        ("coin_game_two_coins-v0", "CoinGameTwoCoins-v0"),
    ):
        assert [core, f"dilemmas/{core}", f"dilemmas/{camel}"] in rows


def test_a_listing_piped_into_a_reader_that_stops_ends_quietly():
    # `dilemmas envs | head -1` once head has exited: nobody reads the pipe, so
    # the listing's first write fails (the read end is closed before it starts).
    code = (
        "import sys\nfrom dilemmas.training.cli import main\nsys.exit(main(['envs']))\n"
    )
    listing = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    listing.stdout.close()
    err = listing.stderr.read()
    assert listing.wait(timeout=300) == 141
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_the_listings_copy_is_the_live_registries():
    from dilemmas.training import listings

    hint = "regenerate: python -m dilemmas.training.listings && ruff format training"
    assert listings.live_envs() == listings.ENVS, hint
    assert listings.live_players() == listings.PLAYERS, hint
    assert listings.live_presets() == listings.PRESETS, hint


def test_listing_commands_answer_without_importing_jax():
    code = (
        "import sys\n"
        "from dilemmas.training.cli import main\n"
        "codes = [main([command]) for command in ('envs', 'strategies', 'presets')]\n"
        "print(codes, 'jax' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.stderr.split() == ["[0,", "0,", "0]", "False"], done.stderr
    assert "ipd-v0" in done.stdout and "zd_extort" in done.stdout
    assert "quickstart" in done.stdout and "dedicated_cleaner" in done.stdout


def test_strategies_lists_names(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in ("tft", "wsls", "zd_extort", "grim"):
        assert name in out


def test_strategies_lists_the_scripted_policies_of_every_grid_game(capsys):
    from dilemmas.agents.scripted import cleanup, cleanup_lite, coin_game, harvest

    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    sections = {
        "Scripted policies of coin_game-v0, coin_game_two_coins-v0:": coin_game,
        "Scripted policies of cleanup_lite-v0:": cleanup_lite,
        "Scripted policies of cleanup-v0:": cleanup,
        "Scripted policies of harvest-v0:": harvest,
    }
    for heading, module in sections.items():
        assert heading in out
        listed = out.split(heading)[1].split("\n\n")[0].splitlines()[1:]
        assert [line.split()[0] for line in listed] == list(module.POLICIES)
    assert "  own_coin  Takes only coins of its own colour" in out


def test_play_tft_against_alld(capsys):
    # COALA payoffs, 10 rounds: TFT is suckered once (S = -1) then both defect
    # (P = 0); AllD gets T = 2 once.
    assert main(["play", "ipd-v0", "--player", "tft", "--co-player", "alld"]) == 0
    out = capsys.readouterr().out
    assert "10 rounds" in out
    assert "moves (player_0, player_1): CD DD DD DD DD DD DD DD DD DD" in out
    assert "total    -1.00   per round -0.100   cooperation 10%" in out
    assert "total    +2.00   per round +0.200   cooperation 0%" in out
    assert "(exact memory-one chain): player_0 -0.100, player_1 +0.200" in out


def test_play_reports_the_exact_expectation_of_a_zd_extortioner(capsys):
    # ZD(chi=3) vs AllC under COALA payoffs: long-run 9/7 and 3/7 per round.
    argv = [
        "play",
        "ipd-v0",
        "--player",
        "zd_extort",
        "--co-player",
        "allc",
        "--steps",
        "2000",
    ]
    assert main(argv) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    values = [float(part.split()[-1]) for part in line.split(":")[1].split(",")]
    assert abs(values[0] - 9 / 7) < 2e-3
    assert abs(values[1] - 3 / 7) < 2e-3


def test_play_with_axelrod_payoffs_and_verbose(capsys):
    argv = [
        "play",
        "ipd-v0",
        "--player",
        "wsls",
        "--co-player",
        "alld",
        "--steps",
        "4",
        "--payoffs",
        "axelrod",
        "-v",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # WSLS against AllD alternates C, D: S + P + S + P = 0 + 1 + 0 + 1.
    assert "moves (player_0, player_1): CD DD CD DD" in out
    assert "total    +2.00" in out
    assert "round 4/4: player_0 D (+1), player_1 D (+1)" in out


def test_play_verbose_prints_every_step_of_a_grid_game(capsys):
    from dilemmas.envs.coin_game import ACTION_NAMES

    argv = ["play", "coin_game-v0", "--co-player", "random", "--steps", "5", "-v"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in steps] == [
        f"step {t}/5" for t in range(1, 6)
    ]
    rewards = [0.0, 0.0]
    for line in steps:
        found = re.findall(r"player_(\d) (\w+) \(([+-][\d.]+)", line)
        assert [int(i) for i, _, _ in found] == [0, 1]
        for i, action, reward in found:
            assert action in ACTION_NAMES[:4]
            rewards[int(i)] += float(reward)
    # The per-step rewards add up to the totals of the summary.
    for i in range(2):
        total = re.escape(f"{rewards[i]:+.2f}")
        assert re.search(rf"player_{i} .*: total\s+{total} ", out)


def test_play_cleanup_lite_by_default_shows_a_cleaner_feeding_a_free_rider(capsys):
    assert main(["play", "cleanup_lite-v0"]) == 0
    out = capsys.readouterr().out
    assert "dedicated_cleaner (player_0) vs always_harvest" in out
    counts = {
        int(i): dict(re.findall(r"(\w+) (\d+)", events))
        for i, events in re.findall(r"player_(\d) .*total .*\((.*)\)", out)
    }
    # The cleaner cleans and eats nothing; the free-rider eats what its cleaning grows.
    assert int(counts[0]["cells_cleaned"]) > 0 and counts[0]["apples_eaten"] == "0"
    assert int(counts[1]["apples_eaten"]) > 0 and counts[1]["cells_cleaned"] == "0"
    # Naming either player turns the demo off: two harvesters alone eat nothing.
    assert main(["play", "cleanup_lite-v0", "--player", "always_harvest"]) == 0
    out = capsys.readouterr().out
    assert "always_harvest (player_0) vs always_harvest" in out
    assert "group total +0.00" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["play", "coin_game-v0", "--payoffs", "lola"],
            "--payoffs does not apply to coin_game-v0, a grid game",
        ),
        (
            ["play", "harvest-v0", "--player", "tft"],
            "--player 'tft' does not apply to harvest-v0, a grid game: it is a "
            "player of battle_of_the_sexes-v0, chicken-v0, ipd-v0",
        ),
        (
            ["play", "ipd-v0", "--co-player", "own_coin"],
            "--co-player 'own_coin' does not apply to ipd-v0, a matrix game: it is a "
            "player of coin_game-v0, coin_game_two_coins-v0; ipd-v0's players: allc",
        ),
        (
            ["play", "cleanup_lite-v0", "--co-player", "zaper"],
            "--co-player: unknown scripted policy 'zaper' for cleanup_lite-v0 (did "
            "you mean zapper?)",
        ),
        (["play", "ipd"], "unknown env id 'ipd' (did you mean ipd-v0?)"),
        (["play", "Stag_Hunt-v0"], "(did you mean stag_hunt-v0?)"),
        (["play", "ipd-v0", "--player", "nobody"], "unknown strategy 'nobody'"),
        (["play", "ipd-v7"], "unknown env id 'ipd-v7'"),
        (["play", "ipd-v0", "--steps", "0"], "max_steps must be positive"),
        (["play", "ipd-v0", "--payoffs", "lolz"], "unknown payoff preset"),
    ],
)
def test_bad_arguments_give_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


TINY_TOURNAMENT = [
    "tournament",
    "tft",
    "--opponents",
    "Cooperator",
    "Defector",
    "--turns",
    "10",
    "--repetitions",
    "1",
]


def test_tournament_against_named_axelrod_strategies(capsys):
    argv = ["tournament", "alld", *TINY_TOURNAMENT[1:]]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "- seed: 0" in out
    # COALA payoffs over 10 turns: AllD vs AllC earns T = 2 per turn, the sucker S;
    # TFT vs AllD is suckered once: (S + 9 P) / 10 = -0.1, AllD gets (T + 9 P) / 10.
    assert "| dilemmas alld | Cooperator | 2.0000 | -1.0000 |" in out
    assert "| dilemmas tft | Defector | -0.1000 | 0.2000 |" in out


def test_tournament_bad_opponent(capsys):
    assert main(["tournament", "tft", "--opponents", "Nobody", "--turns", "5"]) == 2
    assert "Nobody" in capsys.readouterr().err


def test_tournament_out_writes_the_printed_report_and_progress_shows(tmp_path, capsys):
    assert main(TINY_TOURNAMENT) == 0
    printed = capsys.readouterr()
    assert "Playing matches" in printed.err and "2/2" in printed.err
    out = tmp_path / "new" / "tournament.md"
    assert main([*TINY_TOURNAMENT, "--out", str(out), "--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == f"{out}\n" and "Playing matches" not in quiet.err
    assert out.read_text() == printed.out


def test_tournament_out_must_be_a_file_name(tmp_path, capsys):
    assert main(["tournament", "tft", "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a directory" in capsys.readouterr().err


def test_tournament_without_axelrod_names_the_extra_before_importing_jax():
    code = (
        "import sys\n"
        "sys.modules['axelrod'] = None  # as if not installed\n"
        "from dilemmas.training.cli import main\n"
        "status = main(['tournament', 'tft'])\n"
        "print(status, 'jax' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert 'install the axelrod extra, pip install "dilemmas[axelrod]"' in done.stderr
