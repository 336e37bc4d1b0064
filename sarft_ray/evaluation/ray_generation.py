"""Generation on a Ray Data actor pool: each actor loads the model once and answers batches.

On a 2-CPU machine an actor pool that claims every CPU leaves none for the
read tasks and the pipeline stalls, hence fractional ``actor_num_cpus``.
Rows carry a ``_row`` index so the output is put back in input order and a
lost row is detected instead of going unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from sarft_ray.evaluation.config import EvaluationConfig, GenerationConfig
from sarft_ray.evaluation.generation import generate_table, load_generator
from sarft_ray.models import ModelConfig


def pick_device(requested: str, num_gpus: float) -> str:
    """``auto`` means CUDA when this worker was given a GPU and one is visible."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"


class GenerationActor:
    """Callable class for ``map_batches``: model in ``__init__``, one batch per call."""

    def __init__(self, model_cfg: dict, adapter: str | None, gen_cfg: dict, device: str, num_gpus: float):
        self.cfg = GenerationConfig.model_validate(gen_cfg)
        device = pick_device(device, num_gpus)  # decided here: the driver may see other devices
        self.model, self.tokenizer = load_generator(ModelConfig.model_validate(model_cfg), adapter, device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        offset = batch.column("_row")[0].as_py() if batch.num_rows else 0
        return generate_table(self.model, self.tokenizer, batch, self.cfg, seed_offset=offset)


def generate_with_ray(
    table: pa.Table, model_cfg: ModelConfig, adapter: str | Path | None, cfg: EvaluationConfig
) -> pa.Table:
    """Answer every row of ``table`` (``user``, ``system`` + any passthrough columns) on Ray."""
    import ray

    if table.num_rows == 0:
        return table
    indexed = table.append_column("_row", pa.array(range(table.num_rows), type=pa.int64()))
    dataset = ray.data.from_arrow(indexed).map_batches(
        GenerationActor,
        fn_constructor_kwargs={
            "model_cfg": model_cfg.model_dump(mode="json"),
            "adapter": str(adapter) if adapter is not None else None,
            "gen_cfg": cfg.generation.model_dump(mode="json"),
            "device": cfg.device,
            "num_gpus": cfg.actor_num_gpus,
        },
        compute=ray.data.ActorPoolStrategy(size=cfg.num_actors),
        num_cpus=cfg.actor_num_cpus,
        num_gpus=cfg.actor_num_gpus,
        batch_size=cfg.generation.batch_size,
        batch_format="pyarrow",
    )
    out = pa.concat_tables(ray.get(dataset.to_arrow_refs()), promote_options="default").sort_by("_row")
    rows = out.column("_row").to_pylist()
    if rows != list(range(table.num_rows)):
        raise RuntimeError(f"generation returned {len(rows)} rows for {table.num_rows} inputs")
    return out.drop_columns(["_row"])
