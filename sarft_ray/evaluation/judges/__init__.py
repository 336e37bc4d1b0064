"""Refusal judges, a registry: keyword (default, offline), OpenAI-compatible chat, local HF classifier.

Extending: write one module with the judge's config model (a
:class:`JudgeSettings` subclass with ``kind: Literal["<kind>"]``) and its
judge class (``judge_id``, ``judge(items) -> verdicts``; optionally
``preflight()``), and add one line, ``register_judge(kind, config_model,
factory)``, below or before the config is validated; ``evaluation.judge.kind``
accepts it from then on (see :mod:`sarft_ray.evaluation.judges.registry`).

``check_judge`` is what ``validate`` says about the judge (offline checks);
``preflight`` asks an API judge one question before an evaluation generates.
"""

from __future__ import annotations

from sarft_ray.evaluation.judges.hf_classifier import HFClassifierJudge, HFClassifierJudgeConfig
from sarft_ray.evaluation.judges.keyword import KeywordJudge, KeywordJudgeConfig
from sarft_ray.evaluation.judges.openai_chat import OpenAIChatJudge, OpenAIJudgeConfig
from sarft_ray.evaluation.judges.registry import register_judge
from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "base": "COMPLIANCE INVALID REFUSAL Judge JudgeItem JudgeSettings Verdict combine_readings",
    "cache": "VerdictCache judge_cached",
    "registry": "build_judge judge_settings judges_markdown registered_judges unknown_judge",
}
__getattr__, _LAZY = lazy_exports(__name__, _PUBLIC)

BUILTIN_JUDGES = ("keyword", "openai", "hf_classifier")

register_judge("keyword", KeywordJudgeConfig, KeywordJudge.from_config)
register_judge("openai", OpenAIJudgeConfig, OpenAIChatJudge.from_config)
register_judge("hf_classifier", HFClassifierJudgeConfig, HFClassifierJudge.from_config)

__all__ = sorted(
    {*_LAZY, "BUILTIN_JUDGES", "KeywordJudge", "OpenAIChatJudge", "HFClassifierJudge", "register_judge",
     "check_judge", "needs_judge", "preflight"}
)


def needs_judge(ev_cfg) -> bool:
    """Whether an ``evaluation`` section asks any safety benchmark (only those are judged)."""
    from sarft_ray.evaluation.benchmarks import is_safety

    return bool(ev_cfg.jailbreaks) or any(is_safety(name) for name in ev_cfg.benchmarks)


def check_judge(ev_cfg) -> str:
    """One line for ``validate`` about the judge of an ``evaluation`` section, without contacting it.

    The judge's own offline checks run (an API judge: its URL carries no
    credentials and its key's variable is set; SarftError otherwise).
    """
    if not needs_judge(ev_cfg):
        return f"judge: {ev_cfg.judge.kind}, not used (no safety benchmark)"
    return ev_cfg.judge.describe()


def preflight(judge) -> None:
    """Let a judge that talks to a server prove it can, before anything is generated (others: nothing)."""
    check = getattr(judge, "preflight", None)
    if check is not None:
        check()
