"""The Sphinx documentation (docs/conf.py): the API reference covers every module and
the HTML build has no warnings (``sphinx-build -W``)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def public_modules() -> set[str]:
    """Every public module of the installed packages (pyproject's package-dir)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]
    modules = set()
    for package in setuptools["packages"]:
        top = package.split(".")[1]
        folder = ROOT / setuptools["package-dir"][f"dilemmas.{top}"]
        folder = folder.joinpath(*package.split(".")[2:])
        modules.add(package)
        modules.update(
            f"{package}.{path.stem}"
            for path in folder.glob("*.py")
            if not path.stem.startswith("_")
        )
    return modules


def test_the_api_pages_document_every_module():
    documented = set()
    for page in (DOCS / "api").glob("*.rst"):
        documented.update(
            re.findall(r"^\.\. automodule:: (\S+)", page.read_text(), re.MULTILINE)
        )
    assert documented == public_modules(), (
        f"missing from docs/api/: {sorted(public_modules() - documented)}; "
        f"not a module: {sorted(documented - public_modules())}"
    )


# About 28 s on 2 shared cores (26 s of CPU, most of it importing every module, the
# Axelrod library and PyTorch included); mark it slow if it grows past ~40 s.
def test_sphinx_build_has_no_warnings(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"sphinx-build -W failed:\n{result.stderr[-6000:]}"
    assert (tmp_path / "html" / "api" / "envs.html").is_file()
    assert "AutoReset" in (tmp_path / "html" / "api" / "envs.html").read_text()
