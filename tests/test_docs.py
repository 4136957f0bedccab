"""Docs as tests: every Python and shell example of README.md and docs/**/*.md runs.

Which fenced blocks run, and how:

* ```` ```python ```` (or ``py``): ``exec`` in one namespace per Markdown file, the
  file's blocks in order, so a block may use the names of the blocks above it (a block
  selected alone first runs the blocks above it). The working directory is a fresh
  temporary folder per file; tracebacks name the Markdown file and its line numbers.
* ```` ```bash ````, ``sh``, ``shell``: ``bash -e -o pipefail`` in a fresh temporary
  folder, with this interpreter's ``bin`` (the virtualenv's ``dilemmas``,
  ``python``) first on ``PATH``. ``console``: the same, with only the ``$ `` lines run.
* Every other fence (``json``, ``text``, none) is output or a format, not run.

A block is marked by HTML comments (invisible on the rendered page) on the lines right
above its opening fence:

* ``<!-- slow -->``: runs only with ``pytest -m slow`` (more than about 20 s on a
  2-core machine).
* ``<!-- skip: REASON -->``: never runs here, for the REASON given (a pip install of
  the package itself, a GPU-scale or hours-long reproduction recipe). The
  ``dilemmas train`` commands of such blocks are still parsed and their presets and
  ``--set`` values resolved (``test_train_commands_resolve``).
* ``<!-- setup: COMMAND -->``: a shell block runs COMMAND first, in the same folder
  (e.g. a short training run whose directory the example reads).

Test ids are ``FILE:LINE`` of the opening fence, e.g. ``README.md:160``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")
MARKER = re.compile(r"^\s*<!--\s*(slow|skip|setup)\s*(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


@dataclass
class Block:
    path: Path  # relative to ROOT
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    slow: bool = False
    skip: str | None = None
    setup: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.path.as_posix()}:{self.line}"


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if "_build" not in f.relative_to(ROOT).parts]


def extract(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced code blocks of one Markdown file, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(
                lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i]
            )
            i += 1
        i += 1  # the closing fence
        block = Block(path.relative_to(root), start + 1, lang.lower(), "\n".join(body))
        above = start - 1
        while above >= 0 and (marker := MARKER.match(lines[above])):
            kind, value = marker.groups()
            if kind == "slow":
                block.slow = True
            elif kind == "skip":
                block.skip = value or "marked skip"
            else:
                block.setup.insert(0, value)
            above -= 1
        blocks.append(block)
    return blocks


BLOCKS = [b for f in doc_files() for b in extract(f) if b.lang in PYTHON + SHELL]


def params(kinds: tuple[str, ...]) -> list:
    return [
        pytest.param(
            b,
            id=b.id,
            marks=(
                [pytest.mark.skip(reason=f"{b.id}: {b.skip}")]
                if b.skip
                else [pytest.mark.slow]
                if b.slow
                else []
            ),
        )
        for b in BLOCKS
        if b.lang in kinds
    ]


# Python: one namespace per file, run in file order.
_namespaces: dict[Path, tuple[dict, dict[int, bool], Path]] = {}


def _run_python(block: Block) -> None:
    namespace, ran, folder = _namespaces[block.path]
    code = compile("\n" * block.line + block.code, str(ROOT / block.path), "exec")
    cwd = os.getcwd()
    os.chdir(folder)
    ran[block.line] = False
    try:
        exec(code, namespace)
    finally:
        os.chdir(cwd)
    ran[block.line] = True


@pytest.mark.parametrize("block", params(PYTHON))
def test_python_example(block: Block, tmp_path_factory):
    if block.path not in _namespaces:
        folder = tmp_path_factory.mktemp(block.path.stem)
        _namespaces[block.path] = ({"__name__": "__doc_example__"}, {}, folder)
    _, ran, _ = _namespaces[block.path]
    for earlier in BLOCKS:
        if (
            earlier.path == block.path
            and earlier.lang in PYTHON
            and earlier.line < block.line
            and not earlier.skip
        ):
            if earlier.line not in ran:
                _run_python(earlier)
            if not ran[earlier.line]:
                pytest.fail(f"{block.id} follows {earlier.id}, which fails")
    _run_python(block)


def _shell_code(block: Block) -> str:
    if block.lang != "console":
        return block.code
    return "\n".join(
        line[2:] for line in block.code.splitlines() if line.startswith("$ ")
    )


def _shell_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env.setdefault("MPLBACKEND", "Agg")
    return env


@pytest.mark.parametrize("block", params(SHELL))
def test_shell_example(block: Block, tmp_path):
    script = "\n".join([*block.setup, _shell_code(block)])
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=tmp_path,
        env=_shell_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"{block.id} exited with {result.returncode}\n--- script\n{script}\n"
        f"--- stdout (tail)\n{result.stdout[-3000:]}\n"
        f"--- stderr (tail)\n{result.stderr[-3000:]}"
    )


# The training commands of every shell block, skipped ones included: the preset
# exists and its --set values are valid (nothing is compiled or trained).
def train_commands(block: Block) -> list[list[str]]:
    code = re.sub(r"\\\n", " ", _shell_code(block))
    commands = []
    for line in code.splitlines():
        for part in re.split(r"&&|;|\|", line.split("#")[0]):
            words = shlex.split(part)
            if words[:2] == ["dilemmas", "train"] and "$" not in part:
                commands.append(words[2:])
    return commands


TRAIN_BLOCKS = [
    pytest.param(b, id=b.id) for b in BLOCKS if b.lang in SHELL and train_commands(b)
]


@pytest.mark.parametrize("block", TRAIN_BLOCKS)
def test_train_commands_resolve(block: Block):
    from dilemmas.training.cli import DEFAULT_PRESET, build_parser
    from dilemmas.training.configs import parse_overrides, replace_values
    from dilemmas.training.presets import get_preset

    for argv in train_commands(block):
        args = build_parser().parse_args(["train", *argv])
        if args.resume is not None:
            continue  # reads its config from the run directory
        base = get_preset(args.preset or DEFAULT_PRESET)
        replace_values(base, parse_overrides(base, args.set))


def test_markers_are_well_formed():
    """Every marker sits right above a runnable block and a skip names its reason."""
    runnable = {(b.path, b.line) for b in BLOCKS}
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not MARKER.match(line):
                continue
            j = i
            while j < len(lines) and MARKER.match(lines[j]):
                j += 1
            where = f"{path.relative_to(ROOT)}:{i + 1}"
            assert (path.relative_to(ROOT), j + 1) in runnable, (
                f"{where}: a marker must be right above a python or shell block"
            )
            kind, value = MARKER.match(line).groups()
            assert kind == "slow" or value, f"{where}: {kind} needs a value"


def test_extraction_finds_the_examples():
    ids = [b.id for b in BLOCKS]
    assert any(i.startswith("README.md:") for i in ids)
    readme = [b for b in BLOCKS if b.path == Path("README.md")]
    assert {b.lang for b in readme} >= {"python", "bash"}
    with tempfile.TemporaryDirectory() as folder:
        doc = Path(folder) / "x.md"
        doc.write_text(
            "text\n<!-- setup: echo hi -->\n<!-- slow -->\n```bash\necho 1\n```\n"
            "<!-- skip: needs a GPU -->\n```python\nprint(1)\n```\n"
        )
        first, second = extract(doc, root=Path(folder))
    assert (first.line, first.lang, first.slow, first.setup) == (
        4,
        "bash",
        True,
        ["echo hi"],
    )
    assert (second.line, second.skip, second.code) == (8, "needs a GPU", "print(1)")
