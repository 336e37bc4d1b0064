"""The built-in selection strategies: RDS and the paper's ablations (registered in ``selection.py``).

Each takes one role's train-split score rows in corpus order and the
selection seed, and returns one flag per row.
"""

from __future__ import annotations

import numpy as np

from sarft_ray.hashing import hash_int


def rds_flags(scores) -> np.ndarray:
    """The RDS flags scoring stored: log p under the unsafe prompt beats the role prompt."""
    return np.asarray(scores["is_harmful"].to_numpy(zero_copy_only=False), dtype=bool)


def rds(scores, seed: int) -> np.ndarray:
    return rds_flags(scores)


def flip(scores, seed: int) -> np.ndarray:
    return ~rds_flags(scores)


def every_row(scores, seed: int) -> np.ndarray:
    return np.ones(scores.num_rows, dtype=bool)


def no_row(scores, seed: int) -> np.ndarray:
    return np.zeros(scores.num_rows, dtype=bool)


def role_seed(seed: int, role: str) -> list[int]:
    # Each role gets its own stream, so adding a role never changes another role's draw.
    from sarft_ray.data.roles import role_key  # here: the CLI imports this module and sarft_ray.data is heavy

    return [seed, hash_int(role_key(role))]


def random_like_rds(scores, seed: int) -> np.ndarray:
    """As many rows as RDS flags, drawn uniformly from the role's own seeded stream."""
    harmful = rds_flags(scores)
    role = scores["role"][0].as_py() if scores.num_rows else ""
    rng = np.random.default_rng(role_seed(seed, role))
    chosen = rng.choice(len(harmful), size=int(harmful.sum()), replace=False)
    mask = np.zeros_like(harmful)
    mask[chosen] = True
    return mask
