"""Scaling out on one machine: processes and devices, and a sweep as one program.

1. **Processes x devices.** The same shaping run (``quickstart`` at a small shape,
   its meta-batch split over the devices) through ``dilemmas train`` as 1 process
   x 1 device, 1 process x 8 devices and 2 processes x 4 devices (localhost, gloo
   collectives; ``--xla_force_host_platform_device_count``). The figure is the
   time per iteration after the first (compiling) chunk, from the run's
   ``summary.json`` (``timing.seconds_in_compiled_code``); on a CPU host devices
   share the same cores, so 8 devices do not compute faster than 1 and the
   ratios measure what splitting and, across processes, the collectives cost.
2. **A sweep as one program.** ``--points`` learning rates of the same shaping
   config: ``sweep.run_sweep`` (one compiled program, the points vmapped) against
   ``runner.run`` of each point in turn (one compilation each), in one process
   with one device; wall-clock of the whole, compilation and the points' own
   evaluation included, and the compiled time per iteration of all the points.

Run ``python benchmarks/bench_distributed.py`` (about 10 minutes on a loaded
2-core machine), ``--json PATH`` to keep the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = [
    *("--set", "meta_batch=8", "--set", "batch=8", "--set", "num_inner_episodes=10"),
    *("--set", "num_seeds=1", "--set", "eval_meta_batch=4"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_time(
    processes: int, devices: int, iterations: int, log_every: int, folder: Path
) -> float:
    """Seconds per iteration after the first chunk of one ``dilemmas train``."""
    run_dir = folder / f"p{processes}x{devices}"
    command = [sys.executable, "-m", "dilemmas.training.cli", "train", "quickstart"]
    command += [*SHAPE, "--set", f"iterations={iterations}"]
    command += ["--log-every", str(log_every), "--no-progress", "--run-dir"]
    command += [str(run_dir)]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    port = _free_port()
    launched = []
    for index in range(processes):
        flags = []
        if processes > 1:
            flags = ["--coordinator", f"127.0.0.1:{port}"]
            flags += ["--num-processes", str(processes), "--process-id", str(index)]
        launched.append(
            subprocess.Popen(
                command + flags,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    codes = [p.wait() for p in launched]
    if any(codes):
        raise RuntimeError(f"{processes} x {devices}: exit codes {codes}")
    timing = json.loads((run_dir / "summary.json").read_text())["timing"]
    return timing["seconds_in_compiled_code"] / (iterations - log_every)


def sweep_times(points: int, iterations: int, log_every: int, folder: Path) -> dict:
    """Wall-clock of ``points`` learning rates as one sweep and as separate runs."""
    from dilemmas.training import runner, sweep
    from dilemmas.training.configs import parse_overrides, replace_values
    from dilemmas.training.presets import get_preset

    overrides = [s for s in SHAPE if s != "--set"] + [f"iterations={iterations}"]
    rates = [f"{1e-3 * (1 + k):.0e}".replace("e-0", "e-") for k in range(points)]
    start = time.perf_counter()
    written = sweep.run_sweep(
        "quickstart",
        [f"lr={','.join(rates)}"],
        folder / "sweep",
        overrides=overrides,
        log_every=log_every,
        progress=False,
    )
    one_program = time.perf_counter() - start
    program = json.loads((folder / "sweep/programs/0/summary.json").read_text())
    base = get_preset("quickstart")
    base = replace_values(base, parse_overrides(base, overrides))
    start = time.perf_counter()
    compiled = 0.0
    for k, rate in enumerate(rates):
        config = replace_values(base, parse_overrides(base, [f"lr={rate}"]))
        summary = runner.run(
            config.experiment(),
            folder / f"run{k}",
            preset="quickstart",
            log_every=log_every,
            progress=False,
        )
        compiled += summary["timing"]["seconds_in_compiled_code"]
    sequential = time.perf_counter() - start
    timed = iterations - log_every
    return {
        "points": len(written),
        "sweep_seconds": one_program,
        "sequential_seconds": sequential,
        "sweep_iteration_seconds": program["timing"]["seconds_in_compiled_code"]
        / timed,
        "sequential_iteration_seconds": compiled / timed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--log-every", type=int, default=2)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if "model name" in line]
    cpu = names[0] if names else cpu
    record: dict = {"cpu": cpu, "cores": os.cpu_count(), "load": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        layouts = {}
        for processes, devices in ((1, 1), (1, 8), (2, 4)):
            seconds = train_time(
                processes, devices, args.iterations, args.log_every, folder
            )
            layouts[f"{processes}x{devices}"] = seconds
            print(f"{processes} process(es) x {devices} device(s): {seconds:.3f} s/it")
        record["layouts"] = layouts
        print(
            f"2x4 / 1x8 = {layouts['2x4'] / layouts['1x8']:.2f}, "
            f"1x8 / 1x1 = {layouts['1x8'] / layouts['1x1']:.2f}"
        )
        sweep = sweep_times(args.points, args.iterations, args.log_every, folder)
        record["sweep"] = sweep
        print(
            f"{sweep['points']} points: one program {sweep['sweep_seconds']:.1f} s, "
            f"sequential {sweep['sequential_seconds']:.1f} s (ratio "
            f"{sweep['sequential_seconds'] / sweep['sweep_seconds']:.2f}); per "
            f"iteration of all points {sweep['sweep_iteration_seconds']:.3f} s vs "
            f"{sweep['sequential_iteration_seconds']:.3f} s"
        )
    record["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
