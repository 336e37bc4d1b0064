"""Atomic files and stage records: how a re-run knows which stages already finished.

A stage record is a small JSON file written after a stage succeeded, under a
directory named by the hash of everything the stage's output depends on. A
re-run with the same inputs finds the record and skips the stage, as long as
the outputs it names still exist; ``force`` ignores records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sarft_ray.atomic import write_atomic, write_json, write_text  # noqa: F401 - re-exported


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
