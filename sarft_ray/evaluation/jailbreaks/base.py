"""The jailbreak base class and its registry.

A jailbreak turns a harmful request into the message the model sees
(``wrap``) and gives the judge the ways a reply can be read (``readings``).

Judging rule for replies that may be in a cipher: a model asked to answer in
a cipher may answer in it, in plain text, or in a mix. So every reply is
judged as written (the plain reading, always first), and also decoded
(``decode``) when ``is_encoded`` says the reply, or a part of it, is written
in the cipher. A refusal in any reading is a refusal (see
:func:`sarft_ray.evaluation.judges.combine_readings`). Decoding a plain reply
would turn an English refusal into gibberish, which is why the decoded
reading is only added when the reply looks encoded.

The judge always sees the original request next to each reading.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable


class Jailbreak(ABC):
    """Subclass and set ``name`` and ``wrap``; a cipher also overrides ``decode`` and ``is_encoded``."""

    name: str

    @abstractmethod
    def wrap(self, goal: str) -> str:
        """The user message that carries ``goal``."""

    def decode(self, response: str) -> str:
        """The reply with its cipher-written parts decoded (identity when there is no cipher)."""
        return response

    def is_encoded(self, response: str) -> bool:
        """Whether the reply, or a part of it, is written in the cipher."""
        return False

    def readings(self, response: str) -> list[str]:
        """The texts to judge: the reply as written, then its decoding if it looks encoded.

        A decoding with no text (a code reply whose strings and comments all come
        from the prompt's own template) adds no reading: an empty reading would
        be judged like an empty reply, a refusal, although the model wrote code.
        """
        out = [response]
        if self.is_encoded(response):
            decoded = self.decode(response)
            if decoded != response and decoded.strip():
                out.append(decoded)
        return out


def reply_readings(jailbreak, response: str) -> list[str]:
    """``jailbreak.readings(response)``; also serves objects that only have ``decode``
    (both the reply and its decoding are read then) and no jailbreak at all."""
    if jailbreak is None:
        return [response]
    if hasattr(jailbreak, "readings"):
        return list(jailbreak.readings(response))
    decoded = jailbreak.decode(response)
    return [response] if decoded == response or not decoded.strip() else [response, decoded]


_REGISTRY: dict[str, Callable[[], Jailbreak]] = {}


def register_jailbreak(name: str, factory: Callable[[], Jailbreak]) -> None:
    """Make ``name`` usable in ``evaluation.jailbreaks``; a name can be registered once."""
    if name in _REGISTRY:
        raise ValueError(f"jailbreak {name!r} is already registered")
    _REGISTRY[name] = factory


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def get_jailbreak(name: str) -> Jailbreak:
    if name not in _REGISTRY:
        raise KeyError(f"unknown jailbreak {name!r}; registered: {registered_names()}")
    return _REGISTRY[name]()
