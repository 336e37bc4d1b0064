"""Atomic files and stage records: how a re-run knows which stages already finished.

A stage record is a small JSON file written after a stage succeeded, under a
directory named by the hash of everything the stage's output depends on. A
re-run with the same inputs finds the record and skips the stage, as long as
the outputs it names still exist; ``force`` ignores records.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: Path, write: Callable[[str], None]) -> None:
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


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_record(path: Path, force: bool = False) -> dict | None:
    """A finished stage's record, or None when absent, forced, unreadable or its outputs are gone."""
    path = Path(path)
    if force or not path.is_file():
        return None
    try:
        record = read_json(path)
    except (OSError, json.JSONDecodeError):
        return None
    outputs = record.get("outputs", [])
    if any(not Path(p).exists() for p in outputs):
        return None
    return record


def save_record(path: Path, result: dict, outputs: list[str | Path] = ()) -> dict:
    """Mark a stage finished: its result plus the files it produced."""
    record = {**result, "outputs": [str(p) for p in outputs]}
    write_json(path, record)
    return record
