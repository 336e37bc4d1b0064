"""Read a DeepSpeed JSON config and fill its ``"auto"`` fields from the training config.

Batch sizes, clipping and precision come from ``TrainingConfig`` and the
model's dtype, so the JSON only carries the ZeRO settings. A number written in
the JSON that disagrees with the training config is an error rather than a
silent override.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sarft_ray.errors import SarftError
from sarft_ray.paths import packaged_configs
from sarft_ray.training.config import TrainingConfig

DEFAULT_CONFIG = packaged_configs() / "ds_zero2.json"  # package data: present in an installed wheel too


def config_path(cfg: TrainingConfig) -> Path:
    """The JSON file ``training.deepspeed`` names, or the packaged ZeRO-2 default (``sarft_ray/configs/ds_zero2.json``)."""
    path = Path(cfg.deepspeed) if cfg.deepspeed is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise SarftError(f"{path}: training.deepspeed: file not found")
    return path


def read_config(path: Path) -> dict:
    """Parse the JSON, naming the line and column of a syntax error."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SarftError(f"{path}:{exc.lineno}: training.deepspeed: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise SarftError(f"{path}: training.deepspeed: expected a JSON object")
    zero = data.get("zero_optimization", {})
    if not isinstance(zero, dict) or not isinstance(zero.get("stage", 0), int):
        raise SarftError(f"{path}: training.deepspeed: zero_optimization must be an object with an integer stage")
    if "optimizer" in data or "scheduler" in data:
        # the recipe builds AdamW and the LR schedule itself, from training.lr / lr_schedule
        raise SarftError(f"{path}: training.deepspeed: remove 'optimizer'/'scheduler'; set training.lr and lr_schedule instead")
    return data


def _fill(data: dict, key: str, value, path: Path) -> None:
    current = data.get(key, "auto")
    if current == "auto":
        data[key] = value
    elif current != value:
        raise SarftError(f"{path}: training.deepspeed: {key} is {current} but the training config gives {value}; use \"auto\"")


def resolve_config(cfg: TrainingConfig, world_size: int, dtype: torch.dtype, path: Path | None = None) -> dict:
    """The DeepSpeed config dict for this run: precision from ``dtype``, batch sizes from ``cfg``."""
    path = path or config_path(cfg)
    data = read_config(path)
    _fill(data, "train_micro_batch_size_per_gpu", cfg.micro_batch_size, path)
    _fill(data, "gradient_accumulation_steps", cfg.grad_accum_steps, path)
    _fill(data, "train_batch_size", cfg.micro_batch_size * cfg.grad_accum_steps * world_size, path)
    _fill(data, "gradient_clipping", cfg.max_grad_norm, path)
    for name, wanted in (("bf16", dtype == torch.bfloat16), ("fp16", dtype == torch.float16)):
        section = dict(data.get(name, {}))
        if section.get("enabled", "auto") == "auto":
            section["enabled"] = wanted
        elif bool(section["enabled"]) != wanted:
            raise SarftError(f"{path}: training.deepspeed: {name}.enabled contradicts the model dtype {dtype}; use \"auto\"")
        data[name] = section
    return data
