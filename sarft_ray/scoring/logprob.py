"""Answer log-probabilities: sum of log p(answer token | everything before it).

Three ways to get the same numbers:
- ``reference_logprob``: one sample, one forward pass, full logits. The plain
  definition; tests and the naive benchmark compare against it.
- ``batched_logprob_sums``: many samples right-padded into one forward pass;
  the output layer runs only at the positions that predict answer tokens.
- the same with a ``Prefix``: the key/value cache of a system prompt that every
  sequence starts with, computed once and shared by the batch, so each row only
  runs its own suffix (question, assistant header, answer).

Right padding keeps every real token ahead of every pad token, so the causal
mask alone already hides pads from real tokens and default position ids are
right; the attention mask is passed anyway for models that need it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from sarft_ray.models.logits import changes_logits


def _forward_params(model) -> frozenset[str]:
    cached = getattr(model, "_sarft_forward_params", None)
    if cached is None:
        cached = frozenset(inspect.signature(model.forward).parameters)
        model._sarft_forward_params = cached
    return cached


def _cache_kwarg(model) -> str:
    # transformers 5.x renamed ``past_key_values`` to ``cache``.
    return "cache" if "cache" in _forward_params(model) else "past_key_values"


def _output_cache(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


@torch.no_grad()
def reference_logprob(model, prompt_ids: list[int], answer_ids: list[int]) -> float:
    """Sum of the answer tokens' log-probabilities for one sample, straight from the full logits."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids + answer_ids], device=device)
    logits = model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    start = len(prompt_ids)
    positions = torch.arange(start - 1, start - 1 + len(answer_ids), device=device)
    targets = torch.tensor(answer_ids, device=device)
    return float(logp[positions, targets].double().sum())


@dataclass
class Prefix:
    """A shared leading token sequence and its per-layer key/value tensors (batch size 1)."""

    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    def __len__(self) -> int:
        return len(self.ids)

    def cache_for(self, batch_size: int):
        """A fresh DynamicCache holding this prefix for ``batch_size`` rows (the forward pass extends it)."""
        from transformers import DynamicCache

        # expand() is a view; the first update() concatenates, so the stored prefix is never modified.
        return DynamicCache([(k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)) for k, v in self.layers])


def _plain_dynamic_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Key/value tensors of a cache made only of plain full-attention layers, else None.

    Sliding-window, linear-attention or quantized caches do not simply
    concatenate along the sequence axis, so prefix sharing is not attempted.
    """
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return None
    return [(layer.keys, layer.values) for layer in layers]


@torch.no_grad()
def compute_prefix(model, ids: list[int]) -> Prefix | None:
    """Run the prefix once and keep its cache; None when the model's cache cannot be shared this way."""
    if not ids:
        return None
    device = next(model.parameters()).device
    kwargs = {"logits_to_keep": 1} if "logits_to_keep" in _forward_params(model) else {}
    output = model(input_ids=torch.tensor([ids], device=device), use_cache=True, **kwargs)
    layers = _plain_dynamic_layers(_output_cache(output))
    if layers is None:
        return None
    return Prefix(list(ids), layers)


# Logit elements per projected chunk (positions x vocabulary): 2**25 is 128 MiB in float32.
CHUNK_ELEMENTS = 2**25


def _final_states(model, kwargs: dict) -> torch.Tensor | None:
    """The forward's final hidden states (rows, time, H) with the output layer projecting nothing, or None.

    A pre-hook hands the output layer zero positions and a hook returns the
    hidden states in its place (the training side's ``reference.HiddenStates``
    does the same). None when the model has no separate output layer or its
    forward changes the logits after it (soft capping): then logits are needed.
    """
    head = model.get_output_embeddings()
    if head is None or changes_logits(getattr(model, "config", None)):
        return None
    captured: list[torch.Tensor] = []

    def before(module, args):
        captured.append(args[0])
        return (args[0][..., :0, :], *args[1:])

    def after(module, args, output):
        return captured[0]

    handles = [head.register_forward_pre_hook(before), head.register_forward_hook(after)]
    try:
        logits = model(**kwargs).logits
    finally:
        for handle in handles:
            handle.remove()
    return logits if len(captured) == 1 and logits is captured[0] else None


def _answer_logprobs(head, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) for each of N positions: the output layer runs on chunks of positions, in float32."""
    vocab = getattr(head, "out_features", None) or head.weight.shape[0]
    step = max(1, CHUNK_ELEMENTS // vocab)
    parts = []
    for start in range(0, states.shape[0], step):
        logits = head(states[start : start + step]).float()
        chosen = logits.gather(-1, targets[start : start + step].unsqueeze(-1)).squeeze(-1)
        parts.append(chosen - torch.logsumexp(logits, dim=-1))
    return torch.cat(parts)


@torch.no_grad()
def batched_logprob_sums(
    model,
    prompts: list[list[int]],
    answers: list[list[int]],
    pad_id: int,
    prefix: Prefix | None = None,
) -> list[float]:
    """Summed answer log-probabilities for each (prompt, answer) pair in one forward pass.

    With ``prefix``, every prompt here is the part that follows ``prefix.ids``
    (the caller checked that the full prompt starts with them) and must hold at
    least one token: the one that predicts the first answer token.

    The output layer runs only at the positions that predict answer tokens
    (gathered over all rows, so padding and prompts cost nothing there), a
    chunk of positions at a time; no (rows, time, vocabulary) logits exist.
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

    kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if prefix is not None:
        offset = len(prefix)
        kwargs["attention_mask"] = torch.cat([torch.ones((len(rows), offset), dtype=torch.long), mask], 1).to(device)
        kwargs["position_ids"] = (torch.arange(width) + offset).unsqueeze(0).expand(len(rows), -1).to(device)
        kwargs[_cache_kwarg(model)] = prefix.cache_for(len(rows))
        kwargs["use_cache"] = True
    else:
        kwargs["use_cache"] = False

    # Column c predicts token c+1; the answer of row i is predicted by columns starts[i]-1 .. starts[i]+lengths[i]-2.
    columns = torch.arange(width - 1)
    in_answer = (columns.unsqueeze(0) >= starts.unsqueeze(1) - 1) & (columns.unsqueeze(0) < (starts + lengths - 1).unsqueeze(1))
    row_of, column_of = in_answer.nonzero(as_tuple=True)
    targets = ids[row_of, column_of + 1].to(device)
    if row_of.numel() == 0:
        return [0.0] * len(rows)
    states = _final_states(model, kwargs)
    if states is not None:
        token_logp = _answer_logprobs(model.get_output_embeddings(), states[row_of.to(device), column_of.to(device)], targets)
    else:  # logits changed after the output layer: take them whole, at the answer positions
        if prefix is not None:  # the tapped forward may have run and extended the cache: start from the prefix again
            kwargs[_cache_kwarg(model)] = prefix.cache_for(len(rows))
        logits = model(**kwargs).logits[row_of.to(device), column_of.to(device)].float()
        token_logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    sums = torch.zeros(len(rows), dtype=torch.float64, device=device).index_add_(0, row_of.to(device), token_logp.double())
    return sums.cpu().tolist()
