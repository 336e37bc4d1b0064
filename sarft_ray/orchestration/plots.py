"""PNG charts for runs and sweeps (matplotlib's object API on the Agg canvas: no display, no pyplot state).

The harmful-fraction chart comes with the scores (``sarft_ray.scoring.summary``).

- ``lambda_sensitivity``: role quality and refusal rate against lambda, one line per role;
- ``quality_vs_safety``: role quality against safety per method (a selection or a run's arm), with the
  Pareto front marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sarft_ray.evaluation.catalogue import metric
from sarft_ray.orchestration.analysis import QUALITY_METRIC, SAFETY_METRIC, pareto_front, series
from sarft_ray.atomic import write_atomic

METHOD_ORDER = ("base", "none", "random", "flip", "all", "rds")
_METHOD_STYLE = {
    "base": ("black", "X"),
    "none": ("tab:gray", "o"),
    "random": ("tab:orange", "s"),
    "flip": ("tab:purple", "v"),
    "all": ("tab:blue", "D"),
    "rds": ("tab:red", "*"),
}
_ARM_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:cyan", "tab:olive", "tab:brown")


def _figure(**kwargs) -> Figure:
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    write_atomic(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return Path(path)


def method_styles(points: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Colour and marker per method: selection styles for selection names, a colour per other name in order."""
    styles: dict[str, tuple[str, str]] = {}
    others = 0
    for p in points:
        method = p.get("method", "")
        if method in styles:
            continue
        if method in _METHOD_STYLE:
            styles[method] = _METHOD_STYLE[method]
        else:
            marker = _METHOD_STYLE.get(p.get("selection", ""), ("", "o"))[1]
            styles[method] = (_ARM_COLORS[others % len(_ARM_COLORS)], marker)
            others += 1
    return styles


def lambda_sensitivity(
    rows: Sequence[dict[str, Any]],
    path: Path,
    group_by: Sequence[str] = ("role",),
    quality: str = QUALITY_METRIC,
    safety: str = SAFETY_METRIC,
) -> Path:
    """Two panels against ``lambda_kl``: role quality and refusal rate; one line per group."""
    fig = _figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for key, group in series(rows, "lambda_kl", group_by).items():
        label = ", ".join(str(k) for k in key)
        xs = [r["lambda_kl"] for r in group]
        for ax, figure in zip(axes, (quality, safety), strict=True):
            ax.plot(xs, [r.get(figure) for r in group], marker="o", label=label)
    for ax, figure in zip(axes, (quality, safety), strict=True):
        ax.set_xlabel("lambda (KL weight)")
        ax.set_ylabel(metric(figure).label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle("Lambda sensitivity")
    return _save(fig, path)


def quality_vs_safety(
    points: Sequence[dict[str, Any]],
    path: Path,
    quality: str = QUALITY_METRIC,
    safety: str = SAFETY_METRIC,
    title: str = "",
) -> Path:
    """Scatter of role quality (x) against safety (y); each point has ``method`` and ``label``.

    A method named like a selection (or ``base``) has that selection's style;
    any other (a run's arm) gets its own colour and, given ``selection``, that
    selection's marker. The Pareto front (no other point better on both axes)
    among the points not marked ``front: False`` is circled and joined.
    """
    styles = method_styles(points)
    coords = [(p.get(quality), p.get(safety)) for p in points]
    front = pareto_front([c if p.get("front", True) else (None, None) for p, c in zip(points, coords, strict=True)])
    fig = _figure(figsize=(6.4, 4.8))
    ax = fig.subplots()
    seen: set[str] = set()
    for p, (x, y) in zip(points, coords, strict=True):
        if x is None or y is None:
            continue
        method = p.get("method", "")
        color, marker = styles[method]
        ax.scatter([x], [y], color=color, marker=marker, s=70, zorder=3, label=None if method in seen else method)
        seen.add(method)
        if p.get("label"):
            ax.annotate(p["label"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    if front:
        fx, fy = [coords[i][0] for i in front], [coords[i][1] for i in front]
        ax.plot(fx, fy, color="black", lw=1, ls="--", zorder=2, label="Pareto front")
        ax.scatter(fx, fy, s=220, facecolors="none", edgecolors="black", zorder=4)
    ax.set_xlabel(metric(quality).label)
    ax.set_ylabel(metric(safety).label)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: METHOD_ORDER.index(labels[i]) if labels[i] in METHOD_ORDER else 99)
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, loc="best")
    ax.set_title(title or "Role quality vs safety")
    return _save(fig, path)
