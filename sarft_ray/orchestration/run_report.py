"""What ``run`` writes under ``<experiment>/report``: the comparison table (JSON, markdown), plots, index.html."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from sarft_ray.orchestration import analysis, comparison, plots, report
from sarft_ray.orchestration.arms import Arm
from sarft_ray.orchestration.comparison import BASE, MEAN
from sarft_ray.atomic import write_atomic, write_json, write_text


def scatter_points(rows: list[dict[str, Any]], arms: list[Arm]) -> list[dict[str, Any]]:
    """One point per role and model, coloured by arm; only the means are labelled (role names would pile up).

    With several roles, only the means take part in the Pareto front: one role's point does not dominate
    another role's."""
    selection = {a.name: a.training.selection for a in arms}
    several_roles = len({r["role"] for r in rows if r["role"] != MEAN}) > 1
    points = []
    for r in rows:
        if r["kind"] != "delta" and (r["status"] == "ok" or r["role"] == MEAN):
            method = r["arm"] or BASE
            label = f"{method} (mean)" if r["role"] == MEAN else None
            front = r["role"] == MEAN or not several_roles
            points.append({**r, "method": method, "selection": selection.get(method, BASE), "label": label,
                           "front": front})
    return points


def write_outputs(cfg, arms: list[Arm], reference, rows, report_dir: Path, chart_path: Path, show_status: bool) -> Path:
    """table.json/.md, the plots and index.html under ``report_dir``; returns the JSON table's path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    note = comparison.NOTE.format(compare_to=reference or "-")
    method = arms[0].name if not arms[0].listed else "arms"
    table_path = report_dir / "table.json"
    write_json(table_path, {
        "experiment": cfg.experiment, "method": method, "compare_to": reference,
        "arms": [{"name": a.name, "overrides": a.overrides} for a in arms],
        "columns": list(comparison.COLUMNS), "rate_details": [f"<rate>_{d}" for d in comparison.RATE_DETAILS],
        "note": note, "rows": rows,
    })
    headers, text = comparison.text_table(rows, status=show_status)
    write_text(report_dir / "table.md", report.markdown_table(headers, text) + f"\n{note}\n")

    harmful_png = report_dir / "harmful_fraction.png"
    if Path(chart_path).is_file():
        write_atomic(harmful_png, lambda tmp: shutil.copyfile(chart_path, tmp))
    names = ", ".join(a.name for a in arms)
    points = scatter_points(rows, arms)
    scatter = plots.quality_vs_safety(  # SPE ROUGE-L, or RAW's when the run asks no SPE questions
        points, report_dir / "quality_vs_safety.png", quality=analysis.quality_metric(points),
        title=f"{cfg.experiment}: base vs {names}",
    )
    lines = [a.describe() for a in arms]
    lines.append(f"deltas against: {reference}" if reference else "no deltas (no arm to compare with)")
    blocks = [
        report.Table("Per-role results", headers, text, note=note, text_columns=("role", "model", "status")),
        report.Text("Arms", lines),
        report.Figure("Harmful fraction per role (RDS)", harmful_png),
        report.Figure("Role quality vs safety", scatter),
    ]
    subtitle = (
        f"model {cfg.model.ref}; {cfg.training.mode} fine-tuning; arms {names}; "
        f"written {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    report.write_report(report_dir / "index.html", f"SaRFT run: {cfg.experiment}", blocks, subtitle)
    return table_path
