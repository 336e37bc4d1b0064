"""The RBO objective: cross-entropy on every row plus lambda * KL on the harmful rows.

    L = mean_b CE_b + lambda * mean_b (h_b * KL_b)

The model sides hand over final hidden states and their output layer
(``fused_loss.Hidden``), not logits. This module picks the positions whose
next-token distribution enters the loss (every answer position for CE; the
``kl_span`` positions of the harmful rows for KL), weights each so that the
sums are the per-row means above, and ``fused_loss.head_loss`` runs the output
layer on those positions only, a chunk at a time: no rows x time x vocabulary
tensor is formed, padding and (for CE) prompt positions cost no
vocabulary-sized work. ``rbo_forward`` adds the two model calls around it and
is the only place a reference forward happens, so the rule "no harmful row,
no reference forward" lives in one spot.

Positions: the distribution at position t predicts token t+1. ``labels`` carry
the token ids of the answer and -100 elsewhere (prompt and padding), aligned
with ``input_ids``; the shift happens here.

Only torch is imported (the GPU benchmark runs this module without the rest
of the package's dependencies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from sarft_ray.training.fused_loss import Hidden, KLTargets, compute_dtype, head_loss

IGNORE_INDEX = -100

KLDirection = Literal["ref_to_policy", "policy_to_ref"]
KLSpan = Literal["all", "answer"]
CENorm = Literal["answer", "sequence"]


@dataclass(frozen=True)
class LossOptions:
    """How the two terms are formed (defaults: docs/method.md's choices).

    - ``kl_direction``: ``ref_to_policy`` is KL(p_ref || p_theta), the release's
      form; ``policy_to_ref`` is KL(p_theta || p_ref), the paper's formula.
    - ``kl_span``: ``all`` averages KL over every non-padding position (prompt
      and answer, the release); ``answer`` only over positions predicting answer tokens.
    - ``ce_norm``: ``answer`` divides a row's summed CE by its answer tokens;
      ``sequence`` divides it by all its non-padding tokens (the release).
    """

    lambda_kl: float = 0.0
    kl_direction: KLDirection = "ref_to_policy"
    kl_span: KLSpan = "all"
    ce_norm: CENorm = "answer"

    def __post_init__(self):
        if not self.lambda_kl >= 0:  # also rejects NaN
            raise ValueError(f"lambda_kl must be >= 0, got {self.lambda_kl}")
        for name, allowed in (("kl_direction", KLDirection), ("kl_span", KLSpan), ("ce_norm", CENorm)):
            if getattr(self, name) not in allowed.__args__:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}")

    @classmethod
    def release(cls, lambda_kl: float) -> LossOptions:
        """The authors' release form (sequence-normalised CE, KL(ref||theta) over all tokens)."""
        return cls(lambda_kl=lambda_kl, kl_direction="ref_to_policy", kl_span="all", ce_norm="sequence")


@dataclass
class LossOutput:
    """The loss to back-propagate and its parts (detached floats for logging)."""

    loss: torch.Tensor
    ce: float
    kl: float  # mean KL_b over the harmful rows of the batch (0 when none or lambda = 0)
    harmful_rows: int
    rows: int


def shifted_labels(labels: torch.Tensor) -> torch.Tensor:
    """Targets aligned with logits: position t is scored against token t+1; the last position has none."""
    pad = torch.full_like(labels[:, :1], IGNORE_INDEX)
    return torch.cat([labels[:, 1:], pad], dim=1)


def kl_positions(labels: torch.Tensor, attention_mask: torch.Tensor, span: KLSpan) -> torch.Tensor:
    """Boolean (B, T) mask of the positions whose distributions enter the KL."""
    if span == "all":
        return attention_mask.bool()
    if span == "answer":
        return shifted_labels(labels) != IGNORE_INDEX
    raise ValueError(f"unknown kl_span {span!r}")


@dataclass
class Selection:
    """The positions that enter the loss, KL positions first, and each one's weight."""

    rows: torch.Tensor  # (N,) batch row of each position
    cols: torch.Tensor  # (N,) time index of each position
    targets: torch.Tensor  # (N,) next token (0 where the position has no CE term)
    ce_scale: torch.Tensor  # (N,) 1 / (B * count_b): the sum of scaled token CEs is mean_b CE_b
    kl_scale: torch.Tensor  # (K,) 1 / (H * kl_count_b) for the first K positions: the sum is mean over harmful rows of KL_b


def select_positions(
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    harmful: torch.Tensor,
    options: LossOptions,
    with_kl: bool,
    dtype: torch.dtype = torch.float32,
) -> Selection:
    """Every answer position (CE) and, with ``with_kl``, the ``kl_span`` positions of the harmful rows."""
    targets = shifted_labels(labels)
    answer = targets != IGNORE_INDEX
    batch = labels.shape[0]
    count = answer.sum(dim=1) if options.ce_norm == "answer" else attention_mask.sum(dim=1)
    row_ce = 1.0 / (count.clamp(min=1).to(dtype) * batch)
    if with_kl:
        in_kl = kl_positions(labels, attention_mask, options.kl_span) & harmful.bool()[:, None]
        row_kl = 1.0 / (in_kl.sum(dim=1).clamp(min=1).to(dtype) * harmful.bool().sum().to(dtype))
    else:
        in_kl = torch.zeros_like(answer)
    kl_rows, kl_cols = in_kl.nonzero(as_tuple=True)
    ce_rows, ce_cols = (answer & ~in_kl).nonzero(as_tuple=True)
    rows, cols = torch.cat([kl_rows, ce_rows]), torch.cat([kl_cols, ce_cols])
    picked = targets[rows, cols]
    has_target = picked != IGNORE_INDEX
    ce_scale = torch.where(has_target, row_ce[rows], torch.zeros((), dtype=dtype, device=row_ce.device))
    kl_scale = row_kl[kl_rows] if with_kl else row_ce.new_zeros(0)
    return Selection(rows, cols, picked.clamp(min=0), ce_scale, kl_scale)


def rbo_loss(
    policy: Hidden,
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    harmful: torch.Tensor,
    reference: Hidden | None,
    options: LossOptions,
    chunk: int | None = None,
) -> LossOutput:
    """L = mean_b CE_b + lambda * mean_b (h_b KL_b) from the two sides' hidden states.

    ``reference`` holds the harmful rows only, in batch order; it may be
    shorter in time than the policy's states (trimmed padding): the positions
    it lacks are padding for every harmful row. No reference, no harmful row
    or lambda = 0 means no KL term. ``chunk``: positions per output-layer
    chunk (default: sized by the vocabulary).
    """
    batch = labels.shape[0]
    harmful = harmful.bool()
    n_harmful = int(harmful.sum())
    with_kl = reference is not None and n_harmful > 0 and options.lambda_kl > 0
    dtype = compute_dtype(policy.states.dtype)
    picked = select_positions(labels, attention_mask, harmful, options, with_kl, dtype)
    hidden = policy.states[picked.rows, picked.cols]
    kl = None
    kl_coef = 0.0
    if with_kl:
        k = picked.kl_scale.shape[0]
        slot = torch.cumsum(harmful.long(), dim=0) - 1  # batch row -> row of the reference's states
        ref_states = reference.states[slot[picked.rows[:k]], picked.cols[:k]]
        kl = KLTargets(ref_states, reference.layer, picked.kl_scale, options.kl_direction)
        kl_coef = options.lambda_kl * n_harmful / batch  # lambda * (sum over harmful rows of KL_b) / B
    loss, ce, kl_mean = head_loss(hidden, policy.layer, picked.targets, picked.ce_scale, kl, kl_coef, chunk)
    return LossOutput(loss=loss, ce=float(ce), kl=float(kl_mean) if with_kl else 0.0, harmful_rows=n_harmful, rows=batch)


def trimmed_length(attention_mask: torch.Tensor) -> int:
    """Length that keeps every non-padding token of right-padded rows."""
    lengths = attention_mask.sum(dim=1)
    return int(lengths.max()) if lengths.numel() else 0


def rbo_forward(
    policy: Callable[[torch.Tensor, torch.Tensor], Hidden],
    reference: Callable[[torch.Tensor, torch.Tensor], Hidden] | None,
    batch: dict[str, torch.Tensor],
    options: LossOptions,
    chunk: int | None = None,
) -> LossOutput:
    """Forward the policy on every row and the reference only on the harmful rows.

    ``policy`` and ``reference`` map (input_ids, attention_mask) to ``Hidden``
    (``reference.py`` builds both from a model); ``batch`` holds right-padded
    ``input_ids``, ``attention_mask``, ``labels`` and a boolean ``harmful`` per row.
    """
    input_ids, mask, labels, harmful = batch["input_ids"], batch["attention_mask"], batch["labels"], batch["harmful"]
    harmful = harmful.bool()
    states = policy(input_ids, mask)
    ref = None
    if options.lambda_kl > 0 and bool(harmful.any()):
        if reference is None:
            raise ValueError("lambda_kl > 0 with harmful rows needs a reference model")
        idx = harmful.nonzero(as_tuple=True)[0]
        # right padding: cut the columns that are padding in every harmful row
        length = trimmed_length(mask[idx])
        with torch.no_grad():
            ref = reference(input_ids[idx, :length], mask[idx, :length])
    return rbo_loss(states, labels, mask, harmful, ref, options, chunk)
