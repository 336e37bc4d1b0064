"""Line- and row-level file readers that report bad input as ``file:line``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from sarft_ray.errors import SarftError


def read_text(path: Path) -> str:
    """Read a UTF-8 file; a bad byte is reported with its line number."""
    if not path.exists():
        raise SarftError(f"{path}: file does not exist")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SarftError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line, streaming the file."""
    if not path.exists():
        raise SarftError(f"{path}: file does not exist")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SarftError(f"{path}:{number}: not valid UTF-8") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SarftError(f"{path}:{number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise SarftError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj


def iter_csv(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, row)`` from a CSV with a header that holds ``required``."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise SarftError(f"{path}: missing column(s) {', '.join(missing)} (header: {reader.fieldnames})")
    for row in reader:
        yield reader.line_num, row


def read_json_or_yaml(path: Path) -> object:
    """Parse a ``.json`` / ``.yaml`` / ``.yml`` file with a located error."""
    import yaml

    text = read_text(path)
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SarftError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SarftError(f"{path}{line}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
