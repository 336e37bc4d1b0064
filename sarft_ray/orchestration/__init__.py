"""Orchestration: the multi-role pipeline (``run_pipeline``), Ray Tune sweeps (``run_sweep``),
MLflow tracking, plots and the HTML report.

Modules: ``config`` (the ``sweep`` and ``arms`` sections), ``stages`` (train /
evaluate helpers both commands share), ``pipeline`` (with ``run_workers``,
``run_tracking``, ``run_report``, ``arms``, ``comparison``), ``sweep`` (with
``sweep_space``, ``sweep_trial``, ``sweep_tracking``, ``sweep_report``),
``tracking`` (MLflow; ``tracking_results``), ``analysis`` (Pareto front, best
trial), ``plots``, ``report``, ``cli_hook`` (the run and sweep commands).
Names are imported on first use, so the CLI's help loads neither Ray nor MLflow.
"""

from __future__ import annotations

from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "pipeline": "RunResult run_pipeline",
    "sweep": "SweepResult run_sweep",
}

__getattr__, __all__ = lazy_exports(__name__, _PUBLIC)
