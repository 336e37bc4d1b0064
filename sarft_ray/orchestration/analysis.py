"""Picking from results: the Pareto front of (role quality, safety) and the best trial per role.

Pure functions over plain rows (dicts of evaluation headline figures plus the
trial's settings); no Ray, no MLflow, no plotting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sarft_ray.evaluation.catalogue import QUALITY, SAFETY
from sarft_ray.orchestration.config import Objective

QUALITY_METRIC, SAFETY_METRIC = QUALITY, SAFETY  # the axes of the Pareto front and the plots


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a`` is at least as good as ``b`` on both axes and better on one (both maximised)."""
    return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the points no other point dominates, ordered by the first coordinate.

    Points with a missing coordinate take no part; equal points are all kept.
    """
    valid = [i for i, p in enumerate(points) if p[0] is not None and p[1] is not None]
    front = [i for i in valid if not any(dominates(points[j], points[i]) for j in valid if j != i)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def best_per_role(rows: Sequence[dict[str, Any]], objective: Objective) -> dict[str, dict[str, Any]]:
    """For each role: the best row by ``objective.metric`` among rows meeting every constraint.

    Returns ``{role: {"best": row | None, "trials": n, "eligible": m, "reason": str | None}}``;
    ties keep the first row (trial order), so the choice is deterministic.
    """
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = out.setdefault(row["role"], {"best": None, "trials": 0, "eligible": 0, "reason": None})
        entry["trials"] += 1
        value = row.get(objective.metric)
        if value is None or not all(c.holds(row.get(c.metric)) for c in objective.constraints):
            continue
        entry["eligible"] += 1
        if entry["best"] is None or _better(value, entry["best"][objective.metric], objective.mode):
            entry["best"] = row
    for entry in out.values():
        if entry["best"] is None:
            shown = ", ".join(
                f"{c.metric} {'>= ' + str(c.min) if c.min is not None else ''}"
                f"{' and ' if c.min is not None and c.max is not None else ''}"
                f"{'<= ' + str(c.max) if c.max is not None else ''}"
                for c in objective.constraints
            )
            entry["reason"] = (
                f"no trial has {objective.metric}" + (f" while meeting {shown}" if shown else "")
            )
    return out


def series(rows: Sequence[dict[str, Any]], x: str, group_by: Sequence[str]) -> dict[tuple, list[dict[str, Any]]]:
    """Rows grouped by ``group_by`` values, each group sorted by ``x`` (for line plots)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get(x) is None:
            continue
        groups.setdefault(tuple(row.get(k) for k in group_by), []).append(row)
    return {k: sorted(v, key=lambda r: r[x]) for k, v in sorted(groups.items(), key=lambda kv: [str(p) for p in kv[0]])}
