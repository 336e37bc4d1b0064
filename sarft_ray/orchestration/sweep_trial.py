"""One sweep trial: what runs inside Tune (train, then evaluate), and the trials-table row it becomes."""

from __future__ import annotations

from typing import Any

from sarft_ray.orchestration import stages
from sarft_ray.orchestration.sweep_space import headline_keys, trial_evaluation

# Training settings every trials-table row shows, varied or not.
SETTINGS = ("selection", "lambda_kl", "mode", "lr")


def sweep_trial(params: dict, cfg=None, scores=None) -> None:
    """Tune function trainable: train ``params['role']`` from ``scores`` (the driver's ``StoredScores``) with the
    other params as training settings, then evaluate.

    Training steps reach Tune as intermediate results; the evaluation headline is the last one.
    """
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    role = params["role"]
    overrides = {k: v for k, v in params.items() if k != "role"}
    # each training step reaches Tune (and the driver's MLflow logger) as an intermediate result
    summary = stages.train(cfg, role, scores, ray_callbacks=[TuneReportCallback()], **overrides)
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
    for key in SETTINGS:
        row[key] = config.get(key, getattr(cfg.training, key))
    for key in config:  # the trial config's own order: a set's would follow string hashing
        if key != "role" and key not in row:
            row[key] = config[key]
    for key in headline_keys(cfg) + ["train_last_loss", "train_steps", "artefact", "train_dir", "eval_dir"]:
        row[key] = metrics.get(key)
    row["status"] = "ok" if metrics.get("sarft_done") else "failed"
    return row
