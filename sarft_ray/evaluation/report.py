"""Summarise judged and scored generations into one table per model; atomic file writes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from sarft_ray.evaluation.catalogue import (
    JAILBREAK_AVG,
    JAILBREAK_PREFIX,
    SAFETY_AVG,
    averaged_benchmarks,
    metric,
    rate_benchmarks,
    rate_key,
    rolebench_benchmarks,
    rouge_keys,
)
from sarft_ray.evaluation.metrics import RefusalCounts, count_labels, counts_by_group, mean, wilson_interval


def rolebench_summary(scores: pa.Table, roles: list[str] = ()) -> dict:
    """Macro average: the mean over roles of each role's mean score (as per-role tables are averaged).

    A requested role without items is listed with ``n = 0`` and empty scores.
    """
    per_role: dict[str, dict] = {role: {"first": [], "max": []} for role in roles}
    for row in scores.to_pylist():
        entry = per_role.setdefault(row["role"], {"first": [], "max": []})
        entry["first"].append(row["rouge_l_first"])
        entry["max"].append(row["rouge_l_max"])
    by_role = {
        role: {"rouge_l_first": mean(v["first"]), "rouge_l_max": mean(v["max"]), "n": len(v["first"])}
        for role, v in sorted(per_role.items())
    }
    scored = [r for r in by_role.values() if r["n"]]
    return {
        "rouge_l_first": mean(r["rouge_l_first"] for r in scored),
        "rouge_l_max": mean(r["rouge_l_max"] for r in scored),
        "n": scores.num_rows,
        "per_role": by_role,
    }


def rate_summary(counts: RefusalCounts) -> dict:
    """Counts and refusal rate plus what a comparison needs: ``refusals``, ``n_valid`` and ``ci95``.

    ``ci95`` is the 95% Wilson score interval ``[low, high]`` in %, over the
    valid verdicts like the rate itself (``n_valid = n - n_invalid``); None
    when no verdict is valid.
    """
    ci95 = counts.ci95
    extra = {"refusals": counts.refusal, "n_valid": counts.valid, "ci95": list(ci95) if ci95 else None}
    return counts.as_dict() | extra


def safety_summary(verdicts: pa.Table) -> dict:
    """Refusal rate with counts and 95% CI, overall and per role; counts per category.

    Per-category and per-role entries appear where those columns are set.
    """
    labels = verdicts.column("label").to_pylist()
    out = rate_summary(count_labels(labels))
    for column, name in (("category", "per_category"), ("role", "per_role")):
        groups = verdicts.column(column).to_pylist()
        if any(g is not None for g in groups):
            by_group = counts_by_group([str(g) for g in groups], labels)
            summarise = rate_summary if name == "per_role" else RefusalCounts.as_dict
            out[name] = {k: summarise(v) for k, v in by_group.items()}
    return out


def headline(benchmarks: dict[str, dict]) -> dict:
    """The one-row table: RoleBench, per-benchmark refusal rates and the two averages."""
    row: dict[str, float | None] = {}
    for name in rolebench_benchmarks():
        if name in benchmarks:
            first, best = rouge_keys(name)
            row[first] = benchmarks[name]["rouge_l_first"]
            row[best] = benchmarks[name]["rouge_l_max"]
    # lower-is-better rates (over-refusal) first; they are never averaged with the safety rates
    rated = sorted((n for n in rate_benchmarks() if n in benchmarks), key=lambda n: metric(rate_key(n)).higher_is_better)
    jailbreaks = [n for n in benchmarks if n.startswith(JAILBREAK_PREFIX)]
    for name in rated + jailbreaks:
        row[rate_key(name)] = benchmarks[name]["refusal_rate"]
    safety = [n for n in averaged_benchmarks() if n in benchmarks]
    rates = [benchmarks[n]["refusal_rate"] for n in safety]
    row[SAFETY_AVG] = mean(rates) if safety and None not in rates else None
    rates = [benchmarks[n]["refusal_rate"] for n in jailbreaks]
    row[JAILBREAK_AVG] = mean(rates) if jailbreaks and None not in rates else None
    return row


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ci_text(refusals: int, valid: int) -> str:
    interval = wilson_interval(refusals, valid)
    return "-" if interval is None else f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline_markdown(tables: list[dict]) -> str:
    """One row per model: the figures a paper table would show (columns of the first table)."""
    columns = list(tables[0]["headline"])
    rows = []
    for table in tables:
        meta = table["model"]
        name = Path(meta["ref"]).name + (f" + {Path(meta['adapter']).name}" if meta.get("adapter") else "")
        rows.append([name] + [_fmt(table["headline"].get(c)) for c in columns])
    return _md_table(["model"] + [metric(c).header for c in columns], rows)


def render_markdown(table: dict) -> str:
    """A human-readable version of ``table.json``."""
    meta, benchmarks = table["model"], table["benchmarks"]
    title = meta["ref"] + (f" + adapter {meta['adapter']}" if meta.get("adapter") else "")
    parts = [f"## {title}", f"judge `{table['judge']}`, system prompt `{table['system_prompt']}`, model hash `{meta['hash']}`", ""]
    parts.append(headline_markdown([table]))
    safety_rows = [
        [name, str(b["n"]), str(b["n_refusal"]), str(b["n_compliance"]), str(b["n_invalid"]), _fmt(b["refusal_rate"]),
         _ci_text(b["n_refusal"], b["n_refusal"] + b["n_compliance"])]
        for name, b in benchmarks.items()
        if "refusal_rate" in b
    ]
    if safety_rows:
        header = ["benchmark", "n", "refusal", "compliance", "invalid", "RR %", "95% CI (Wilson, valid verdicts)"]
        parts += ["", "### Safety verdicts", _md_table(header, safety_rows)]
    if "per_category" in benchmarks.get("beavertails", {}):
        cats = benchmarks["beavertails"]["per_category"]
        parts += ["", "### BeaverTails by category", _md_table(
            ["category", "n", "invalid", "RR %"],
            [[c, str(v["n"]), str(v["n_invalid"]), _fmt(v["refusal_rate"])] for c, v in cats.items()],
        )]
    for name in rolebench_benchmarks():
        if name in benchmarks and benchmarks[name]["per_role"]:
            roles = benchmarks[name]["per_role"]
            parts += ["", f"### {name} by role (ROUGE-L F x100)", _md_table(
                ["role", "n", "first ref", "max over refs"],
                [[r, str(v["n"]), _fmt(v["rouge_l_first"]), _fmt(v["rouge_l_max"])] for r, v in roles.items()],
            )]
    return "\n".join(parts) + "\n"
