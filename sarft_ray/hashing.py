"""sha256 digests: every content hash and hash-seeded draw goes through here.

Stored outputs are found again by these digests (scores, training runs,
evaluations, judge verdicts), and splits, samples and random selections are
drawn from them, so each function's output for a given input must never
change: tests/test_hashing.py pins known values.

- ``json_digest``: hex digest of JSON-able data (configs, settings, rows);
- ``text_digest``: hex digest of a string;
- ``file_digest`` / ``tree_digest``: of a file's bytes / a directory's files;
- ``hash_int`` / ``hash_unit``: a string as a 64-bit integer / a point in [0, 1),
  for seeded ranks and splits that do not depend on row order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def text_digest(text: str, length: int | None = None) -> str:
    """sha256 hex of the UTF-8 text, cut to ``length`` characters (None: all 64)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def json_digest(data: Any, length: int | None = None, *, ascii_only: bool = True) -> str:
    """sha256 hex of ``data`` as JSON with sorted keys (non-JSON values as their ``str``).

    ``ascii_only=False`` hashes non-ASCII characters as UTF-8 rather than as
    ``\\u`` escapes (the training-set digest was made that way).
    """
    return text_digest(json.dumps(data, sort_keys=True, default=_json_default, ensure_ascii=ascii_only), length)


def _json_default(value: Any) -> Any:
    """Sets as sorted lists (their own order follows string hashing, which differs per process); else ``str``."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def file_digest(path: str | Path) -> str:
    """sha256 hex of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    _update_from_file(digest, Path(path))
    return digest.hexdigest()


def tree_digest(root: str | Path, length: int | None = None, content: Callable[[Path], bytes | None] | None = None) -> str:
    """sha256 hex over a directory's files: each relative path, then its bytes, in sorted path order.

    ``content(path)``, where given, says what of a file counts: bytes to hash in place of the file's own,
    ``None`` for the file's bytes, ``b""`` (with the path) for a file whose content does not matter.
    """
    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        replaced = content(path) if content is not None else None
        if replaced is None:
            _update_from_file(digest, path)
        else:
            digest.update(replaced)
    return digest.hexdigest()[:length]


def hash_int(text: str) -> int:
    """The first 8 bytes of the text's sha256 as an unsigned big-endian integer."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def hash_unit(text: str) -> float:
    """``hash_int(text)`` scaled into [0, 1)."""
    return hash_int(text) / 2**64


def _update_from_file(digest, path: Path) -> None:
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
