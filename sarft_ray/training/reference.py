"""The reference distribution p_ref: the model training started from.

- LoRA: the same network with its adapter switched off for the reference
  forward. No second copy of the weights exists; the base weights are frozen
  by LoRA anyway, so "adapter off" is exactly the starting model.
- Full fine-tuning: a frozen deep copy taken before the first update, in eval
  mode and without gradients.

Either way the reference is a callable ``(input_ids, attention_mask) -> logits``
run under ``torch.no_grad`` in eval mode (no dropout), which is what
``loss.rbo_forward`` expects.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Switch dropout off for one forward and restore the previous mode after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class AdapterDisabledReference:
    """p_ref for a PEFT model: the same modules with the adapter disabled."""

    def __init__(self, peft_model: nn.Module):
        if not hasattr(peft_model, "disable_adapter"):
            raise TypeError("AdapterDisabledReference needs a peft PeftModel")
        self.model = peft_model

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with eval_mode(self.model), self.model.disable_adapter():
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


class FrozenCopyReference:
    """p_ref for full fine-tuning: a deep copy frozen at construction time."""

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def build_reference(model: nn.Module, mode: str):
    """The reference for ``mode`` ('lora' or 'full'); call it before the first optimizer step."""
    if mode == "lora":
        return AdapterDisabledReference(model)
    if mode == "full":
        return FrozenCopyReference(model)
    raise ValueError(f"unknown training mode {mode!r}")


def policy_logits(model: nn.Module):
    """The policy side as the same kind of callable (with gradients, in the model's current mode)."""

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    return forward
