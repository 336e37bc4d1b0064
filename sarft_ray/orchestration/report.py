"""A static HTML report: tables and PNG plots on one page, no scripts, no external assets.

Images are referenced by paths relative to the page, so the report directory
can be copied or logged to MLflow as a whole.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarft_ray.atomic import write_text

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
.note { color: #666; font-size: 0.9em; }
"""


@dataclass(frozen=True)
class Table:
    title: str
    columns: Sequence[str]
    rows: Sequence[dict[str, Any]]
    note: str = ""
    text_columns: Sequence[str] = ()  # left-aligned; empty: every column that is not all numbers


@dataclass(frozen=True)
class Figure:
    title: str
    path: Path


@dataclass(frozen=True)
class Text:
    title: str
    lines: Sequence[str] = field(default_factory=list)


Block = Table | Figure | Text


def fmt(value: Any) -> str:
    """Numbers with two decimals (small ones such as learning rates in e-notation), missing values as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2e}"
    return str(value)


def _table(block: Table) -> str:
    if block.text_columns:
        numeric = set(block.columns) - set(block.text_columns)
    else:
        numeric = {c for c in block.columns if all(isinstance(r.get(c), (int, float, type(None))) for r in block.rows)}
    cls = {c: "" if c in numeric else ' class="text"' for c in block.columns}
    head = "".join(f"<th{cls[c]}>{html.escape(c)}</th>" for c in block.columns)
    body = "".join(
        "<tr>" + "".join(f"<td{cls[c]}>{html.escape(fmt(r.get(c)))}</td>" for c in block.columns) + "</tr>"
        for r in block.rows
    )
    note = f'<p class="note">{html.escape(block.note)}</p>' if block.note else ""
    return f"<h2>{html.escape(block.title)}</h2>{note}<table><tr>{head}</tr>{body}</table>"


def render_html(title: str, blocks: Sequence[Block], base_dir: Path, subtitle: str = "") -> str:
    """The page; figure paths are written relative to ``base_dir`` (where the page will live)."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if subtitle:
        parts.append(f'<p class="note">{html.escape(subtitle)}</p>')
    for block in blocks:
        if isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Figure):
            rel = Path(os.path.relpath(Path(block.path).resolve(), Path(base_dir).resolve())).as_posix()
            title = html.escape(block.title)
            parts.append(f'<h2>{title}</h2><img src="{html.escape(rel)}" alt="{title}">')
        else:
            items = "".join(f"<li>{html.escape(line)}</li>" for line in block.lines)
            parts.append(f"<h2>{html.escape(block.title)}</h2><ul>{items}</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def write_report(path: Path, title: str, blocks: Sequence[Block], subtitle: str = "") -> Path:
    """Write ``index.html`` (or any ``path``) atomically."""
    path = Path(path)
    write_text(path, render_html(title, blocks, path.parent, subtitle))
    return path


def markdown_table(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """The same table as GitHub markdown (for terminals and MLflow artefacts)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
