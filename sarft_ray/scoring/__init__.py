"""RDS: role-adaptive data selection.

Pure core (torch / pyarrow, no Ray): ``core.score_role_samples`` scores one
role's (question, answer) pairs under the role and unsafe prompts (and,
optionally, no system prompt); ``selection`` turns the scores into a training
set. The Ray layer (``ray_pipeline``) runs the core on a Ray Data actor pool;
``job.score_roles`` is the whole stage with content-hashed, reusable outputs.

Names are imported on first use, so reading a config does not import torch and
``sarft_ray.scoring.logprob`` runs where only torch and transformers are installed.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ScoringConfig": "sarft_ray.scoring.config",
    "PrefixCache": "sarft_ray.scoring.core",
    "RoleScores": "sarft_ray.scoring.core",
    "score_role_samples": "sarft_ray.scoring.core",
    "register_selection": "sarft_ray.scoring.selection",
    "registered_selections": "sarft_ray.scoring.selection",
    "select_training_rows": "sarft_ray.scoring.selection",
    "selection_mask": "sarft_ray.scoring.selection",
    "SCORES_SCHEMA": "sarft_ray.scoring.schema",
    "TRAINING_SET_SCHEMA": "sarft_ray.scoring.schema",
    "RoleStats": "sarft_ray.scoring.summary",
    "find_scores": "sarft_ray.scoring.store",
    "load_scores": "sarft_ray.scoring.store",
    "load_training_set": "sarft_ray.scoring.store",
    "ScoreResult": "sarft_ray.scoring.job",
    "score_roles": "sarft_ray.scoring.job",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
