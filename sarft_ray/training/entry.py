"""``train_role``: fine-tune one role from its scored training set (what the CLI and jobs/train.py call).

Output, under ``<output_root>/<experiment>/train/<role-slug>/<run-hash>/``:
``adapter/`` (LoRA, PEFT format) or ``model/`` (full, safetensors), ``config.yaml``
(the resolved experiment config with the overrides applied), ``summary.json``
(written last: its presence means the run finished) and ``ray/`` (Ray Train
checkpoints; a re-run with the same inputs resumes from them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import ValidationError

from sarft_ray.errors import SarftError
from sarft_ray.hashing import json_digest
from sarft_ray.training.checkpointing import (
    FINAL,
    LocalCheckpoints,
    install_final,
    write_text_atomic,
)
from sarft_ray.training.config import NOT_HASHED, TrainingConfig
from sarft_ray.training.data import check_training_table, table_rows
from sarft_ray.training.recipe import TrainJob

if TYPE_CHECKING:
    from sarft_ray.scoring.store import StoredScores

log = logging.getLogger(__name__)


def training_overrides(training: TrainingConfig, source: str, **updates) -> TrainingConfig:
    """Apply command-line overrides (``None`` means keep) and validate the result."""
    changes = {k: v for k, v in updates.items() if v is not None}
    if not changes:
        return training
    try:
        return TrainingConfig.model_validate({**training.model_dump(exclude_unset=False), **changes})
    except ValidationError as exc:
        from sarft_ray.config_text import format_validation_error

        # name fields by their place in the experiment config
        raise SarftError(format_validation_error(source, exc).replace(f"{source}: ", f"{source}: training.", 1)) from None


def table_digest(rows: list[dict]) -> str:
    """A hash of exactly what training reads from the table."""
    return json_digest([[r["input"], r["output"], bool(r["is_harmful"])] for r in rows], 16, ascii_only=False)


def run_hash(model: dict, training: TrainingConfig, rows_digest: str, system_prompt: str | None, ds_config: dict) -> str:
    """What determines the trained weights: model, training settings, data, prompt, DeepSpeed settings."""
    from sarft_ray.config import config_hash

    settings = training.hashed_settings(set(NOT_HASHED))
    return config_hash(model, settings, rows_digest, system_prompt, ds_config)


def train_role(
    cfg,
    role: str,
    selection: str | None = None,
    lambda_kl: float | None = None,
    *,
    training_set: pa.Table | None = None,
    scores: StoredScores | None = None,
    use_ray: bool = True,
    force: bool = False,
    on_step: Callable[[dict], None] | None = None,
    ray_callbacks: list | None = None,
    **training_updates,
) -> dict:
    """Fine-tune ``role`` and return its summary (with ``run_dir`` and ``artefact`` paths added).

    ``cfg`` is an ``ExperimentConfig``. ``selection`` / ``lambda_kl`` /
    ``training_updates`` override the config's training section.
    ``scores`` is where the scoring stage stored the scores (the pipeline and
    the sweep pass what scoring returned); without it they are found from the
    config's inputs, and without stored scores a SarftError says to run
    ``sarft-ray score`` first. ``training_set`` skips scores altogether (tests, notebooks).
    ``use_ray=False`` trains in this process (one worker, no Ray).
    ``on_step`` receives each step's metrics: in this process without Ray, in
    Ray Train's controller process under Ray (so it must be picklable, e.g. an
    MLflow logger); ``ray_callbacks`` are extra ``ray.train.UserCallback``s.
    A finished run with the same inputs is returned as is unless ``force``.
    """
    from sarft_ray.alignment.stage import starting_config
    from sarft_ray.data.roles import match_role, role_slug
    from sarft_ray.training.deepspeed_config import config_path, read_config

    cfg = starting_config(cfg, use_ray=use_ray)
    source = str(cfg.source or "config")
    training = training_overrides(cfg.training, source, selection=selection, lambda_kl=lambda_kl, **training_updates)
    if not use_ray and training.workers != 1:
        training = training.model_copy(update={"workers": 1})  # one process is one worker
    role = match_role(role, cfg.roles.names, f"{source}: roles.names")
    ds_path = config_path(training)
    ds_config = read_config(ds_path)  # a config that does not parse fails here, before any worker starts

    if training_set is None:
        from sarft_ray.scoring.store import load_training_set

        training_set = load_training_set(cfg, role, training.selection, scores=scores)
    label = f"training set of role '{role}'"
    check_training_table(training_set, label)
    rows = table_rows(training_set)

    system_prompt = None
    if training.use_system_prompt:
        from sarft_ray.data.prompts import load_role_prompts

        system_prompt = load_role_prompts(cfg.roles.prompts, [role])[role].role_prompt

    from sarft_ray.models.identity import model_identity

    model = cfg.model.model_dump(mode="json")
    digest = table_digest(rows)
    identity = model_identity(cfg.model, weights=False)
    run_dir = Path(cfg.experiment_dir) / "train" / role_slug(role) / run_hash(identity, training, digest, system_prompt, ds_config)
    done = run_dir / "summary.json"
    if done.is_file() and not force:
        log.info("%s: finished run found, not training again", run_dir)
        return _with_paths(json.loads(done.read_text()), run_dir)

    resolved = cfg.with_updates(training=training).resolved()
    import yaml

    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump({"role": role, **resolved}, sort_keys=False))
    job = TrainJob(
        model=model,
        training=training.model_dump(mode="json"),
        rows=rows,
        run_dir=str(run_dir.resolve()),
        role=role,
        system_prompt=system_prompt,
        meta={"selection": training.selection, "training_set_digest": digest, "deepspeed_config": str(ds_path)},
    )
    if force:
        _clear_previous(run_dir)
        if cfg.ray.storage_path is not None:  # the checkpoints a forced run must not resume from
            from sarft_ray.storage import join, remove_dir, run_storage

            remove_dir(join(run_storage(cfg.ray.storage_path, run_dir, cfg.output_root), "ray"))
    if use_ray:
        from sarft_ray.ray_utils import init_ray
        from sarft_ray.storage import run_storage
        from sarft_ray.training.ray_trainer import fit

        init_ray(cfg.ray)
        storage = run_storage(cfg.ray.storage_path, run_dir, cfg.output_root)
        summary = fit(job, output_dir=run_dir, storage_path=storage, name="ray", on_step=on_step, callbacks=ray_callbacks)
    else:
        from sarft_ray.training.recipe import train

        store = LocalCheckpoints(run_dir / "checkpoints", keep=training.keep_checkpoints)
        train(job, store, on_step=on_step)
        with store.latest() as latest:
            summary = install_final(latest / FINAL, run_dir)
    return _with_paths(summary, run_dir)


def summary_lines(summary: dict) -> list[str]:
    """A few lines for the terminal: where the artefact is and how the loss moved."""
    history = summary.get("history") or []
    lines = [
        (
            f"role: {summary.get('role')}  mode: {summary.get('mode')}  selection: {summary.get('selection')}  "
            f"lambda: {summary.get('lambda_kl')}"
        ),
        (
            f"rows: {summary.get('rows')} ({summary.get('harmful_rows')} harmful)  "
            f"steps: {summary.get('final_step')}/{summary.get('steps')}  workers: {summary.get('world_size')}"
        ),
    ]
    if history:
        lines.append(
            f"loss: {history[0]['loss']:.4f} -> {history[-1]['loss']:.4f}  "
            f"(ce {history[-1]['ce']:.4f}, kl {history[-1]['kl']:.4f})  tokens/s: {summary.get('mean_tokens_per_s') or 0:.0f}"
        )
    if summary.get("resumed_from_steps"):
        lines.append(f"resumed from step(s): {', '.join(map(str, summary['resumed_from_steps']))}")
    lines.append(f"saved: {summary.get('artefact')}")
    return lines


def _clear_previous(run_dir: Path) -> None:
    import shutil

    names = ["ray", "checkpoints", "adapter", "model", "summary.json"]
    names += [p.name for p in run_dir.glob("fault_injected_at_step_*")] if run_dir.is_dir() else []
    for name in names:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _with_paths(summary: dict, run_dir: Path) -> dict:
    artefact = next((run_dir / n for n in ("adapter", "model") if (run_dir / n).is_dir()), None)
    return {**summary, "run_dir": str(run_dir), "artefact": str(artefact) if artefact else None}
