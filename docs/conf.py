"""Sphinx configuration: the API reference from the docstrings (autodoc, napoleon for
Google-style sections) and the Markdown pages (myst-parser).

Build with ``sphinx-build -W -b html docs docs/_build`` (warnings are errors;
tests/test_docs_build.py runs it).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
_project = tomllib.loads((DOCS.parent / "pyproject.toml").read_text())["project"]

project = "dilemmas"
author = "the dilemmas authors"
copyright = "the dilemmas authors"
release = version = _project["version"]

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

# autodoc: the documented members defined in each module (a module's ``__all__``
# re-exports are documented where they are defined), in source order; type hints in
# the descriptions rather than in long signatures. Docstrings are the ones written
# here: a method without one (e.g. ``SingleAgentEnv.step``) does not take
# Gymnasium's or PettingZoo's.
autodoc_default_options = {"member-order": "bysource", "ignore-module-all": True}
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" sections as fields of the class, so the NamedTuple fields that
# autodoc documents as well are not described twice.
napoleon_use_ivar = True

# myst: GitHub-style Markdown as the pages are written; the README's relative
# links are resolved from the repository root.
myst_heading_anchors = 3

suppress_warnings = []
# docs/games/ holds a page per game; until the first is written its glob is empty.
if not any((DOCS / "games").glob("*.md")):
    suppress_warnings.append("toc.empty_glob")

html_theme = "alabaster"


def setup(app):
    # docs/run_directory.md shows annotated JSON (// comments, ... for elided
    # values), which Pygments' JSON lexer rejects: highlight it as JavaScript.
    from pygments.lexers.javascript import JavascriptLexer

    app.add_lexer("json", JavascriptLexer)


html_title = f"dilemmas {release}"
