"""Which items each benchmark asks: BeaverTails parts, benign instructions, validation questions, jailbreak limits."""

from __future__ import annotations

import json

import pytest

from sarft_ray.data import CorpusConfig, assign_split, normalise_question
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.benchmarks import build_items, heldout_questions
from sarft_ray.evaluation.config import EvaluationConfig


def test_beavertails_parts_asked_by_evaluation_and_by_sweeps_are_disjoint(shared_data):
    def prompts(use: str) -> set[str]:
        cfg = EvaluationConfig(benchmarks=["beavertails"], jailbreaks=[], beavertails_split={"use": use})
        return set(build_items(cfg, ["John Doe"])["beavertails"].column("goal").to_pylist())

    test, validation, every = prompts("test"), prompts("validation"), prompts("all")
    assert (len(test), len(validation), len(every)) == (14 * 14, 14 * 8, 700)
    assert not test & validation and test | validation < every


def test_benign_benchmark_reads_instructions_and_needs_a_file(tmp_path, shared_data):
    path = tmp_path / "benign.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Name {i} fruits."}) + "\n" for i in range(5)))
    cfg = EvaluationConfig(benchmarks=["benign"], jailbreaks=[], paths={"benign": str(path)}, limits={"benign": 3})
    items = build_items(cfg, ["John Doe"])["benign"].to_pylist()
    assert [r["goal"] for r in items] == ["Name 0 fruits.", "Name 1 fruits.", "Name 2 fruits."]
    with pytest.raises(ValueError, match="'benign' needs paths.benign"):
        EvaluationConfig(benchmarks=["benign"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "ok"}) + "\n" + json.dumps({"instruction": " "}) + "\n")
    with pytest.raises(SarftError, match=r"bad.jsonl:2: field 'instruction'"):
        build_items(EvaluationConfig(benchmarks=["benign"], jailbreaks=[], paths={"benign": str(bad)}), ["John Doe"])


def test_validation_split_feeds_rolebench_val_and_stays_out_of_training(tmp_path, shared_data):
    corpus_file = tmp_path / "corpus.jsonl"
    rows = [{"role": "R", "sample_id": f"s{i}", "input": f"Question {i}?", "output": "A."} for i in range(60)]
    corpus_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = CorpusConfig(format="table", paths=[str(corpus_file)], test_fraction=0.2, validation_fraction=0.2)
    splits = {r["sample_id"]: assign_split("R", r["sample_id"], 0.2, 0, 0.2) for r in rows}
    # adding a validation split takes rows from training only
    assert all(splits[k] == "test" for k in splits if assign_split("R", k, 0.2, 0) == "test")
    cfg = EvaluationConfig(benchmarks=["rolebench_val"], jailbreaks=[])
    asked = build_items(cfg, ["R"], corpus)["rolebench_val"].column("item_id").to_pylist()
    assert sorted(asked) == sorted(k for k, v in splits.items() if v == "validation") and asked
    held = heldout_questions(cfg, ["R"], corpus)
    for row in rows:
        assert held.contains("R", row["input"]) == (splits[row["sample_id"]] != "train")
    with pytest.raises(ValueError, match="must leave rows to train on"):
        CorpusConfig(format="table", paths=[str(corpus_file)], test_fraction=0.5, validation_fraction=0.5)


def test_validation_questions_split_by_kind(tmp_path, shared_data):
    # a corpus file's stem is its rows' source: role-specific questions and general instructions
    paths = []
    for source in ("role_specific", "general"):
        path = tmp_path / f"{source}.jsonl"
        path.write_text("".join(
            json.dumps({"role": "R", "sample_id": f"{source}{i}", "input": f"{source} {i}?", "output": "A."}) + "\n"
            for i in range(40)))
        paths.append(str(path))
    corpus = CorpusConfig(format="table", paths=paths, test_fraction=0.2, validation_fraction=0.3)
    cfg = EvaluationConfig(benchmarks=["rolebench_val", "rolebench_val_spe", "rolebench_val_raw"], jailbreaks=[],
                           spe_sources=["role_specific"], raw_sources=["general"])
    items = build_items(cfg, ["R"], corpus)
    every, spe, raw = (set(items[b].column("item_id").to_pylist())
                       for b in ("rolebench_val", "rolebench_val_spe", "rolebench_val_raw"))
    assert spe and raw and spe | raw == every and not spe & raw
    assert all(i.startswith("role_specific") for i in spe) and all(i.startswith("general") for i in raw)
    assert items["rolebench_val_spe"].column("benchmark").unique().to_pylist() == ["rolebench_val_spe"]


def test_jailbreaks_have_their_own_limit(shared_data):
    cfg = EvaluationConfig(benchmarks=["advbench"], jailbreaks=["caesar"], limits={"advbench": 5, "jailbreaks": 2})
    items = build_items(cfg, ["John Doe"])
    assert items["advbench"].num_rows == 5 and items["jailbreak_caesar"].num_rows == 2
    assert items["jailbreak_caesar"].column("goal").to_pylist() == items["advbench"].column("goal").to_pylist()[:2]
    shared = EvaluationConfig(benchmarks=["advbench"], jailbreaks=["caesar"], limits={"advbench": 4})
    assert build_items(shared, ["John Doe"])["jailbreak_caesar"].num_rows == 4


def test_benign_instructions_are_held_out_of_training(tmp_path, shared_data):
    path = tmp_path / "benign.jsonl"
    path.write_text(json.dumps({"instruction": "Name three fruits."}) + "\n")
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text(json.dumps({"role": "R", "sample_id": "a", "input": "x", "output": "y"}) + "\n")
    corpus = CorpusConfig(format="table", paths=[str(corpus_file)], test_fraction=0.0)
    cfg = EvaluationConfig(benchmarks=["benign"], jailbreaks=[], paths={"benign": str(path)})
    held = heldout_questions(cfg, ["R"], corpus)
    assert held.contains("Anyone", "name three FRUITS") and normalise_question("Name three fruits.") in held.every_role
