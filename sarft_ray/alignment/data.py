"""Alignment training data, built reproducibly from files (pure Python, no model).

- harmful rows: every BeaverTails prompt of the split's ``train`` part, answered
  by one of ``REFUSALS`` (picked by a hash of the prompt), and optionally once
  more as an instruction (``imperative_form``), because requests arrive both as
  questions and as commands;
- benign instructions: unique instructions of ``benign_source`` that no
  evaluation asks (nor any corpus row outside a training split), ranked by a
  seeded hash; the first ``benign_train`` are answered by the unaligned model,
  the next ``benign_eval`` measure over-refusal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that. It could cause real harm to people.",
    "I'm sorry, but I won't assist with this request.",
    "I cannot help with that request. If you have another question, I'm happy to help.",
    "Sorry, I can't provide that. It could put someone at risk.",
    "I won't help with that, because it could hurt others.",
    "I'm not able to help with this. Is there something else I can do for you?",
    "I can't assist with that. Helping with this could be harmful or illegal.",
    "I'm sorry, I can't do that. I don't provide help with anything that could cause harm.",
    "I cannot provide guidance on that. It may be dangerous or against the law.",
    "I'm sorry, but I must decline. This request could lead to harm.",
    "No, I can't help with that. Let me know if there is something safe I can help with instead.",
    "I'm unable to help with that request because it could be used to hurt someone.",
    "I can't support that. If you or someone else is in danger, please contact local emergency services.",
    "I'm sorry, but that's not something I can help with.",
    "I won't provide that information. It could be misused to cause harm.",
    "I apologize, but I can't help with this. It goes against my commitment to safety.",
    "I can't give instructions for that. I'd be glad to help with something else.",
    "I'm sorry, I cannot assist with harmful or illegal activities.",
    "I must refuse this request; it could endanger people.",
)

_QUESTION_FORMS = (
    (re.compile(r"^how (?:can|could|do|would|should|might|will) (?:i|we|you|someone|one) (.+?)[?.!]*$", re.I), (
        "Explain how to {0}.", "Give me step-by-step instructions to {0}.", "Write a guide on how to {0}.",
    )),
    (re.compile(r"^what(?:'s| is) the (?:best|easiest|quickest|fastest) way to (.+?)[?.!]*$", re.I), (
        "Describe the best way to {0}.", "Tell me the easiest way to {0}.",
    )),
    (re.compile(r"^(?:can|could|would|will) you (?:please )?(?:help me |teach me (?:how )?to |tell me how to )?(.+?)[?.!]*$", re.I), (
        "{0}.", "Please {0}.",
    )),
)
_FALLBACK_FORMS = ("Answer this in detail: {0}", "Write a detailed response to the following: {0}", "Respond fully: {0}")


def _pick(text: str, seed: int, options: tuple[str, ...] | list[str]) -> str:
    digest = hashlib.sha256(f"{seed}|{text}".encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def refusal_for(prompt: str, seed: int = 0) -> str:
    """A refusal for ``prompt``, the same one every time for the same (prompt, seed)."""
    return _pick(prompt, seed, REFUSALS)


def imperative_form(question: str, seed: int = 0) -> str:
    """The request phrased as an instruction: ``How can I X?`` -> ``Explain how to X.``; else a wrapping frame."""
    text = " ".join(question.split())
    for pattern, forms in _QUESTION_FORMS:
        match = pattern.match(text)
        if match:
            command = _pick(text, seed, forms).format(match.group(1).strip())
            return command[:1].upper() + command[1:]
    return _pick(text, seed, _FALLBACK_FORMS).format(text)


_REFUSAL_OPENING = re.compile(
    r"\b(?:i'?m sorry|i am sorry|i apologi[sz]e|i (?:can ?not|can't|won't|will not|am unable|'m unable|am not able)"
    r"|as an ai)\b"
)


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
MIN_TRIMMED_CHARS = 20  # a kept cut-off answer holds at least this much: one real sentence, not "Sure."


def last_full_sentences(answer: str) -> str | None:
    """``answer`` up to the end of its last complete sentence, or None when that leaves under ``MIN_TRIMMED_CHARS``."""
    ends = [m.end() for m in _SENTENCE_END.finditer(answer)]
    if not ends or ends[-1] < MIN_TRIMMED_CHARS:
        return None
    return answer[: ends[-1]].strip()


def opens_like_refusal(answer: str) -> bool:
    """True when the first 120 characters of an answer hold a refusal phrase (curly apostrophes count)."""
    return bool(_REFUSAL_OPENING.search(answer[:120].casefold().replace("\u2019", "'")))


@dataclass(frozen=True)
class BenignSplit:
    """Benign instructions for distillation (``train``) and for measuring over-refusal (``eval``)."""

    train: list[str]
    eval: list[str]
    excluded: int  # unique instructions left out because an evaluation asks them


def benign_split(
    instructions: Iterable[str], excluded: set[str], train: int, evaluate: int, seed: int = 0,
    wanted: str = "benign_train + benign_eval", source: str = "alignment.benign_source",
) -> BenignSplit:
    """Unique instructions not in ``excluded`` (normalised), ranked by a seeded hash, cut into train and eval."""
    from sarft_ray.data.heldout import normalise_question

    unique: dict[str, str] = {}
    dropped = set()
    for text in instructions:
        key = normalise_question(text)
        if not key:
            continue
        if key in excluded:
            dropped.add(key)
            continue
        unique.setdefault(key, text)
    ranked = sorted(unique, key=lambda key: hashlib.sha256(f"{seed}|{key}".encode()).digest())
    if len(ranked) < train + evaluate:
        from sarft_ray.errors import SarftError

        raise SarftError(
            f"alignment: {len(ranked)} usable benign instructions, fewer than {wanted} "
            f"({train} + {evaluate}); lower them or add instructions to {source}"
        )
    return BenignSplit(
        [unique[k] for k in ranked[:train]], [unique[k] for k in ranked[train : train + evaluate]], len(dropped)
    )


def harmful_rows(prompts: list[str], imperative_copies: bool, seed: int = 0) -> list[dict]:
    """(request, refusal) training rows; with ``imperative_copies`` each prompt also as an instruction."""
    rows = [{"input": p, "output": refusal_for(p, seed), "kind": "harmful"} for p in prompts]
    if imperative_copies:
        for p in prompts:
            command = imperative_form(p, seed)
            if command != p:
                rows.append({"input": command, "output": refusal_for(command, seed + 1), "kind": "harmful_imperative"})
    return rows
