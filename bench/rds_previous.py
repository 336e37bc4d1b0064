"""The previous batched scorer, kept only so ``bench/rds_throughput.py`` can measure the current one against it
in the same run (phase ``c0_previous_2pass_prefix``). Same arguments and results as
``sarft_ray.scoring.logprob.batched_logprob_sums``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sarft_ray.scoring.logprob import Prefix, _cache_kwarg, _forward_params  # noqa: E402


@contextlib.contextmanager
def previous_scorer():
    """Score through ``range_logits_sums`` inside the block (the scoring core looks the function up by name)."""
    from sarft_ray.scoring import core

    current = core.batched_logprob_sums
    core.batched_logprob_sums = range_logits_sums
    try:
        yield
    finally:
        core.batched_logprob_sums = current


@torch.no_grad()
def range_logits_sums(
    model,
    prompts: list[list[int]],
    answers: list[list[int]],
    pad_id: int,
    prefix: Prefix | None = None,
) -> list[float]:
    """The scorer before answer-position projection: logits for every row over the range of columns that
    predict any row's answer tokens, then a float32 log-softmax over the whole vocabulary.

    With ``prefix``, every prompt here is the part that follows ``prefix.ids``
    (the caller checked that the full prompt starts with them) and must hold at
    least one token: the one that predicts the first answer token.
    """
    if not prompts:
        return []
    device = next(model.parameters()).device
    rows = [p + a for p, a in zip(prompts, answers, strict=True)]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    starts = torch.tensor([len(p) for p in prompts])
    lengths = torch.tensor([len(a) for a in answers])
    if int(starts.min()) < 1:
        raise ValueError("each prompt needs at least one token before its answer")

    # Column c predicts token c+1; answers of row i occupy columns starts[i] .. starts[i]+lengths[i]-1.
    lo = int(starts.min()) - 1
    hi = int((starts + lengths).max()) - 1
    columns = torch.arange(lo, hi)

    kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if prefix is not None:
        offset = len(prefix)
        kwargs["attention_mask"] = torch.cat([torch.ones((len(rows), offset), dtype=torch.long), mask], 1).to(device)
        kwargs["position_ids"] = (torch.arange(width) + offset).unsqueeze(0).expand(len(rows), -1).to(device)
        kwargs[_cache_kwarg(model)] = prefix.cache_for(len(rows))
        kwargs["use_cache"] = True
    else:
        kwargs["use_cache"] = False
    keep_all = "logits_to_keep" not in _forward_params(model)
    if not keep_all:
        kwargs["logits_to_keep"] = columns.to(device)
    logits = model(**kwargs).logits
    if keep_all:
        logits = logits[:, lo:hi]

    logp = torch.log_softmax(logits.float(), dim=-1)
    targets = ids[:, lo + 1 : hi + 1].to(device)
    token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).double()
    in_answer = (columns.unsqueeze(0) >= starts.unsqueeze(1) - 1) & (columns.unsqueeze(0) < (starts + lengths - 1).unsqueeze(1))
    sums = torch.where(in_answer.to(device), token_logp, torch.zeros_like(token_logp)).sum(-1)
    return sums.cpu().tolist()
