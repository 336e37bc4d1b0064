"""The learning-rate schedule: ``transformers.get_scheduler``, as the HF Trainer and TRL build it.

``training.lr_schedule`` is any schedule ``get_scheduler`` builds from the
optimizer and step counts alone (``reduce_lr_on_plateau`` needs a metric and
``greedy`` a trainer, so neither is offered), ``lr_scheduler_kwargs`` its own
settings. Warmup is ``warmup_steps``, or ``warmup_ratio`` of all optimizer
steps rounded up (the HF Trainer's rule); with warmup, ``constant`` means
``constant_with_warmup``, so a warmup is never ignored.
"""

from __future__ import annotations

import difflib
import math

import torch

_NOT_OFFERED = {"reduce_lr_on_plateau", "greedy"}


def schedule_names() -> list[str]:
    from transformers import SchedulerType

    return [s.value for s in SchedulerType if s.value not in _NOT_OFFERED]


def check_schedule_name(name: str) -> str:
    """``name`` if ``get_scheduler`` builds it here, else ValueError (pydantic names the field)."""
    names = schedule_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown schedule '{name}'{hint} (transformers.get_scheduler: {', '.join(names)})")
    return name


def warmup_steps(cfg, total_steps: int) -> int:
    return cfg.warmup_steps or math.ceil(cfg.warmup_ratio * total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, total_steps: int):
    """The schedule of ``cfg`` (a ``TrainingConfig``) over ``total_steps`` optimizer steps."""
    from transformers import get_scheduler

    return get_scheduler(
        cfg.schedule_name,
        optimizer,
        num_warmup_steps=warmup_steps(cfg, total_steps),
        num_training_steps=total_steps,
        scheduler_specific_kwargs=dict(cfg.lr_scheduler_kwargs) or None,
    )


# Schedules get_scheduler builds from step counts alone; any other needs (or may take) lr_scheduler_kwargs.
_PLAIN = {"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial", "inverse_sqrt"}
_TAKES_NO_SETTINGS = {"constant", "constant_with_warmup"}  # get_scheduler would drop them without a word


def check_schedule_settings(cfg) -> None:
    """Build the schedule once on a one-parameter optimizer: unknown or missing settings fail with the config."""
    if cfg.lr_scheduler_kwargs and cfg.lr_schedule in _TAKES_NO_SETTINGS:
        raise ValueError(f"schedule '{cfg.lr_schedule}' takes no lr_scheduler_kwargs")
    if cfg.lr_schedule in _PLAIN and not cfg.lr_scheduler_kwargs:
        return  # nothing to check, and no torch work while a config is read
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    try:
        build_scheduler(optimizer, cfg, total_steps=10)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lr_scheduler_kwargs do not fit schedule '{cfg.lr_schedule}': {exc}") from None
