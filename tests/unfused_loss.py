"""The RBO loss as it was computed before the chunked output layer: from full logits (test-only reference).

Tests (and ``bench/rbo_step.py``'s ``unfused`` variants) compare the main path,
``sarft_ray.training.loss``, against this: the same objective written the
direct way, from the (B, T, V) logits of the whole batch, cross-entropy
through a transposed (B, V, T) layout. The one change from the old main path:
``.float()`` became ``_wide`` so that float64 inputs stay float64 (tests
compare gradients at float64 precision).

Only torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sarft_ray.training.loss import (
    IGNORE_INDEX,
    CENorm,
    KLDirection,
    LossOptions,
    LossOutput,
    kl_positions,
)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float32, or float64 when ``x`` is float64 (the old code's ``.float()``)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def shifted_labels(labels: torch.Tensor) -> torch.Tensor:
    """Targets aligned with logits: position t is scored against token t+1; the last position has none."""
    pad = torch.full_like(labels[:, :1], IGNORE_INDEX)
    return torch.cat([labels[:, 1:], pad], dim=1)


def ce_per_row(logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor, norm: CENorm) -> torch.Tensor:
    """Per-row cross-entropy of the answer tokens, normalised per ``norm``. Shape (B,)."""
    targets = shifted_labels(labels)
    token_ce = F.cross_entropy(
        _wide(logits).transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
    )  # (B, T), 0 where ignored
    total = token_ce.sum(dim=1)
    if norm == "answer":
        count = (targets != IGNORE_INDEX).sum(dim=1)
    elif norm == "sequence":
        count = attention_mask.sum(dim=1)
    else:
        raise ValueError(f"unknown ce_norm {norm!r}")
    return total / count.clamp(min=1).to(total.dtype)


def token_kl(policy_logits: torch.Tensor, ref_logits: torch.Tensor, direction: KLDirection) -> torch.Tensor:
    """KL between two next-token distributions, summed over the vocabulary: (..., V) -> (...)."""
    policy_logp = F.log_softmax(_wide(policy_logits), dim=-1)
    ref_logp = F.log_softmax(_wide(ref_logits), dim=-1)
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
    logp = F.log_softmax(_wide(ref_logits[rows, cols]), dim=-1)
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
    policy_logp = F.log_softmax(_wide(policy_logits[prow, targets.cols]), dim=-1)  # (N, V), with gradient
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


def unfused_forward(policy, reference, batch: dict[str, torch.Tensor], options: LossOptions) -> LossOutput:
    """The old ``rbo_forward``: ``policy``/``reference`` map (input_ids, attention_mask) to full logits."""
    input_ids, mask, labels, harmful = batch["input_ids"], batch["attention_mask"], batch["labels"], batch["harmful"]
    logits = policy(input_ids, mask)
    targets = None
    if options.lambda_kl > 0 and bool(harmful.any()):
        idx = harmful.bool().nonzero(as_tuple=True)[0]
        length = trimmed_length(mask[idx])
        with torch.no_grad():
            ref_logits = reference(input_ids[idx, :length], mask[idx, :length])
        targets = harmful_targets(ref_logits, labels, mask, harmful, options)
        del ref_logits
    return loss_from_targets(logits, labels, mask, harmful, targets, options)

