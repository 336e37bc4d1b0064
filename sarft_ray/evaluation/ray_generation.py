"""Generation on a Ray Data actor pool: each actor loads the model once and answers batches.

On a 2-CPU machine an actor pool that claims every CPU leaves none for the
read tasks and the pipeline stalls, hence fractional ``actor_num_cpus``.
Rows carry a ``_row`` index so the output is put back in input order and a
lost row is detected instead of going unnoticed.

Nothing waits forever: the pool is checked against the cluster first
(``capacity.py``), the driver gives up when no batch arrives for
``SARFT_RAY_STALL_TIMEOUT_S``, an actor that fails to start or dies is not
restarted (``ACTOR_RESTARTS``), and a failure (a model or adapter that does
not load) ends the run with one line naming the model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from sarft_ray.devices import pick_device
from sarft_ray.evaluation.config import EvaluationConfig, GenerationConfig
from sarft_ray.evaluation.generation import generate_table, load_generator
from sarft_ray.models import ModelConfig
from sarft_ray.ray_utils import ACTOR_RESTARTS, actor_pool, bounded_batches, is_ray_error, ray_failure, remote_args_allowed

log = logging.getLogger(__name__)


class GenerationActor:
    """Callable class for ``map_batches``: model in ``__init__``, one batch per call."""

    def __init__(
        self, model_cfg: dict, adapter: str | None, gen_cfg: dict, device: str, num_gpus: float, torch_threads: int | None
    ):
        import torch

        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        self.cfg = GenerationConfig.model_validate(gen_cfg)
        device = pick_device(device, num_gpus)  # decided here: the driver may see other devices
        self.model, self.tokenizer = load_generator(ModelConfig.model_validate(model_cfg), adapter, device)
        log.info("generation actor ready on %s with %d torch thread(s)", device, torch.get_num_threads())

    def __call__(self, batch: pa.Table) -> pa.Table:
        offset = batch.column("_row")[0].as_py() if batch.num_rows else 0
        return generate_table(self.model, self.tokenizer, batch, self.cfg, seed_offset=offset)


def generate_with_ray(
    table: pa.Table, model_cfg: ModelConfig, adapter: str | Path | None, cfg: EvaluationConfig, on_rows=None
) -> pa.Table:
    """Answer every row of ``table`` (``user``, ``system`` + any passthrough columns) on Ray.

    ``on_rows(n)`` hears of each batch of ``n`` answers as it arrives (a progress bar).
    """
    import ray

    from sarft_ray.capacity import check_stage
    from sarft_ray.stage_needs import generation_need, stalled

    if table.num_rows == 0:
        return table
    need = generation_need(cfg)
    check_stage([need])
    indexed = table.append_column("_row", pa.array(range(table.num_rows), type=pa.int64()))
    # Similar lengths in one batch waste less padding; one block per batch lets every actor get work.
    size = [len(u) + len(s or "") for u, s in zip(table.column("user").to_pylist(), table.column("system").to_pylist())]
    indexed = indexed.take(sorted(range(table.num_rows), key=size.__getitem__))
    step = cfg.generation.batch_size
    blocks = [indexed.slice(start, step) for start in range(0, indexed.num_rows, step)]
    dataset = ray.data.from_arrow(blocks)
    dataset.context.max_errored_blocks = 0  # a batch that fails fails the run
    with remote_args_allowed():
        dataset = dataset.map_batches(
            GenerationActor,
            fn_constructor_kwargs={
                "model_cfg": model_cfg.model_dump(mode="json"),
                "adapter": str(adapter) if adapter is not None else None,
                "gen_cfg": cfg.generation.model_dump(mode="json"),
                "device": cfg.device,
                "num_gpus": cfg.actor_num_gpus,
                "torch_threads": cfg.torch_threads,
            },
            compute=actor_pool(cfg.num_actors, cfg.min_actors),
            num_cpus=cfg.actor_num_cpus,
            num_gpus=cfg.actor_num_gpus,
            batch_size=cfg.generation.batch_size,
            batch_format="pyarrow",
            **ACTOR_RESTARTS,
        )
    what = model_cfg.ref + (f" with adapter {adapter}" if adapter is not None else "")
    try:
        batches = dataset.iter_batches(batch_size=None, batch_format="pyarrow")
        parts = []
        for part in bounded_batches(batches, stalled(need, f"generation ({what})")):
            parts.append(part)
            if on_rows is not None:
                on_rows(part.num_rows)
    except Exception as exc:
        if not is_ray_error(exc):
            raise
        raise ray_failure(exc, f"{what}: generation failed") from exc
    out = pa.concat_tables(parts, promote_options="default").sort_by("_row")
    rows = out.column("_row").to_pylist()
    if rows != list(range(table.num_rows)):
        raise RuntimeError(f"generation returned {len(rows)} rows for {table.num_rows} inputs")
    return out.drop_columns(["_row"])
