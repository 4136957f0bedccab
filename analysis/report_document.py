"""The report document: blocks of headings, text, tables and figures.

:class:`Document` collects the blocks that the section writers of
:mod:`dilemmas.analysis.report_sections` add; :func:`markdown` and
:func:`html_page` render the same blocks as ``report.md`` and ``report.html``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Document:
    """The report as blocks, rendered by :func:`markdown` and :func:`html_page`."""

    blocks: list[tuple] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", level, text))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", list(header), [list(r) for r in rows]))

    def image(self, src: str, caption: str) -> None:
        self.blocks.append(("image", src, caption))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(doc: Document) -> str:
    """``doc`` as Markdown."""
    out: list[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            out += ["#" * block[1] + " " + block[2], ""]
        elif kind == "text":
            out += [block[1], ""]
        elif kind == "bullets":
            out += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(map(_md_cell, header)) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
            out.append("")
        elif kind == "image":
            out += [f"![{block[2]}]({block[1]})", "", f"*{block[2]}*", ""]
    return "\n".join(out).rstrip() + "\n"


def _inline_html(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', escaped)


def html_page(doc: Document, title: str) -> str:
    """``doc`` as a standalone HTML page titled ``title``."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.25em .6em;font-size:90%}"
        "img{max-width:100%}figcaption{color:#555;font-size:90%}</style>",
        "</head><body>",
    ]
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            out.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "text":
            out.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "bullets":
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in block[1])
            out.append(f"<ul>{items}</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block[1])
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                for row in block[2]
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        elif kind == "image":
            out.append(
                f'<figure><img src="{html.escape(block[1])}" '
                f'alt="{html.escape(block[2])}"><figcaption>'
                f"{_inline_html(block[2])}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def fmt(value: float | None) -> str:
    """A number for a table cell: 4 significant digits, ``n/a`` for None or NaN."""
    if value is None or not np.isfinite(value):
        return "n/a" if value is None or np.isnan(value) else f"{value:g}"
    return f"{value:.4g}"
