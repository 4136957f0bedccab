"""The ``dilemmas`` command line.

dilemmas envs                              list the registered environments
dilemmas strategies                        list the strategies and scripted policies
dilemmas play ipd-v0 --co-player tft       play an episode of fixed strategies
dilemmas presets                           list the training presets
dilemmas train PRESET [--set key=value]    train into a run directory
dilemmas train --resume RUN_DIR            continue a killed or interrupted run
dilemmas train ... --coordinator HOST:PORT  one run over several processes
dilemmas sweep PRESET --grid key=v1,v2     a grid of configs, one run dir each
dilemmas analyze RUN_DIR [RUN_DIR ...]     write a report of run directories
dilemmas export-policies RUN_DIR           write a run's trained agents as policies
dilemmas tournament tft RUN_DIR            Axelrod tournament of strategies and runs
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: What `dilemmas train` runs without a PRESET: a few minutes on a 2-core CPU.
DEFAULT_PRESET = "quickstart"
#: The catalogue (``co_players``) of the matrix games' fixed strategies.
_STRATEGIES = "dilemmas.agents.strategies"


def _version() -> str:
    try:
        return version("dilemmas")
    except PackageNotFoundError:
        return "unknown"


def _cmd_envs(args: argparse.Namespace) -> int:
    del args
    from dilemmas.training import listings

    envs = listings.envs()
    rows = [row[:3] for row in envs]
    header = ("core id", "PettingZoo id", "Gymnasium id")
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for *row, description in envs:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        print(f"    {description}")
    ipd = next(gym for core, _, gym, _ in envs if core == "ipd-v0")
    print(
        "\nCore: dilemmas.envs.make('<core id>'); PettingZoo: pettingzoo.make("
        "'parallel', '<PettingZoo id>') after `import dilemmas.envs`;\nGymnasium: "
        f"gymnasium.make('{ipd}', co_player='tft') (the other "
        "players are co-players: one for all, or a list of one each)."
    )
    return 0


def _cmd_strategies(args: argparse.Namespace) -> int:
    del args
    from dilemmas.training import listings

    for index, (kind, env_ids, players) in enumerate(listings.players()):
        print(("\n" if index else "") + f"{kind} of {', '.join(env_ids)}:")
        width = max(len(name) for name, _ in players)
        for name, description in players:
            print(f"  {name:<{width}}  {description}")
    print(
        "\nPlay them with `dilemmas play GAME --player NAME --co-player NAME`; the "
        "fixed strategies also play in `dilemmas tournament`."
    )
    return 0


def _game_catalogues() -> dict[str, str | None]:
    """Each registered env id's catalogue of named players (``co_players``; None
    for a game without one)."""
    from dilemmas.envs import registered, spec

    return {
        env_id: getattr(spec(env_id).factory, "co_players", None)
        for env_id in registered()
    }


def _catalogue(catalogue: str) -> dict[str, str]:
    """The players of a catalogue (a game's ``co_players``, the module that
    ``dilemmas.agents`` registers under that name), with one-line descriptions: the
    fixed strategies of the matrix games, or a grid game's scripted policies (the
    first line of each policy's docstring)."""
    import importlib

    module = importlib.import_module(catalogue)
    if catalogue == _STRATEGIES:
        return {name: module.DESCRIPTIONS[name] for name in module.NAMES}
    return {
        name: _plain(policy.__doc__ or "") for name, policy in module.POLICIES.items()
    }


def _plain(docstring: str) -> str:
    """The first line of ``docstring``, Sphinx roles (``:class:`X```) as plain
    names."""
    first = docstring.strip().splitlines()[0] if docstring.strip() else ""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", first)


def _cmd_play(args: argparse.Namespace) -> int:
    from dilemmas.envs import make
    from dilemmas.envs.matrix_games import MatrixGame

    core, _ = make(args.env_id)
    matrix = isinstance(core, MatrixGame)
    _check_play_options(args, core, matrix)
    if matrix:
        return _play_matrix_game(args)
    return _play_core(args)


def _check_play_options(args: argparse.Namespace, core: Any, matrix: bool) -> None:
    """Refuse the options of ``dilemmas play`` that do not apply to the kind of game
    (matrix or grid) of ``args.env_id``, naming the option and the game.

    ``--payoffs`` sets the payoff table of a matrix game; ``--player`` and
    ``--co-player`` name players of the game's catalogue (fixed strategies for the
    matrix games, scripted policies for each grid game). ``--steps``, ``--seed`` and
    ``-v`` apply to every game.
    """
    env_id = args.env_id
    catalogues = _game_catalogues()
    matrix_games = [other for other, c in catalogues.items() if c == _STRATEGIES]
    if args.payoffs is not None and not matrix:
        raise ValueError(
            f"--payoffs does not apply to {env_id}, a grid game with its own "
            "rewards; it sets the payoff table of the matrix games "
            f"({', '.join(matrix_games)})"
        )
    if core.co_players is None:
        if args.player is not None or args.co_player is not None:
            raise ValueError(
                f"--player and --co-player do not apply to {env_id}: it has no "
                "catalogue of named players"
            )
        return
    players = _catalogue(core.co_players)
    what = "strategy" if matrix else "scripted policy"
    for option, name in (("--player", args.player), ("--co-player", args.co_player)):
        if name is None or name in players:
            continue
        known = f"{env_id}'s players: {', '.join(players)} (see `dilemmas strategies`)"
        elsewhere = [
            other
            for other, catalogue in catalogues.items()
            if catalogue is not None and name in _catalogue(catalogue)
        ]
        if elsewhere:
            raise ValueError(
                f"{option} {name!r} does not apply to {env_id}, a "
                f"{'matrix' if matrix else 'grid'} game: it is a player of "
                f"{', '.join(elsewhere)}; {known}"
            )
        close = difflib.get_close_matches(name, players, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"{option}: unknown {what} {name!r} for {env_id}{hint}; {known}"
        )


def _play_core(args: argparse.Namespace) -> int:
    """Any game: one compiled episode of named players from the game's catalogue."""
    import jax
    import numpy as np

    from dilemmas.agents.rollout import named_player, play_episode
    from dilemmas.envs import make

    kwargs = {} if args.steps is None else {"max_steps": args.steps}
    env, params = make(args.env_id, **kwargs)
    default = env.default_co_player
    demo = env.demo_players if args.player is None and args.co_player is None else None
    first = args.player or (demo[0] if demo else default)
    others = args.co_player or (demo[1] if demo else default)
    names = [first] + [others] * (env.num_agents - 1)
    players = [named_player(env, name) for name in names]
    steps = int(params.max_steps)
    episode = jax.device_get(
        play_episode(jax.random.key(args.seed), players, params, env=env, steps=steps)
    )
    print(
        f"{args.env_id}: {first} (player_0) vs {others} (the other "
        f"{env.num_agents - 1}), {steps} steps, seed {args.seed}"
    )
    events = {
        name: np.asarray(values)
        for name, values in episode.info.items()
        if np.asarray(values).ndim == 2
        and np.asarray(values).shape[1] == env.num_agents
        and np.issubdtype(np.asarray(values).dtype, np.integer)
    }
    if args.verbose:
        for line in _step_lines(env, episode, events):
            print(line)
    counts = {name: values.sum(axis=0) for name, values in events.items()}
    totals = episode.rewards.sum(axis=0)
    for i in range(env.num_agents):
        had = ", ".join(f"{name} {int(c[i])}" for name, c in counts.items())
        print(
            f"  player_{i} {names[i]:>16}: total {totals[i]:+8.2f}   "
            f"per step {totals[i] / steps:+.3f}" + (f"   ({had})" if had else "")
        )
    print(f"  group total {totals.sum():+.2f}")
    return 0


def _step_lines(env: Any, episode: Any, events: dict[str, Any]) -> list[str]:
    """One line per step of ``episode`` (``dilemmas play -v``): every player's
    action, reward and the events it had in that step (``events``: per-step counts,
    ``[T, A]``, from the env's info)."""
    names = env.action_names
    steps = len(episode.actions)
    lines = []
    for t in range(steps):
        parts = []
        for i in range(env.num_agents):
            action = int(episode.actions[t, i])
            had = [f"{name} {int(c[t, i])}" for name, c in events.items() if c[t, i]]
            detail = ", ".join([f"{float(episode.rewards[t, i]):+g}", *had])
            label = names[action] if action < len(names) else str(action)
            parts.append(f"player_{i} {label} ({detail})")
        lines.append(f"step {t + 1}/{steps}: " + ", ".join(parts))
    return lines


def _play_matrix_game(args: argparse.Namespace) -> int:
    import numpy as np

    from dilemmas.agents.strategies import MemoryOne, NumpyPolicy
    from dilemmas.agents.strategies import make as make_strategy
    from dilemmas.envs.exact_ipd import finite_horizon_returns
    from dilemmas.envs.matrix_games import ACTION_NAMES
    from dilemmas.envs.pettingzoo import parallel_env

    kwargs = {"max_steps": 10 if args.steps is None else args.steps}
    if args.payoffs is not None:
        kwargs["payoffs"] = args.payoffs
    env = parallel_env(args.env_id, render_mode="ansi", **kwargs)
    names = {"player_0": args.player or "tft", "player_1": args.co_player or "tft"}
    policies = {
        agent: NumpyPolicy(make_strategy(name), seed=args.seed + i)
        for i, (agent, name) in enumerate(names.items())
    }
    observations, _ = env.reset(seed=args.seed)
    moves, totals = [], dict.fromkeys(env.possible_agents, 0.0)
    while env.agents:
        actions = {agent: policies[agent](observations[agent]) for agent in env.agents}
        observations, rewards, *_ = env.step(actions)
        moves.append("".join(ACTION_NAMES[actions[a]] for a in env.possible_agents))
        for agent, reward in rewards.items():
            totals[agent] += reward
        if args.verbose:
            print(env.render())
    steps = len(moves)
    table = np.array([[move[i] == "C" for i in range(2)] for move in moves])
    print(
        f"{args.env_id}: {names['player_0']} (player_0) vs "
        f"{names['player_1']} (player_1), {steps} rounds, seed {args.seed}"
    )
    shown = " ".join(moves[:20]) + (" ..." if steps > 20 else "")
    print(f"moves (player_0, player_1): {shown}")
    for i, agent in enumerate(env.possible_agents):
        print(
            f"  {agent} {names[agent]:>10}: total {totals[agent]:+8.2f}   "
            f"per round {totals[agent] / steps:+.3f}   "
            f"cooperation {table[:, i].mean():.0%}"
        )
    strategies = [policies[agent].strategy for agent in env.possible_agents]
    if all(isinstance(strategy, MemoryOne) for strategy in strategies):
        expected = finite_horizon_returns(
            strategies[0].probs, strategies[1].probs, env.params.payoffs, horizon=steps
        )
        print(
            "expected per round (exact memory-one chain): "
            f"player_0 {float(expected[0]) / steps:+.3f}, "
            f"player_1 {float(expected[1]) / steps:+.3f}"
        )
    return 0


def _cmd_tournament(args: argparse.Namespace) -> int:
    import importlib.util

    # Checked before anything imports JAX or Axelrod (several seconds each).
    if importlib.util.find_spec("axelrod") is None:
        raise ValueError(
            "tournaments need the Axelrod library, which is not installed: install "
            'the axelrod extra, pip install "dilemmas[axelrod]" (it pulls in '
            "PyTorch: install a CPU build first, see the README)"
        )
    out = None if args.out is None else _check_out_file(Path(args.out))
    try:
        from dilemmas.analysis.tournament import format_report, run_tournament
    except ImportError as err:
        raise ValueError(
            f"tournaments need the Axelrod library ({err}); install it with "
            'pip install "dilemmas[axelrod]" (CPU torch first, see the README)'
        ) from err
    opponents = args.opponents
    if opponents == ["all"]:
        opponents = "all"
    players = []
    for name in args.strategies:
        if Path(name).is_dir():
            from dilemmas.analysis.tournament import (
                players_from_policies,
                players_from_run,
            )

            if (Path(name) / "policies").is_dir():
                players.extend(players_from_policies(name))
            else:
                print(
                    f"dilemmas tournament: {name} has no policies/ (write them with "
                    f"`dilemmas export-policies {name}`): playing the memory-one "
                    "probes of its evaluation.json",
                    file=sys.stderr,
                )
                players.extend(players_from_run(name))
        else:
            players.append(name)
    result = run_tournament(
        players,
        opponents=opponents or None,
        payoffs=args.payoffs,
        turns=args.turns,
        repetitions=args.repetitions,
        seed=args.seed,
        processes=args.processes,
        prob_end=args.prob_end,
        round_robin=args.round_robin,
        progress=not args.no_progress,
    )
    report = format_report(result)
    if out is None:
        print(report, end="")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(out)
    return 0


def _check_out_file(path: Path) -> Path:
    """``path`` if a file can be written there (its folders are created when
    missing); ``ValueError`` naming the problem otherwise, before any work."""
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"--out {path}: {folder} is a file, not a folder")
    return path


def _cmd_presets(args: argparse.Namespace) -> int:
    del args
    from dilemmas.training import listings

    known = listings.preset_list()
    width = max(len(name) for name, _ in known)
    for name, description in known:
        print(f"{name:<{width}}  {description}")
    print("\nRun one with `dilemmas train PRESET [--set key=value ...]`.")
    return 0


def _join_processes(args: argparse.Namespace) -> None:
    """Join a multi-process run when the flags or ``DILEMMAS_*`` variables ask for
    one (:mod:`dilemmas.training.distributed`), before JAX touches a device: before
    importing the rest of the package (some modules hold ``jnp`` constants)."""
    from dilemmas.training import distributed

    distributed.initialize_from_env(
        coordinator=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )


def _add_process_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "several processes or hosts (docs: README, Scaling out)"
    )
    group.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="process 0's address, the same for every process, or 'auto' on a "
        "cluster JAX detects (SLURM, MPI, Kubernetes); default: "
        "$DILEMMAS_COORDINATOR, else one process",
    )
    group.add_argument(
        "--num-processes",
        type=int,
        default=None,
        help="processes in the run (default: $DILEMMAS_NUM_PROCESSES)",
    )
    group.add_argument(
        "--process-id",
        type=int,
        default=None,
        help="this process's index from 0; process 0 writes the run directory "
        "(default: $DILEMMAS_PROCESS_ID)",
    )


def _cmd_train(args: argparse.Namespace) -> int:
    _join_processes(args)
    from dilemmas.training import runner

    if args.resume is not None:
        given = [
            flag
            for flag, value in (
                ("PRESET", args.preset),
                ("--run-dir", args.run_dir),
                ("--log-every", args.log_every),
                ("--checkpoint-every", args.checkpoint_every),
                ("--keep-checkpoints", args.keep_checkpoints),
            )
            if value not in (None, [])
        ]
        if given:
            raise ValueError(
                "--resume continues a run with its stored config and settings "
                "(--set changes config fields on purpose, and is recorded); "
                f"drop {', '.join(given)}"
            )
        return _train_outcome(
            lambda: runner.resume(
                args.resume, progress=not args.no_progress, overrides=args.set
            ),
            args.resume,
        )
    if args.preset is None:
        args.preset = DEFAULT_PRESET
        print(
            f"dilemmas train: no PRESET given, running {DEFAULT_PRESET!r} "
            "(`dilemmas presets` lists the others)",
            file=sys.stderr,
        )
    from dilemmas.training.configs import parse_overrides, replace_values, to_json_value
    from dilemmas.training.presets import experiment_from_config, get_preset

    base = get_preset(args.preset)
    values = parse_overrides(base, args.set)
    experiment = experiment_from_config(replace_values(base, values))
    run_dir = args.run_dir or Path("runs") / (
        f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    return _train_outcome(
        lambda: runner.run(
            experiment,
            run_dir,
            preset=args.preset,
            overrides=to_json_value(values),
            log_every=args.log_every,
            checkpoint_every=args.checkpoint_every,
            keep_checkpoints=(
                3 if args.keep_checkpoints is None else args.keep_checkpoints
            ),
            progress=not args.no_progress,
        ),
        run_dir,
    )


def _cmd_sweep(args: argparse.Namespace) -> int:
    _join_processes(args)
    from dilemmas.training.sweep import run_sweep

    out = args.out or Path("runs") / (
        f"sweep-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    written = run_sweep(
        args.preset,
        args.grid,
        out,
        seeds=args.seeds,
        overrides=args.set,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    print(
        f"dilemmas sweep: {len(written)} run directories in {Path(out) / 'runs'}; "
        f"compare them with `dilemmas analyze {Path(out) / 'runs'}`"
    )
    return 0


def _train_outcome(train, run_dir: str | Path) -> int:
    """Exit code of a training call: 0 done, 1 stopped on a non-finite loss, 130
    interrupted by SIGINT (Ctrl-C) and 143 by SIGTERM (the last completed chunk is
    checkpointed). Errors before training (ValueError, RunDirectoryError) reach
    :func:`main`: exit code 2."""
    from dilemmas.training.runner import NonFiniteLossError

    try:
        train()
    except NonFiniteLossError as err:
        print(f"dilemmas train: stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(
            f"dilemmas train: interrupted ({signal.Signals(signum).name}); continue "
            f"with `dilemmas train --resume {run_dir}`",
            file=sys.stderr,
        )
        return 128 + signum
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from dilemmas.analysis.report import write_report

    report = write_report(
        args.run_dirs, args.out, echo=lambda note: print(f"dilemmas analyze: {note}")
    )
    print(report)
    return 0


def _cmd_export_policies(args: argparse.Namespace) -> int:
    from dilemmas.training.run_dir import (
        load_checkpoint,
        read_config,
        write_policies,
    )
    from dilemmas.training.runner import experiment_from_run

    experiment = experiment_from_run(read_config(args.run_dir))
    iteration, state = load_checkpoint(args.run_dir, experiment)
    names = write_policies(args.run_dir, experiment, state)
    if not names:
        raise ValueError(f"a {experiment.kind!r} run has no policies to write")
    folder = Path(args.run_dir) / "policies"
    print(f"{folder}: {', '.join(names)} (iteration {iteration})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dilemmas",
        description="Social dilemmas for multi-agent RL.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True)

    envs = commands.add_parser("envs", help="list the registered environments")
    envs.set_defaults(run=_cmd_envs)

    strategies = commands.add_parser(
        "strategies",
        help="list the matrix games' strategies and the grid games' scripted policies",
    )
    strategies.set_defaults(run=_cmd_strategies)

    play = commands.add_parser(
        "play",
        help="play one episode of fixed strategies or scripted policies",
    )
    play.add_argument("env_id", help="a registered id, e.g. ipd-v0 or coin_game-v0")
    play.add_argument(
        "--player",
        default=None,
        help="strategy or scripted policy of player_0 (default: the game's "
        "default co-player: tft in matrix games; in Cleanup and CleanUp-lite a "
        "dedicated cleaner among harvesters, to show the dilemma)",
    )
    play.add_argument(
        "--co-player", default=None, help="of every other player (same default)"
    )
    play.add_argument(
        "--steps",
        type=int,
        default=None,
        help="episode length (default: 10 rounds in matrix games, the game's own "
        "episode length otherwise)",
    )
    play.add_argument(
        "--payoffs",
        default=None,
        help="payoff preset of a matrix game, e.g. coala, lola, axelrod",
    )
    play.add_argument("--seed", type=int, default=0)
    play.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every round: actions and rewards (and events in grid games)",
    )
    play.set_defaults(run=_cmd_play)

    tournament = commands.add_parser(
        "tournament",
        help="play our strategies against the Axelrod library's strategies",
    )
    tournament.add_argument(
        "strategies",
        nargs="+",
        help="our strategy names, e.g. tft wsls zd_extort, or run directories "
        "(every agent and seed of a trained run, from its evaluation.json)",
    )
    tournament.add_argument(
        "--opponents",
        nargs="+",
        default=None,
        help="Axelrod strategy names, or 'all' (default: the fast set of "
        "short-run strategies that do not inspect their opponent)",
    )
    tournament.add_argument("--payoffs", default="coala", help="payoff preset")
    tournament.add_argument("--turns", type=int, default=200)
    tournament.add_argument("--repetitions", type=int, default=10)
    tournament.add_argument("--seed", type=int, default=0)
    tournament.add_argument("--processes", type=int, default=1)
    tournament.add_argument(
        "--prob-end",
        type=float,
        default=None,
        help="geometric match lengths with this end probability per turn",
    )
    tournament.add_argument(
        "--round-robin",
        action="store_true",
        help="a full round robin among everyone (slow); by default our players "
        "meet each opponent and are ranked among themselves",
    )
    tournament.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="write the report (Markdown, as printed) to FILE instead of stdout",
    )
    tournament.add_argument(
        "--no-progress", action="store_true", help="no progress bar over the matches"
    )
    tournament.set_defaults(run=_cmd_tournament)

    presets = commands.add_parser("presets", help="list the training presets")
    presets.set_defaults(run=_cmd_presets)

    train = commands.add_parser(
        "train",
        help="train a preset into a run directory (docs/run_directory.md)",
    )
    train.add_argument(
        "preset", nargs="?", default=None, help="a preset name (`dilemmas presets`)"
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set iterations=50 --set "
        "payoffs=1,-1,2,0 (repeatable; checked before anything is compiled)",
    )
    train.add_argument(
        "--run-dir",
        default=None,
        help="new or empty run directory (default: runs/<preset>-<timestamp>)",
    )
    train.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue a killed or interrupted run from its latest checkpoint; "
        "with --set, change config fields on purpose (recorded in config.json), "
        "e.g. --set iterations=N to train a completed run longer",
    )
    train.add_argument(
        "--log-every",
        type=int,
        default=None,
        help="iterations per compiled chunk (default: about 1%% of the run)",
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="iterations between checkpoints, a multiple of --log-every "
        "(default: about ten per run)",
    )
    train.add_argument(
        "--keep-checkpoints",
        type=int,
        default=None,
        help="newest checkpoints to keep (default 3)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_process_flags(train)
    train.set_defaults(run=_cmd_train)

    sweep = commands.add_parser(
        "sweep",
        help="train a grid of configs of a preset, batched into as few compiled "
        "programs as their shapes allow, one run directory per point",
    )
    sweep.add_argument("preset", help="a preset name (`dilemmas presets`)")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=V1,V2,...",
        help="a field and its values (repeatable: the grid is their product; "
        "separate values with ';' when they hold commas)",
    )
    sweep.add_argument(
        "--seeds", type=int, default=None, help="num_seeds of every point"
    )
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field of every point (repeatable)",
    )
    sweep.add_argument(
        "--out",
        default=None,
        help="new or empty sweep directory (default: runs/sweep-<preset>-<time>)",
    )
    sweep.add_argument("--log-every", type=int, default=None)
    sweep.add_argument("--checkpoint-every", type=int, default=None)
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_process_flags(sweep)
    sweep.set_defaults(run=_cmd_sweep)

    analyze = commands.add_parser(
        "analyze", help="write a report (report.md and figures) of run directories"
    )
    analyze.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    analyze.add_argument(
        "--out",
        default=None,
        help="report folder (default: RUN_DIR/report for a single run)",
    )
    analyze.set_defaults(run=_cmd_analyze)

    export = commands.add_parser(
        "export-policies",
        help="write a run's trained agents to RUN_DIR/policies from its latest "
        "checkpoint (load them with dilemmas.agents.load_policy)",
    )
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.set_defaults(run=_cmd_export_policies)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
        sys.stdout.flush()  # a closed pipe fails here, not at the interpreter's exit
        return status
    except ValueError as err:
        print(f"dilemmas {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`dilemmas envs | head`): stop quietly, as `ls` does,
        # and keep the interpreter's final flush of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
