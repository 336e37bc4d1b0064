"""Random state per optimizer step: a pure function of (seed, step, rank).

LoRA dropout (and any other random op inside a step) draws from the global
generators. The recipe reseeds them at the start of every optimizer step from
(seed, step, rank) instead of saving and restoring generator states in the
checkpoints, because:

- a resumed run draws exactly what the uninterrupted run drew at that step,
  whatever happened before the loop (model loading, LoRA init, the resume
  itself) and whichever checkpoint it resumed from;
- nothing needs to travel through the checkpoint: the DeepSpeed engine
  checkpoint keeps client state on rank 0 only, while each rank needs its own
  generator state; here each rank derives its own;
- the data order already replays the same way (``data.StepPlan``).

Per-step seeds come from a hash, so neighbouring (step, rank) pairs give
unrelated streams.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def step_seed(seed: int, step: int, rank: int) -> int:
    """A 64-bit seed for optimizer step ``step`` (0-based) on worker ``rank``."""
    digest = hashlib.blake2b(f"sarft-step:{seed}:{step}:{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def seed_step(seed: int, step: int, rank: int) -> None:
    """Reseed torch (CPU and every CUDA device), ``random`` and numpy for this step on this rank."""
    value = step_seed(seed, step, rank)
    torch.manual_seed(value)  # also seeds all CUDA devices
    random.seed(value)
    np.random.seed(value % 2**32)
