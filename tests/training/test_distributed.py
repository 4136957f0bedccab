"""Runs over several processes (``dilemmas.training.distributed``).

Two CPU processes on localhost, each with host devices
(``--xla_force_host_platform_device_count``) and gloo collectives, train the same
run as one process with the same total device count: the same checkpoints, byte
for byte, and the same metrics; a two-process run killed after its first
checkpoint and resumed by two new processes ends with the same parameters as an
uninterrupted run. The analytic preset keeps them small (its four seeds are split
over the four devices); the shaping loop (its meta-batch split over the devices)
is the slow test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from dilemmas.training import distributed

ANALYTIC = [
    "analytic-shaping",
    "--set",
    "num_seeds=4",
    "--set",
    "meta_batch=4",
    "--set",
    "num_naive_steps=3",
    "--set",
    "iterations=4",
    "--log-every",
    "2",
    "--no-progress",
]
SHAPING = [
    "quickstart",
    *("--set", "meta_batch=8", "--set", "batch=2", "--set", "num_inner_episodes=2"),
    *("--set", "inner_episode_length=3", "--set", "iterations=4"),
    *("--set", "network=tabular", "--set", "num_seeds=2", "--set", "eval_meta_batch=2"),
    *("--log-every", "2", "--no-progress"),
]
#: Seconds a launched process may take (compilation on a loaded 2-core machine).
TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    for name in (
        distributed.COORDINATOR_ENV,
        distributed.NUM_PROCESSES_ENV,
        distributed.PROCESS_ID_ENV,
    ):
        env.pop(name, None)
    return env


def _launch(commands: list[list[str]], devices: int, cwd: Path) -> list[int]:
    """Start one process per command (process ``i`` gets ``DILEMMAS_PROCESS_ID=i``
    of ``len(commands)`` when there are several), wait for all; their exit codes."""
    env = _env(devices)
    if len(commands) > 1:
        env[distributed.COORDINATOR_ENV] = f"127.0.0.1:{_free_port()}"
        env[distributed.NUM_PROCESSES_ENV] = str(len(commands))
    processes = []
    for index, command in enumerate(commands):
        own = dict(env)
        if len(commands) > 1:
            own[distributed.PROCESS_ID_ENV] = str(index)
        log = open(cwd / f"process{index}.log", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(command, env=own, cwd=cwd, stdout=log, stderr=log)
        )
    codes = []
    try:
        for process in processes:
            codes.append(process.wait(timeout=TIMEOUT))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return codes


def _train(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "dilemmas.training.cli", "train", *args]


def _logs(folder: Path) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted(folder.glob("*.log")))


def _metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_time"}
        for line in lines
    ]


def _assert_same_run(one: Path, two: Path, exact_metrics: bool) -> None:
    latest = [
        json.loads((d / "checkpoints" / "latest.json").read_text()) for d in (one, two)
    ]
    assert latest[0]["iteration"] == latest[1]["iteration"]
    for d, record in zip((one, two), latest, strict=True):
        assert (d / "checkpoints" / record["file"]).is_file()
    # the parameters (and PRNG keys) of the final state, byte for byte
    assert latest[0]["sha256"] == latest[1]["sha256"]
    a, b = _metrics(one), _metrics(two)
    assert [r["iteration"] for r in a] == [r["iteration"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for name in ra:
            if exact_metrics:
                assert ra[name] == rb[name], name
            else:  # means reduced over the devices in another order
                np.testing.assert_allclose(ra[name], rb[name], rtol=1e-5, atol=1e-6)
    evaluation = [json.loads((d / "evaluation.json").read_text()) for d in (one, two)]
    assert evaluation[0] == evaluation[1]


# --------------------------------------------------------------------------------------
# Arguments and the environment (no runtime started)


@pytest.fixture
def calls(monkeypatch):
    """``jax.distributed.initialize`` replaced by a recorder."""
    recorded: list[dict] = []
    monkeypatch.setattr(
        jax.distributed, "initialize", lambda **kwargs: recorded.append(kwargs)
    )
    monkeypatch.setattr(jax.config, "update", lambda *args: None)
    return recorded


def test_nothing_given_is_one_process(calls):
    assert distributed.initialize_from_env({}) is False
    assert calls == []


def test_the_environment_names_the_coordinator_and_flags_take_precedence(calls):
    environ = {
        distributed.COORDINATOR_ENV: "10.0.0.1:1234",
        distributed.NUM_PROCESSES_ENV: "4",
        distributed.PROCESS_ID_ENV: "3",
    }
    assert distributed.initialize_from_env(environ) is True
    assert distributed.initialize_from_env(environ, process_id=1) is True
    assert calls == [
        dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3),
        dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=1),
    ]


def test_auto_lets_jax_detect_the_cluster(calls):
    assert distributed.initialize_from_env({distributed.COORDINATOR_ENV: "auto"})
    assert calls == [{}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((None, 2, 0), "need --coordinator"),
        (("10.0.0.1", 2, 0), "HOST:PORT"),
        (("10.0.0.1:1234", None, 0), "needs --num-processes"),
        (("10.0.0.1:1234", 2, 2), r"process_id = 2 must be in \[0"),
        (("10.0.0.1:1234", "two", 0), "num_processes must be an integer"),
        (("auto", 2, None), "drop --num-processes"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(calls, args, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize(*args)
    assert calls == []


def test_the_command_line_refuses_an_incomplete_launch(calls, tmp_path, capsys):
    from dilemmas.training import cli

    code = cli.main(["train", "analytic-shaping", "--num-processes", "2"])
    assert code == 2
    assert "need --coordinator" in capsys.readouterr().err
    assert calls == []


# --------------------------------------------------------------------------------------
# Two processes on localhost


def test_two_processes_train_the_same_run_as_one_with_as_many_devices(tmp_path):
    """2 processes x 2 devices and 1 process x 4 devices: the analytic preset's 4
    seeds split over the devices give the same checkpoints and metrics."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    assert _launch([_train([*ANALYTIC, "--run-dir", "run"])], 4, one) == [0], _logs(one)
    command = _train([*ANALYTIC, "--run-dir", "run"])
    assert _launch([command, command], 2, two) == [0, 0], _logs(two)
    _assert_same_run(one / "run", two / "run", exact_metrics=True)
    # process 0 alone wrote the directory: one TensorBoard file, its summary
    assert len(list((two / "run").glob("events.out.tfevents.*"))) == 1
    assert json.loads((two / "run/summary.json").read_text())["status"] == "completed"
    config = json.loads((two / "run/config.json").read_text())
    assert config["num_seeds"] == 4


KILLED_AFTER_FIRST_CHECKPOINT = textwrap.dedent(
    """
    import os, sys
    from dilemmas.training import distributed
    distributed.initialize_from_env()
    from dilemmas.training import cli, runner

    original = runner._Loop.write_metrics

    def write_metrics(self, writer, metrics, start, *args):
        if start == 2:  # iteration 2 is checkpointed; 3 and 4 are computed
            os._exit(9)  # and every process dies, as under SIGKILL
        return original(self, writer, metrics, start, *args)

    runner._Loop.write_metrics = write_metrics
    sys.exit(cli.main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_same_parameters(tmp_path):
    """Killed after its checkpoint at iteration 2, resumed by two new processes
    (each restores the same checkpoint), the run ends as an uninterrupted
    one-process run with as many devices. (Five launches: 70 s on a loaded 2-core
    machine.)"""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    args = [*ANALYTIC, "--set", "iterations=6", "--checkpoint-every", "2"]
    assert _launch([_train([*args, "--run-dir", "run"])], 4, whole) == [0]
    script = killed / "killed.py"
    script.write_text(KILLED_AFTER_FIRST_CHECKPOINT)
    command = [sys.executable, str(script), "train", *args, "--run-dir", "run"]
    assert _launch([command, command], 2, killed) == [9, 9], _logs(killed)
    latest = json.loads((killed / "run/checkpoints/latest.json").read_text())
    assert latest["iteration"] == 2
    assert not (killed / "run/summary.json").exists()
    resume = _train(["--resume", "run", "--no-progress"])
    assert _launch([resume, resume], 2, killed) == [0, 0], _logs(killed)
    _assert_same_run(whole / "run", killed / "run", exact_metrics=True)


@pytest.mark.slow
def test_the_shaping_loop_over_two_processes_matches_one(tmp_path):
    """The sampled shaping loop, its meta-batch of 8 split over 2 processes x 4
    devices and over 1 process x 8 devices: the same parameters; the metrics
    (means over the split meta-batch) agree to float32 rounding."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    assert _launch([_train([*SHAPING, "--run-dir", "run"])], 8, one) == [0]
    command = _train([*SHAPING, "--run-dir", "run"])
    assert _launch([command, command], 4, two) == [0, 0], _logs(two)
    _assert_same_run(one / "run", two / "run", exact_metrics=False)
