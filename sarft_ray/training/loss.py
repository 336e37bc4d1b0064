"""The RBO objective: cross-entropy on every row plus lambda * KL on the harmful rows.

    L = mean_b CE_b + lambda * mean_b (h_b * KL_b)

Everything here is plain torch on tensors; ``rbo_forward`` adds the two model
calls around it and is the only place a reference forward happens, so the rule
"no harmful row, no reference forward" lives in one spot.

Positions: logits at position t predict token t+1. ``labels`` carry the token
ids of the answer and -100 elsewhere (prompt and padding), aligned with
``input_ids``; the shift happens here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

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

    @classmethod
    def release(cls, lambda_kl: float) -> LossOptions:
        """The authors' release form (sequence-normalised CE, KL(ref||theta) over all tokens)."""
        return cls(lambda_kl=lambda_kl, kl_direction="ref_to_policy", kl_span="all", ce_norm="sequence")


@dataclass
class LossOutput:
    """The loss to back-propagate and its parts (detached floats for logging)."""

    loss: torch.Tensor
    ce: float
    kl: float  # mean KL over the harmful rows of the batch (0 when none or lambda = 0)
    harmful_rows: int
    rows: int


def shifted_labels(labels: torch.Tensor) -> torch.Tensor:
    """Targets aligned with logits: position t is scored against token t+1; the last position has none."""
    pad = torch.full_like(labels[:, :1], IGNORE_INDEX)
    return torch.cat([labels[:, 1:], pad], dim=1)


def ce_per_row(logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor, norm: CENorm) -> torch.Tensor:
    """Per-row cross-entropy of the answer tokens, normalised per ``norm``. Shape (B,)."""
    targets = shifted_labels(labels)
    token_ce = F.cross_entropy(
        logits.float().transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
    )  # (B, T), 0 where ignored
    total = token_ce.sum(dim=1)
    if norm == "answer":
        count = (targets != IGNORE_INDEX).sum(dim=1)
    elif norm == "sequence":
        count = attention_mask.sum(dim=1)
    else:
        raise ValueError(f"unknown ce_norm {norm!r}")
    return total / count.clamp(min=1).to(total.dtype)


def kl_positions(labels: torch.Tensor, attention_mask: torch.Tensor, span: KLSpan) -> torch.Tensor:
    """Boolean (B, T) mask of the logit positions whose distributions enter the KL."""
    if span == "all":
        return attention_mask.bool()
    if span == "answer":
        return shifted_labels(labels) != IGNORE_INDEX
    raise ValueError(f"unknown kl_span {span!r}")


def token_kl(policy_logits: torch.Tensor, ref_logits: torch.Tensor, direction: KLDirection) -> torch.Tensor:
    """KL between two next-token distributions, summed over the vocabulary: (..., V) -> (...)."""
    policy_logp = F.log_softmax(policy_logits.float(), dim=-1)
    ref_logp = F.log_softmax(ref_logits.float(), dim=-1)
    if direction == "ref_to_policy":  # sum p_ref (log p_ref - log p_theta)
        return F.kl_div(policy_logp, ref_logp, reduction="none", log_target=True).sum(-1)
    if direction == "policy_to_ref":  # sum p_theta (log p_theta - log p_ref)
        return F.kl_div(ref_logp, policy_logp, reduction="none", log_target=True).sum(-1)
    raise ValueError(f"unknown kl_direction {direction!r}")


@dataclass
class ReferenceTargets:
    """The reference side of the KL at the selected positions, computed once without gradients.

    Holding only these (N, V) log-probabilities lets the caller free the
    reference logits (H, T, V) right after the reference forward.
    """

    rows: torch.Tensor  # (N,) harmful-row index (0..H-1) of each selected position
    cols: torch.Tensor  # (N,) time index of each selected position
    logp: torch.Tensor  # (N, V) log p_ref
    counts: torch.Tensor  # (H,) selected positions per harmful row


@torch.no_grad()
def reference_targets(ref_logits: torch.Tensor, positions: torch.Tensor) -> ReferenceTargets:
    """Reduce the reference logits of the harmful rows (H, T, V) to log p_ref at ``positions`` (H, T)."""
    rows, cols = positions.nonzero(as_tuple=True)
    logp = F.log_softmax(ref_logits[rows, cols].float(), dim=-1)
    return ReferenceTargets(rows, cols, logp, positions.sum(dim=1))


def kl_per_row(
    policy_logits: torch.Tensor,
    targets: ReferenceTargets,
    direction: KLDirection,
    policy_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean per-token KL of each harmful row over its selected positions. Shape (H,).

    ``policy_rows[i]`` is the row of ``policy_logits`` holding harmful row i
    (identity when None). Only the selected positions are gathered, so padding
    (and, for ``answer``, the prompt) costs no vocabulary-sized work; backward
    keeps two (N, V) tensors: log p_ref and log p_theta.
    """
    prow = targets.rows if policy_rows is None else policy_rows[targets.rows]
    policy_logp = F.log_softmax(policy_logits[prow, targets.cols].float(), dim=-1)  # (N, V), with gradient
    # Summing per-vocabulary terms (rather than expanding the log-softmax algebraically) keeps the KL of
    # identical distributions at zero; the expanded form cancels numbers of size 30-40 and leaves ~1e-3.
    if direction == "ref_to_policy":  # sum p_ref (log p_ref - log p_theta)
        kl_tok = F.kl_div(policy_logp, targets.logp, reduction="none", log_target=True).sum(-1)
    elif direction == "policy_to_ref":  # sum p_theta (log p_theta - log p_ref)
        kl_tok = F.kl_div(targets.logp, policy_logp, reduction="none", log_target=True).sum(-1)
    else:
        raise ValueError(f"unknown kl_direction {direction!r}")
    total = torch.zeros(targets.counts.shape[0], dtype=kl_tok.dtype, device=kl_tok.device)
    total = total.index_add(0, targets.rows, kl_tok)
    return total / targets.counts.clamp(min=1).to(total.dtype)


def rbo_loss(
    policy_logits: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    harmful: torch.Tensor,
    ref_logits: torch.Tensor | None,
    options: LossOptions,
) -> LossOutput:
    """Combine the terms. ``ref_logits`` holds the reference logits of the harmful rows only.

    ``ref_logits`` may be shorter in time than ``policy_logits`` (trimmed
    padding); the positions it lacks are padding for every harmful row.
    """
    targets = None
    if ref_logits is not None and bool(harmful.any()) and options.lambda_kl > 0:
        targets = harmful_targets(ref_logits, labels, attention_mask, harmful, options)
    return loss_from_targets(policy_logits, labels, attention_mask, harmful, targets, options)


def harmful_targets(
    ref_logits: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    harmful: torch.Tensor,
    options: LossOptions,
) -> ReferenceTargets:
    """``reference_targets`` for the harmful rows of a batch, at the positions ``options.kl_span`` selects."""
    idx = harmful.bool().nonzero(as_tuple=True)[0]
    length = ref_logits.shape[1]
    positions = kl_positions(labels[idx], attention_mask[idx], options.kl_span)[:, :length]
    return reference_targets(ref_logits, positions)


def loss_from_targets(
    policy_logits: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    harmful: torch.Tensor,
    targets: ReferenceTargets | None,
    options: LossOptions,
) -> LossOutput:
    """L = mean_b CE_b + lambda * mean_b (h_b KL_b); no targets means no KL term."""
    batch = labels.shape[0]
    harmful = harmful.bool()
    ce = ce_per_row(policy_logits, labels, attention_mask, options.ce_norm).mean()
    n_harmful = int(harmful.sum())
    if targets is None or n_harmful == 0 or options.lambda_kl == 0:
        return LossOutput(loss=ce, ce=float(ce.detach()), kl=0.0, harmful_rows=n_harmful, rows=batch)
    idx = harmful.nonzero(as_tuple=True)[0]
    kl_rows = kl_per_row(policy_logits, targets, options.kl_direction, policy_rows=idx)
    # mean over the whole batch of h_b * KL_b: harmful rows summed, divided by B
    loss = ce + options.lambda_kl * (kl_rows.sum() / batch)
    return LossOutput(
        loss=loss, ce=float(ce.detach()), kl=float(kl_rows.detach().mean()), harmful_rows=n_harmful, rows=batch
    )


def trimmed_length(attention_mask: torch.Tensor) -> int:
    """Length that keeps every non-padding token of right-padded rows."""
    lengths = attention_mask.sum(dim=1)
    return int(lengths.max()) if lengths.numel() else 0


def rbo_forward(
    policy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    batch: dict[str, torch.Tensor],
    options: LossOptions,
) -> LossOutput:
    """Forward the policy on every row and the reference only on the harmful rows.

    ``policy`` and ``reference`` map (input_ids, attention_mask) to logits;
    ``batch`` holds right-padded ``input_ids``, ``attention_mask``, ``labels``
    and a boolean ``harmful`` per row.
    """
    input_ids, mask, labels, harmful = batch["input_ids"], batch["attention_mask"], batch["labels"], batch["harmful"]
    logits = policy(input_ids, mask)
    targets = None
    if options.lambda_kl > 0 and bool(harmful.any()):
        if reference is None:
            raise ValueError("lambda_kl > 0 with harmful rows needs a reference model")
        idx = harmful.bool().nonzero(as_tuple=True)[0]
        # right padding: cut the columns that are padding in every harmful row
        length = trimmed_length(mask[idx])
        with torch.no_grad():
            ref_logits = reference(input_ids[idx, :length], mask[idx, :length])
        targets = harmful_targets(ref_logits, labels, mask, harmful, options)
        del ref_logits  # only the (N, V) targets stay alive through backward
    return loss_from_targets(logits, labels, mask, harmful, targets, options)
