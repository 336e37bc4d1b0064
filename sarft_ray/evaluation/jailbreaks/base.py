"""The jailbreak protocol and its registry.

A jailbreak turns a harmful request into the message the model sees
(``wrap``) and turns the model's reply back into plain text for the judge
(``decode``; identity unless the reply is expected in a cipher). The judge
always sees the original request next to the decoded reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Jailbreak(Protocol):
    name: str

    def wrap(self, goal: str) -> str:
        """The user message that carries ``goal``."""
        ...

    def decode(self, response: str) -> str:
        """The reply as plain text."""
        ...


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
