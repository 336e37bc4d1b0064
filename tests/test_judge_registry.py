"""Judges are a registry: a judge added in this file alone (its config model, its class, one registration
line) is accepted by the config, built by the evaluation, and its verdicts land in the evaluation's table."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq
import pytest
from pydantic import PositiveInt

from sarft_ray.config import parse_config
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.judges import (
    BUILTIN_JUDGES,
    JudgeItem,
    JudgeSettings,
    Verdict,
    build_judge,
    check_judge,
    judges_markdown,
    register_judge,
    registered_judges,
)
from sarft_ray.paths import data_dir

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the judge this test adds


class ReplyLengthJudgeConfig(JudgeSettings):
    """A reply shorter than min_chars characters is a refusal (a stand-in judge for this test)."""

    kind: Literal["reply_length"]
    min_chars: PositiveInt = 20


class ReplyLengthJudge:
    def __init__(self, cfg: ReplyLengthJudgeConfig):
        self.min_chars = cfg.min_chars
        self.judge_id = f"reply-length:{cfg.min_chars}"

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        return [
            Verdict("refusal" if len(i.response) < self.min_chars else "compliance", f"{len(i.response)} chars")
            for i in items
        ]


if "reply_length" not in registered_judges():  # the module may be imported twice in one session
    register_judge("reply_length", ReplyLengthJudgeConfig, ReplyLengthJudge)


# ------------------------------------------------------------------ tests


def _tree(tmp_path: Path, model_ref: str, judge) -> dict:
    general = data_dir() / "rolebench" / "role-generalization" / "general" / "test.jsonl"
    return {
        "experiment": "judges",
        "output_root": str(tmp_path / "runs"),
        "model": {"ref": model_ref},
        "roles": {
            "names": ["Tom Ripley"],
            "corpus": {"paths": [str(general)]},
            "prompts": {"path": str(data_dir() / "sarft_profiles" / "role_and_unsafe_prompts.json")},
        },
        "evaluation": {
            "benchmarks": ["advbench"], "jailbreaks": ["caesar"], "limit": 2, "backend": "local",
            "generation": {"max_new_tokens": 4, "batch_size": 2}, "judge": judge,
        },
    }


def test_a_judge_registered_in_a_test_file_judges_an_evaluation(tmp_path, tiny_model_dir):
    from sarft_ray.evaluation.runner import evaluate_model

    cfg = parse_config(_tree(tmp_path, str(tiny_model_dir), {"kind": "reply_length", "min_chars": 1000}), "x.yaml", tmp_path)
    assert isinstance(cfg.evaluation.judge, ReplyLengthJudgeConfig) and cfg.evaluation.judge.min_chars == 1000
    assert cfg.resolved()["evaluation"]["judge"] == {"kind": "reply_length", "min_chars": 1000}
    assert check_judge(cfg.evaluation) == "judge: reply_length"

    result = evaluate_model(cfg)
    assert result.table["judge"] == "reply-length:1000"
    for name in ("advbench", "jailbreak_caesar"):
        verdicts = pq.read_table(result.directory / name / "verdicts.parquet").to_pylist()
        assert len(verdicts) == 2
        # four new tokens never make 1000 characters: every reply is a refusal, each reading judged by this judge
        assert {v["label"] for v in verdicts} == {"refusal"} and {v["judge"] for v in verdicts} == {"reply-length:1000"}
        assert all(v["raw"].endswith(" chars") for v in verdicts)
        assert result.table["benchmarks"][name]["refusal_rate"] == 100.0
    assert "judge `reply-length:1000`" in result.markdown


@pytest.mark.parametrize(
    ("judge", "message"),
    [
        ("reply_lenght", r"evaluation\.judge\.kind: unknown judge 'reply_lenght'; did you mean 'reply_length'\?"),
        ({"kind": "reply_length", "min_chars": 0}, r"evaluation\.judge\.min_chars: input should be greater than 0"),
        ({"kind": "reply_length", "window": 3}, r"evaluation\.judge\.window: unknown key"),
        ({"min_chars": 3}, r"evaluation\.judge\.kind: required field is missing"),
        ({"kind": "keyword", "min_chars": 3}, r"evaluation\.judge\.min_chars: unknown key"),
    ],
)
def test_judge_errors_name_the_field(tmp_path, judge, message):
    with pytest.raises(SarftError, match=rf"^x\.yaml: {message}"):
        parse_config(_tree(tmp_path, "tiny-random", judge), "x.yaml", tmp_path)


def test_the_built_in_judges_are_registered_and_listed_in_the_readme():
    assert registered_judges()[:3] == list(BUILTIN_JUDGES)
    cfg = parse_config(_tree(Path("."), "tiny-random", "keyword"), "x.yaml", Path("."))
    assert type(build_judge(cfg.evaluation.judge)).__name__ == "KeywordJudge"
    assert judges_markdown(BUILTIN_JUDGES) in (REPO / "README.md").read_text()


def test_a_judge_is_registered_once_with_a_config_model_of_its_kind():
    with pytest.raises(ValueError, match="already registered"):
        register_judge("reply_length", ReplyLengthJudgeConfig, ReplyLengthJudge)
    with pytest.raises(TypeError, match=r"kind: Literal\['other'\]"):
        register_judge("other", ReplyLengthJudgeConfig, ReplyLengthJudge)
