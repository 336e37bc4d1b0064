"""The recipe under Ray Train: N workers, fault tolerance, checkpoints in the run directory.

The per-worker function is ``recipe.train`` with a checkpoint store backed by
``ray.train``. A restarted worker group (FailureConfig) and a re-run of the
driver with the same run name and storage path both resume from the latest
reported checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from sarft_ray.atomic import remove_stale
from sarft_ray.capacity import check_stage, placeable_workers  # noqa: F401 - placeable_workers: re-exported
from sarft_ray.stage_needs import training_need
from sarft_ray.errors import SarftError
from sarft_ray.ray_utils import root_cause
from sarft_ray.storage import is_uri, join, list_dirs, read_text, remove_dir
from sarft_ray.training.checkpointing import FINAL, install_final
from sarft_ray.training.config import TrainingConfig
from sarft_ray.training.recipe import FAIL_ENV, TrainJob, train

log = logging.getLogger(__name__)

# Environment every training worker gets (DeepSpeed picks its accelerator at import).
_WORKER_ENV_PASSTHROUGH = (FAIL_ENV, "TORCH_EXTENSIONS_DIR", "SARFT_CACHE_DIR", "SARFT_DATA_DIR", "HF_HOME")


class TrainingFailed(SarftError, RuntimeError):
    """The worker group failed more often than ``training.max_failures`` allows (one line: the root cause)."""


class RayTrainCheckpoints:
    """``CheckpointStore`` on top of ``ray.train.get_checkpoint`` / ``ray.train.report``.

    Every worker writes its own part (DeepSpeed ZeRO writes one optimizer shard
    per rank) to a local temporary directory; Ray merges the parts of one
    report into one checkpoint directory in the run's storage.
    """

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)

    def save(self, metrics: dict, write: Callable[[Path], None]) -> None:
        import ray.train

        with tempfile.TemporaryDirectory(prefix="sarft-ckpt-") as tmp:
            write(Path(tmp))
            has_files = any(Path(tmp).iterdir())
            checkpoint = ray.train.Checkpoint.from_directory(tmp) if has_files else None
            ray.train.report(_scalars(metrics), checkpoint=checkpoint)

    def log(self, metrics: dict) -> None:
        import ray.train

        ray.train.report(_scalars(metrics))

    def flush(self) -> None:
        """Wait until Ray Train has registered every checkpoint reported so far."""
        import ray.train

        ray.train.get_all_reported_checkpoints()


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}


def _quiet_report_logs() -> None:
    """Ray Train logs every report at INFO with its full metrics; one line per step is noise here."""
    try:
        from ray.train.v2._internal.execution import context

        logging.getLogger(context.__file__).setLevel(logging.WARNING)
        logging.getLogger("ray.train.v2._internal.execution.storage").setLevel(logging.WARNING)
    except ImportError:  # another Ray version: keep its logging as it is
        pass


def train_loop_per_worker(config: dict):
    """What each Ray Train worker runs; rank 0's return value becomes ``Result.return_value``."""
    _quiet_report_logs()
    return train(TrainJob.from_dict(config["job"]), RayTrainCheckpoints())


def step_callback(on_step: Callable[[dict], None]):
    """A Ray Train callback that hands each step's metrics to ``on_step``.

    Ray Train runs callbacks in its controller process, not in the driver:
    ``on_step`` must be picklable and should write somewhere (MLflow, a file)
    rather than mutate the caller's objects.
    """
    from ray.train import UserCallback

    class StepMetrics(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            # ``metrics`` has one dict per worker; every worker reports the same all-reduced values
            if metrics and "loss" in metrics[0]:
                on_step(dict(metrics[0]))

    return StepMetrics()


def check_cluster_fits(cfg: TrainingConfig, prefix: str = "training") -> None:
    """Fail now, naming the fields, when a local cluster cannot place every worker (instead of waiting forever).

    A joined cluster may grow, so there the shortfall is only logged.
    """
    import ray

    need = training_need(cfg, prefix)
    check_stage([need])
    if placeable_workers(ray.nodes(), cfg.cpus_per_worker, cfg.gpus_per_worker) < cfg.workers:
        log.warning("%s: no set of nodes holds every worker whole now; training waits for nodes to be added", need.describe())


def worker_env() -> dict[str, str]:
    """Environment variables for the training workers."""
    env = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "TOKENIZERS_PARALLELISM": "false"}
    for key in _WORKER_ENV_PASSTHROUGH:
        if key in os.environ:
            env[key] = os.environ[key]
    return env


SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's list of the checkpoints it resumes from and prunes


def remove_unregistered_checkpoints(storage: str | Path) -> list[str]:
    """Delete the ``checkpoint_*`` directories in a Ray Train run's storage that its snapshot does not list.

    A driver killed while a checkpoint was being saved (or between writing the
    snapshot and pruning) leaves a directory Ray Train never resumes from and
    never deletes. A snapshot this code cannot read leaves everything as it is.
    ``storage`` is a local path or a URI (``ray.storage_path``); returns the names removed.
    """
    location = str(storage)
    found = list_dirs(location, "checkpoint_")
    if not found:
        return []
    registered: set[str] = set()
    snapshot = read_text(join(location, SNAPSHOT))
    if snapshot is not None:
        try:
            state = json.loads(snapshot)
            results = state["checkpoint_results"] + state["pending_training_results"] + [state["latest_checkpoint_result"]]
            registered = {r["checkpoint_dir_name"] for r in results if r}
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: not read (%s); unregistered checkpoints are left in place", join(location, SNAPSHOT), exc)
            return []
    stale = [name for name in found if name not in registered]
    for name in stale:
        remove_dir(join(location, name))
    return stale


def fit(
    job: TrainJob,
    output_dir: Path,
    storage_path: str | Path,
    name: str = "ray",
    on_step: Callable[[dict], None] | None = None,
    callbacks: list | None = None,
) -> dict:
    """Run the job on Ray Train, install the artefact in ``output_dir``, return the summary.

    Ray must already be initialised. Checkpoints live in ``storage_path/name``
    (a local path or a URI: ``storage.run_storage``); running again with the
    same two values resumes the latest checkpoint.
    ``on_step`` and ``callbacks`` (``ray.train.UserCallback``) see every step's
    metrics; both run in Ray Train's controller process.
    """
    from ray.train import (
        CheckpointConfig,
        FailureConfig,
        RunConfig,
        ScalingConfig,
        TrainingFailedError,
    )
    from ray.train.torch import TorchConfig, TorchTrainer

    from sarft_ray.models import ModelConfig
    from sarft_ray.preflight import check_model_loads

    cfg = TrainingConfig.model_validate(job.training)
    # What would otherwise fail in every worker, or never start, fails here in one line.
    check_cluster_fits(cfg, "alignment.training" if job.meta.get("stage") == "alignment" else "training")
    check_model_loads(ModelConfig.model_validate(job.model))
    use_gpu = cfg.gpus_per_worker > 0
    resources = {"CPU": cfg.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = cfg.gpus_per_worker
    env = worker_env()
    if not use_gpu:
        env["DS_ACCELERATOR"] = "cpu"
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": job.to_dict()},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage_path) if is_uri(str(storage_path)) else str(Path(storage_path).resolve()),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            worker_runtime_env={"env_vars": env},
            callbacks=list(callbacks or []) + ([step_callback(on_step)] if on_step else []),
        ),
    )
    # What a killed run left: half-saved checkpoints, a half-copied artefact.
    leftovers = remove_unregistered_checkpoints(join(str(storage_path), name)) + [p.name for p in remove_stale(output_dir)]
    if leftovers:
        log.info("removed %d leftover(s) of an interrupted run: %s", len(leftovers), ", ".join(leftovers))
    try:
        result = trainer.fit()
    except TrainingFailedError as exc:
        raise TrainingFailed(
            f"{storage_path}: training failed after {cfg.max_failures} restart(s) ({root_cause(exc)}); "
            "running the same command again resumes from the last checkpoint"
        ) from exc
    if result.error is not None:
        raise result.error
    if result.checkpoint is None:
        raise RuntimeError(f"{storage_path}: training finished without a final checkpoint")
    with result.checkpoint.as_directory() as directory:
        return install_final(Path(directory) / FINAL, Path(output_dir))
