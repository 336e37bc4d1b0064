"""The items each benchmark asks a model, as Arrow tables (one row per request).

Columns: ``benchmark``, ``item_id``, ``role`` (null for a safety item asked
without a role prompt), ``category`` (BeaverTails), ``goal`` (the plain
request, what the judge sees), ``user`` (the message sent, a jailbreak's
disguise included), ``system`` (null for none) and ``references``
(RoleBench answers).

- ``rolebench_spe``: each role's held-out role-specific questions (RoleBench
  instruction generalization, 50 per role).
- ``rolebench_raw``: each role's general instructions from the test split of
  the experiment's role corpus (``roles.corpus``), so training never saw them.
- ``rolebench_val``: each role's questions from the corpus's validation split
  (for choosing settings such as lambda without touching test items).
- ``advbench`` / ``beavertails``: the safety benchmarks (BeaverTails: the part
  ``beavertails_split.use`` names); ``jailbreak_<name>``: AdvBench goals
  disguised by a jailbreak.
- ``benign``: benign instructions (``paths.benign``); their refusal rate is
  over-refusal, reported beside the safety figures, never averaged with them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from sarft_ray.data import (
    HeldOutQuestions,
    beavertails_parts,
    iter_corpus_rows,
    iter_rolebench,
    load_advbench,
    load_beavertails,
    load_corpus,
    load_instructions,
    load_role_prompts,
    role_key,
)
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.config import EvaluationConfig
from sarft_ray.evaluation.jailbreaks import Jailbreak, build_jailbreaks
from sarft_ray.paths import data_dir, reference_file

log = logging.getLogger(__name__)

ITEM_SCHEMA = pa.schema(
    [
        ("benchmark", pa.string()),
        ("item_id", pa.string()),
        ("role", pa.string()),
        ("category", pa.string()),
        ("goal", pa.string()),
        ("user", pa.string()),
        ("system", pa.string()),
        ("references", pa.list_(pa.string())),
    ]
)
SAFETY_PREFIXES = ("advbench", "beavertails", "jailbreak_", "benign")  # judged for refusals


def is_safety(benchmark: str) -> bool:
    return benchmark.startswith(SAFETY_PREFIXES)


DEFAULT_FILES = {
    "advbench": "advbench/harmful_behaviors.csv",
    "beavertails": "beavertails/BeaverTails-Evaluation.csv",
    "rolebench_spe": "rolebench/instruction-generalization/role_specific/test.jsonl",
}


def default_paths() -> dict[str, Path]:
    root = data_dir()
    return {name: root / relative for name, relative in DEFAULT_FILES.items()}


def benchmark_paths(cfg: EvaluationConfig) -> dict[str, Path]:
    """Each benchmark's file: the configured one, else the standard file under the data directory (fetched if missing)."""
    configured = {k: Path(v) for k, v in cfg.paths.model_dump().items() if v is not None}
    return {k: reference_file(rel) for k, rel in DEFAULT_FILES.items() if k not in configured} | configured


def heldout_questions(cfg: EvaluationConfig, roles: list[str], corpus_cfg) -> HeldOutQuestions:
    """Every question evaluation may ask these roles, whatever the item limits.

    The configured benchmarks' questions (SPE per role, AdvBench when it or a
    jailbreak is configured, BeaverTails, benign instructions) and every
    question of the corpus's test and validation splits (the RAW and
    validation items and the rest of those splits). Training and scoring drop
    these from the training split.
    """
    paths = benchmark_paths(cfg)
    held = HeldOutQuestions()
    try:
        if "rolebench_spe" in cfg.benchmarks:
            wanted = {role_key(r): r for r in roles}
            for row in iter_rolebench(paths["rolebench_spe"]):
                if role_key(row["role"]) in wanted:
                    held.add("rolebench_spe", [row["input"]], row["role"])
        if "advbench" in cfg.benchmarks or cfg.jailbreaks:
            held.add("advbench", load_advbench(paths["advbench"]).column("prompt").to_pylist())
        if "beavertails" in cfg.benchmarks:
            held.add("beavertails", load_beavertails(paths["beavertails"]).column("prompt").to_pylist())
        if "benign" in cfg.benchmarks:
            held.add("benign", load_instructions(paths["benign"]).column("prompt").to_pylist())
    except SarftError as exc:
        raise SarftError(f"{exc} (evaluation questions are read to keep them out of the training corpus)") from None
    for row in iter_corpus_rows(corpus_cfg, roles):
        if row["split"] != "train":
            held.add(f"corpus_{row['split']}_split", [row["input"]], row["role"])
    return held


def first_per_group(rows: list[dict], key: str, limit: int | None) -> list[dict]:
    """The first ``limit`` rows of each group, in input order."""
    if limit is None:
        return rows
    seen: dict[str, int] = {}
    kept = []
    for row in rows:
        count = seen.get(row[key], 0)
        if count < limit:
            kept.append(row)
        seen[row[key]] = count + 1
    return kept


def stratified_head(rows: list[dict], key: str, limit: int | None) -> list[dict]:
    """``limit`` rows spread as evenly as possible over the groups of ``key``, in input order.

    Rows are taken round-robin: every group's first row, then every group's
    second, and so on (groups in order of first appearance).
    """
    if limit is None or limit >= len(rows):
        return rows
    group_order: dict[str, int] = {}
    rank: list[tuple[int, int, int]] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        group_order.setdefault(row[key], len(group_order))
        rank.append((seen.get(row[key], 0), group_order[row[key]], index))
        seen[row[key]] = seen.get(row[key], 0) + 1
    chosen = sorted(index for _, _, index in sorted(rank)[:limit])
    return [rows[i] for i in chosen]


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ITEM_SCHEMA)


def _item(benchmark: str, item_id: str, goal: str, **extra) -> dict:
    return {
        "benchmark": benchmark,
        "item_id": item_id,
        "role": extra.get("role"),
        "category": extra.get("category"),
        "goal": goal,
        "user": extra.get("user", goal),
        "system": extra.get("system"),
        "references": extra.get("references", []),
    }


def rolebench_spe_items(path: Path, roles: list[str], limit: int | None) -> list[dict]:
    wanted = {role_key(r): r for r in roles}
    rows = []
    for row in iter_rolebench(path):
        role = wanted.get(role_key(row["role"]))
        if role is not None:
            rows.append(_item("rolebench_spe", row["sample_id"], row["input"], role=role, references=row["references"]))
    missing = sorted(set(roles) - {r["role"] for r in rows})
    if missing:
        raise SarftError(f"{path}: no role-specific questions for role(s) {missing}")
    return first_per_group(rows, "role", limit)


def rolebench_split_items(
    benchmark: str, corpus_cfg, roles: list[str], split: str, sources: list[str] | None, limit: int | None
) -> list[dict]:
    """A corpus split's rows as items: ``rolebench_raw`` (test split) or ``rolebench_val`` (validation split)."""
    table = load_corpus(corpus_cfg, roles)
    rows = [
        _item(benchmark, r["sample_id"], r["input"], role=r["role"], references=r["references"])
        for r in table.to_pylist()
        if r["split"] == split and (sources is None or r["source"] in sources)
    ]
    without = sorted(set(roles) - {r["role"] for r in rows})
    if without:
        log.warning("%s: no %s rows (sources %s) for %s; left empty for them", benchmark, split, sources or "all", without)
    return first_per_group(rows, "role", limit)


def beavertails_rows(path: Path, cfg: EvaluationConfig) -> list[dict]:
    """The BeaverTails rows the ``beavertails`` benchmark may ask: all, or the split's test or validation part."""
    table = load_beavertails(path)
    split = cfg.beavertails_split
    if split.use == "all":
        return table.to_pylist()
    parts = beavertails_parts(table, split.test_per_category, split.validation_per_category, split.seed)
    return [row for row, part in zip(table.to_pylist(), parts, strict=True) if part == split.use]


def safety_items(benchmark: str, path: Path, limit: int | None, cfg: EvaluationConfig | None = None) -> list[dict]:
    if benchmark == "advbench":
        rows = load_advbench(path).to_pylist()
        rows = rows if limit is None else rows[:limit]
    elif benchmark == "benign":
        rows = load_instructions(path).to_pylist()
        rows = rows if limit is None else rows[:limit]
    else:
        rows = beavertails_rows(path, cfg) if cfg is not None else load_beavertails(path).to_pylist()
        rows = stratified_head(rows, "category", limit)
    return [_item(benchmark, r["item_id"], r["prompt"], category=r["category"]) for r in rows]


def jailbreak_items(advbench_rows: list[dict], jailbreak: Jailbreak) -> list[dict]:
    return [
        row | {"benchmark": f"jailbreak_{jailbreak.name}", "user": jailbreak.wrap(row["goal"])}
        for row in advbench_rows
    ]


def _with_system(rows: list[dict], prompts: dict[str, str] | None, roles: list[str]) -> list[dict]:
    """Attach role system prompts: RoleBench rows get their role's; safety rows are asked once per role."""
    if prompts is None:
        return rows
    out = []
    for row in rows:
        if row["role"] is not None:
            out.append(row | {"system": prompts[row["role"]]})
        else:
            out.extend(row | {"role": role, "system": prompts[role]} for role in roles)
    return out


def build_items(
    cfg: EvaluationConfig, roles: list[str], corpus_cfg=None, prompts_cfg=None
) -> dict[str, pa.Table]:
    """One item table per benchmark, in a stable order (config order, jailbreaks last).

    ``corpus_cfg`` (``roles.corpus``) is needed for ``rolebench_raw``;
    ``prompts_cfg`` (``roles.prompts``) when ``generation.system_prompt`` is ``role``.
    """
    paths = benchmark_paths(cfg)
    prompts = None
    if cfg.generation.system_prompt == "role":
        if prompts_cfg is None:
            raise SarftError("evaluation.generation.system_prompt: 'role' needs roles.prompts")
        prompts = {role: p.role_prompt for role, p in load_role_prompts(prompts_cfg, roles).items()}
    tables: dict[str, list[dict]] = {}
    for benchmark in cfg.benchmarks:
        limit = cfg.limit_for(benchmark)
        if benchmark == "rolebench_spe":
            tables[benchmark] = rolebench_spe_items(Path(paths["rolebench_spe"]), roles, limit)
        elif benchmark in ("rolebench_raw", "rolebench_val"):
            if corpus_cfg is None:
                raise SarftError(f"evaluation.benchmarks: {benchmark} needs roles.corpus")
            split, sources = ("test", cfg.raw_sources) if benchmark == "rolebench_raw" else ("validation", None)
            tables[benchmark] = rolebench_split_items(benchmark, corpus_cfg, roles, split, sources, limit)
        else:
            tables[benchmark] = safety_items(benchmark, Path(paths[benchmark]), limit, cfg)
    if cfg.jailbreaks:
        goals = safety_items("advbench", Path(paths["advbench"]), cfg.limit_for("jailbreak"))
        for jailbreak in build_jailbreaks(cfg.jailbreaks, cfg.jailbreak_prompt_files):
            tables[f"jailbreak_{jailbreak.name}"] = jailbreak_items(goals, jailbreak)
    return {name: _table(_with_system(rows, prompts, roles)) for name, rows in tables.items()}


def jailbreaks_by_benchmark(cfg: EvaluationConfig) -> dict[str, Jailbreak]:
    """``benchmark name -> jailbreak``, whose ``readings`` say how its replies are judged."""
    return {f"jailbreak_{j.name}": j for j in build_jailbreaks(cfg.jailbreaks, cfg.jailbreak_prompt_files)}
