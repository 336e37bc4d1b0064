"""The sweep's MLflow records, written from the Tune driver only.

- a nested run per trial, with the config and the trial's settings as params
  (``open_trial_run``), its training history, evaluation and artefacts once
  it finished (``log_trial``);
- a Tune callback (``make_logger``) that logs training steps as Tune receives
  them and each trial as it finishes or fails;
- the best trial per role as tags and summary metrics of the sweep's run (``log_best``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sarft_ray.orchestration import stages
from sarft_ray.orchestration.sweep_space import headline_keys
from sarft_ray.orchestration.sweep_trial import trial_row
from sarft_ray.orchestration.tracking import Tracker, TrackerSpec, flatten_params
from sarft_ray.orchestration.tracking_results import log_evaluation, log_training, trial_run_name

log = logging.getLogger(__name__)


def open_trial_run(tracker: Tracker, parent_id: str, name: str, row: dict, cfg) -> str:
    """Create (or find) the trial's nested run, with the config and the trial's settings as params."""
    from sarft_ray.data.roles import role_slug

    run_id = tracker.open_run(
        f"sweep/{name}/trial/{row['trial_id']}",
        trial_run_name(row),
        "trial",
        parent_id=parent_id,
        tags={"sarft.role": row["role"], "sarft.method": str(row["selection"]), "sarft.trial_id": row["trial_id"],
              "sarft.role_slug": role_slug(row["role"])},
    )
    overrides = {k: row[k] for k in row["varied"] if k != "role"}
    resolved = cfg.resolved()
    resolved["training"] = {**resolved["training"], **overrides}
    trial_params = {"role": row["role"]} | {f"trial.{k}": str(v) for k, v in overrides.items()}
    tracker.log_params(run_id, flatten_params(resolved) | trial_params)
    return run_id


def log_trial(tracker: Tracker, parent_id: str, name: str, row: dict, cfg, error: str | None = None) -> str:
    """Log what the trial's run is missing (training history, evaluation, artefacts) and close it."""
    run_id = open_trial_run(tracker, parent_id, name, row, cfg)
    if row["status"] == "ok":
        train_dir = Path(row["train_dir"])
        summary = {**json.loads((train_dir / "summary.json").read_text(encoding="utf-8")), "run_dir": str(train_dir), "artefact": row["artefact"]}
        log_training(tracker, run_id, summary, stages.TRAIN_STEP_KEYS)
        log_evaluation(tracker, run_id, Path(row["eval_dir"]), {k: row.get(k) for k in headline_keys(cfg)})
        tracker.finish(run_id)
    else:
        if error:
            tracker.set_tags(run_id, {"sarft.error": error[:5000]})
        tracker.finish(run_id, "FAILED")
    return run_id


def make_logger(spec: TrackerSpec, parent_id: str, name: str, varied: list[str], cfg):
    from ray import tune

    class MlflowTrialLogger(tune.Callback):
        """Logs training steps as they arrive and each trial when it finishes or fails (on the Tune driver)."""

        def __init__(self):
            self._tracker = None
            self._runs: dict[str, str] = {}
            self._steps: dict[str, set[int]] = {}

        def __getstate__(self):  # pickled into Tune's state: keep the client out
            return {"_tracker": None, "_runs": {}, "_steps": {}}

        def _get(self) -> Tracker:
            if self._tracker is None:
                self._tracker = Tracker(spec)
            return self._tracker

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "loss" not in result or "step" not in result:  # only training steps are logged live
                return
            try:
                tracker, trial_id, step = self._get(), trial.trial_id, int(result["step"])
                if trial_id not in self._runs:
                    row = trial_row(trial_id, trial.config, {}, varied, cfg)
                    self._runs[trial_id] = open_trial_run(tracker, parent_id, name, row, cfg)
                    # a trial restarted after a driver died repeats steps an earlier driver logged
                    self._steps[trial_id] = tracker.logged_steps(self._runs[trial_id], "train/loss")
                if step in self._steps[trial_id]:
                    return
                values = {k: result[k] for k in stages.TRAIN_STEP_KEYS if k in result}
                tracker.log_metrics(self._runs[trial_id], values, step=step, prefix="train/")
                self._steps[trial_id].add(step)
            except Exception:
                log.exception("could not log a step of trial %s to MLflow", trial.trial_id)

        def on_trial_complete(self, iteration, trials, trial, **info):
            try:
                row = trial_row(trial.trial_id, trial.config, trial.last_result or {}, varied, cfg)
                log_trial(self._get(), parent_id, name, row, cfg)
            except Exception:  # logging must not stop the sweep; the pass after fit retries
                log.exception("could not log trial %s to MLflow", trial.trial_id)

        def on_trial_error(self, iteration, trials, trial, **info):
            try:
                row = trial_row(trial.trial_id, trial.config, {}, varied, cfg)
                log_trial(self._get(), parent_id, name, row, cfg, error=str(getattr(trial, "error_msg", "") or ""))
            except Exception:
                log.exception("could not log failed trial %s to MLflow", trial.trial_id)

    return MlflowTrialLogger()


def log_best(tracker: Tracker, parent: str, best: dict, metric: str) -> None:
    from sarft_ray.data.roles import role_slug

    for role, entry in best.items():
        slug = role_slug(role)
        if entry["best"] is None:
            tracker.set_tags(parent, {f"sarft.best.{slug}": f"none: {entry['reason']}"})
            continue
        tracker.set_tags(parent, {f"sarft.best.{slug}": entry["best"]["trial_id"]})
        tracker.log_summary(parent, {f"best.{slug}.{metric}": entry["best"].get(metric)})
