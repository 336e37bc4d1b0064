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
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarft_ray.errors import SarftError
from sarft_ray.orchestration import comparison, report, stages
from sarft_ray.orchestration.arms import Arm, compare_to, resolve_arms
from sarft_ray.orchestration.comparison import BASE, Result
from sarft_ray.orchestration.run_report import write_outputs
from sarft_ray.orchestration.tracking import (
    Tracker,
    TrackerSpec,
    flatten_params,
    log_evaluation,
    log_training,
    ui_hint,
)

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


def training_slots(cfg, runs: int, nodes: list[dict] | None = None) -> int:
    """How many training runs (roles, or role and arm pairs) can run at once, at least 1.

    Whole worker groups that fit the cluster once one evaluation (its Ray Data
    actors) has its share, so evaluations never wait behind every training
    and trainings never wait for placement.
    """
    from sarft_ray.training.ray_trainer import placeable_workers

    if nodes is None:
        import ray

        nodes = ray.nodes()
    nodes = [{**n, "Resources": dict(n.get("Resources", {}))} for n in nodes if n.get("Alive", True)]
    ev = cfg.evaluation
    if ev.backend == "ray" and nodes:
        largest = max(nodes, key=lambda n: n.get("Resources", {}).get("CPU", 0.0))["Resources"]
        largest["CPU"] = largest.get("CPU", 0.0) - ev.num_actors * ev.actor_num_cpus
        largest["GPU"] = largest.get("GPU", 0.0) - ev.num_actors * ev.actor_num_gpus
    fits = placeable_workers(nodes, cfg.training.cpus_per_worker, cfg.training.gpus_per_worker)
    return max(1, min(runs, fits // cfg.training.workers))


def _arm_worker(cfg, role: str, arm: Arm, force: bool, train_gate, eval_gate, results: queue.Queue) -> None:
    job = (role, arm.name)
    try:
        arm_cfg = arm.config(cfg)
        with train_gate:
            summary = stages.train(arm_cfg, role, force=force)
        with eval_gate:
            evaluated = stages.evaluate(arm_cfg, role, summary, force=force)
        results.put((job, (summary, evaluated), None))
    except BaseException as exc:  # reported to the driver thread, which decides
        results.put((job, None, exc))


def _base_worker(cfg, force: bool, eval_gate, results: queue.Queue) -> None:
    try:
        with eval_gate:
            results.put((BASE, stages.evaluate(cfg, None, force=force), None))
    except BaseException as exc:
        results.put((BASE, None, exc))


@dataclass
class Finished:
    """What the training and evaluation threads produced, keyed by job: ``base`` or (role, arm)."""

    outcomes: dict[tuple[str, str], RoleOutcome] = field(default_factory=dict)
    results: dict[tuple[str, str], Result] = field(default_factory=dict)
    base_table: dict | None = None
    errors: dict[Any, str] = field(default_factory=dict)  # job -> error text
    exceptions: list[BaseException] = field(default_factory=list)


def job_name(job, arms: list[Arm]) -> str:
    """``base``, the role (one unlisted arm) or ``role / arm``."""
    if job == BASE:
        return BASE
    role, arm = job
    return role if len(arms) == 1 and not arms[0].listed else f"{role} / {arm}"


def run_pipeline(cfg, force: bool = False) -> RunResult:
    """Score, train and evaluate every role under every arm of ``cfg``; the comparison table and where it all is."""
    from sarft_ray.ray_utils import init_ray
    from sarft_ray.scoring.job import score_roles
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
        scores = score_roles(cfg, force=force, progress=False)
        fractions = {role: s.harmful_fraction for role, s in scores.roles.items()}
        log_scores(tracker, parent, scores)
        children = open_children(tracker, cfg, arms, key, parent)
        finished = train_and_evaluate(cfg, arms, force, tracker, children, fractions)

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


def log_scores(tracker: Tracker, parent: str, scores) -> None:
    from sarft_ray.data.roles import role_slug

    fractions = {f"harmful_fraction.{role_slug(role)}": s.harmful_fraction for role, s in scores.roles.items()}
    removed = {f"heldout_removed.{role_slug(role)}": n for role, n in scores.heldout_removed.items()}
    tracker.log_summary(parent, {**fractions, **removed, "heldout_removed_total": sum(scores.heldout_removed.values())})
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
            children[job] = tracker.open_run(run_key, job_name(job, arms), "role", parent_id=parent, tags=tags)
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


def train_and_evaluate(cfg, arms: list[Arm], force: bool, tracker: Tracker, children, fractions) -> Finished:
    """Start the (role, arm) and base threads; log each to MLflow as it finishes (this thread is the only writer)."""
    jobs = [(role, arm) for role in cfg.roles.names for arm in arms]
    slots = min(training_slots(arm.config(cfg), len(jobs)) for arm in arms)
    log.info("training up to %d run(s) at once", slots)
    # one evaluation at a time: each already spreads over evaluation.num_actors actors
    train_gate, eval_gate = threading.BoundedSemaphore(slots), threading.BoundedSemaphore(1)
    queued: queue.Queue = queue.Queue()
    threading.Thread(target=_base_worker, args=(cfg, force, eval_gate, queued), daemon=True).start()
    for role, arm in jobs:
        args = (cfg, role, arm, force, train_gate, eval_gate, queued)
        threading.Thread(target=_arm_worker, args=args, daemon=True).start()

    finished = Finished()
    for _ in range(len(jobs) + 1):
        job, value, error = queued.get()
        run_id = children[job]
        if error is not None:
            log.error("%s failed: %s", job_name(job, arms), error)
            finished.errors[job] = f"{type(error).__name__}: {error}"
            finished.exceptions.append(error)
            tracker.set_tags(run_id, {"sarft.error": finished.errors[job][:5000]})
            tracker.finish(run_id, "FAILED")
        elif job == BASE:
            finished.base_table = value.table
            log_evaluation(tracker, run_id, value.directory, value.table["headline"])
            tracker.log_summary(run_id, _rate_details(comparison.rate_figures(stages.role_verdicts(value.table, None))))
            tracker.finish(run_id)
        else:
            role, arm = job
            summary, evaluated = value
            headline = stages.role_headline(evaluated.table, role)
            verdicts = stages.role_verdicts(evaluated.table, role)
            log_training(tracker, run_id, summary, stages.TRAIN_STEP_KEYS)
            log_evaluation(tracker, run_id, evaluated.directory, headline)
            tracker.log_summary(run_id, _rate_details(comparison.rate_figures(verdicts)))
            tracker.log_summary(run_id, {"harmful_fraction": fractions.get(role)}, prefix="rds/")
            tracker.finish(run_id)
            brief = stages.train_brief(summary)
            finished.outcomes[job] = RoleOutcome(role, brief, evaluated.directory, headline, run_id, arm)
            finished.results[job] = Result(headline, verdicts, brief)
            log.info("%s done", job_name(job, arms))
    return finished


def log_report(tracker: Tracker, parent: str, report_dir: Path, rows: list[dict[str, Any]], arms: list[Arm]) -> None:
    """The report files as artefacts; the mean rows as ``base/``, ``arm/<name>/`` (or ``tuned/``), ``delta/<name>/``."""
    for path in sorted(report_dir.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            tracker.log_artifact(parent, path, "report")
    tracker.log_summary(parent, comparison.comparison_metrics(rows, {a.name: a.metric_prefix for a in arms}))


def table_rows(cfg, arms: list[Arm], reference: str | None, finished: Finished, fractions) -> list[dict[str, Any]]:
    """The comparison table: per role base, arms and deltas against ``reference``; then the means over roles."""
    base = None
    if finished.base_table is not None:
        table = finished.base_table
        base = {r: Result(stages.role_headline(table, r), stages.role_verdicts(table, r)) for r in cfg.roles.names}
    names = [a.name for a in arms]
    roles = cfg.roles.names
    return comparison.comparison_rows(roles, names, reference, base, finished.results, fractions, finished.errors)
