"""What ``tracking.py``'s store receives about a stage's results: figures, names, weights, answers, live steps.

- ``log_training``/``log_evaluation``: a training run's curves, figures, files
  and weights; an evaluation's figures, tables and answers;

- ``run_name``: ``John Doe · sarft · λ=3``, what the MLflow UI lists;
- ``model_artefacts``: the adapter (or, on request, the fully fine-tuned
  model) to upload, by ``tracking.log_model``;
- ``answers_table``: what a model answered, one table per evaluation
  (``MlflowClient.log_table``): one row per answer with the benchmark, the role
  it was asked as (empty without a role prompt), the user message as sent (a
  jailbreak's wrapped text), the reply, the judge's verdict (safety
  benchmarks) and the ROUGE-L score (RoleBench), read from the evaluation's
  stored files, so it shows exactly the answers its figures came from;
- ``LiveSteps``: training steps logged as they arrive, each step once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarft_ray.secrets import redact_text

if TYPE_CHECKING:
    from sarft_ray.orchestration.tracking import Tracker

log = logging.getLogger(__name__)

ANSWER_COLUMNS = ("benchmark", "role", "prompt", "response", "verdict", "rouge_l_first")


def answers_table(eval_dir: str | Path) -> dict[str, list]:
    """Columns ``ANSWER_COLUMNS`` over every benchmark directory of ``eval_dir`` (sorted by benchmark)."""
    import pyarrow.parquet as pq

    columns: dict[str, list] = {name: [] for name in ANSWER_COLUMNS}
    for bench_dir in sorted(p for p in Path(eval_dir).iterdir() if p.is_dir()):
        judged, scored = bench_dir / "verdicts.parquet", bench_dir / "scores.parquet"
        generations = bench_dir / "generations.parquet"
        if not generations.is_file() or not (judged.is_file() or scored.is_file()):
            continue
        # generations keep every answer ever made under this model hash; the verdicts or scores are this evaluation's
        asked = {(r["item_id"], r["role"]): r for r in pq.read_table(generations, columns=["item_id", "role", "user", "response"]).to_pylist()}
        if judged.is_file():
            rows = pq.read_table(judged, columns=["benchmark", "item_id", "role", "label"]).to_pylist()
        else:
            rows = pq.read_table(scored, columns=["benchmark", "item_id", "role", "rouge_l_first"]).to_pylist()
        for row in rows:
            answer = asked.get((row["item_id"], row["role"]), {})
            columns["benchmark"].append(row["benchmark"])
            columns["role"].append(row["role"] or "")
            columns["prompt"].append(redact_text(answer.get("user") or ""))
            columns["response"].append(redact_text(answer.get("response") or ""))
            columns["verdict"].append(row.get("label") or "")
            columns["rouge_l_first"].append(row.get("rouge_l_first"))
    return columns


def run_name(role: str, arm: str, lambda_kl: float | None) -> str:
    """``John Doe · sarft · λ=3``: role, arm (or selection) and KL weight, as the MLflow UI lists runs."""
    parts = [role, arm]
    if lambda_kl is not None:
        parts.append(f"λ={lambda_kl:g}")
    return " · ".join(parts)


def trial_run_name(row: Mapping[str, Any]) -> str:
    """A sweep trial as ``run_name`` names a role's run, then any other setting the sweep varies:
    ``John Doe · rds · λ=0.5 · lr=0.0002``."""
    rest = [f"{k}={row[k]:g}" if isinstance(row[k], float) else f"{k}={row[k]}"
            for k in row["varied"] if k not in ("role", "selection", "lambda_kl")]
    lambda_kl = row.get("lambda_kl")
    return " · ".join([run_name(row["role"], str(row["selection"]), None if lambda_kl is None else float(lambda_kl)), *rest])


def model_artefacts(summary: Mapping[str, Any], log_model: str) -> list[tuple[Path, str]]:
    """``(local directory, artefact path)`` of the trained weights to upload under ``log_model``.

    ``adapter`` (the default) uploads a LoRA adapter (megabytes) and never a
    fully fine-tuned model (gigabytes); ``all`` uploads either; ``none`` nothing.
    """
    artefact = summary.get("artefact")
    if log_model == "none" or not artefact or not Path(artefact).is_dir():
        return []
    full = summary.get("mode") == "full" or Path(artefact).name == "model"
    if full and log_model != "all":
        return []
    return [(Path(artefact), "model" if full else "adapter")]


class LiveSteps:
    """Per-step training metrics logged as they arrive (``train/<key>``), each (run, step) once.

    The steps a run already holds (an earlier driver logged them before it
    stopped) are read once per run, so a resumed training run adds only new ones.
    """

    def __init__(self, tracker, keys: Iterable[str], prefix: str = "train/"):
        self.tracker = tracker
        self.keys = list(keys)
        self.prefix = prefix
        self._logged: dict[str, set[int]] = {}

    def log(self, run_id: str, metrics: Mapping[str, Any]) -> bool:
        """Log one step's metrics on ``run_id``; False when that step is there already."""
        if "step" not in metrics or not self.keys:
            return False
        done = self._logged.get(run_id)
        if done is None:
            done = self._logged[run_id] = self.tracker.logged_steps(run_id, self.prefix + self.keys[0])
        step = int(metrics["step"])
        if step in done:
            return False
        values = {k: metrics[k] for k in self.keys if k in metrics}
        try:
            self.tracker.log_metrics(run_id, values, step=step, prefix=self.prefix)
        except Exception:  # noqa: BLE001 - a live curve is not worth the run; the summary logs every step again
            log.warning("could not log training step %d of MLflow run %s", step, run_id, exc_info=True)
            return False
        done.add(step)
        return True


# ---------------------------------------------------------------------------- stage results


def log_training(tracker: Tracker, run_id: str, summary: Mapping[str, Any], step_keys: Iterable[str]) -> None:
    """Per-step history as ``train/<key>``, end-of-run figures, the summary file, where the weights are and,
    by ``tracking.log_model``, the weights themselves (``adapter/`` or ``model/``, uploaded once)."""
    tracker.log_history(run_id, summary.get("history", []), step_keys, prefix="train/")
    tracker.log_summary(
        run_id,
        {
            "first_loss": summary.get("first_loss"),
            "last_loss": summary.get("last_loss"),
            "steps": summary.get("final_step"),
            "rows_total": summary.get("rows"),
            "harmful_rows_total": summary.get("harmful_rows"),
            "mean_tokens_per_s": summary.get("mean_tokens_per_s"),
        },
        prefix="train/",
    )
    tracker.set_tags(run_id, {"sarft.artefact": summary.get("artefact"), "sarft.train_dir": summary.get("run_dir")})
    if summary.get("run_dir"):
        tracker.log_artifact(run_id, Path(summary["run_dir"]) / "summary.json", "train")
        tracker.log_artifact(run_id, Path(summary["run_dir"]) / "config.yaml", "train")
    tracker.log_text(run_id, f"{summary.get('artefact')}\n", "train/artefact_location.txt")
    for local, artifact_path in model_artefacts(summary, getattr(tracker.spec, "log_model", "adapter")):
        if not tracker.artifact_names(run_id, artifact_path):  # weights do not change under one run: upload once
            tracker.log_artifact(run_id, local, artifact_path)


ANSWERS_TABLE = "eval/answers.json"


def log_evaluation(tracker: Tracker, run_id: str, directory: Path, headline: Mapping[str, Any]) -> None:
    """Headline figures as ``eval/<key>``; the evaluation tables as artefacts; every answer as an MLflow table."""
    tracker.log_summary(run_id, headline, prefix="eval/")
    tracker.set_tags(run_id, {"sarft.eval_dir": str(directory)})
    for name in ("table.json", "table.md"):
        tracker.log_artifact(run_id, Path(directory) / name, "eval")
    # log_table appends to a table that exists: a re-run that finds the same evaluation logs nothing
    if Path(ANSWERS_TABLE).name not in tracker.artifact_names(run_id, str(Path(ANSWERS_TABLE).parent)):
        tracker.client.log_table(run_id, answers_table(directory), ANSWERS_TABLE)
