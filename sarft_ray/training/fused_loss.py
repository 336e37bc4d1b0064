"""CE and KL straight from hidden states: the output layer runs on chunks of the positions that enter the loss.

The logits of every position of a micro-batch (rows x time x vocabulary: for a
128k vocabulary the largest tensor of a step) are never formed. The caller
picks the positions whose next-token distribution enters the loss (answer
positions for CE, the KL span of the harmful rows) and hands over their final
hidden states, (N, H). Here those pass through the output layer ``chunk``
positions at a time; each chunk's logits become its CE and KL terms at once,
in float32 (float64 stays float64), and are freed before the next chunk.

Backward never holds more than one chunk of logits either:

- a plain ``nn.Linear`` output layer (the usual ``lm_head``) goes through
  ``_LinearHeadLoss``, which computes each chunk's gradients with respect to
  the hidden states and the layer's weight during the forward pass and only
  scales them in backward: Liger-Kernel's fused linear cross-entropy, in plain
  torch, with the KL term added;
- any other output layer (a LoRA-wrapped ``lm_head``, a layer with soft
  capping) is called per chunk under ``torch.utils.checkpoint``, so backward
  recomputes one chunk's logits at a time;
- when the caller already holds logits (``OutputLayer(None)``) the chunks are
  plain autograd over rows of those logits.

The KL positions come first in the position list (``kl_rows`` of them), so a
chunk's KL rows are a prefix of the chunk and the reference's logits are made
for those rows only, from the reference's hidden states, chunk by chunk.

Only torch is imported: the GPU benchmark (``bench/rbo_step.py --mode
synthetic``) uses this module on a machine with torch alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

# Logit elements per chunk (rows x vocabulary): 2**25 is 128 MiB in float32, about 260 positions of a
# 128k vocabulary. A chunk's float32 logits, log-probabilities and gradient are alive at once.
CHUNK_ELEMENTS = 2**25


@dataclass(frozen=True)
class OutputLayer:
    """Final hidden states (..., H) -> logits (..., V).

    ``forward`` is None when the states already are logits. ``weight`` and
    ``bias`` are set when the layer is a plain linear map, which enables the
    fused path; ``vocab`` sizes the chunks.
    """

    forward: Callable[[torch.Tensor], torch.Tensor] | None
    vocab: int | None = None
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None

    @classmethod
    def of(cls, module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> OutputLayer:
        """The layer of ``module`` (``forward`` defaults to calling it); fused when it is exactly ``nn.Linear``."""
        vocab = getattr(module, "out_features", None)
        if type(module) is nn.Linear and forward is None and module.weight.shape == (module.out_features, module.in_features):
            # a ZeRO-3 partitioned weight has another shape outside the module's forward: that one is called instead
            return cls(module, vocab, module.weight, module.bias)
        return cls(forward or module, vocab)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states if self.forward is None else self.forward(states)


@dataclass
class Hidden:
    """What a model side returns: final hidden states (rows, time, H) and the layer that makes them logits."""

    states: torch.Tensor
    layer: OutputLayer


@dataclass
class KLTargets:
    """The reference side of the KL for the first ``len(scale)`` positions."""

    states: torch.Tensor  # (K, H) the reference's final hidden states at those positions
    layer: OutputLayer  # the reference's output layer (run without gradients)
    scale: torch.Tensor  # (K,) weight of each position's KL in the reported KL
    direction: str  # "ref_to_policy" = KL(p_ref || p_theta), "policy_to_ref" = KL(p_theta || p_ref)


def chunk_rows(num_positions: int, vocab: int | None, chunk: int | None) -> int:
    """Positions per chunk: ``chunk`` if given, else as many as keep a chunk's logits near ``CHUNK_ELEMENTS``."""
    if chunk is not None:
        return max(1, int(chunk))
    per_chunk = CHUNK_ELEMENTS // vocab if vocab else 256  # unknown vocabulary: a 128k one's chunk
    return max(1, min(max(num_positions, 1), per_chunk))


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Softmax precision: float32, or float64 when the inputs are float64."""
    return torch.promote_types(dtype, torch.float32)


def chunk_terms(
    logits: torch.Tensor,
    targets: torch.Tensor,
    ce_scale: torch.Tensor,
    ref_logp: torch.Tensor | None,
    kl_scale: torch.Tensor | None,
    direction: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of scaled CE, sum of scaled KL) of one chunk; the first ``len(ref_logp)`` rows carry the KL.

    ``targets`` must be valid token ids everywhere; a position without a CE term has ``ce_scale`` 0.
    """
    logp = F.log_softmax(logits.to(compute_dtype(logits.dtype)), dim=-1)
    ce = -(logp.gather(1, targets[:, None]).squeeze(1) * ce_scale).sum()
    if ref_logp is None or ref_logp.shape[0] == 0:
        return ce, logp.new_zeros(())
    policy_logp = logp[: ref_logp.shape[0]]
    # Summing per-vocabulary terms keeps the KL of identical distributions at exactly zero (the expanded
    # form cancels numbers of size 30-40 and leaves ~1e-3).
    if direction == "ref_to_policy":  # sum p_ref (log p_ref - log p_theta)
        kl_tok = F.kl_div(policy_logp, ref_logp, reduction="none", log_target=True).sum(-1)
    elif direction == "policy_to_ref":  # sum p_theta (log p_theta - log p_ref)
        kl_tok = F.kl_div(ref_logp, policy_logp, reduction="none", log_target=True).sum(-1)
    else:
        raise ValueError(f"unknown kl_direction {direction!r}")
    return ce, (kl_tok * kl_scale).sum()


@torch.no_grad()
def reference_logp(kl: KLTargets | None, start: int, end: int, dtype: torch.dtype) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """log p_ref and the KL weights of positions [start, end) that carry the KL (a prefix of the chunk)."""
    if kl is None or start >= kl.scale.shape[0]:
        return None, None
    stop = min(end, kl.scale.shape[0])
    logits = kl.layer.logits(kl.states[start:stop])
    return F.log_softmax(logits.to(compute_dtype(dtype)), dim=-1), kl.scale[start:stop]


class _LinearHeadLoss(torch.autograd.Function):
    """loss = sum CE + kl_coef * sum KL through a linear output layer, gradients made chunk by chunk in forward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, ce_scale, kl, kl_coef, chunk):
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        acc = compute_dtype(weight.dtype)
        grad_h = torch.zeros_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=acc, device=bias.device) if need_b else None
        ce_total = torch.zeros((), dtype=acc, device=hidden.device)
        kl_total = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            end = min(start + chunk, hidden.shape[0])
            h = hidden[start:end]
            logits = F.linear(h, weight, bias)
            ref_logp, kl_scale = reference_logp(kl, start, end, logits.dtype)
            with torch.enable_grad():
                logits.requires_grad_(need_h or need_w or need_b)
                ce, kl_part = chunk_terms(
                    logits, targets[start:end], ce_scale[start:end], ref_logp, kl_scale, kl.direction if kl else ""
                )
                if logits.requires_grad:
                    (grad_logits,) = torch.autograd.grad(ce + kl_coef * kl_part, logits)
            del ref_logp
            if need_h:
                grad_h[start:end] = grad_logits @ weight
            if need_w:
                grad_w += grad_logits.t() @ h  # the product in the weight's dtype, the sum over chunks in float32
            if need_b:
                grad_b += grad_logits.sum(0)
            ce_total += ce.detach()
            kl_total += kl_part.detach()
        ctx.grads = (grad_h, grad_w, grad_b)
        ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
        ctx.mark_non_differentiable(ce_total, kl_total)
        return ce_total + kl_coef * kl_total, ce_total, kl_total

    @staticmethod
    def backward(ctx, grad_loss, _grad_ce, _grad_kl):
        out = []
        for grad, dtype in zip(ctx.grads, ctx.dtypes, strict=True):
            out.append(None if grad is None else (grad * grad_loss).to(dtype))
        ctx.grads = None
        return (*out, None, None, None, None, None)


def _checkpointed_terms(hidden, layer, targets, ce_scale, kl, chunk):
    """Per-chunk terms through any output layer; backward recomputes one chunk's logits at a time."""
    ce_total, kl_total = hidden.new_zeros((), dtype=compute_dtype(hidden.dtype)), None
    for start in range(0, hidden.shape[0], chunk):
        end = min(start + chunk, hidden.shape[0])

        def terms(h, start=start, end=end):
            logits = layer.logits(h)
            ref_logp, kl_scale = reference_logp(kl, start, end, logits.dtype)
            return chunk_terms(logits, targets[start:end], ce_scale[start:end], ref_logp, kl_scale, kl.direction if kl else "")

        h = hidden[start:end]
        if layer.forward is not None and torch.is_grad_enabled() and h.requires_grad:
            ce, kl_part = checkpoint(terms, h, use_reentrant=False)
        else:
            ce, kl_part = terms(h)
        ce_total = ce_total + ce
        kl_total = kl_part if kl_total is None else kl_total + kl_part
    return ce_total, kl_total if kl_total is not None else ce_total.new_zeros(())


def head_loss(
    hidden: torch.Tensor,
    layer: OutputLayer,
    targets: torch.Tensor,
    ce_scale: torch.Tensor,
    kl: KLTargets | None = None,
    kl_coef: float = 0.0,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, CE, KL) with loss = CE + kl_coef * KL; CE and KL are detached.

    - ``hidden`` (N, H): the policy's final hidden states at the selected positions, KL positions first;
    - ``targets`` (N,): each position's next token (any valid id where ``ce_scale`` is 0);
    - ``ce_scale`` (N,): weight of each position's cross-entropy in CE;
    - ``kl``: the reference side of the first ``len(kl.scale)`` positions (None: no KL term).
    """
    rows = chunk_rows(hidden.shape[0], layer.vocab if layer.forward is not None else hidden.shape[-1], chunk)
    if hidden.shape[0] == 0:
        zero = hidden.sum() * 0  # keeps the graph (and dtype) when no position is selected
        return zero.to(compute_dtype(hidden.dtype)), zero.detach(), zero.detach()
    if layer.weight is not None:
        return _LinearHeadLoss.apply(hidden, layer.weight, layer.bias, targets, ce_scale, kl, kl_coef, rows)
    ce, kl_value = _checkpointed_terms(hidden, layer, targets, ce_scale, kl, rows)
    return ce + kl_coef * kl_value, ce.detach(), kl_value.detach()
