"""``evaluate_model``: generate, judge, score and tabulate one model (optionally with an adapter).

Artefacts, every file written atomically::

    <output_root>/<experiment>/eval/
      verdict_cache.sqlite                       shared by all models
      <model-hash>/table.json, table.md          the summary of the latest run
      <model-hash>/<benchmark>/generations.parquet
      <model-hash>/<benchmark>/verdicts.parquet  (safety benchmarks)
      <model-hash>/<benchmark>/scores.parquet    (RoleBench)

The model hash covers the model reference, the adapter's content and the
generation settings. Generations are kept per (item, role, message, system
prompt) and reused by later runs, so raising a limit only generates the new
items; ``force`` regenerates everything.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sarft_ray.atomic import write_json, write_parquet, write_text
from sarft_ray.evaluation import report
from sarft_ray.evaluation.benchmarks import ITEM_SCHEMA, build_items, is_safety, jailbreaks_by_benchmark
from sarft_ray.evaluation.generation import OUTPUT_FIELDS, DecodeTimer, settings_hash
from sarft_ray.evaluation.jailbreaks import reply_readings
from sarft_ray.evaluation.judges import JudgeItem, VerdictCache, build_judge, combine_readings, judge_cached, preflight
from sarft_ray.evaluation.metrics import rouge_l_first, rouge_l_max
from sarft_ray.hashing import json_digest
from sarft_ray.models.identity import adapter_fingerprint, local_ref, model_identity
from sarft_ray.preflight import check_adapter_dir
from sarft_ray.progress import bar as progress_bar
from sarft_ray.secrets import register_config_secrets

log = logging.getLogger(__name__)

KEY = ("item_id", "role", "user", "system")
JUDGE_PART = 64  # replies judged per call: enough for a remote judge's concurrency, small enough for a moving bar
GENERATION_SCHEMA = pa.schema(list(ITEM_SCHEMA) + [pa.field(n, t) for n, t in OUTPUT_FIELDS])


@dataclass(frozen=True)
class EvalResult:
    directory: Path  # <output_root>/<experiment>/eval/<model-hash>
    table: dict  # the content of table.json
    markdown: str  # the content of table.md


def _key(row: dict) -> tuple:
    return tuple(row[k] for k in KEY)


def _load_previous(path: Path) -> dict[tuple, dict]:
    if not path.exists():
        return {}
    return {_key(row): row for row in pq.read_table(path).to_pylist()}


def generate_all(items: dict[str, pa.Table], directory: Path, model_cfg, adapter, ev_cfg, ray_cfg, force: bool):
    """Generations for every item, reusing stored ones.

    New answers are stored every ``evaluation.save_every`` answers, so a run
    that is stopped keeps what it generated and the next run only does the rest.
    """
    previous = {name: {} if force else _load_previous(directory / name / "generations.parquet") for name in items}
    todo = [
        row for name, table in items.items() for row in table.to_pylist() if _key(row) not in previous[name]
    ]
    log.info("generating %d answers (%d reused)", len(todo), sum(t.num_rows for t in items.values()) - len(todo))
    started = time.perf_counter()
    bar = progress_bar(len(todo), "generating", "answer", enabled=bool(todo))
    timer, new_tokens = DecodeTimer(), 0  # the timer hears only of in-process batches
    for fresh in _generate_chunks(todo, ev_cfg.save_every, model_cfg, adapter, ev_cfg, ray_cfg, bar.update, timer):
        touched = set()
        new_tokens += sum(fresh.column("n_new_tokens").to_pylist())
        for row in fresh.to_pylist():
            previous[row["benchmark"]][_key(row)] = row
            touched.add(row["benchmark"])
        for name in sorted(touched):
            stored = list(previous[name].values())
            write_parquet(
                directory / name / "generations.parquet", pa.Table.from_pylist(stored, schema=GENERATION_SCHEMA)
            )
    bar.close()
    seconds = time.perf_counter() - started
    out = {}
    for name, table in items.items():
        rows = [previous[name][_key(row)] for row in table.to_pylist()]
        out[name] = pa.Table.from_pylist(rows, schema=GENERATION_SCHEMA)
    # new tokens per second over the whole generation phase (model loading and Ray included); in process also
    # over the time inside model.generate alone
    stats = {"generated": len(todo), "seconds": round(seconds, 2), "new_tokens": new_tokens,
             "new_tokens_per_s": round(new_tokens / seconds, 1) if todo and seconds else None}
    return out, stats | (timer.summary() if timer.batches else {})


def _generate_chunks(
    todo: list[dict], size: int, model_cfg, adapter, ev_cfg, ray_cfg, on_rows=lambda n: None, timer=None
):
    """Answers for ``todo``, ``size`` rows at a time (one Ray Data run, or one in-process model, for all chunks' rows).

    ``on_rows(n)`` hears of every ``n`` answers done (each batch under Ray, each chunk in this process).
    """
    if not todo:
        return
    chunks = [pa.Table.from_pylist(todo[i : i + size], schema=ITEM_SCHEMA) for i in range(0, len(todo), size)]
    if ev_cfg.backend == "ray":
        from sarft_ray.evaluation.ray_generation import generate_with_ray
        from sarft_ray.preflight import check_model_loads
        from sarft_ray.ray_utils import init_ray

        check_model_loads(model_cfg)  # a model that does not load fails here, not in every actor
        init_ray(ray_cfg)
        for chunk in chunks:
            yield generate_with_ray(chunk, model_cfg, adapter, ev_cfg, on_rows=on_rows)
        return
    from sarft_ray.evaluation.generation import generate_table, load_generator
    from sarft_ray.devices import pick_device

    if ev_cfg.torch_threads is not None:
        import torch

        torch.set_num_threads(ev_cfg.torch_threads)
    model, tokenizer = load_generator(model_cfg, adapter, pick_device(ev_cfg.device, 1.0))
    for chunk in chunks:
        answered = generate_table(model, tokenizer, chunk, ev_cfg.generation, timer=timer)
        on_rows(answered.num_rows)
        yield answered


def judge_benchmark(name: str, generations: pa.Table, judge, cache, jailbreak=None) -> tuple[pa.Table, int]:
    """Verdicts for one safety benchmark, one per reply.

    Each reply is judged in every reading its jailbreak gives (as written and,
    when it is in the jailbreak's cipher, decoded; a plain benchmark has one
    reading) and the readings' verdicts are combined by
    :func:`~sarft_ray.evaluation.judges.combine_readings`: a refusal in any
    reading is a refusal. Verdicts are cached per reading. ``judged_response``
    is the deciding reading, ``readings`` and ``reading_labels`` list them all.
    Returns the table and how many reading verdicts came from the cache.
    """
    rows = generations.to_pylist()
    readings = [reply_readings(jailbreak, r["response"]) for r in rows]
    items = [JudgeItem(r["goal"], text) for r, texts in zip(rows, readings) for text in texts]
    flat, hits = [], 0
    with progress_bar(len(items), f"judging {name}", "reply") as bar:  # in parts, so the bar moves
        for start in range(0, len(items), JUDGE_PART):
            part, part_hits = judge_cached(judge, items[start : start + JUDGE_PART], cache)
            flat += part
            hits += part_hits
            bar.update(len(part))
    per_row, start = [], 0
    for texts in readings:
        per_row.append(flat[start : start + len(texts)])
        start += len(texts)
    decided = [combine_readings(verdicts) for verdicts in per_row]
    table = pa.table(
        {
            "benchmark": [name] * len(rows),
            "item_id": [r["item_id"] for r in rows],
            "role": pa.array([r["role"] for r in rows], type=pa.string()),
            "category": pa.array([r["category"] for r in rows], type=pa.string()),
            "goal": [r["goal"] for r in rows],
            "judged_response": [texts[index] for texts, (index, _) in zip(readings, decided)],
            "judge": [judge.judge_id] * len(rows),
            "label": [verdict.label for _, verdict in decided],
            "raw": [verdict.raw for _, verdict in decided],
            "readings": pa.array(readings, type=pa.list_(pa.string())),
            "reading_labels": pa.array([[v.label for v in vs] for vs in per_row], type=pa.list_(pa.string())),
        }
    )
    return table, hits


def score_rolebench(name: str, generations: pa.Table) -> pa.Table:
    rows = generations.to_pylist()
    return pa.table(
        {
            "benchmark": [name] * len(rows),
            "item_id": [r["item_id"] for r in rows],
            "role": [r["role"] for r in rows],
            "response": [r["response"] for r in rows],
            "rouge_l_first": [rouge_l_first(r["response"], r["references"]) for r in rows],
            "rouge_l_max": [rouge_l_max(r["response"], r["references"]) for r in rows],
        }
    )


def evaluate_model(
    cfg,
    model: str | None = None,
    adapter: str | Path | None = None,
    roles: list[str] | None = None,
    force: bool = False,
) -> EvalResult:
    """Evaluate ``model`` (default ``cfg.model.ref``), plus a PEFT ``adapter`` if given.

    ``cfg`` is the experiment config; ``roles`` (default ``cfg.roles.names``)
    picks the roles whose RoleBench questions are asked (and whose prompts are
    used when ``evaluation.generation.system_prompt`` is ``role``).
    """
    register_config_secrets(cfg)  # before anything is logged or written
    if model is None:  # the config's starting model: the aligned one when the config aligns
        from sarft_ray.alignment.stage import starting_config

        cfg = starting_config(cfg)
    ev = cfg.evaluation
    model_cfg = local_ref(cfg.model, model)
    adapter_path = None
    if adapter is not None:  # checked before its contents are hashed: a wrong directory fails at once
        adapter_path = check_adapter_dir(adapter)
    roles = list(roles or cfg.roles.names)
    model_hash = _model_hash(model_cfg, adapter_path, ev)
    directory = Path(cfg.experiment_dir) / "eval" / model_hash

    items = build_items(ev, roles, cfg.roles.corpus, cfg.roles.prompts)
    judge = build_judge(ev.judge) if any(is_safety(n) for n in items) else None
    if judge is not None:
        preflight(judge)  # a refused key or an unreachable judge fails now, not after the generation
    generations, gen_stats = generate_all(items, directory, model_cfg, adapter_path, ev, cfg.ray, force)

    cache = VerdictCache(Path(cfg.experiment_dir) / "eval" / "verdict_cache.sqlite") if ev.cache_verdicts else None
    jailbreaks = jailbreaks_by_benchmark(ev)
    benchmarks: dict[str, dict] = {}
    cache_hits = 0
    for name, table in generations.items():
        if is_safety(name):
            verdicts, hits = judge_benchmark(name, table, judge, cache, jailbreaks.get(name))
            cache_hits += hits
            write_parquet(directory / name / "verdicts.parquet", verdicts)
            benchmarks[name] = report.safety_summary(verdicts)
        else:
            scores = score_rolebench(name, table)
            write_parquet(directory / name / "scores.parquet", scores)
            benchmarks[name] = report.rolebench_summary(scores, roles)

    table = {
        "model": {
            "ref": model_cfg.ref,
            "adapter": str(adapter_path) if adapter_path else None,
            "adapter_fingerprint": adapter_fingerprint(adapter_path),
            "hash": model_hash,
        },
        "experiment": cfg.experiment,
        "roles": roles,
        "judge": judge.judge_id if judge else None,
        "system_prompt": ev.generation.system_prompt,
        "generation": ev.generation.model_dump(mode="json"),
        "generation_hash": settings_hash(ev.generation),
        "limits": {name: ev.limit_for(name) for name in generations},
        "headline": report.headline(benchmarks),
        "benchmarks": benchmarks,
        "run": gen_stats | {"judge_cache_hits": cache_hits},
    }
    markdown = report.render_markdown(table)
    write_json(directory / "table.json", table)
    write_text(directory / "table.md", markdown)
    return EvalResult(directory, table, markdown)


def _model_hash(model_cfg, adapter: Path | None, ev) -> str:
    """The evaluation directory's name: the model as configured, the adapter's content, the decoding settings."""
    parts = [model_identity(model_cfg, weights=False), adapter_fingerprint(adapter), settings_hash(ev.generation)]
    return json_digest(parts, 12)
