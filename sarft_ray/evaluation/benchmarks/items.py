"""The items an evaluation asks, as Arrow tables (one row per request), and what they hold out of training.

Columns: ``benchmark``, ``item_id``, ``role`` (null for a safety item asked
without a role prompt), ``category`` (BeaverTails), ``goal`` (the plain
request, what the judge sees), ``user`` (the message sent, a jailbreak's
disguise included), ``system`` (null for none) and ``references``
(RoleBench answers). ``jailbreak_<name>``: AdvBench goals disguised by a jailbreak.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from sarft_ray.data import HeldOutQuestions, iter_corpus_rows, load_role_prompts
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.benchmarks.registry import ItemRequest, get_benchmark, registered_benchmarks
from sarft_ray.evaluation.jailbreaks import Jailbreak, build_jailbreaks
from sarft_ray.paths import reference_file

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
JAILBREAK_GOALS = "advbench"  # the benchmark whose goals every jailbreak disguises


def benchmark_paths(cfg) -> dict[str, Path]:
    """Each benchmark's file: the configured one, else the standard file under the data directory (fetched if missing)."""
    configured = {name: Path(path) for name, path in cfg.paths if path is not None}
    defaults = {name: get_benchmark(name).default_file for name in registered_benchmarks()}
    return {name: reference_file(rel) for name, rel in defaults.items() if rel and name not in configured} | configured


def asked(cfg) -> list[str]:
    """The benchmarks an evaluation section asks, counting the one whose goals its jailbreaks disguise."""
    names = list(cfg.benchmarks)
    return names + [JAILBREAK_GOALS] if cfg.jailbreaks and JAILBREAK_GOALS not in names else names


def request(cfg, name: str, roles: list[str], corpus_cfg=None, limit: int | None = None, paths=None) -> ItemRequest:
    paths = benchmark_paths(cfg) if paths is None else paths
    return ItemRequest(cfg, list(roles), paths.get(name), limit, corpus_cfg)


def heldout_questions(cfg, roles: list[str], corpus_cfg) -> HeldOutQuestions:
    """Every question evaluation may ask these roles, whatever the item limits.

    The asked benchmarks' questions (each benchmark's ``heldout``: SPE per
    role, AdvBench when it or a jailbreak is asked, BeaverTails, benign
    instructions) and every question of the corpus's test and validation
    splits (the RAW and validation items and the rest of those splits).
    Training and scoring drop these from the training split.
    """
    paths = benchmark_paths(cfg)
    held = HeldOutQuestions()
    try:
        for name in registered_benchmarks():  # registration order: the order sources are counted in
            spec = get_benchmark(name)
            if name in asked(cfg) and spec.heldout is not None:
                spec.heldout(request(cfg, name, roles, corpus_cfg, paths=paths), held)
    except SarftError as exc:
        raise SarftError(f"{exc} (evaluation questions are read to keep them out of the training corpus)") from None
    for row in iter_corpus_rows(corpus_cfg, roles):
        if row["split"] != "train":
            held.add(f"corpus_{row['split']}_split", [row["input"]], row["role"])
    return held


def check_lines(cfg) -> list[str]:
    """``validate``'s lines about the asked benchmarks' files, read without a model."""
    paths = benchmark_paths(cfg)
    specs = [get_benchmark(name) for name in registered_benchmarks() if name in asked(cfg)]
    return [spec.check(request(cfg, spec.name, [], paths=paths)) for spec in specs if spec.check is not None]


def jailbreak_items(goals: list[dict], jailbreak: Jailbreak) -> list[dict]:
    return [row | {"benchmark": f"jailbreak_{jailbreak.name}", "user": jailbreak.wrap(row["goal"])} for row in goals]


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


def build_items(cfg, roles: list[str], corpus_cfg=None, prompts_cfg=None) -> dict[str, pa.Table]:
    """One item table per benchmark, in a stable order (config order, jailbreaks last).

    ``corpus_cfg`` (``roles.corpus``) is needed for ``rolebench_raw`` and
    ``rolebench_val``; ``prompts_cfg`` (``roles.prompts``) when
    ``generation.system_prompt`` is ``role``.
    """
    paths = benchmark_paths(cfg)
    prompts = None
    if cfg.generation.system_prompt == "role":
        if prompts_cfg is None:
            raise SarftError("evaluation.generation.system_prompt: 'role' needs roles.prompts")
        prompts = {role: p.role_prompt for role, p in load_role_prompts(prompts_cfg, roles).items()}
    tables: dict[str, list[dict]] = {}
    for name in cfg.benchmarks:
        tables[name] = get_benchmark(name).items(request(cfg, name, roles, corpus_cfg, cfg.limit_for(name), paths))
    if cfg.jailbreaks:
        goals_request = request(cfg, JAILBREAK_GOALS, roles, corpus_cfg, cfg.limit_for("jailbreak"), paths)
        goals = get_benchmark(JAILBREAK_GOALS).items(goals_request)
        for jailbreak in build_jailbreaks(cfg.jailbreaks, cfg.jailbreak_prompt_files):
            tables[f"jailbreak_{jailbreak.name}"] = jailbreak_items(goals, jailbreak)
    return {name: pa.Table.from_pylist(_with_system(rows, prompts, roles), schema=ITEM_SCHEMA) for name, rows in tables.items()}


def jailbreaks_by_benchmark(cfg) -> dict[str, Jailbreak]:
    """``benchmark name -> jailbreak``, whose ``readings`` say how its replies are judged."""
    return {f"jailbreak_{j.name}": j for j in build_jailbreaks(cfg.jailbreaks, cfg.jailbreak_prompt_files)}
