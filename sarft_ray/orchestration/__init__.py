"""Orchestration: the multi-role pipeline (``run_pipeline``), Ray Tune sweeps (``run_sweep``),
MLflow tracking, plots and the HTML report.

Modules: ``config`` (the ``sweep`` section), ``stages`` (train / evaluate helpers
both commands share), ``pipeline``, ``sweep``, ``tracking`` (MLflow),
``analysis`` (Pareto front, best trial), ``plots``, ``report``, ``store``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sarft_ray.orchestration.pipeline import RunResult
    from sarft_ray.orchestration.sweep import SweepResult

__all__ = ["RunResult", "SweepResult", "run_pipeline", "run_sweep"]


def run_pipeline(cfg, force: bool = False) -> RunResult:
    """Score, train and evaluate every role of ``cfg``; see :mod:`sarft_ray.orchestration.pipeline`."""
    from sarft_ray.orchestration.pipeline import run_pipeline as run

    return run(cfg, force=force)


def run_sweep(cfg, resume: bool = True) -> SweepResult:
    """Run or resume the Tune sweep of ``cfg``; see :mod:`sarft_ray.orchestration.sweep`."""
    from sarft_ray.orchestration.sweep import run_sweep as run

    return run(cfg, resume=resume)
