"""RBO: role-safety balanced optimisation (stage 2).

- ``config``: the ``training`` config section (``TrainingConfig``).
- ``loss``: the pure objective, CE on every row + lambda * KL on the harmful rows.
- ``fused_loss``: the output layer run in chunks of the positions that enter the loss (no full logits).
- ``reference``: the policy side and p_ref (LoRA: adapter disabled; full: frozen copy), as hidden states.
- ``compute``: attention kernel and activation checkpointing per device.
- ``data``: training-set checks, tokenising, batching, the resumable step plan.
- ``recipe``: the training loop (runs without Ray); ``ray_trainer``: the same loop on Ray Train.
- ``entry.train_role``: what the CLI (``cli_hook``) and ``jobs/train.py`` call.

Nothing is imported here, so reading a config does not import torch.
"""
