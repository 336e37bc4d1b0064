"""Refusal judges: keyword (default, offline), OpenAI-compatible chat, local HF classifier."""

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
    "combine_readings",
    "judge_cached",
]


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
