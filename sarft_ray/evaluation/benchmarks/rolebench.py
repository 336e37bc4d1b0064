"""The RoleBench benchmarks: role quality, scored by ROUGE-L against RoleBench's answers.

- ``rolebench_spe``: each role's held-out role-specific questions (RoleBench
  instruction generalization, 50 per role).
- ``rolebench_raw``: each role's general instructions from the test split of
  the experiment's role corpus (``roles.corpus``), so training never saw them.
- ``rolebench_val``: each role's questions from the corpus's validation split
  (for choosing settings such as lambda without touching test items);
  ``rolebench_val_spe`` and ``rolebench_val_raw`` are its role-specific
  questions (``evaluation.spe_sources``) and its general instructions
  (``evaluation.raw_sources``) alone. A role-quality constraint on character
  questions needs the first: the aligned model refuses them, so a mean over
  both kinds can hide what keeping it costs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sarft_ray.data import iter_rolebench, load_corpus, role_key
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.benchmarks.registry import ItemRequest, item
from sarft_ray.evaluation.benchmarks.select import first_per_group

log = logging.getLogger(__name__)

SPE_FILE = "rolebench/instruction-generalization/role_specific/test.jsonl"


def spe_items(request: ItemRequest) -> list[dict]:
    wanted = {role_key(r): r for r in request.roles}
    rows = []
    for row in iter_rolebench(request.path):
        role = wanted.get(role_key(row["role"]))
        if role is not None:
            rows.append(item("rolebench_spe", row["sample_id"], row["input"], role=role, references=row["references"]))
    missing = sorted(set(request.roles) - {r["role"] for r in rows})
    if missing:
        raise SarftError(f"{request.path}: no role-specific questions for role(s) {missing}")
    return first_per_group(rows, "role", request.limit)


def spe_heldout(request: ItemRequest, held) -> None:
    """Each role's SPE questions, held out of that role's corpus (whatever the limit)."""
    wanted = {role_key(r) for r in request.roles}
    for row in iter_rolebench(request.path):
        if role_key(row["role"]) in wanted:
            held.add("rolebench_spe", [row["input"]], row["role"])


def spe_check(request: ItemRequest) -> str:
    if not Path(request.path).exists():
        raise SarftError(f"{request.path}: file does not exist (evaluation.paths.rolebench_spe)")
    return f"rolebench_spe: {request.path}"


def split_items(benchmark: str, request: ItemRequest, split: str, sources: list[str] | None) -> list[dict]:
    """A corpus split's rows as items: ``rolebench_raw`` (test split) or ``rolebench_val`` (validation split)."""
    if request.corpus_cfg is None:
        raise SarftError(f"evaluation.benchmarks: {benchmark} needs roles.corpus")
    table = load_corpus(request.corpus_cfg, request.roles)
    rows = [
        item(benchmark, r["sample_id"], r["input"], role=r["role"], references=r["references"])
        for r in table.to_pylist()
        if r["split"] == split and (sources is None or r["source"] in sources)
    ]
    without = sorted(set(request.roles) - {r["role"] for r in rows})
    if without:
        log.warning("%s: no %s rows (sources %s) for %s; left empty for them", benchmark, split, sources or "all", without)
    return first_per_group(rows, "role", request.limit)


def raw_items(request: ItemRequest) -> list[dict]:
    return split_items("rolebench_raw", request, "test", request.cfg.raw_sources)


def val_items(request: ItemRequest) -> list[dict]:
    return split_items("rolebench_val", request, "validation", None)


def val_spe_items(request: ItemRequest) -> list[dict]:
    return split_items("rolebench_val_spe", request, "validation", request.cfg.spe_sources)


def val_raw_items(request: ItemRequest) -> list[dict]:
    return split_items("rolebench_val_raw", request, "validation", request.cfg.raw_sources)
