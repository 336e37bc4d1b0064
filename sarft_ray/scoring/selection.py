"""Which training rows carry the safety (KL) term: the RDS selection and the paper's ablations.

- ``rds``: the harmful rows (log p under the unsafe prompt beats the role prompt);
- ``flip``: the complement of ``rds``;
- ``random``: as many rows as ``rds`` selects, drawn uniformly with a seed;
- ``all``: every row;  ``none``: no row (plain SFT).

Every strategy keeps every training row: only the ``is_harmful`` flag differs.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sarft_ray.data.roles import role_key
from sarft_ray.errors import SarftError
from sarft_ray.scoring.schema import TRAINING_SET_SCHEMA

SELECTIONS = ("rds", "flip", "random", "all", "none")


def _role_seed(seed: int, role: str) -> list[int]:
    # Each role gets its own stream, so adding a role never changes another role's draw.
    return [seed, int.from_bytes(hashlib.sha256(role_key(role).encode()).digest()[:8], "big")]


def selection_mask(harmful: np.ndarray, selection: str, seed: int = 0, role: str = "") -> np.ndarray:
    """The ``is_harmful`` flags a strategy assigns, given the RDS flags in a fixed row order."""
    harmful = np.asarray(harmful, dtype=bool)
    if selection == "rds":
        return harmful.copy()
    if selection == "flip":
        return ~harmful
    if selection == "all":
        return np.ones_like(harmful)
    if selection == "none":
        return np.zeros_like(harmful)
    if selection == "random":
        rng = np.random.default_rng(_role_seed(seed, role))
        chosen = rng.choice(len(harmful), size=int(harmful.sum()), replace=False)
        mask = np.zeros_like(harmful)
        mask[chosen] = True
        return mask
    raise SarftError(f"training.selection: unknown selection '{selection}' (choose from {', '.join(SELECTIONS)})")


def select_training_rows(scores: pa.Table, selection: str, seed: int = 0) -> pa.Table:
    """One role's training set from its scores: train-split rows in corpus order, with ``is_harmful``."""
    roles = scores["role"].unique().to_pylist()
    if len(roles) > 1:
        raise ValueError(f"select_training_rows takes one role's scores, got {len(roles)} roles")
    train = scores.filter(pc.equal(scores["split"], "train")).sort_by("row_index")
    mask = selection_mask(train["is_harmful"].to_numpy(zero_copy_only=False), selection, seed, roles[0] if roles else "")
    columns = [train[name] for name in TRAINING_SET_SCHEMA.names[:-1]] + [pa.array(mask, type=pa.bool_())]
    return pa.Table.from_arrays(columns, schema=TRAINING_SET_SCHEMA)
