"""The registry of benchmarks: what each one asks, where its file is, and how its figures are named.

A benchmark is one function that turns an :class:`ItemRequest` (the
evaluation section, the roles, the benchmark's file and item limit) into item
rows (:func:`item`), and one line, ``register_benchmark(BenchmarkSpec(...))``.
From then on ``evaluation.benchmarks`` accepts its name (did-you-mean error
otherwise), ``evaluation.limits.<name>`` caps it, ``evaluation.paths.<name>``
names its file when it reads one, its questions are held out of training
(``heldout``), ``validate`` checks its file (``check``), and the metric
catalogue names its figures: ``<name>_rouge_l_first``/``_max`` for a
``rolebench`` benchmark (ROUGE-L against its references), ``<name>_rr`` for a
``safety`` benchmark (judged for refusals).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sarft_ray.errors import SarftError


@dataclass(frozen=True)
class ItemRequest:
    """What a benchmark's item builder is given."""

    cfg: Any  # the EvaluationConfig
    roles: list[str]
    path: Path | None  # the benchmark's file (configured, else the default under the data directory); None without one
    limit: int | None  # evaluation.limits.<name>, else evaluation.limit
    corpus_cfg: Any = None  # roles.corpus, for benchmarks drawn from the experiment's own corpus


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    kind: Literal["rolebench", "safety"]  # scored by ROUGE-L against references / judged for refusals
    items: Callable[[ItemRequest], list[dict]]
    short: str  # table column: "<short> R-L" (rolebench) or "<short> RR" (safety)
    label: str  # plot axis: "<label> ROUGE-L (x100)" (rolebench) or the whole label (safety)
    limit_help: str  # what evaluation.limits.<name> caps
    default_file: str | None = None  # under the data directory; evaluation.paths.<name> replaces it
    file_help: str | None = None  # evaluation.paths.<name>; without default_file the path is required when asked
    heldout: Callable[[ItemRequest, Any], None] | None = None  # (request, HeldOutQuestions): add what training must not see
    check: Callable[[ItemRequest], str] | None = None  # validate's line about the file, read without a model
    averaged: bool = False  # safety: one of the rates in safety_avg
    higher_is_better: bool = True  # safety: False for an over-refusal rate

    @property
    def reads_file(self) -> bool:
        return self.default_file is not None or self.file_help is not None


_REGISTRY: dict[str, BenchmarkSpec] = {}


def register_benchmark(spec: BenchmarkSpec) -> None:
    """Make ``spec.name`` usable in ``evaluation.benchmarks``; a name can be registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"benchmark {spec.name!r} is already registered")
    if spec.name.startswith("jailbreak") or spec.name in ("limit", "jailbreaks"):
        raise ValueError(f"benchmark {spec.name!r}: the name is taken by jailbreaks or the limits section")
    _REGISTRY[spec.name] = spec


def registered_benchmarks(kind: str | None = None) -> list[str]:
    """Every registered name (of ``kind`` if given), built-ins first, in registration order."""
    return [name for name, spec in _REGISTRY.items() if kind is None or spec.kind == kind]


def get_benchmark(name: str) -> BenchmarkSpec:
    if name not in _REGISTRY:
        raise SarftError(f"evaluation.benchmarks: {unknown_benchmark(name)}")
    return _REGISTRY[name]


def unknown_benchmark(name: str) -> str:
    """What is wrong with an unregistered name: a close registered name if any, and the registered ones."""
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown benchmark '{name}'{hint} (registered: {', '.join(_REGISTRY)})"


def check_benchmark_name(name: str) -> str:
    """``name`` if registered, else ValueError (a pydantic validator: the error names the config field)."""
    if name not in _REGISTRY:
        raise ValueError(unknown_benchmark(name))
    return name


def is_safety(benchmark: str) -> bool:
    """Whether a benchmark's replies are judged for refusals (every jailbreak's are)."""
    spec = _REGISTRY.get(benchmark)
    return spec.kind == "safety" if spec is not None else benchmark.startswith("jailbreak_")


def item(benchmark: str, item_id: str, goal: str, **extra) -> dict:
    """One item row: ``goal`` is the plain request (what the judge sees); ``extra`` sets ``role``,
    ``category``, ``user`` (the message sent, default the goal), ``system`` and ``references``."""
    return {
        "benchmark": benchmark,
        "item_id": item_id,
        "role": extra.get("role"),
        "category": extra.get("category"),
        "goal": goal,
        "user": extra.get("user", goal),
        "system": extra.get("system"),
        "references": extra.get("references", []),
    }
