"""The two sides of the loss as callables ``(input_ids, attention_mask) -> fused_loss.Hidden``.

p_ref, the model training started from:

- LoRA: the same network with its adapter switched off for the reference
  forward. No second copy of the weights exists; the base weights are frozen
  by LoRA anyway, so "adapter off" is exactly the starting model.
- Full fine-tuning: a frozen deep copy taken before the first update, in eval
  mode and without gradients.

The reference runs under ``torch.no_grad`` in eval mode (no dropout); the
policy runs with gradients in the model's current mode. ``loss.rbo_forward``
calls both.

Each side returns the final hidden states (the output layer's input) and that
output layer, not logits: the loss runs the layer only at the positions it
needs. The model is still called through its own ``__call__`` (a DeepSpeed
engine's forward registers the hooks its ZeRO optimizer needs in backward on
the output): a pre-hook on the output layer hands it zero positions, so it
projects nothing, and a hook after it returns the hidden states in place of
the logits. A model whose forward changes the logits after the output layer
(Gemma-2's soft cap) is detected, and for it the logits are computed in full
and handed over as they are.

With ``packed`` a side drops the padding before the forward: the rows' tokens
go in as one sequence whose position ids restart at each row, and without an
attention mask transformers keeps each row's attention inside the row
(``flash_attention_2`` through its variable-length kernel, ``sdpa`` and
``eager`` through a block-diagonal mask). The states come back in the padded
(B, T) layout the loss reads, zero at padding, so packing changes how much is
computed, not what.
"""

from __future__ import annotations

import contextlib
import copy
import logging

import torch
from torch import nn

from sarft_ray.models.logits import changes_logits
from sarft_ray.training.fused_loss import Hidden, OutputLayer

log = logging.getLogger(__name__)


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Switch dropout off for one forward and restore the previous mode after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def unwrapped(model: nn.Module) -> nn.Module:
    """The model inside a DeepSpeed engine (or DDP) wrapper; the model itself otherwise."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def output_module(model: nn.Module) -> nn.Module:
    """The module that maps final hidden states to logits (``lm_head``; peft and DeepSpeed wrappers see through)."""
    head = unwrapped(model).get_output_embeddings()
    if head is None:
        raise TypeError(f"{type(unwrapped(model)).__name__} has no output layer (get_output_embeddings() is None)")
    return head


def post_processes_logits(model: nn.Module) -> bool:
    """True for configs known to change the logits after the output layer (``models.logits.changes_logits``)."""
    return changes_logits(getattr(unwrapped(model), "config", None))


def packed_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The non-padding tokens of every row as one (1, N) sequence, position ids restarting at each row."""
    keep = attention_mask.bool()
    positions = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": input_ids[keep][None], "position_ids": positions[keep][None]}


def unpacked(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(1, N, D) values of a packed forward back in the (B, T, D) layout of ``attention_mask``, zero at padding."""
    keep = attention_mask.bool()
    out = values.new_zeros(*keep.shape, values.shape[-1])
    return out.masked_scatter(keep[..., None].expand_as(out), values[0])


class HiddenStates:
    """``(input_ids, attention_mask) -> Hidden`` through ``model``'s own forward, output layer ``layer``."""

    def __init__(self, model: nn.Module, layer: OutputLayer, packed: bool = False):
        self.model = model
        self.head = output_module(model)
        self.layer = layer
        self.full_logits = post_processes_logits(model)
        self.packed = packed

    def _tapped(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        captured: list[torch.Tensor] = []

        def before(module, args):
            captured.append(args[0])
            return (args[0][..., :0, :], *args[1:])  # the layer projects zero positions

        def after(module, args, output):
            return captured[0]

        handles = [self.head.register_forward_pre_hook(before), self.head.register_forward_hook(after)]
        try:
            logits = self.model(**self._inputs(input_ids, attention_mask), use_cache=False).logits
        finally:
            for handle in handles:
                handle.remove()
        if len(captured) != 1 or logits is not captured[0]:
            return None  # the forward changed what the layer returned: its logits need the full layer
        return unpacked(logits, attention_mask) if self.packed else logits

    def _inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.packed:
            return packed_inputs(input_ids, attention_mask)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Hidden:
        if not self.full_logits:
            states = self._tapped(input_ids, attention_mask)
            if states is not None:
                return Hidden(states, self.layer)
            log.warning("%s changes its logits after the output layer: the loss uses full logits", type(unwrapped(self.model)).__name__)
            self.full_logits = True
        logits = self.model(**self._inputs(input_ids, attention_mask), use_cache=False).logits
        return Hidden(unpacked(logits, attention_mask) if self.packed else logits, OutputLayer(None))


def _adapter_off_layer(peft_model: nn.Module) -> OutputLayer:
    """The output layer as the reference sees it: the module itself, or (if LoRA adapts it) with the adapter off."""
    head = output_module(peft_model)
    if type(head) is nn.Linear:
        return OutputLayer.of(head)

    def forward(states: torch.Tensor) -> torch.Tensor:
        with peft_model.disable_adapter():
            return head(states)

    return OutputLayer.of(head, forward)


class AdapterDisabledReference:
    """p_ref for a PEFT model: the same modules with the adapter disabled."""

    def __init__(self, peft_model: nn.Module, packed: bool = False):
        if not hasattr(peft_model, "disable_adapter"):
            raise TypeError("AdapterDisabledReference needs a peft PeftModel")
        self.model = peft_model
        self.side = HiddenStates(peft_model, _adapter_off_layer(peft_model), packed)

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Hidden:
        with eval_mode(self.model), self.model.disable_adapter():
            return self.side(input_ids, attention_mask)


class FrozenCopyReference:
    """p_ref for full fine-tuning: a deep copy frozen at construction time."""

    def __init__(self, model: nn.Module, packed: bool = False):
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.side = HiddenStates(self.model, OutputLayer.of(output_module(self.model)), packed)

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Hidden:
        return self.side(input_ids, attention_mask)


def build_reference(model: nn.Module, mode: str, packed: bool = False):
    """The reference for ``mode`` ('lora' or 'full'); call it before the first optimizer step."""
    if mode == "lora":
        return AdapterDisabledReference(model, packed)
    if mode == "full":
        return FrozenCopyReference(model, packed)
    raise ValueError(f"unknown training mode {mode!r}")


def policy_side(model: nn.Module, packed: bool = False) -> HiddenStates:
    """The policy side (with gradients, in the model's current mode); ``model`` may be a DeepSpeed engine."""
    return HiddenStates(model, OutputLayer.of(output_module(model)), packed)


policy_logits = policy_side  # the name training/recipe.py imports
