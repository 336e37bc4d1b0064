"""Picking from results: the Pareto front of (role quality, safety) and the best trial per role.

Pure functions over plain rows (dicts of evaluation headline figures plus the
trial's settings); no Ray, no MLflow, no plotting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sarft_ray.evaluation.catalogue import QUALITY, SAFETY, rouge_keys
from sarft_ray.orchestration.config import Objective

QUALITY_METRIC, SAFETY_METRIC = QUALITY, SAFETY  # the axes of the Pareto front and the plots
# Role quality as the rows may carry it: SPE, else the role-specific validation questions, else all validation
# questions (a sweep judged on validation items only), else the general instructions.
QUALITY_CHOICES = tuple(rouge_keys(b)[0] for b in ("rolebench_spe", "rolebench_val_spe", "rolebench_val", "rolebench_raw"))


def quality_metric(rows: Sequence[dict[str, Any]]) -> str:
    """The role-quality axis for ``rows``: the first of ``QUALITY_CHOICES`` some row has a figure for."""
    return next((key for key in QUALITY_CHOICES if any(r.get(key) is not None for r in rows)), QUALITY_METRIC)


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


def setting_order(value: Any) -> tuple:
    """Sort key of one setting's values: numbers by value (1 before 3 before 10), then text, then unset."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value)) if value is not None else (2, 0.0, "")


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def best_per_role(rows: Sequence[dict[str, Any]], objective: Objective) -> dict[str, dict[str, Any]]:
    """For each role: the best row by ``objective.metric`` among rows meeting every constraint.

    Returns ``{role: {"best": row | None, "trials": n, "eligible": m, "reason": str | None}}``;
    ties keep the first row in ``rows``' order (``run_sweep`` sorts them by ``setting_order``: the smallest
    lambda wins a tie), so the choice is deterministic. A relative constraint measures
    each row against the role's own reference trial (``Constraint.relative_to``); without one, no row is eligible.
    """
    by_role: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_role.setdefault(row["role"], []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for role, role_rows in by_role.items():
        references = [c.reference_row(role_rows) for c in objective.constraints]
        entry: dict[str, Any] = {"best": None, "trials": len(role_rows), "eligible": 0, "reason": None}
        for row in role_rows:
            value = row.get(objective.metric)
            if value is None or not all(
                c.holds(row.get(c.metric), ref.get(c.metric) if ref else None) for c, ref in zip(objective.constraints, references)
            ):
                continue
            entry["eligible"] += 1
            if entry["best"] is None or _better(value, entry["best"][objective.metric], objective.mode):
                entry["best"] = row
        if entry["best"] is None:
            shown = ", ".join(c.text() for c in objective.constraints)
            missing = [c.text() for c, ref in zip(objective.constraints, references) if c.relative_to is not None and ref is None]
            entry["reason"] = (
                f"no trial to measure {missing[0]} against" if missing
                else f"no trial has {objective.metric}" + (f" while meeting {shown}" if shown else "")
            )
        out[role] = entry
    return out


def series(rows: Sequence[dict[str, Any]], x: str, group_by: Sequence[str]) -> dict[tuple, list[dict[str, Any]]]:
    """Rows grouped by ``group_by`` values, each group sorted by ``x`` (for line plots)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get(x) is None:
            continue
        groups.setdefault(tuple(row.get(k) for k in group_by), []).append(row)
    return {k: sorted(v, key=lambda r: r[x]) for k, v in sorted(groups.items(), key=lambda kv: [setting_order(p) for p in kv[0]])}
