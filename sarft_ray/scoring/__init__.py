"""RDS: role-adaptive data selection.

Pure core (torch / pyarrow, no Ray): ``core.score_role_samples`` scores one
role's (question, answer) pairs under the role and unsafe prompts (and,
optionally, no system prompt); ``selection`` (a registry of strategies, the
built-ins in ``selection_builtins``) turns the scores into a training set.
The Ray layer (``ray_pipeline``) runs the core on a Ray Data actor pool;
``job.score_roles`` is the whole stage with content-hashed, reusable outputs
(``store``: where they live; ``StoredScores`` is what training is handed).

Names are imported on first use, so reading a config does not import torch and
``sarft_ray.scoring.logprob`` runs where only torch and transformers are installed.
"""

from __future__ import annotations

from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "config": "ScoringConfig",
    "core": "PrefixCache RoleScores score_role_samples",
    "job": "ScoreResult score_roles",
    "schema": "SCORES_SCHEMA TRAINING_SET_SCHEMA",
    "selection": "register_selection registered_selections select_training_rows",
    "store": "StoredScores find_scores load_scores load_training_set",
    "summary": "RoleStats",
}

__getattr__, __all__ = lazy_exports(__name__, _PUBLIC)
