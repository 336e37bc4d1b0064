"""``run_pipeline``: score every role once, train and evaluate each role, tabulate, plot, track.

Order of work:
1. the MLflow database and experiment are created on this driver, before Ray starts work;
2. scoring runs once for all roles (reused when stored);
3. one thread per role trains (its own Ray Train run) and then evaluates its
   artefact; as many roles train at once as the cluster can place next to one
   evaluation; evaluations (the base model's first) run one at a time;
4. as each role finishes, this thread logs it to MLflow (the only writer);
5. the per-role table, plots and HTML report are written under ``<experiment>/report``.

Re-running finds finished work in each stage's store and skips it; an
interrupted training run resumes from its latest Ray Train checkpoint. The
threads are daemons: stopping the driver stops its Ray work too, and the next
run resumes it.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarft_ray.errors import SarftError
from sarft_ray.orchestration import plots, report, stages
from sarft_ray.orchestration.store import write_atomic, write_json, write_text
from sarft_ray.orchestration.tracking import (
    Tracker,
    TrackerSpec,
    flatten_params,
    log_evaluation,
    log_training,
    ui_hint,
)

log = logging.getLogger(__name__)

BASE = "base"
TABLE_COLUMNS = (
    "role",
    "model",
    "harmful_fraction",
    "train_rows",
    "last_loss",
    "rolebench_spe_rouge_l_first",
    "rolebench_spe_rouge_l_max",
    "rolebench_raw_rouge_l_first",
    "advbench_rr",
    "beavertails_rr",
    "safety_avg",
    "jailbreak_avg",
    "status",
)
NOTE = "ROUGE-L F x100; refusal rates in %; harmful fraction of the role's scored corpus (0-1)"


@dataclass(frozen=True)
class RoleOutcome:
    """What one role's training and evaluation produced."""

    role: str
    train: dict[str, Any]  # training summary without history (artefact, run_dir, losses, ...)
    eval_dir: Path
    headline: dict[str, float | None]
    mlflow_run_id: str


@dataclass(frozen=True)
class RunResult:
    """Where everything landed; ``failed`` maps a role (or ``base``) to its error text."""

    experiment_dir: Path
    key: str
    rows: list[dict[str, Any]]
    table_path: Path
    report_path: Path
    tracking_uri: str
    mlflow_run_id: str
    roles: dict[str, RoleOutcome]
    base: dict[str, Any] | None
    failed: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """A short summary for the terminal."""
        out = [report.markdown_table(TABLE_COLUMNS[:-1] + (("status",) if self.failed else ()), self.rows)]
        out += [f"table: {self.table_path}", f"report: {self.report_path}"]
        out += [f"mlflow run {self.mlflow_run_id}: {ui_hint(self.tracking_uri)}"]
        out += [f"FAILED {name}: {error}" for name, error in self.failed.items()]
        return out


def training_slots(cfg, roles: int, nodes: list[dict] | None = None) -> int:
    """How many roles can train at once, at least 1.

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
    return max(1, min(roles, fits // cfg.training.workers))


def _role_worker(cfg, role: str, force: bool, train_gate, eval_gate, results: queue.Queue) -> None:
    try:
        with train_gate:
            summary = stages.train(cfg, role, force=force)
        with eval_gate:
            evaluated = stages.evaluate(cfg, role, summary, force=force)
        results.put((role, (summary, evaluated), None))
    except BaseException as exc:  # reported to the driver thread, which decides
        results.put((role, None, exc))


def _base_worker(cfg, force: bool, eval_gate, results: queue.Queue) -> None:
    try:
        with eval_gate:
            results.put((BASE, stages.evaluate(cfg, None, force=force), None))
    except BaseException as exc:
        results.put((BASE, None, exc))


def _row(role: str, model: str, headline: dict, **extra) -> dict[str, Any]:
    return {"role": role, "model": model, **{k: headline.get(k) for k in TABLE_COLUMNS if k in headline}, **extra}


def run_pipeline(cfg, force: bool = False) -> RunResult:
    """Score, train and evaluate every role of ``cfg``; return the per-role table and where it all is."""
    from sarft_ray.ray_utils import init_ray
    from sarft_ray.scoring.job import score_roles
    from sarft_ray.validate import check_inputs

    check_inputs(cfg)  # a missing benchmark file fails now, not after hours of training
    experiment_dir = Path(cfg.experiment_dir).resolve()
    spec = TrackerSpec.from_config(cfg)
    tracker = Tracker(spec)  # database and experiment exist before any Ray work starts
    key = stages.results_key(cfg)
    method = f"{cfg.training.selection} lambda={cfg.training.lambda_kl:g}"
    parent = tracker.open_run(
        f"run/{key}", f"run {cfg.experiment} {key[:8]}", "run", reuse=not force,
        tags={"sarft.config": str(cfg.source or "")},
    )
    children: dict[str, str] = {}
    try:
        tracker.log_params(parent, flatten_params(cfg.resolved()))
        init_ray(cfg.ray)
        scores = score_roles(cfg, force=force, progress=False)
        fractions = {role: s.harmful_fraction for role, s in scores.roles.items()}
        log_scores(tracker, parent, scores)
        children = open_children(tracker, cfg, key, parent)
        outcomes, base_table, failed, errors = train_and_evaluate(cfg, force, tracker, children, fractions)

        rows = table_rows(cfg, outcomes, base_table, fractions, failed, method)
        report_dir = experiment_dir / "report"
        table_path = write_outputs(cfg, rows, report_dir, scores.chart_path, method)
        log_report(tracker, parent, report_dir, rows)
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        for run_id in children.values():
            if tracker.client.get_run(run_id).info.status == "RUNNING":
                tracker.finish(run_id, status)
        tracker.finish(parent, status)
        raise
    tracker.finish(parent, "FAILED" if failed else "FINISHED")
    result = RunResult(
        experiment_dir, key, rows, table_path, report_dir / "index.html", spec.uri, parent, outcomes,
        base_table["headline"] if base_table else None, failed,
    )
    if errors:
        if all(isinstance(e, SarftError) for e in errors):
            raise errors[0]
        raise RuntimeError(
            f"{len(errors)} of {len(cfg.roles.names) + 1} jobs failed ({', '.join(failed)}); "
            f"finished ones are stored, see {table_path}"
        ) from errors[0]
    return result


def log_scores(tracker: Tracker, parent: str, scores) -> None:
    from sarft_ray.data.roles import role_slug

    fractions = {f"harmful_fraction.{role_slug(role)}": s.harmful_fraction for role, s in scores.roles.items()}
    removed = {f"heldout_removed.{role_slug(role)}": n for role, n in scores.heldout_removed.items()}
    tracker.log_summary(parent, {**fractions, **removed, "heldout_removed_total": sum(scores.heldout_removed.values())})
    tracker.log_artifact(parent, scores.summary_path, "scores")
    tracker.log_artifact(parent, scores.chart_path, "scores")


def open_children(tracker: Tracker, cfg, key: str, parent: str) -> dict[str, str]:
    """One nested run per role and one for the base model, all RUNNING before work starts (the UI shows them)."""
    from sarft_ray.data.roles import role_slug

    resolved = cfg.resolved()
    children = {}
    for role in cfg.roles.names:
        children[role] = tracker.open_run(
            f"run/{key}/role/{role_slug(role)}", role, "role", parent_id=parent,
            tags={"sarft.role": role, "sarft.method": cfg.training.selection},
        )
        tracker.log_params(children[role], flatten_params(resolved) | {"role": role})
    children[BASE] = tracker.open_run(
        f"run/{key}/base", "base model", "base", parent_id=parent, tags={"sarft.role": "(all)", "sarft.method": BASE}
    )
    tracker.log_params(children[BASE], flatten_params({k: v for k, v in resolved.items() if k != "training"}))
    return children


def train_and_evaluate(cfg, force: bool, tracker: Tracker, children: dict[str, str], fractions: dict[str, float]):
    """Start the role and base threads, then log each to MLflow as it finishes (this thread is the only writer)."""
    slots = training_slots(cfg, len(cfg.roles.names))
    log.info("training up to %d role(s) at once", slots)
    # one evaluation at a time: each already spreads over evaluation.num_actors actors
    train_gate, eval_gate = threading.BoundedSemaphore(slots), threading.BoundedSemaphore(1)
    results: queue.Queue = queue.Queue()
    threading.Thread(target=_base_worker, args=(cfg, force, eval_gate, results), daemon=True).start()
    for role in cfg.roles.names:
        args = (cfg, role, force, train_gate, eval_gate, results)
        threading.Thread(target=_role_worker, args=args, daemon=True).start()

    outcomes: dict[str, RoleOutcome] = {}
    base_table: dict | None = None
    failed: dict[str, str] = {}
    errors: list[BaseException] = []
    for _ in range(len(cfg.roles.names) + 1):
        name, value, error = results.get()
        run_id = children[name]
        if error is not None:
            log.error("%s failed: %s", name, error)
            failed[name] = f"{type(error).__name__}: {error}"
            errors.append(error)
            tracker.set_tags(run_id, {"sarft.error": failed[name][:5000]})
            tracker.finish(run_id, "FAILED")
        elif name == BASE:
            base_table = value.table
            log_evaluation(tracker, run_id, value.directory, value.table["headline"])
            tracker.finish(run_id)
        else:
            summary, evaluated = value
            headline = stages.role_headline(evaluated.table, name)
            log_training(tracker, run_id, summary, stages.TRAIN_STEP_KEYS)
            log_evaluation(tracker, run_id, evaluated.directory, headline)
            tracker.log_summary(run_id, {"harmful_fraction": fractions.get(name)}, prefix="rds/")
            tracker.finish(run_id)
            outcomes[name] = RoleOutcome(name, stages.train_brief(summary), evaluated.directory, headline, run_id)
            log.info("role %s done", name)
    return outcomes, base_table, failed, errors


def log_report(tracker: Tracker, parent: str, report_dir: Path, rows: list[dict[str, Any]]) -> None:
    """The report files as artefacts; the mean rows as ``base/<metric>`` and ``tuned/<metric>``."""
    for path in sorted(report_dir.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            tracker.log_artifact(parent, path, "report")
    for row in rows:
        if row["role"] == "mean":
            figures = {k: v for k, v in row.items() if k not in ("role", "model")}
            tracker.log_summary(parent, figures, prefix="base/" if row["model"] == BASE else "tuned/")


def table_rows(cfg, outcomes, base_table, fractions, failed, method) -> list[dict[str, Any]]:
    """Per role: the base model's row and the fine-tuned row; then the mean over roles of each."""
    rows: list[dict[str, Any]] = []
    for role in cfg.roles.names:
        fraction = fractions.get(role)
        if base_table is not None:
            base = stages.role_headline(base_table, role)
            rows.append(_row(role, BASE, base, harmful_fraction=fraction, status="ok"))
        else:
            rows.append(_row(role, BASE, {}, harmful_fraction=fraction, status=f"failed: {failed.get(BASE, '?')}"))
        outcome = outcomes.get(role)
        if outcome is None:
            rows.append(_row(role, method, {}, harmful_fraction=fraction, status=f"failed: {failed.get(role, '?')}"))
        else:
            rows.append(
                _row(role, method, outcome.headline, harmful_fraction=fraction, train_rows=outcome.train.get("rows"),
                     last_loss=outcome.train.get("last_loss"), status="ok")
            )
    for model in (BASE, method):
        done = [r for r in rows if r["model"] == model and r["status"] == "ok"]
        if not done:
            continue
        mean = {"role": "mean", "model": model, "status": f"{len(done)} of {len(cfg.roles.names)} roles"}
        for column in TABLE_COLUMNS[2:-1]:
            values = [r[column] for r in done if r.get(column) is not None]
            mean[column] = sum(values) / len(values) if values else None
        rows.append(mean)
    return rows


def write_outputs(cfg, rows, report_dir: Path, chart_path: Path, method: str) -> Path:
    """table.json/.md, the plots and index.html under ``report_dir``; returns the JSON table's path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    columns = list(TABLE_COLUMNS)
    table_path = report_dir / "table.json"
    write_json(table_path, {"experiment": cfg.experiment, "method": method, "columns": columns, "rows": rows})
    write_text(report_dir / "table.md", report.markdown_table(columns, rows))

    harmful_png = report_dir / "harmful_fraction.png"
    if Path(chart_path).is_file():
        write_atomic(harmful_png, lambda tmp: shutil.copyfile(chart_path, tmp))
    # one point per role and model; only the means are labelled (role names would pile up)
    points = []
    for r in rows:
        if r["status"] == "ok" or r["role"] == "mean":
            kind = BASE if r["model"] == BASE else cfg.training.selection
            points.append({**r, "method": kind, "label": "mean" if r["role"] == "mean" else None})
    title = f"{cfg.experiment}: base vs {method}"
    scatter = plots.quality_vs_safety(points, report_dir / "quality_vs_safety.png", title=title)
    blocks = [
        report.Table("Per-role results", columns, rows, note=NOTE),
        report.Figure("Harmful fraction per role (RDS)", harmful_png),
        report.Figure("Role quality vs safety", scatter),
    ]
    training = cfg.training
    subtitle = (
        f"model {cfg.model.ref}; {training.mode} fine-tuning, selection {training.selection}, "
        f"lambda {training.lambda_kl:g}; written {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    report.write_report(report_dir / "index.html", f"SaRFT run: {cfg.experiment}", blocks, subtitle)
    return table_path
