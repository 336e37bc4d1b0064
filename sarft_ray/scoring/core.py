"""RDS scoring of one role's samples: pure torch, no Ray.

For each (question x, answer y) of role r:

    logp_c   = log pi_ref(y | system prompt of condition c, x)   c in role, unsafe[, none]
    s_role   = logp_role   - logp_none       (only with the reference pass)
    s_unsafe = logp_unsafe - logp_none
    harmful  = logp_unsafe > logp_role       (same as s_unsafe > s_role: logp_none cancels)

``logp`` is the mean (default) or the sum of the answer tokens' log-probabilities,
as ``ScoringConfig.aggregate`` says; both are returned. The answer includes the
end-of-turn token that ``encode_pair`` appends, so an answer is never scored on
zero tokens. An answer whose text tokenizes to nothing (an empty string) is an
error naming the role and sample: it has nothing to score and must not be dropped.

With ``prefix_reuse``, the tokens every prompt of a condition shares (the chat
markup and system prompt up to the user turn) are run once per role; each
sample whose prompt ids really start with them runs only its suffix, any other
sample takes the plain path (counted in ``prefix_fallbacks``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sarft_ray.data.prompts import RolePrompts
from sarft_ray.errors import SarftError
from sarft_ray.models.chat import encode_pair, format_prompt
from sarft_ray.scoring.config import ScoringConfig
from sarft_ray.scoring.logprob import Prefix, batched_logprob_sums, compute_prefix

_USER_PROBE = "\x1fsarft-user-probe\x1f"


def conditions(prompts: RolePrompts, reference_pass: bool) -> dict[str, str | None]:
    """System prompt per scoring condition: ``role``, ``unsafe`` and, optionally, ``none``."""
    out: dict[str, str | None] = {"role": prompts.role_prompt, "unsafe": prompts.unsafe_prompt}
    if reference_pass:
        out["none"] = None
    return out


def shared_prefix_ids(tokenizer, system: str | None) -> list[int]:
    """Token ids that every chat prompt with this system prompt starts with (best effort).

    The prompt is rendered around a probe question and cut where the probe
    starts. The last token is dropped because a tokenizer may merge it with the
    first characters of a real question; callers still check each prompt.
    """
    text = format_prompt(tokenizer, _USER_PROBE, system)
    if text.count(_USER_PROBE) != 1:
        return []
    head = text.split(_USER_PROBE)[0]
    return tokenizer(head, add_special_tokens=False)["input_ids"][:-1]


class PrefixCache:
    """Prefix key/value caches by system prompt, for the few roles an actor is working on."""

    def __init__(self, model, tokenizer, max_entries: int = 6):
        self.model = model
        self.tokenizer = tokenizer
        self.max_entries = max_entries
        self._entries: OrderedDict[str | None, Prefix | None] = OrderedDict()

    def get(self, system: str | None) -> Prefix | None:
        if system in self._entries:
            self._entries.move_to_end(system)
            return self._entries[system]
        prefix = compute_prefix(self.model, shared_prefix_ids(self.tokenizer, system))
        self._entries[system] = prefix
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return prefix


@dataclass
class RoleScores:
    """Per-sample columns for one batch of one role (lists aligned with the input)."""

    columns: dict[str, list]
    prefix_fallbacks: int = 0
    conditions: list[str] = field(default_factory=list)


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return 0 if pad is None else pad


def _condition_sums(model, tokenizer, encoded, cfg: ScoringConfig, prefix: Prefix | None) -> tuple[list[float], int]:
    """Summed answer log-probs of every sample under one condition, in batches of ``cfg.batch_size``."""
    pad = _pad_id(tokenizer)
    sums = [0.0] * len(encoded)
    shared, plain = [], []
    for i, pair in enumerate(encoded):
        # The suffix must keep at least one token: it predicts the first answer token.
        if prefix is not None and len(pair.prompt_ids) > len(prefix) and pair.prompt_ids[: len(prefix)] == prefix.ids:
            shared.append(i)
        else:
            plain.append(i)
    fallbacks = len(plain) if prefix is not None else 0
    for indices, use_prefix in ((shared, True), (plain, False)):
        # Similar lengths in one batch: less padding and fewer logit columns outside the answers.
        indices = sorted(indices, key=lambda i: (len(encoded[i].prompt_ids) + len(encoded[i].answer_ids), i))
        for chunk in _chunks(len(indices), cfg.batch_size):
            rows = [indices[j] for j in chunk]
            cut = len(prefix) if use_prefix else 0
            values = batched_logprob_sums(
                model,
                [encoded[i].prompt_ids[cut:] for i in rows],
                [encoded[i].answer_ids for i in rows],
                pad,
                prefix if use_prefix else None,
            )
            for i, value in zip(rows, values, strict=True):
                sums[i] = value
    return sums, fallbacks


def score_role_samples(
    model,
    tokenizer,
    prompts: RolePrompts,
    inputs: Sequence[str],
    outputs: Sequence[str],
    cfg: ScoringConfig,
    sample_ids: Sequence[str] | None = None,
    prefixes: PrefixCache | None = None,
) -> RoleScores:
    """Score one role's samples; returns the score columns in input order.

    Columns: ``logp_<c>_sum``, ``logp_<c>_mean`` and ``logp_<c>`` (the configured
    aggregate) for each condition c, ``logp_none`` / ``s_role`` / ``s_unsafe``
    (None without the reference pass), ``is_harmful``, ``n_answer_tokens``,
    ``truncated``.
    """
    if len(inputs) != len(outputs):
        raise ValueError("inputs and outputs differ in length")
    sample_ids = list(sample_ids) if sample_ids is not None else [str(i) for i in range(len(inputs))]
    for sid, answer in zip(sample_ids, outputs, strict=True):
        if not tokenizer(answer, add_special_tokens=False)["input_ids"]:
            raise SarftError(f"role '{prompts.role}', sample '{sid}': answer is empty (no tokens to score); fix or remove the row")
    if cfg.prefix_reuse and prefixes is None:
        prefixes = PrefixCache(model, tokenizer)

    columns: dict[str, list] = {}
    fallbacks = 0
    n_tokens: list[int] = []
    truncated: list[bool] = []
    systems = conditions(prompts, cfg.reference_pass)
    for name, system in systems.items():
        encoded = [
            encode_pair(tokenizer, x, y, system, cfg.max_source_tokens, cfg.max_target_tokens)
            for x, y in zip(inputs, outputs, strict=True)
        ]
        prefix = prefixes.get(system) if cfg.prefix_reuse else None
        sums, cond_fallbacks = _condition_sums(model, tokenizer, encoded, cfg, prefix)
        fallbacks += cond_fallbacks
        counts = [len(pair.answer_ids) for pair in encoded]
        if name == "role":
            n_tokens = counts
            truncated = [pair.truncated for pair in encoded]
        means = [s / n for s, n in zip(sums, counts, strict=True)]
        columns[f"logp_{name}_sum"] = sums
        columns[f"logp_{name}_mean"] = means
        columns[f"logp_{name}"] = means if cfg.aggregate == "mean" else sums

    role, unsafe = columns["logp_role"], columns["logp_unsafe"]
    none = columns.get("logp_none")
    if none is None:
        empty = [None] * len(inputs)
        for key in ("logp_none_sum", "logp_none_mean", "logp_none"):
            columns[key] = empty
        columns["s_role"] = columns["s_unsafe"] = empty
    else:
        columns["s_role"] = [r - n for r, n in zip(role, none, strict=True)]
        columns["s_unsafe"] = [u - n for u, n in zip(unsafe, none, strict=True)]
    columns["is_harmful"] = [u > r for u, r in zip(unsafe, role, strict=True)]
    columns["n_answer_tokens"] = n_tokens
    columns["truncated"] = truncated
    return RoleScores(columns, fallbacks, list(systems))
