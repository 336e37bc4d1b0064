"""Corpora, role prompts and safety benchmarks, with located errors for bad input."""

from sarft_ray.data.config import CorpusConfig, CorpusFile, PromptsConfig, RolesConfig
from sarft_ray.data.corpus import (
    CORPUS_SCHEMA,
    assign_split,
    corpus_roles,
    corpus_rows,
    iter_corpus_rows,
    iter_rolebench,
    load_corpus,
)
from sarft_ray.data.heldout import HeldOutQuestions, normalise_question
from sarft_ray.data.prompts import DEFAULT_UNSAFE_INSTRUCTION, RolePrompts, load_role_prompts, unsafe_variant
from sarft_ray.data.roles import match_role, role_key, role_slug
from sarft_ray.data.safety import SAFETY_PARTS, SAFETY_SCHEMA, beavertails_parts, load_advbench, load_beavertails, load_instructions

__all__ = [
    "CORPUS_SCHEMA",
    "DEFAULT_UNSAFE_INSTRUCTION",
    "SAFETY_PARTS",
    "SAFETY_SCHEMA",
    "CorpusConfig",
    "CorpusFile",
    "HeldOutQuestions",
    "PromptsConfig",
    "RolePrompts",
    "RolesConfig",
    "assign_split",
    "beavertails_parts",
    "corpus_roles",
    "corpus_rows",
    "iter_corpus_rows",
    "iter_rolebench",
    "load_advbench",
    "load_beavertails",
    "load_corpus",
    "load_instructions",
    "load_role_prompts",
    "match_role",
    "normalise_question",
    "role_key",
    "role_slug",
    "unsafe_variant",
]
