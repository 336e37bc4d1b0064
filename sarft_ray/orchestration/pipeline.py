"""``run_pipeline``: score every role once, train and evaluate every (role, arm), compare, plot, track.

Order of work:
1. the MLflow database and experiment are created on this driver, before Ray starts work;
2. scoring runs once for all roles (reused when stored);
3. one thread per (role, arm) trains (its own Ray Train run) and then
   evaluates its artefact; as many train at once as the cluster can place next
   to one evaluation; evaluations (the base model's first, once for all
   roles) run one at a time;
4. as each finishes, this thread logs it to MLflow (the only writer);
5. the comparison table (base, arms, deltas against ``compare_to``, means over
   roles), plots and HTML report are written under ``<experiment>/report``.

Arms come from the config's ``arms`` list; without one, the ``training``
section is the single arm. Re-running finds finished work in each stage's
store and skips it; an interrupted training run resumes from its latest Ray
Train checkpoint. The threads are daemons: stopping the driver stops its Ray
work too, and the next run resumes it.

The pieces: ``run_workers`` (the threads), ``run_tracking`` (MLflow),
``comparison`` (the table) and ``run_report`` (the report directory); this
module drives them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarft_ray.errors import SarftError
from sarft_ray.orchestration import comparison, report, stages
from sarft_ray.orchestration.arms import Arm, compare_to, job_name, resolve_arms
from sarft_ray.orchestration.comparison import BASE, Result
from sarft_ray.orchestration.run_report import write_outputs
from sarft_ray.orchestration.run_tracking import (
    log_arm,
    log_base,
    log_failure,
    log_report,
    log_scores,
    open_children,
)
from sarft_ray.orchestration.run_workers import start_jobs
from sarft_ray.orchestration.tracking import Tracker, TrackerSpec, flatten_params, ui_hint
from sarft_ray.orchestration.tracking_results import LiveSteps
from sarft_ray.progress import StepRelay, TrainingBars

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleOutcome:
    """What one role's training and evaluation under one arm produced."""

    role: str
    train: dict[str, Any]  # training summary without history (artefact, run_dir, losses, ...)
    eval_dir: Path
    headline: dict[str, float | None]
    mlflow_run_id: str
    arm: str = ""


@dataclass(frozen=True)
class RunResult:
    """Where everything landed; ``failed`` maps ``base``, a role or ``role / arm`` to its error text."""

    experiment_dir: Path
    key: str
    rows: list[dict[str, Any]]
    table_path: Path
    report_path: Path
    tracking_uri: str
    mlflow_run_id: str
    outcomes: dict[tuple[str, str], RoleOutcome]  # (role, arm) -> outcome
    base: dict[str, Any] | None
    failed: dict[str, str] = field(default_factory=dict)
    arms: tuple[str, ...] = ()

    @property
    def roles(self) -> dict[str, RoleOutcome]:
        """Role -> outcome of the first arm (the only one of a config without ``arms``)."""
        return {role: o for (role, arm), o in self.outcomes.items() if self.arms and arm == self.arms[0]}

    def lines(self) -> list[str]:
        """The comparison table and where things are, for the terminal."""
        headers, text = comparison.text_table(self.rows, status=bool(self.failed))
        out = [report.markdown_table(headers, text)]
        out += [f"table: {self.table_path}", f"report: {self.report_path}"]
        out += [f"mlflow run {self.mlflow_run_id}: {ui_hint(self.tracking_uri)}"]
        out += [f"FAILED {name}: {error}" for name, error in self.failed.items()]
        return out


@dataclass
class Finished:
    """What the training and evaluation threads produced, keyed by job: ``base`` or (role, arm)."""

    outcomes: dict[tuple[str, str], RoleOutcome] = field(default_factory=dict)
    results: dict[tuple[str, str], Result] = field(default_factory=dict)
    base_table: dict | None = None
    errors: dict[Any, str] = field(default_factory=dict)  # job -> error text
    exceptions: list[BaseException] = field(default_factory=list)


def run_pipeline(cfg, force: bool = False) -> RunResult:
    """Score, train and evaluate every role under every arm of ``cfg``; the comparison table and where it all is."""
    from sarft_ray.ray_utils import init_ray
    from sarft_ray.scoring.job import score_roles
    from sarft_ray.scoring.store import StoredScores
    from sarft_ray.validate import check_inputs

    from sarft_ray.alignment.stage import starting_config

    check_inputs(cfg)  # a missing benchmark file fails now, not after hours of training
    cfg = starting_config(cfg)  # with an alignment section: align first, then start from the aligned model
    experiment_dir = Path(cfg.experiment_dir).resolve()
    spec = TrackerSpec.from_config(cfg)
    tracker = Tracker(spec)  # database and experiment exist before any Ray work starts
    arms, reference = resolve_arms(cfg), compare_to(cfg)
    comparing = {"arms": cfg.resolved()["arms"], "compare_to": reference}
    key = stages.results_key(cfg, comparing) if cfg.arms else stages.results_key(cfg)  # no arms: the key as before
    parent = tracker.open_run(
        f"run/{key}", f"run {cfg.experiment} {key[:8]}", "run", reuse=not force,
        tags={"sarft.config": str(cfg.source or ""), "sarft.compare_to": str(reference)},
    )
    children: dict[Any, str] = {}
    try:
        tracker.log_params(parent, flatten_params(cfg.resolved()))
        init_ray(cfg.ray)
        scores = score_roles(cfg, force=force)  # its bar shows on a terminal only (progress.py)
        fractions = {role: s.harmful_fraction for role, s in scores.roles.items()}
        log_scores(tracker, parent, scores)
        children = open_children(tracker, cfg, arms, key, parent)
        stored = StoredScores(scores.directory, scores.scores_hash)  # handed to every training run
        finished = train_and_evaluate(cfg, arms, force, tracker, children, fractions, stored)

        rows = table_rows(cfg, arms, reference, finished, fractions)
        report_dir = experiment_dir / "report"
        table_path = write_outputs(cfg, arms, reference, rows, report_dir, scores.chart_path, bool(finished.errors))
        log_report(tracker, parent, report_dir, rows, arms)
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        for run_id in children.values():
            if tracker.client.get_run(run_id).info.status == "RUNNING":
                tracker.finish(run_id, status)
        tracker.finish(parent, status)
        raise
    failed = {job_name(job, arms): error for job, error in finished.errors.items()}
    tracker.finish(parent, "FAILED" if failed else "FINISHED")
    jobs = [(role, arm.name) for role in cfg.roles.names for arm in arms]
    result = RunResult(
        experiment_dir, key, rows, table_path, report_dir / "index.html", spec.uri, parent,
        {job: finished.outcomes[job] for job in jobs if job in finished.outcomes},
        finished.base_table["headline"] if finished.base_table else None, failed, tuple(a.name for a in arms),
    )
    if finished.exceptions:
        first = finished.exceptions[0]
        if all(isinstance(e, SarftError) for e in finished.exceptions):
            raise first
        raise RuntimeError(
            f"{len(finished.exceptions)} of {len(jobs) + 1} jobs failed ({', '.join(failed)}); "
            f"finished ones are stored, see {table_path}"
        ) from first
    return result


def train_and_evaluate(cfg, arms: list[Arm], force: bool, tracker: Tracker, children, fractions, scores=None) -> Finished:
    """Start the (role, arm) and base threads, training from ``scores`` (the scoring stage's ``StoredScores``);
    log each to MLflow as it finishes (this thread is the only writer).

    Training steps arrive while the jobs run: each is logged at once (``train/<key>`` per step) and moves
    the job's progress bar.
    """
    relay, live = StepRelay(), LiveSteps(tracker, stages.TRAIN_STEP_KEYS)
    bars = TrainingBars(lambda job: job_name(job, arms))

    def on_step(job, metrics) -> None:
        live.log(children[job], metrics)
        bars.update(job, metrics)

    jobs, queued = start_jobs(cfg, arms, force, steps=relay, scores=scores)
    finished = Finished()
    for _ in range(len(jobs) + 1):
        job, value, error = relay.wait(queued, on_step)
        run_id = children[job]
        if error is not None:
            log.error("%s failed: %s", job_name(job, arms), error)
            finished.errors[job] = f"{type(error).__name__}: {error}"
            finished.exceptions.append(error)
            log_failure(tracker, run_id, finished.errors[job])
        elif job == BASE:
            finished.base_table = value.table
            log_base(tracker, run_id, value)
        else:
            role, arm = job
            summary, evaluated = value
            headline = stages.role_headline(evaluated.table, role)
            verdicts = stages.role_verdicts(evaluated.table, role)
            log_arm(tracker, run_id, summary, evaluated, headline, verdicts, fractions.get(role))
            brief = stages.train_brief(summary)
            finished.outcomes[job] = RoleOutcome(role, brief, evaluated.directory, headline, run_id, arm)
            finished.results[job] = Result(headline, verdicts, brief)
            log.info("%s done", job_name(job, arms))
    bars.close()
    relay.close()
    return finished


def table_rows(cfg, arms: list[Arm], reference: str | None, finished: Finished, fractions) -> list[dict[str, Any]]:
    """The comparison table: per role base, arms and deltas against ``reference``; then the means over roles."""
    base = None
    if finished.base_table is not None:
        table = finished.base_table
        base = {r: Result(stages.role_headline(table, r), stages.role_verdicts(table, r)) for r in cfg.roles.names}
    names = [a.name for a in arms]
    roles = cfg.roles.names
    return comparison.comparison_rows(roles, names, reference, base, finished.results, fractions, finished.errors)
