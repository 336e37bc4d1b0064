"""How the training model computes: the attention kernel and activation checkpointing, chosen per device.

- ``attn_implementation``: ``auto`` is ``flash_attention_2`` on CUDA when the
  ``flash_attn`` package is installed (its variable-length kernel skips the
  padded positions of a right-padded batch), else ``sdpa`` (PyTorch's fused
  attention, on CPU too); a named kernel is used as named.
- ``gradient_checkpointing``: ``auto`` is on for full fine-tuning on a GPU,
  where weights, gradients and Adam states leave the least room for
  activations, and off otherwise (recomputing the activations in backward
  costs about a third more compute).
- ``packing``: ``auto`` is on with ``flash_attention_2``. A packed micro-batch
  spends no compute on padding in any layer; with ``sdpa`` or ``eager`` its
  rows' attention is kept apart by a block-diagonal mask over the whole pack,
  which costs more attention than the padding it saves unless rows differ
  much in length, so there it is on only when asked for.

None of them changes what a step computes, only how (``config.COMPUTE_FIELDS``
keeps them out of the run and alignment hashes).
"""

from __future__ import annotations

import importlib.util
import logging

from torch import nn

from sarft_ray.errors import SarftError

log = logging.getLogger(__name__)


def resolve_attn_implementation(name: str, device_type: str) -> str:
    """The attention kernel ``name`` stands for on ``device_type`` ('cuda' or 'cpu')."""
    has_flash = importlib.util.find_spec("flash_attn") is not None
    if name == "auto":
        return "flash_attention_2" if device_type == "cuda" and has_flash else "sdpa"
    if name == "flash_attention_2" and not (device_type == "cuda" and has_flash):
        raise SarftError("training.attn_implementation: flash_attention_2 needs a CUDA device and the flash_attn package")
    return name


def resolve_gradient_checkpointing(value: str | bool, mode: str, device_type: str) -> bool:
    """Whether activations are recomputed in backward (``auto``: full fine-tuning on a GPU)."""
    if value == "auto":
        return mode == "full" and device_type == "cuda"
    return bool(value)


def resolve_packing(value: str | bool, attn_implementation: str) -> bool:
    """Whether micro-batches run packed (``auto``: with the variable-length flash-attention kernel)."""
    if value == "auto":
        return attn_implementation == "flash_attention_2"
    return bool(value)


def apply_compute_settings(
    model: nn.Module, attn_implementation: str, gradient_checkpointing: str | bool, mode: str, packing: str | bool = False
) -> dict:
    """Set the first two on a freshly loaded transformers model (before LoRA wraps it); return what was chosen."""
    device_type = next(model.parameters()).device.type
    attn = resolve_attn_implementation(attn_implementation, device_type)
    if getattr(model.config, "_attn_implementation", None) != attn:
        model.set_attn_implementation(attn)
    checkpointing = resolve_gradient_checkpointing(gradient_checkpointing, mode, device_type)
    if checkpointing:
        # non-reentrant: LoRA's frozen embeddings give the checkpointed layers no input that requires grad
        enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x renamed it
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    packed = resolve_packing(packing, attn)
    log.info("attention %s, gradient checkpointing %s, packing %s", attn, *("on" if x else "off" for x in (checkpointing, packed)))
    return {"attn_implementation": attn, "gradient_checkpointing": checkpointing, "packing": packed}
