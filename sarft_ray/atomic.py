"""Atomic file writes: write to a temporary file beside the target, then rename.

Readers (and a re-run after a crash) see either the old file or the whole new
one, never a half-written file. Text and JSON pass through
:func:`sarft_ray.secrets.redact_text` on the way, so no report, table or
resolved config ever holds a URL's credentials or a registered key.

A process killed mid-write (``kill -9``, OOM, a lost node) leaves its
temporary behind. Temporaries are named ``.tmp-<name>-<pid>@<host>-<random>``
(``temp_prefix``), so a later run can tell a dead writer's leftovers from a
live one's: ``remove_stale`` deletes them, and every atomic write first
removes the stale temporaries of its own target.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sarft_ray.hashing import text_digest
from sarft_ray.secrets import redact_text

TEMP_KINDS = (".tmp-", ".old-")  # a file or directory being built, one moved aside to be replaced
# ``-<pid>@<host>-<random>`` at the end of a temporary's name (mkstemp and uuid hex never hold '-').
_OWNER = re.compile(r"-(\d+)@([0-9a-f]{8})-[A-Za-z0-9_]*$")


def _host() -> str:
    return text_digest(socket.gethostname(), 8)


def temp_prefix(name: str, kind: str = ".tmp-") -> str:
    """The start of the name of a temporary for ``name`` that this process writes (kind, name, owner)."""
    return f"{kind}{name}-{os.getpid()}@{_host()}-"


def _started(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), None when there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # another user's process: alive, start unknown
        return 0.0


def is_stale(entry: Path, now_started: float | None = None) -> bool:
    """Whether temporary ``entry`` was left by a writer that is gone.

    A temporary named by ``temp_prefix`` on this host belongs to its pid: it
    is stale once that process has ended (or the pid now belongs to a process
    started after the temporary was last written). Any other temporary (no
    owner in its name, or another host's) is stale when it is older than this
    process, since a run that crashed did so before this one started.
    """
    mtime = entry.lstat().st_mtime
    owner = _OWNER.search(entry.name)
    if owner and owner.group(2) == _host():
        started = _started(int(owner.group(1)))
        return started is None or started > mtime
    now_started = _started(os.getpid()) if now_started is None else now_started
    return mtime < (now_started or 0.0)


def remove_stale(directory: str | Path, name: str | None = None) -> list[Path]:
    """Delete the stale temporaries in ``directory`` (only those of ``name`` when given); returns them."""
    directory = Path(directory)
    prefixes = tuple(f"{kind}{name}-" for kind in TEMP_KINDS) if name else TEMP_KINDS
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(prefixes)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for entry in candidates:
        try:
            if not is_stale(entry):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:  # its writer finished or another sweep got there first
            continue
        removed.append(entry)
    return removed


def temp_dir(parent: str | Path, name: str) -> Path:
    """A new empty directory in ``parent`` for building ``name`` (owner in its name, see ``temp_prefix``)."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=temp_prefix(name), dir=parent))


def write_atomic(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename into place, so readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), dir=path.parent)
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
