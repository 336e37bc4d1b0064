"""What a sweep writes under ``<sweep>/report``: the trials table, the best trial per role, plots, index.html."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sarft_ray.orchestration import analysis, plots, report, stages
from sarft_ray.atomic import write_json, write_text
from sarft_ray.evaluation.metrics import mean
from sarft_ray.orchestration.sweep_space import headline_keys, sweep_section
from sarft_ray.orchestration.sweep_trial import SETTINGS


def _setting_text(key: str, value: Any) -> str:
    return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"


def objective_text(objective) -> str:
    """``max safety_avg; rolebench_spe_rouge_l_first >= 10``."""
    return "; ".join([f"{objective.mode} {objective.metric}", *(c.text() for c in objective.constraints)])


def best_rows(best: dict, varied: list[str], metric: str) -> list[dict[str, Any]]:
    """One row per role: how many trials were eligible and the chosen one's settings and figure."""
    rows = []
    for role, entry in sorted(best.items()):
        chosen = entry["best"] or {}
        row = {"role": role, "trials": entry["trials"], "eligible": entry["eligible"]}
        row["best trial"] = chosen.get("trial_id")
        row |= {k: chosen.get(k) for k in varied if k != "role"}
        rows.append(row | {metric: chosen.get(metric), "note": entry["reason"] or ""})
    return rows


def write_sweep_outputs(cfg, name, rows, best, base_table, varied, report_dir: Path) -> Path:
    """trials.json/.md, best.json, plots and index.html under ``report_dir``; returns trials.json's path."""
    objective = sweep_section(cfg).objective
    report_dir.mkdir(parents=True, exist_ok=True)
    fixed = [k for k in SETTINGS if k not in varied]
    columns = ["trial_id", *varied, *fixed, *headline_keys(cfg), "train_last_loss", "status"]
    table_path = report_dir / "trials.json"
    write_json(table_path, {"sweep": name, "columns": columns, "rows": rows})
    write_text(report_dir / "trials.md", report.markdown_table(columns, rows))
    chosen = best_rows(best, varied, objective.metric)
    write_json(report_dir / "best.json", {"objective": objective.model_dump(mode="json"), "best": chosen})

    settings = [k for k in varied if k != "role"]
    best_columns = ["role", "trials", "eligible", "best trial", *settings, objective.metric, "note"]
    blocks: list[report.Block] = [
        report.Table("Best trial per role", best_columns, chosen, note=f"objective: {objective_text(objective)}")
    ]
    ok = [r for r in rows if r["status"] == "ok"]
    quality = analysis.quality_metric(ok)  # a sweep judged on validation items has no SPE figure
    if len({r["lambda_kl"] for r in ok}) > 1:
        group = ["role"] + [k for k in varied if k not in ("role", "lambda_kl")]
        chart = plots.lambda_sensitivity(ok, report_dir / "lambda_sensitivity.png", group, quality=quality)
        blocks.append(report.Figure("Lambda sensitivity", chart))
    points = method_points(ok, varied, base_table, quality)
    if points:
        chart = plots.quality_vs_safety(
            points, report_dir / "quality_vs_safety.png", quality=quality, title=f"{name}: mean over roles"
        )
        blocks.append(report.Figure("Role quality vs safety (mean over roles)", chart))
    blocks.append(report.Table("Trials", columns, rows, note="ROUGE-L F x100; refusal rates in %"))
    written = time.strftime("%Y-%m-%d %H:%M:%S")
    subtitle = f"experiment {cfg.experiment}; model {cfg.model.ref}; written {written}"
    report.write_report(report_dir / "index.html", f"SaRFT sweep: {name}", blocks, subtitle)
    return table_path


def method_points(
    rows: list[dict], varied: list[str], base_table: dict | None, quality: str = analysis.QUALITY_METRIC
) -> list[dict[str, Any]]:
    """One point per setting (all varied keys but role): the mean over the roles it ran on; plus the base model,
    over the same roles (its evaluation covers every role of the config; the trials may cover fewer)."""
    keys = [k for k in varied if k != "role"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    points = []
    for setting, members in groups.items():
        label = ", ".join(_setting_text(k, v) for k, v in zip(keys, setting, strict=True) if k != "selection")
        points.append({"method": str(members[0]["selection"]), "label": label, **_mean(members, quality)})
    if base_table is not None:
        roles = sorted({r["role"] for r in rows})
        points.append({"method": "base", "label": "base",
                       **_mean([stages.role_headline(base_table, role) for role in roles], quality)})
    return points


def _mean(rows: list[dict], quality: str) -> dict[str, float | None]:
    return {m: mean(r[m] for r in rows if r.get(m) is not None) for m in (quality, analysis.SAFETY_METRIC)}
