"""What the alignment stage reads: its source files, the held-out questions it must avoid, and
the rows it trains on (harmful requests with refusals, benign instructions and character
questions to distil). ``alignment_inputs`` is everything that determines the aligned model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sarft_ray.config_base import without_added_defaults
from sarft_ray.errors import SarftError
from sarft_ray.training.config import COMPUTE_FIELDS


def _sources(cfg) -> tuple[Path, Path]:
    from sarft_ray.evaluation.benchmarks import benchmark_paths
    from sarft_ray.paths import reference_file

    acfg = cfg.alignment
    harmful = acfg.harmful_source or benchmark_paths(cfg.evaluation)["beavertails"]
    benign = acfg.benign_source or reference_file("rolebench/role-generalization/general/test.jsonl")
    return Path(harmful), Path(benign)


def _role_questions_source(cfg) -> Path | None:
    """The file character questions come from (None when the stage asks none)."""
    from sarft_ray.paths import reference_file

    acfg = cfg.alignment
    if not acfg.role_questions:
        return None
    return Path(acfg.role_questions_source or reference_file("rolebench/instruction-generalization/role_specific/test.jsonl"))


def role_questions(cfg, excluded: set[str]) -> list[str]:
    """``alignment.role_questions`` questions put to characters this experiment neither trains nor evaluates."""
    from sarft_ray.alignment.data import benign_split
    from sarft_ray.data import iter_rolebench
    from sarft_ray.data.roles import role_key

    path = _role_questions_source(cfg)
    if path is None:
        return []
    experiment_roles = {role_key(name) for name in cfg.roles.names}
    questions = (row["input"] for row in iter_rolebench(path) if role_key(row["role"]) not in experiment_roles)
    split = benign_split(
        questions, excluded, cfg.alignment.role_questions, 0, cfg.alignment.seed,
        wanted="role_questions", source="alignment.role_questions_source",
    )
    return split.train


def excluded_questions(cfg) -> set[str]:
    """Normalised questions the benign pool must not hold: every benchmark's and every non-training corpus row's."""
    from sarft_ray.data.corpus import corpus_roles
    from sarft_ray.evaluation.benchmarks import heldout_questions

    every = cfg.evaluation.model_copy(update={"benchmarks": ["rolebench_spe", "advbench", "beavertails"]})
    held = heldout_questions(every, corpus_roles(cfg.roles.corpus), cfg.roles.corpus)
    return set(held.every_role).union(*held.per_role.values())


@dataclasses.dataclass(frozen=True)
class AlignmentRows:
    """What the alignment trains on, before distillation: harmful rows with refusals, the benign split (its
    ``train`` ends with ``role_questions``), and the character questions, which the stage counts separately."""

    harmful: list[dict]
    benign: object  # data.BenignSplit
    role_questions: list[str]


def build_rows(cfg) -> AlignmentRows:
    """The harmful (request, refusal) rows, the benign split and the character questions, from files only."""
    from sarft_ray.alignment.data import benign_split, harmful_rows
    from sarft_ray.data import beavertails_parts, iter_rolebench, load_beavertails

    acfg, split = cfg.alignment, cfg.evaluation.beavertails_split
    harmful_path, benign_path = _sources(cfg)
    table = load_beavertails(harmful_path)
    parts = beavertails_parts(table, split.test_per_category, split.validation_per_category, split.seed)
    prompts = [p for p, part in zip(table.column("prompt").to_pylist(), parts, strict=True) if part == "train"]
    if not prompts:
        raise SarftError(f"{harmful_path}: no BeaverTails prompts left to train on after the test and validation parts")
    excluded = excluded_questions(cfg)
    benign = benign_split(
        (row["input"] for row in iter_rolebench(benign_path)), excluded, acfg.benign_train, acfg.benign_eval, acfg.seed
    )
    asked = role_questions(cfg, excluded)
    benign = dataclasses.replace(benign, train=benign.train + asked)
    return AlignmentRows(harmful_rows(prompts, acfg.imperative_copies, acfg.seed), benign, asked)


def _not_hashed(acfg) -> dict:
    """Fields that do not change the aligned model: file paths (their contents are hashed), the
    check, speed-only settings, and ``role_questions`` when 0 (so a model aligned before character
    questions existed is found again)."""
    exclude = {"harmful_source": True, "benign_source": True, "role_questions_source": True, "check": True,
               "training": True}  # hashed on its own: TrainingConfig.hashed_settings
    if not acfg.role_questions:
        exclude["role_questions"] = True
    return exclude


def alignment_inputs(cfg) -> dict:
    from sarft_ray.hashing import file_digest
    from sarft_ray.models.identity import model_identity

    harmful, benign = _sources(cfg)
    return {
        "format_version": 1,
        "model": model_identity(cfg.model),
        "alignment": without_added_defaults(cfg.alignment.model_dump(mode="json", exclude=_not_hashed(cfg.alignment)))
        | {"training": cfg.alignment.training.hashed_settings(set(COMPUTE_FIELDS))},
        "beavertails_split": cfg.evaluation.beavertails_split.model_dump(mode="json", exclude={"use"}),
        "files": [file_digest(harmful), file_digest(benign)]
        + ([file_digest(questions)] if (questions := _role_questions_source(cfg)) else []),
        "excluded": sorted(excluded_questions(cfg)),
    }
