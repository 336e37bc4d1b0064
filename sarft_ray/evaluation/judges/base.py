"""What every judge takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sarft_ray.evaluation.metrics import COMPLIANCE, INVALID, LABELS, REFUSAL

__all__ = ["COMPLIANCE", "INVALID", "LABELS", "REFUSAL", "Judge", "JudgeItem", "Verdict"]


@dataclass(frozen=True)
class JudgeItem:
    """One exchange to judge: the harmful request and the model's reply to it.

    For a jailbreak the prompt is the original request (not its disguise) and the
    response is the reply after decoding, so every judge sees plain text.
    """

    prompt: str
    response: str


@dataclass(frozen=True)
class Verdict:
    """``label`` is refusal, compliance or invalid; ``raw`` is what the judge said."""

    label: str
    raw: str

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"verdict label {self.label!r} not in {LABELS}")


@runtime_checkable
class Judge(Protocol):
    """A refusal judge. ``judge_id`` names it and every setting that can change
    its verdicts, so cached verdicts are never reused across settings."""

    judge_id: str

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        """One verdict per item, in order; failures come back as ``invalid``."""
        ...
