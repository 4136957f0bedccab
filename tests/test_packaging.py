"""The wheel installs only the ``dilemmas`` namespace, and the tree is ruff-clean."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_only_the_dilemmas_namespace(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("dilemmas-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"dilemmas", wheel.name.split("-py")[0] + ".dist-info"}
    for package in ("envs", "agents", "training", "analysis"):
        assert f"dilemmas/{package}/__init__.py" in names
    assert not any(name.startswith("dilemmas/__init__") for name in names)
    assert "dilemmas/envs/matrix_games.py" in names
    assert "dilemmas/agents/scripted/__init__.py" in names


def test_console_script_runs():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dilemmas.training.cli import main; main(['envs'])",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout
    assert "ipd-v0" in out


def test_ruff_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(ROOT)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
