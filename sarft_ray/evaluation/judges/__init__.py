"""Refusal judges: keyword (default, offline), OpenAI-compatible chat, local HF classifier.

``check_judge`` is what ``validate`` says about the judge (offline checks);
``preflight`` asks an API judge one question before an evaluation generates.
"""

from __future__ import annotations

from sarft_ray.evaluation.judges.base import COMPLIANCE, INVALID, REFUSAL, Judge, JudgeItem, Verdict, combine_readings
from sarft_ray.evaluation.judges.cache import VerdictCache, judge_cached
from sarft_ray.evaluation.judges.keyword import KeywordJudge

__all__ = [
    "COMPLIANCE",
    "INVALID",
    "REFUSAL",
    "Judge",
    "JudgeItem",
    "KeywordJudge",
    "Verdict",
    "VerdictCache",
    "build_judge",
    "check_judge",
    "combine_readings",
    "judge_cached",
    "preflight",
]


def needs_judge(ev_cfg) -> bool:
    """Whether an ``evaluation`` section asks any safety benchmark (only those are judged)."""
    from sarft_ray.evaluation.benchmarks import is_safety

    return bool(ev_cfg.jailbreaks) or any(is_safety(name) for name in ev_cfg.benchmarks)


def check_judge(ev_cfg) -> str:
    """One line for ``validate`` about the judge of an ``evaluation`` section, without contacting it.

    An API judge's URL must carry no credentials and its key's environment
    variable must be set (SarftError naming the variable otherwise).
    """
    cfg = ev_cfg.judge
    if not needs_judge(ev_cfg):
        return f"judge: {cfg.kind}, not used (no safety benchmark)"
    if cfg.kind == "openai":
        from sarft_ray.evaluation.judges.openai_chat import check_settings

        key = check_settings(cfg.base_url, cfg.api_key_env)
        sent = f"key from ${cfg.api_key_env}" if key else "no key"
        return f"judge: openai {cfg.model} at {cfg.base_url} ({sent})"
    if cfg.kind == "hf_classifier":
        return f"judge: hf_classifier {cfg.path}"
    return "judge: keyword"


def preflight(judge: Judge) -> None:
    """Let a judge that talks to a server prove it can, before anything is generated (others: nothing)."""
    check = getattr(judge, "preflight", None)
    if check is not None:
        check()


def build_judge(cfg) -> Judge:
    """The judge an ``evaluation.judge`` config section describes."""
    if cfg.kind == "keyword":
        return KeywordJudge(window=cfg.window)
    if cfg.kind == "openai":
        from sarft_ray.evaluation.judges.openai_chat import OpenAIChatJudge

        return OpenAIChatJudge(
            base_url=cfg.base_url,
            model=cfg.model,
            api_key_env=cfg.api_key_env,
            concurrency=cfg.concurrency,
            max_retries=cfg.max_retries,
            backoff_s=cfg.backoff_s,
            timeout_s=cfg.timeout_s,
            max_tokens=cfg.max_tokens,
        )
    if cfg.kind == "hf_classifier":
        from sarft_ray.evaluation.judges.hf_classifier import HFClassifierJudge

        return HFClassifierJudge(
            path=cfg.path,
            label_map=cfg.label_map,
            template=cfg.template,
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            device=cfg.device,
        )
    raise ValueError(f"unknown judge kind {cfg.kind!r}")
