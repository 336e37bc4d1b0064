"""The registry of refusal judges: ``kind`` -> its config model and what builds the judge.

A judge kind is one module that defines a config model (a ``JudgeSettings``
subclass whose ``kind`` is ``Literal["<kind>"]``, plus the judge's own
settings) and a judge class (``judge_id`` and ``judge(items) -> verdicts``,
see :class:`~sarft_ray.evaluation.judges.base.Judge`), and one line,
``register_judge(kind, config_model, factory)``, run before the config is
validated. ``evaluation.judge`` is validated by the registered model of its
``kind`` (every error names the field: ``evaluation.judge.<field>``), an
unknown kind gets a did-you-mean error, and ``build_judge`` calls the factory.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import ValidationError

from sarft_ray.evaluation.judges.base import Judge, JudgeSettings


@dataclass(frozen=True)
class JudgeKind:
    kind: str
    config_model: type[JudgeSettings]
    factory: Callable[[Any], Judge]  # (validated config) -> judge


_REGISTRY: dict[str, JudgeKind] = {}


def register_judge(kind: str, config_model: type[JudgeSettings], factory: Callable[[Any], Judge]) -> None:
    """Make ``kind`` usable as ``evaluation.judge.kind``; a kind can be registered once."""
    if kind in _REGISTRY:
        raise ValueError(f"judge {kind!r} is already registered")
    field = config_model.model_fields.get("kind") if issubclass(config_model, JudgeSettings) else None
    if field is None or get_args(field.annotation) != (kind,):
        raise TypeError(f"judge {kind!r}: its config model must subclass JudgeSettings with kind: Literal[{kind!r}]")
    _REGISTRY[kind] = JudgeKind(kind, config_model, factory)


def registered_judges() -> list[str]:
    """Every registered kind, built-ins first, in registration order."""
    return list(_REGISTRY)


def unknown_judge(kind: str) -> str:
    """What is wrong with an unregistered kind: a close registered kind if any, and the registered ones."""
    close = difflib.get_close_matches(kind, list(_REGISTRY), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown judge '{kind}'{hint} (registered: {', '.join(_REGISTRY)})"


def judges_markdown(kinds: Iterable[str] = ()) -> str:
    """The judges as a markdown list, one line each from its config model's docstring (default: every registered one)."""
    chosen = [_REGISTRY[k] for k in kinds] or list(_REGISTRY.values())
    return "\n".join(f"- `{j.kind}`: {(j.config_model.__doc__ or '').strip().splitlines()[0]}" for j in chosen)


def judge_settings(value: Any, context: dict | None = None) -> JudgeSettings:
    """``evaluation.judge`` validated by the config model its ``kind`` names (``judge: keyword`` is ``{kind: keyword}``).

    Errors are pydantic's, located inside the section, so the config's error
    line reads ``evaluation.judge.<field>: ...``.
    """
    if isinstance(value, JudgeSettings):
        return value
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise _error((), value, "must be a mapping with a kind, or the name of a judge")
    if "kind" not in value:
        raise ValidationError.from_exception_data("judge", [{"type": "missing", "loc": ("kind",), "input": value}])
    kind = value["kind"]
    if kind not in _REGISTRY:
        raise _error(("kind",), kind, unknown_judge(str(kind)))
    return _REGISTRY[kind].config_model.model_validate(value, context=context)


def build_judge(cfg: JudgeSettings) -> Judge:
    """The judge an ``evaluation.judge`` section describes."""
    return _REGISTRY[cfg.kind].factory(cfg)


def _error(loc: tuple, value: Any, message: str) -> ValidationError:
    """A pydantic error at ``loc`` inside the judge section (the config's error line names the field)."""
    line = {"type": "value_error", "loc": loc, "input": value, "ctx": {"error": ValueError(message)}}
    return ValidationError.from_exception_data("judge", [line])
