import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sarft_ray.config import parse_config
from sarft_ray.evaluation.benchmarks import build_items, stratified_head
from sarft_ray.evaluation.config import EvaluationConfig
from sarft_ray.evaluation.report import headline, safety_summary
from sarft_ray.evaluation.runner import evaluate_model
from sarft_ray.models import save_tiny_model
from sarft_ray.paths import data_dir

ROLE = "Tom Ripley"


def _roles_section() -> dict:
    general = data_dir() / "rolebench" / "role-generalization" / "general" / "test.jsonl"
    prompts = data_dir() / "sarft_profiles" / "role_and_unsafe_prompts.json"
    return {"names": [ROLE], "corpus": {"paths": [str(general)]}, "prompts": {"path": str(prompts)}}


def _config(tmp_path: Path, model_dir: Path, **evaluation):
    data = {
        "experiment": "evaltest",
        "output_root": str(tmp_path / "runs"),
        "model": {"ref": str(model_dir)},
        "roles": _roles_section(),
        "evaluation": evaluation,
        "ray": {"num_cpus": 2, "include_dashboard": False},
    }
    return parse_config(data, "test.yaml", tmp_path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_full_benchmarks_have_their_published_sizes():
    cfg = parse_config({"experiment": "x", "model": {"ref": "tiny-random"}, "roles": _roles_section()}, "t", Path("."))
    items = build_items(cfg.evaluation, [ROLE], cfg.roles.corpus, cfg.roles.prompts)
    assert items["advbench"].num_rows == 520
    assert items["beavertails"].num_rows == 700
    categories = Counter(items["beavertails"].column("category").to_pylist())
    assert len(categories) == 14 and set(categories.values()) == {50}
    assert items["rolebench_spe"].num_rows == 50
    for name in ("jailbreak_aim", "jailbreak_caesar", "jailbreak_morse", "jailbreak_code_chameleon"):
        assert items[name].num_rows == 520
        assert items[name].column("goal").to_pylist() == items["advbench"].column("goal").to_pylist()
    # RAW comes from the corpus's held-out split only.
    raw = items["rolebench_raw"]
    assert 0 < raw.num_rows < 500 and set(raw.column("role").to_pylist()) == {ROLE}


def test_stratified_limit_spreads_over_categories():
    rows = [{"c": c, "i": i} for i, c in enumerate("aaaaabbbbbccccc")]
    picked = stratified_head(rows, "c", 7)
    assert Counter(r["c"] for r in picked) == {"a": 3, "b": 2, "c": 2}
    assert [r["i"] for r in picked] == sorted(r["i"] for r in picked)
    assert stratified_head(rows, "c", None) == rows


def test_role_system_prompt_asks_safety_items_per_role():
    cfg = EvaluationConfig(limit=2, jailbreaks=["caesar"], generation={"system_prompt": "role"})
    roles_cfg = parse_config(
        {"experiment": "x", "model": {"ref": "tiny-random"}, "roles": _roles_section()}, "t", Path(".")
    ).roles
    items = build_items(cfg, [ROLE], roles_cfg.corpus, roles_cfg.prompts)
    for table in items.values():
        assert set(table.column("role").to_pylist()) == {ROLE}
        assert all(s and "Ripley" in s for s in table.column("system").to_pylist())


def test_summary_counts_invalid_verdicts_and_averages():
    import pyarrow as pa

    verdicts = pa.table(
        {
            "label": ["refusal", "compliance", "invalid", "refusal"],
            "category": ["a", "a", "b", "b"],
            "role": pa.array([None] * 4, pa.string()),
        }
    )
    summary = safety_summary(verdicts)
    assert summary["n"] == 4 and summary["n_invalid"] == 1
    assert summary["refusal_rate"] == pytest.approx(200 / 3)
    assert summary["per_category"]["b"] == {
        "refusal_rate": 100.0, "n": 2, "n_refusal": 1, "n_compliance": 0, "n_invalid": 1
    }
    assert "per_role" not in summary
    row = headline({"advbench": {"refusal_rate": 50.0}, "beavertails": {"refusal_rate": 70.0},
                    "jailbreak_aim": {"refusal_rate": 10.0}, "jailbreak_morse": {"refusal_rate": None}})
    assert row["safety_avg"] == 60.0 and row["jailbreak_avg"] is None


def _check_run(result, limit: int):
    table = json.loads((result.directory / "table.json").read_text())
    assert table == json.loads(json.dumps(result.table, default=str))
    assert (result.directory / "table.md").read_text() == result.markdown
    benchmarks = table["benchmarks"]
    for name in ("advbench", "beavertails", "jailbreak_aim", "jailbreak_caesar", "jailbreak_morse", "jailbreak_code_chameleon"):
        verdicts = pq.read_table(result.directory / name / "verdicts.parquet")
        assert verdicts.num_rows == benchmarks[name]["n"] == limit
        assert benchmarks[name]["n_refusal"] + benchmarks[name]["n_compliance"] + benchmarks[name]["n_invalid"] == limit
        generations = pq.read_table(result.directory / name / "generations.parquet")
        assert generations.num_rows == limit and all(generations.column("prompt").to_pylist())
    caesar = pq.read_table(result.directory / "jailbreak_caesar" / "generations.parquet").to_pylist()
    verdicts = pq.read_table(result.directory / "jailbreak_caesar" / "verdicts.parquet").to_pylist()
    from sarft_ray.evaluation.jailbreaks import get_jailbreak

    # Every reply is judged as written, plus decoded where it is in the cipher.
    assert [v["readings"] for v in verdicts] == [get_jailbreak("caesar").readings(g["response"]) for g in caesar]
    for v in verdicts:
        assert v["readings"][0] is not None and v["judged_response"] in v["readings"]
        assert len(v["reading_labels"]) == len(v["readings"])
    for name in ("rolebench_spe", "rolebench_raw"):
        scores = pq.read_table(result.directory / name / "scores.parquet")
        assert scores.num_rows == limit
        assert 0 <= benchmarks[name]["rouge_l_first"] <= benchmarks[name]["rouge_l_max"] <= 100
    assert set(table["headline"]) >= {"advbench_rr", "beavertails_rr", "safety_avg", "jailbreak_avg",
                                      "rolebench_spe_rouge_l_first", "rolebench_raw_rouge_l_max"}
    return table


def test_evaluate_tiny_model_in_process(tmp_path, model_dir):
    limit = 3
    cfg = _config(tmp_path, model_dir, limit=limit, backend="local", generation={"max_new_tokens": 6, "batch_size": 4})
    first = evaluate_model(cfg)
    table = _check_run(first, limit)
    assert table["run"]["generated"] == limit * 8
    assert first.directory.parent == tmp_path / "runs" / "evaltest" / "eval"
    stored = sum(sum(pq.read_table(p).column("n_new_tokens").to_pylist()) for p in first.directory.glob("*/generations.parquet"))
    run = table["run"]
    assert run["new_tokens"] == run["decode_new_tokens"] == stored > 0  # tokens/s of generation in the summary
    assert run["new_tokens_per_s"] > 0 and run["decode_new_tokens_per_s"] >= run["new_tokens_per_s"]

    # A re-run reuses generations and cached verdicts; a larger limit generates only new items.
    again = evaluate_model(cfg)
    n_readings = sum(
        len(r)
        for name in ("advbench", "beavertails", "jailbreak_aim", "jailbreak_caesar", "jailbreak_morse", "jailbreak_code_chameleon")
        for r in pq.read_table(first.directory / name / "verdicts.parquet").column("readings").to_pylist()
    )
    assert n_readings >= limit * 6  # one verdict per reading, all cached
    assert again.table["run"]["generated"] == 0 and again.table["run"]["judge_cache_hits"] == n_readings
    assert again.table["run"]["new_tokens"] == 0 and again.table["run"]["new_tokens_per_s"] is None
    assert again.table["headline"] == first.table["headline"]
    bigger = _config(tmp_path, model_dir, limit=limit + 1, backend="local", generation={"max_new_tokens": 6, "batch_size": 4})
    more = evaluate_model(bigger)
    assert more.directory == first.directory and more.table["run"]["generated"] == 8

    # Other generation settings -> another model hash.
    other = _config(tmp_path, model_dir, limit=1, backend="local", generation={"max_new_tokens": 5})
    assert evaluate_model(other).directory != first.directory


@pytest.mark.slow
def test_evaluate_tiny_model_on_ray_matches_in_process(tmp_path, model_dir):
    import ray

    limit = 2
    settings = {"max_new_tokens": 6, "batch_size": 2}
    local = evaluate_model(_config(tmp_path / "a", model_dir, limit=limit, backend="local", generation=settings))
    try:
        on_ray = evaluate_model(_config(tmp_path / "b", model_dir, limit=limit, backend="ray", generation=settings))
    finally:
        ray.shutdown()
    _check_run(on_ray, limit)
    assert on_ray.table["headline"] == local.table["headline"]
    for name in ("advbench", "jailbreak_morse", "rolebench_spe"):
        a = pq.read_table(local.directory / name / "generations.parquet").column("response").to_pylist()
        b = pq.read_table(on_ray.directory / name / "generations.parquet").column("response").to_pylist()
        assert a == b


def test_a_stopped_evaluation_keeps_the_answers_it_stored(tmp_path, model_dir, monkeypatch):
    from sarft_ray.evaluation import generation

    settings = {"max_new_tokens": 4, "batch_size": 2}
    cfg = _config(tmp_path, model_dir, benchmarks=["advbench"], jailbreaks=[], limit=7, backend="local",
                  save_every=3, generation=settings)
    real = generation.generate_table
    calls = []

    def stops_on_the_third_chunk(model, tokenizer, table, gen_cfg, **options):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(model, tokenizer, table, gen_cfg, **options)

    monkeypatch.setattr(generation, "generate_table", stops_on_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(cfg)
    assert calls == [3, 3, 1]
    stored = pq.read_table(next((tmp_path / "runs" / "evaltest" / "eval").glob("*/advbench/generations.parquet")))
    assert stored.num_rows == 6  # the two finished chunks

    monkeypatch.setattr(generation, "generate_table", real)
    result = evaluate_model(cfg)
    assert result.table["run"]["generated"] == 1 and result.table["benchmarks"]["advbench"]["n"] == 7
