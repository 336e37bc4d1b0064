"""Where the recipe's checkpoints go, behind one small interface.

The recipe only calls ``latest()``, ``save(...)``, ``log(...)`` and ``flush()``. Without Ray,
``LocalCheckpoints`` keeps numbered directories on disk; under Ray Train,
``ray_trainer.RayTrainCheckpoints`` maps the same calls onto
``ray.train.get_checkpoint`` / ``ray.train.report``.

A checkpoint directory holds ``state/`` (DeepSpeed engine state: trainable
weights, optimizer shards, LR schedule, plus the recipe's client state) while
training, and ``final/`` (the artefact and ``summary.json``) once the run has
finished. No random-generator state is saved: the recipe reseeds every step
from (seed, step, rank) (``rng.py``), so a resumed run replays its dropout.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from sarft_ray.atomic import write_text

FINAL = "final"
STATE_TAG = "state"


class CheckpointStore(Protocol):
    """What the recipe needs from a checkpoint backend (every rank calls each method)."""

    def latest(self) -> contextlib.AbstractContextManager[Path | None]: ...

    def save(self, metrics: dict, write: Callable[[Path], None]) -> None: ...

    def log(self, metrics: dict) -> None: ...

    def flush(self) -> None: ...


class LocalCheckpoints:
    """Numbered checkpoint directories under ``root`` (single process, no Ray).

    Each checkpoint is written to a temporary directory and renamed into place,
    so an interrupted save never shadows the previous good one.
    """

    _NAME = re.compile(r"^checkpoint_(\d{6})$")

    def __init__(self, root: str | Path, keep: int = 2):
        self.root = Path(root)
        self.keep = keep
        self.count = len(self._existing())

    def _existing(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if self._NAME.match(p.name) and p.is_dir()]
        return sorted(found, key=lambda p: p.name)

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        existing = self._existing()
        yield existing[-1] if existing else None

    def save(self, metrics: dict, write: Callable[[Path], None]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-checkpoint-", dir=self.root))
        try:
            write(tmp)
            target = self.root / f"checkpoint_{self.count:06d}"
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.count += 1
        for old in self._existing()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def log(self, metrics: dict) -> None:  # per-step metrics go to the recipe's history and callback
        pass

    def flush(self) -> None:  # saves are synchronous here
        pass


ARTEFACTS = ("adapter", "model")


def install_final(final: Path, output_dir: Path) -> dict:
    """Copy a finished run's artefact (``adapter/`` or ``model/``) and ``summary.json`` into ``output_dir``.

    ``summary.json`` is written last: its presence marks a complete run.
    """
    import json

    summary_file = final / "summary.json"
    if not summary_file.is_file():
        raise RuntimeError(f"{final}: no summary.json; the run did not finish")
    for name in ARTEFACTS:
        if (final / name).is_dir():
            copy_atomic(final / name, output_dir / name)
    summary = json.loads(summary_file.read_text())
    write_text_atomic(output_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a directory so that ``target`` appears complete or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file via a temporary file and ``os.replace``."""
    write_text(path, text)
