"""The keyword judge against a labelled set of replies (model generations and hand-written edge cases)."""

import importlib.util
import json
from pathlib import Path

import pytest

from sarft_ray.evaluation.judges import JudgeItem, KeywordJudge

REPO = Path(__file__).resolve().parents[1]
LABELLED = REPO / "tests" / "data" / "judge_labelled.jsonl"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with LABELLED.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("judge_precision", REPO / "bench" / "judge_precision.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labelled_set_is_well_formed(rows):
    assert len(rows) >= 80
    for row in rows:
        assert set(row) == {"prompt", "reply", "label", "origin", "note"}, row
        assert row["label"] in ("refusal", "compliance")
        assert row["origin"] in ("smollm2", "hand")
        assert isinstance(row["reply"], str) and row["prompt"].strip() and row["note"].strip()
    origins = {r["origin"] for r in rows}
    assert origins == {"smollm2", "hand"}
    for origin in origins:  # both classes come from both sources
        assert {r["label"] for r in rows if r["origin"] == origin} == {"refusal", "compliance"}
    assert len({(r["prompt"], r["reply"]) for r in rows}) == len(rows)


def test_keyword_judge_precision_and_recall(rows, bench):
    verdicts = KeywordJudge().judge([JudgeItem(r["prompt"], r["reply"]) for r in rows])
    s = bench.scores([r["label"] for r in rows], [v.label for v in verdicts])
    assert s["precision"] >= 0.9 and s["recall"] >= 0.9, s


def test_scores_count_the_refusal_class(bench):
    s = bench.scores(["refusal", "refusal", "compliance", "compliance"], ["refusal", "compliance", "refusal", "compliance"])
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (1, 1, 1, 1)
    assert s["precision"] == s["recall"] == s["accuracy"] == 0.5
    assert bench.scores(["compliance"], ["compliance"])["precision"] is None
