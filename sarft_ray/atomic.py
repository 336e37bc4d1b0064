"""Atomic file writes: write to a temporary file beside the target, then rename.

Readers (and a re-run after a crash) see either the old file or the whole new
one, never a half-written file. Text and JSON pass through
:func:`sarft_ray.secrets.redact_text` on the way, so no report, table or
resolved config ever holds a URL's credentials or a registered key.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sarft_ray.secrets import redact_text


def write_atomic(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename into place, so readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file atomically, credentials redacted."""
    text = redact_text(text)
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Write indented JSON atomically (non-JSON values as strings)."""
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_parquet(path: str | Path, table) -> None:
    """Write an Arrow table as parquet atomically."""
    import pyarrow.parquet as pq

    write_atomic(path, lambda tmp: pq.write_table(table, tmp))
