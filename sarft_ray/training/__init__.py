"""RBO: role-safety balanced optimisation (stage 2).

- ``config``: the ``training`` config section (``TrainingConfig``).
- ``loss`` / ``fused_loss``: the pure objective, CE on every row + lambda * KL on the harmful rows.
- ``reference``: p_ref (LoRA: adapter disabled; full: frozen copy).
- ``data``: training-set checks, tokenising, batching, the resumable step plan.
- ``compute``: the attention kernel and activation checkpointing, chosen per device.
- ``recipe``: the training loop (runs without Ray); ``worker``: what a worker sets up around it;
  ``ray_trainer``: the same loop on Ray Train; ``checkpointing``, ``rng``, ``deepspeed_config``.
- ``entry.train_role``: what the CLI (``cli_hook``) and ``jobs/train.py`` call.

Names are imported on first use, so reading a config does not import torch.
"""

from __future__ import annotations

from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "config": "TrainingConfig",
    "entry": "summary_lines train_role",
    "recipe": "TrainJob",
}

__getattr__, __all__ = lazy_exports(__name__, _PUBLIC)
