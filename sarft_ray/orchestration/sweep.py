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
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarft_ray.errors import SarftError
from sarft_ray.orchestration import analysis, plots, report, stages
from sarft_ray.orchestration.store import read_json, write_json, write_text
from sarft_ray.orchestration.tracking import (
    Tracker,
    TrackerSpec,
    flatten_params,
    log_evaluation,
    log_training,
    ui_hint,
)

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


# ---------------------------------------------------------------------------- settings


def sweep_section(cfg):
    sweep = getattr(cfg, "sweep", None)
    if sweep is None:
        raise SarftError(f"{cfg.source or 'config'}: no 'sweep' section; add one to run a sweep")
    return sweep


def trial_evaluation(cfg):
    """The config trials are evaluated with: ``sweep.evaluation`` in place of the evaluation section, when set.

    Only evaluation changes: scoring and training keep the experiment's own
    section, so the training corpus holds out exactly what ``run`` holds out.
    """
    sweep = sweep_section(cfg)
    return cfg if sweep.evaluation is None else cfg.with_updates(evaluation=sweep.evaluation)


def check_sweep(cfg) -> None:
    """Checks that need the whole config: swept roles exist, objective metrics are ones evaluation reports."""
    from sarft_ray.data.roles import match_role

    sweep = sweep_section(cfg)
    source = str(cfg.source or "config")
    if "role" in sweep.space:
        for value in sweep.space["role"].values:
            match_role(str(value), cfg.roles.names, f"{source}: sweep.space.role")
    known = headline_keys(cfg)
    for where, metric in [("sweep.objective.metric", sweep.objective.metric)] + [
        (f"sweep.objective.constraints[{i}].metric", c.metric) for i, c in enumerate(sweep.objective.constraints)
    ]:
        if metric not in known:
            raise SarftError(f"{source}: {where}: unknown metric '{metric}'; this config reports {', '.join(known)}")


def headline_keys(cfg) -> list[str]:
    """The evaluation headline figures this config's benchmarks produce."""
    from sarft_ray.evaluation.catalogue import headline_keys as catalogue_keys

    ev = trial_evaluation(cfg).evaluation
    return catalogue_keys(ev.benchmarks, ev.jailbreaks)


def search_space(cfg) -> dict[str, Any]:
    """The sweep section as Tune's ``param_space``; ``role`` defaults to a grid over every configured role."""
    from ray import tune

    from sarft_ray.data.roles import match_role

    sweep = sweep_section(cfg)
    space: dict[str, Any] = {}
    for key, dim in sweep.space.items():
        if dim.grid is not None:
            values = dim.grid
            if key == "role":
                values = [match_role(str(v), cfg.roles.names, "sweep.space.role") for v in values]
            space[key] = tune.grid_search(values)
        elif dim.choice is not None:
            values = dim.choice
            if key == "role":
                values = [match_role(str(v), cfg.roles.names, "sweep.space.role") for v in values]
            space[key] = tune.choice(values)
        elif dim.uniform is not None:
            space[key] = tune.uniform(*dim.uniform)
        else:
            space[key] = tune.loguniform(*dim.loguniform)
    space.setdefault("role", tune.grid_search(list(cfg.roles.names)))
    return space


def sweep_name(cfg) -> str:
    """``sweep.name``, or ``sweep-<hash>`` of what decides the trials (not resources or the objective)."""
    sweep = sweep_section(cfg)
    return sweep.name or f"sweep-{sweep_key(cfg)}"


def sweep_key(cfg) -> str:
    sweep = sweep_section(cfg)
    return stages.results_key(cfg, sweep.model_dump(mode="json", include={"space", "num_samples", "seed", "evaluation"}))


# ---------------------------------------------------------------------------- one trial


def sweep_trial(params: dict, cfg=None) -> None:
    """Tune function trainable: train ``params['role']`` with the other params as training settings, then evaluate.

    Training steps reach Tune as intermediate results; the evaluation headline is the last one.
    """
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    role = params["role"]
    overrides = {k: v for k, v in params.items() if k != "role"}
    # each training step reaches Tune (and the driver's MLflow logger) as an intermediate result
    summary = stages.train(cfg, role, ray_callbacks=[TuneReportCallback()], **overrides)
    evaluated = stages.evaluate(trial_evaluation(cfg), role, summary)
    headline = stages.role_headline(evaluated.table, role)
    tune.report(
        {
            **{k: v for k, v in headline.items() if v is not None},
            "train_last_loss": summary.get("last_loss"),
            "train_steps": summary.get("final_step"),
            "artefact": summary.get("artefact"),
            "train_dir": summary.get("run_dir"),
            "eval_dir": str(evaluated.directory),
            "sarft_done": 1,
        }
    )


def trial_row(trial_id: str, config: dict, metrics: dict, varied: list[str], cfg) -> dict[str, Any]:
    """One line of the trials table: the trial's settings (sampled or from the config) and its figures."""
    row: dict[str, Any] = {"trial_id": trial_id, "role": config.get("role"), "varied": varied}
    for key in ("selection", "lambda_kl", "mode", "lr"):
        row[key] = config.get(key, getattr(cfg.training, key))
    for key in set(config) - {"role"} - set(row):
        row[key] = config[key]
    for key in headline_keys(cfg) + ["train_last_loss", "train_steps", "artefact", "train_dir", "eval_dir"]:
        row[key] = metrics.get(key)
    row["status"] = "ok" if metrics.get("sarft_done") else "failed"
    return row


# ---------------------------------------------------------------------------- MLflow, from the driver


def open_trial_run(tracker: Tracker, parent_id: str, name: str, row: dict, cfg) -> str:
    """Create (or find) the trial's nested run, with the config and the trial's settings as params."""
    from sarft_ray.data.roles import role_slug

    run_id = tracker.open_run(
        f"sweep/{name}/trial/{row['trial_id']}",
        " | ".join([row["role"], *(f"{k}={row[k]}" for k in row["varied"] if k != "role")]),
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
        summary = {**read_json(train_dir / "summary.json"), "run_dir": str(train_dir), "artefact": row["artefact"]}
        log_training(tracker, run_id, summary, stages.TRAIN_STEP_KEYS)
        log_evaluation(tracker, run_id, Path(row["eval_dir"]), {k: row.get(k) for k in headline_keys(cfg)})
        tracker.finish(run_id)
    else:
        if error:
            tracker.set_tags(run_id, {"sarft.error": error[:5000]})
        tracker.finish(run_id, "FAILED")
    return run_id


def _make_logger(spec: TrackerSpec, parent_id: str, name: str, varied: list[str], cfg):
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


# ---------------------------------------------------------------------------- the sweep


def run_sweep(cfg, resume: bool = True) -> SweepResult:
    """Run (or resume) the sweep of ``cfg``; returns every trial, the best per role and the outputs' paths."""
    from ray import tune

    from sarft_ray.alignment.stage import starting_config
    from sarft_ray.ray_utils import init_ray
    from sarft_ray.scoring.job import score_roles
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

        tuner = make_tuner(cfg, path, restoring, _make_logger(spec, parent, name, varied, cfg))
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
        rows.sort(key=lambda r: [str(r.get(k)) for k in varied])

        base = stages.evaluate(trial_evaluation(cfg), None)  # the reference point of the plots
        best = analysis.best_per_role([r for r in rows if r["status"] == "ok"], sweep.objective)
        for role in {r["role"] for r in rows} - set(best):
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
    made_from = read_json(path / STATE_FILE).get("key") if (path / STATE_FILE).is_file() else None
    if made_from != sweep_key(cfg):
        raise SarftError(
            f"{cfg.source or 'config'}: sweep.name: {path} holds a sweep with other settings; "
            "choose another name or start it afresh (--restart)"
        )


def make_tuner(cfg, path: Path, restoring: bool, logger):
    """A new Tuner for the sweep, or the one stored at ``path`` (finished trials kept, the rest resumed)."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    sweep = sweep_section(cfg)
    resources = {"cpu": sweep.trial_cpus} | ({"gpu": sweep.trial_gpus} if sweep.trial_gpus else {})
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, cfg=cfg), resources)
    if restoring:
        log.info("resuming sweep %s from %s", path.name, path)
        return tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
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


def log_best(tracker: Tracker, parent: str, best: dict, metric: str) -> None:
    from sarft_ray.data.roles import role_slug

    for role, entry in best.items():
        slug = role_slug(role)
        if entry["best"] is None:
            tracker.set_tags(parent, {f"sarft.best.{slug}": f"none: {entry['reason']}"})
            continue
        tracker.set_tags(parent, {f"sarft.best.{slug}": entry["best"]["trial_id"]})
        tracker.log_summary(parent, {f"best.{slug}.{metric}": entry["best"].get(metric)})


def _setting_text(key: str, value: Any) -> str:
    return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"


def objective_text(objective) -> str:
    """``max safety_avg; rolebench_spe_rouge_l_first >= 10``."""
    parts = [f"{objective.mode} {objective.metric}"]
    for c in objective.constraints:
        bounds = [f">= {c.min:g}" if c.min is not None else "", f"<= {c.max:g}" if c.max is not None else ""]
        parts.append(f"{c.metric} " + " and ".join(b for b in bounds if b))
    return "; ".join(parts)


def best_rows(best: dict, varied: list[str], metric: str) -> list[dict[str, Any]]:
    """One row per role: how many trials were eligible and the chosen one's settings and figure."""
    rows = []
    for role, entry in sorted(best.items()):
        chosen = entry["best"] or {}
        row = {"role": role, "trials": entry["trials"], "eligible": entry["eligible"]}
        row["best trial"] = chosen.get("trial_id")
        row |= {k: chosen.get(k) for k in varied if k != "role"}
        rows.append(row | {metric: chosen.get(metric), "note": entry["reason"] or ""})
    return rows


def write_sweep_outputs(cfg, name, rows, best, base_table, varied, report_dir: Path) -> Path:
    """trials.json/.md, best.json, plots and index.html under ``report_dir``; returns trials.json's path."""
    objective = sweep_section(cfg).objective
    report_dir.mkdir(parents=True, exist_ok=True)
    fixed = [k for k in ("selection", "lambda_kl", "mode", "lr") if k not in varied]
    columns = ["trial_id", *varied, *fixed, *headline_keys(cfg), "train_last_loss", "status"]
    table_path = report_dir / "trials.json"
    write_json(table_path, {"sweep": name, "columns": columns, "rows": rows})
    write_text(report_dir / "trials.md", report.markdown_table(columns, rows))
    chosen = best_rows(best, varied, objective.metric)
    write_json(report_dir / "best.json", {"objective": objective.model_dump(mode="json"), "best": chosen})

    settings = [k for k in varied if k != "role"]
    best_columns = ["role", "trials", "eligible", "best trial", *settings, objective.metric, "note"]
    blocks: list[report.Block] = [
        report.Table("Best trial per role", best_columns, chosen, note=f"objective: {objective_text(objective)}")
    ]
    ok = [r for r in rows if r["status"] == "ok"]
    if len({r["lambda_kl"] for r in ok}) > 1:
        group = ["role"] + [k for k in varied if k not in ("role", "lambda_kl")]
        chart = plots.lambda_sensitivity(ok, report_dir / "lambda_sensitivity.png", group)
        blocks.append(report.Figure("Lambda sensitivity", chart))
    points = method_points(ok, varied, base_table)
    if points:
        chart = plots.quality_vs_safety(points, report_dir / "quality_vs_safety.png", title=f"{name}: mean over roles")
        blocks.append(report.Figure("Role quality vs safety (mean over roles)", chart))
    blocks.append(report.Table("Trials", columns, rows, note="ROUGE-L F x100; refusal rates in %"))
    written = time.strftime("%Y-%m-%d %H:%M:%S")
    subtitle = f"experiment {cfg.experiment}; model {cfg.model.ref}; written {written}"
    report.write_report(report_dir / "index.html", f"SaRFT sweep: {name}", blocks, subtitle)
    return table_path


def method_points(rows: list[dict], varied: list[str], base_table: dict | None) -> list[dict[str, Any]]:
    """One point per setting (all varied keys but role): the mean over the roles it ran on; plus the base model."""
    keys = [k for k in varied if k != "role"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    points = []
    for setting, members in groups.items():
        label = ", ".join(_setting_text(k, v) for k, v in zip(keys, setting, strict=True) if k != "selection")
        point = {"method": str(members[0]["selection"]), "label": label}
        for metric in (analysis.QUALITY_METRIC, analysis.SAFETY_METRIC):
            values = [m[metric] for m in members if m.get(metric) is not None]
            point[metric] = sum(values) / len(values) if values else None
        points.append(point)
    if base_table is not None:
        points.append({"method": "base", "label": "base", **base_table["headline"]})
    return points
