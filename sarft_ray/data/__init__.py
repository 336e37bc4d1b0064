"""Corpora, role prompts and safety benchmarks, with located errors for bad input.

Modules: ``config`` (the ``roles`` section), ``corpus`` (the corpus rows: splits,
held-out questions, seeded samples), ``formats`` (the corpus file formats:
rolebench, table, alpaca, sharegpt), ``prompts`` (role and unsafe prompts),
``safety`` (AdvBench, BeaverTails, benign instructions), ``heldout``
(evaluation questions kept out of training), ``roles`` (names and slugs),
``readers`` (file:line errors); the reference data: ``sources.lock.json``,
``manifest``, ``hub``, ``checks``, ``pull``.
"""

from __future__ import annotations

from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "config": "CorpusConfig CorpusFile PromptsConfig RolesConfig",
    "corpus": "CORPUS_SCHEMA assign_split corpus_roles corpus_rows iter_corpus_rows load_corpus",
    "formats": "CorpusFormat iter_rolebench register_format registered_formats",
    "heldout": "HeldOutQuestions normalise_question",
    "prompts": "DEFAULT_UNSAFE_INSTRUCTION RolePrompts load_role_prompts unsafe_variant",
    "roles": "match_role role_key role_slug",
    "safety": "SAFETY_PARTS SAFETY_SCHEMA beavertails_parts load_advbench load_beavertails load_instructions",
}

__getattr__, __all__ = lazy_exports(__name__, _PUBLIC)
