"""``run_sweep``: Ray Tune over the ``sweep`` section's search space; every trial trains one role and evaluates it.

- Each trial is a function trainable that calls the training stage (its own
  Ray Train run with its own worker resources) and then the evaluation stage,
  and reports the evaluation headline once. Scores are computed once on the
  driver beforehand; trials only read them.
- The Tune run lives at ``<experiment>/sweeps/<name>``. Running the same sweep
  again after the driver died restores it there (``Tuner.restore``): finished
  trials are kept, unfinished ones run again and their training resumes from
  its latest checkpoint.
- MLflow is written from the driver only: a callback logs each training step
  as Tune receives it (Ray Train's ``TuneReportCallback`` forwards them) and
  each trial as it finishes; a pass after ``fit`` logs whatever a previous
  driver did not.
- The best trial per role is chosen by ``sweep.objective``; the trials table,
  plots and an HTML report go to ``<experiment>/sweeps/<name>/report``.

The pieces: ``sweep_space`` (settings, search space, name), ``sweep_trial``
(the trainable and its table row), ``sweep_tracking`` (MLflow) and
``sweep_report`` (the report directory); this module drives them.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarft_ray.atomic import write_json
from sarft_ray.errors import SarftError
from sarft_ray.orchestration import analysis, stages
from sarft_ray.orchestration.sweep_report import write_sweep_outputs
from sarft_ray.orchestration.sweep_space import (
    check_sweep,
    search_space,
    sweep_key,
    sweep_name,
    sweep_section,
    trial_evaluation,
)
from sarft_ray.orchestration.sweep_tracking import log_best, log_trial, make_logger
from sarft_ray.orchestration.sweep_trial import sweep_trial, trial_row
from sarft_ray.orchestration.tracking import Tracker, TrackerSpec, flatten_params, ui_hint

log = logging.getLogger(__name__)

STATE_FILE = "sarft_sweep.json"  # what this Tune directory was made from


@dataclass(frozen=True)
class SweepResult:
    """The trials of a sweep (one row each), the best trial per role, and where the outputs are."""

    name: str
    path: Path  # the Tune experiment directory
    trials: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]
    report_path: Path
    table_path: Path
    tracking_uri: str
    mlflow_run_id: str
    errored: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A short summary for the terminal."""
        out = [f"sweep {self.name}: {len(self.trials)} trials ({len(self.errored)} failed) in {self.path}"]
        for role, entry in self.best.items():
            best = entry["best"]
            if best is None:
                out.append(f"  {role}: no best trial ({entry['reason']})")
            else:
                varied = ", ".join(f"{k}={best[k]}" for k in best.get("varied", []) if k != "role")
                out.append(f"  {role}: best {best['trial_id']} ({varied})")
        out += [f"report: {self.report_path}", f"mlflow run {self.mlflow_run_id}: {ui_hint(self.tracking_uri)}"]
        return out


# ---------------------------------------------------------------------------- the sweep


def run_sweep(cfg, resume: bool = True) -> SweepResult:
    """Run (or resume) the sweep of ``cfg``; returns every trial, the best per role and the outputs' paths."""
    from ray import tune

    from sarft_ray.alignment.stage import starting_config
    from sarft_ray.ray_utils import init_ray
    from sarft_ray.scoring.job import score_roles
    from sarft_ray.scoring.store import StoredScores
    from sarft_ray.validate import check_inputs

    sweep = sweep_section(cfg)
    check_sweep(cfg)
    check_inputs(cfg)  # a missing benchmark file fails now, not in every trial
    cfg = starting_config(cfg)  # with an alignment section: align first, then sweep from the aligned model
    name = sweep_name(cfg)
    path = Path(cfg.experiment_dir).resolve() / "sweeps" / name
    varied = ["role"] + [k for k in sweep.space if k != "role"]

    spec = TrackerSpec.from_config(cfg)
    tracker = Tracker(spec)  # the database and experiment exist before any trial starts
    restoring = resume and tune.Tuner.can_restore(str(path))
    if restoring:
        check_same_sweep(cfg, path)
    elif path.exists():
        log.warning("starting sweep %s afresh: removing %s", name, path)
        shutil.rmtree(path)

    parent = tracker.open_run(
        f"sweep/{name}", f"sweep {name}", "sweep", reuse=restoring,
        tags={"sarft.config": str(cfg.source or ""), "sarft.sweep": name},
    )
    try:
        tracker.log_params(parent, flatten_params(cfg.resolved()))
        init_ray(cfg.ray)
        scores = score_roles(cfg, progress=False)  # once, here; trials only read them
        tracker.log_artifact(parent, scores.summary_path, "scores")
        tracker.log_artifact(parent, scores.chart_path, "scores")

        stored = StoredScores(scores.directory, scores.scores_hash)  # handed to every trial
        tuner = make_tuner(cfg, path, restoring, make_logger(spec, parent, name, varied, cfg), stored)
        rows, errored = [], []
        for result in tuner.fit():
            metrics = result.metrics or {}
            trial_id = metrics.get("trial_id") or Path(result.path).name
            row = trial_row(trial_id, result.config or {}, metrics, varied, cfg)
            rows.append(row)
            if row["status"] != "ok":
                errored.append(row["trial_id"])
            error = str(result.error) if result.error is not None else None
            # whatever the callback (or a driver that died) did not log
            log_trial(tracker, parent, name, row, cfg, error=error)
        rows.sort(key=lambda r: [analysis.setting_order(r.get(k)) for k in varied])  # 1 before 3 before 10

        base = stages.evaluate(trial_evaluation(cfg), None)  # the reference point of the plots
        best = analysis.best_per_role([r for r in rows if r["status"] == "ok"], sweep.objective)
        for role in sorted({r["role"] for r in rows} - set(best)):
            best[role] = {"best": None, "trials": 0, "eligible": 0, "reason": "every trial of this role failed"}
        report_dir = path / "report"
        table_path = write_sweep_outputs(cfg, name, rows, best, base.table, varied, report_dir)
        log_best(tracker, parent, best, sweep.objective.metric)
        for file in sorted(report_dir.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                tracker.log_artifact(parent, file, "report")
    except BaseException as exc:
        tracker.finish(parent, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    tracker.finish(parent, "FAILED" if errored else "FINISHED")
    return SweepResult(name, path, rows, best, report_dir / "index.html", table_path, spec.uri, parent, errored)


def check_same_sweep(cfg, path: Path) -> None:
    """Refuse to resume a Tune directory that was made from other sweep settings (an explicit ``sweep.name`` reused)."""
    state = path / STATE_FILE
    made_from = json.loads(state.read_text(encoding="utf-8")).get("key") if state.is_file() else None
    if made_from != sweep_key(cfg):
        raise SarftError(
            f"{cfg.source or 'config'}: sweep.name: {path} holds a sweep with other settings; "
            "choose another name or start it afresh (--restart)"
        )


def make_tuner(cfg, path: Path, restoring: bool, logger, scores=None):
    """A new Tuner for the sweep, or the one stored at ``path`` (finished trials kept, the rest resumed);
    every trial trains from ``scores`` (the scoring stage's ``StoredScores``; None: each finds them)."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    sweep = sweep_section(cfg)
    resources = {"cpu": sweep.trial_cpus} | ({"gpu": sweep.trial_gpus} if sweep.trial_gpus else {})
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, cfg=cfg, scores=scores), resources)
    if restoring:
        log.info("resuming sweep %s from %s", path.name, path)
        try:
            return tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
        except (AttributeError, ImportError, pickle.UnpicklingError, EOFError) as exc:
            # Tune's state is a pickle of this package's objects: a sarft-ray upgrade that moved a class makes it
            # unreadable. Every trial's stages are cached under their own hashes, so a fresh Tune run redoes little.
            log.warning(
                "sweep %s: Tune's stored state cannot be read by this version (%s: %s); starting the sweep afresh "
                "(finished trials reuse their stored adapters and answers)", path.name, type(exc).__name__, exc,
            )
            shutil.rmtree(path)
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(cfg),
        tune_config=tune.TuneConfig(
            num_samples=sweep.num_samples,
            # TuneConfig.max_concurrent_trials is ignored when a search_alg is given
            search_alg=BasicVariantGenerator(max_concurrent=sweep.max_concurrent_trials or 0, random_state=sweep.seed),
        ),
        run_config=tune.RunConfig(
            name=path.name,
            storage_path=str(path.parent),
            callbacks=[logger],
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        ),
    )
    write_json(path / STATE_FILE, {"key": sweep_key(cfg), "name": path.name, "created": time.time()})
    return tuner
