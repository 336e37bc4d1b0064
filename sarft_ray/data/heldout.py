"""Questions that evaluation asks, kept out of every training and scoring corpus.

RoleBench's role-generalization files repeat the role-specific (SPE) test
questions of their ten roles with the same answers, and a corpus may hold the
very safety prompts a benchmark asks. A question the model was trained on
measures memorisation, so every (role, question) an evaluation benchmark asks
is removed from the training split before scoring (and so before training).

Matching is on normalised text (``normalise_question``): Unicode compatibility
form, case-folded, curly quotes made straight, every run of characters that are
not letters or digits collapsed to one space. RoleBench and safety questions
are matched per role; safety prompts are asked of every role, so they are
removed from every role's corpus.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from sarft_ray.data.roles import role_key
from sarft_ray.hashing import text_digest

_NOT_WORD = re.compile(r"[\W_]+")


def normalise_question(text: str) -> str:
    """The form two questions are compared in: ``"What's up?"`` and ``"what’s  up"`` agree."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'").replace("\u2018", "'")
    return _NOT_WORD.sub(" ", folded.replace("'", "")).strip()


@dataclass
class HeldOutQuestions:
    """The normalised questions evaluation asks: per role, and asked of every role."""

    per_role: dict[str, set[str]] = field(default_factory=dict)
    every_role: set[str] = field(default_factory=set)
    sources: dict[str, int] = field(default_factory=dict)

    def add(self, source: str, questions: Iterable[str], role: str | None = None) -> None:
        """Hold out ``questions`` for ``role`` (``None``: for every role); ``source`` names the benchmark."""
        target = self.every_role if role is None else self.per_role.setdefault(role_key(role), set())
        before = len(target)
        target.update(q for q in (normalise_question(t) for t in questions) if q)
        self.sources[source] = self.sources.get(source, 0) + len(target) - before

    def contains(self, role: str, question: str) -> bool:
        text = normalise_question(question)
        return text in self.every_role or text in self.per_role.get(role_key(role), ())

    def __len__(self) -> int:
        return len(self.every_role) + sum(len(s) for s in self.per_role.values())

    def digest(self) -> str:
        """A hash of the whole set: stored scores are only reused for the same held-out questions."""
        blob = "\n".join(
            [f"*\t{q}" for q in sorted(self.every_role)]
            + [f"{role}\t{q}" for role in sorted(self.per_role) for q in sorted(self.per_role[role])]
        )
        return text_digest(blob, 16)
