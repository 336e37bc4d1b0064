"""Which device a stage's model runs on: one rule for scoring, evaluation, judges and training.

- ``device_kind(num_gpus)``: what a worker's resources say it runs on: CUDA
  with a GPU share, else CPU. Needs no torch, so the driver can name the
  precision of stored results (the scores' hash names it) before any worker starts.
- ``pick_device(requested, num_gpus)``: the device a worker loads its model
  on: ``requested`` as given, or for ``auto`` CUDA when the worker was given
  a GPU share and one is visible to it, else CPU. Decided where the model
  loads: the driver may see other devices than its workers.
"""

from __future__ import annotations

AUTO = "auto"


def device_kind(num_gpus: float) -> str:
    """``cuda`` for a worker given a GPU share, ``cpu`` otherwise."""
    return "cuda" if num_gpus > 0 else "cpu"


def pick_device(requested: str = AUTO, num_gpus: float = 1.0) -> str:
    """``requested`` unless it is ``auto``; ``auto``: ``cuda`` when given a GPU share and CUDA is visible, else ``cpu``."""
    if requested != AUTO:
        return requested
    if device_kind(num_gpus) == "cpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
