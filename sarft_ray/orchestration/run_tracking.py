"""The run's MLflow records, written by the driver thread only.

One parent run per ``run``, with the scores' figures, the report files and
the comparison's mean rows; one nested run per (role, arm) and one for the
base model, opened before work starts and closed as each job finishes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sarft_ray.orchestration import comparison, stages
from sarft_ray.orchestration.arms import Arm
from sarft_ray.orchestration.comparison import BASE
from sarft_ray.orchestration.tracking import Tracker, flatten_params
from sarft_ray.orchestration.tracking_results import log_evaluation, log_training, run_name


def log_scores(tracker: Tracker, parent: str, scores) -> None:
    from sarft_ray.data.roles import role_slug

    fractions = {f"harmful_fraction.{role_slug(role)}": s.harmful_fraction for role, s in scores.roles.items()}
    removed = {f"heldout_removed.{role_slug(role)}": n for role, n in scores.heldout_removed.items()}
    summary = {**fractions, **removed, "heldout_removed_total": sum(scores.heldout_removed.values())}
    tracker.log_summary(parent, summary, prefix="rds/")
    tracker.log_artifact(parent, scores.summary_path, "scores")
    tracker.log_artifact(parent, scores.chart_path, "scores")


def open_children(tracker: Tracker, cfg, arms: list[Arm], key: str, parent: str) -> dict[Any, str]:
    """One nested run per (role, arm) and one for the base model, RUNNING before work starts (the UI shows them)."""
    from sarft_ray.data.roles import role_slug

    children: dict[Any, str] = {}
    for role in cfg.roles.names:
        for arm in arms:
            job = (role, arm.name)
            tags = {"sarft.role": role, "sarft.arm": arm.name, "sarft.method": arm.training.selection}
            run_key = arm.run_key(f"run/{key}/role/{role_slug(role)}")
            label = arm.name if arm.listed else arm.training.selection  # the unlisted arm's name repeats lambda
            name = run_name(role, label, arm.training.lambda_kl)  # John Doe · sarft · λ=3
            children[job] = tracker.open_run(run_key, name, "role", parent_id=parent, tags=tags)
            params = flatten_params(arm.config(cfg).resolved()) | {"role": role, "arm": arm.name}
            tracker.log_params(children[job], params | flatten_params(arm.overrides, "arm"))
    children[BASE] = tracker.open_run(
        f"run/{key}/base", "base model", "base", parent_id=parent,
        tags={"sarft.role": "(all)", "sarft.arm": BASE, "sarft.method": BASE},
    )
    untrained = {k: v for k, v in cfg.resolved().items() if k not in ("training", "arms")}
    tracker.log_params(children[BASE], flatten_params(untrained))
    return children


def _rate_details(figures: dict[str, Any]) -> dict[str, Any]:
    """Each rate's n, refusals and CI bounds (the rates themselves come with the evaluation headline)."""
    return {k: v for k, v in figures.items() if k not in comparison.RATE_COLUMNS}


def log_failure(tracker: Tracker, run_id: str, error: str) -> None:
    tracker.set_tags(run_id, {"sarft.error": error[:5000]})
    tracker.finish(run_id, "FAILED")


def log_base(tracker: Tracker, run_id: str, evaluated) -> None:
    """The base model's evaluation: headline, each rate's n, refusals and CI."""
    log_evaluation(tracker, run_id, evaluated.directory, evaluated.table["headline"])
    tracker.log_summary(run_id, _rate_details(comparison.rate_figures(stages.role_verdicts(evaluated.table, None))), prefix="eval/")
    tracker.finish(run_id)


def log_arm(tracker: Tracker, run_id: str, summary: dict, evaluated, headline, verdicts, harmful_fraction) -> None:
    """One (role, arm): training history, evaluation headline, each rate's n, refusals and CI, the role's RDS share."""
    log_training(tracker, run_id, summary, stages.TRAIN_STEP_KEYS)
    log_evaluation(tracker, run_id, evaluated.directory, headline)
    tracker.log_summary(run_id, _rate_details(comparison.rate_figures(verdicts)), prefix="eval/")
    tracker.log_summary(run_id, {"harmful_fraction": harmful_fraction}, prefix="rds/")
    tracker.finish(run_id)


def log_report(tracker: Tracker, parent: str, report_dir: Path, rows: list[dict[str, Any]], arms: list[Arm]) -> None:
    """The report files as artefacts; the mean rows as ``base/``, ``arm/<name>/`` (or ``tuned/``), ``delta/<name>/``."""
    for path in sorted(report_dir.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            tracker.log_artifact(parent, path, "report")
    tracker.log_summary(parent, comparison.comparison_metrics(rows, {a.name: a.metric_prefix for a in arms}))
