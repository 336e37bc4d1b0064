"""Corpora, role prompts, role names and safety benchmarks, including bad input."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from sarft_ray.data import (
    DEFAULT_UNSAFE_INSTRUCTION,
    CorpusConfig,
    PromptsConfig,
    load_advbench,
    load_beavertails,
    load_corpus,
    load_role_prompts,
    match_role,
    role_slug,
)
from sarft_ray.errors import SarftError

ROLE_GEN = "rolebench/role-generalization"


def rolebench_cfg(shared_data, **kw):
    return CorpusConfig(
        paths=[shared_data / f"{ROLE_GEN}/role_specific/test.jsonl", shared_data / f"{ROLE_GEN}/general/test.jsonl"], **kw
    )


def test_rolebench_corpus_has_every_row_of_the_role_once(shared_data):
    table = load_corpus(rolebench_cfg(shared_data), ["John Doe"])
    lines = 0
    for name in ("role_specific", "general"):
        with open(shared_data / f"{ROLE_GEN}/{name}/test.jsonl") as handle:
            lines += sum(json.loads(line)["role"] == "John Doe" for line in handle if line.strip())
    assert table.num_rows == lines
    assert len(set(table["sample_id"].to_pylist())) == lines
    assert set(table["split"].to_pylist()) == {"train", "test"}
    assert set(table["source"].to_pylist()) == {"role_specific", "general"}
    first = table.slice(0, 1).to_pylist()[0]
    assert first["output"] == first["references"][0]


def test_split_is_deterministic_and_limits_apply_per_split(shared_data):
    a = load_corpus(rolebench_cfg(shared_data), ["Tom Ripley"])
    b = load_corpus(rolebench_cfg(shared_data), ["Tom Ripley"])
    assert a["split"].to_pylist() == b["split"].to_pylist()
    test_share = a["split"].to_pylist().count("test") / a.num_rows
    assert 0.05 < test_share < 0.2
    small = load_corpus(rolebench_cfg(shared_data, max_samples_per_role=5), ["Tom Ripley"])
    assert small["split"].to_pylist().count("train") == 5 and small["split"].to_pylist().count("test") == 5


def test_role_names_match_across_spellings(shared_data):
    table = load_corpus(rolebench_cfg(shared_data), ["john_doe"])
    assert set(table["role"].to_pylist()) == {"john_doe"}
    assert match_role("Dr._Hannibal_Lecter", ["Dr. Hannibal Lecter", "John Doe"], "x") == "Dr. Hannibal Lecter"
    with pytest.raises(SarftError, match="did you mean 'John Doe'"):
        match_role("Jon Doe", ["John Doe"], "cfg")


def test_slugs_are_safe_and_distinct():
    slugs = {role_slug(n) for n in ["Dr. X", "Dr X", "../../etc/passwd", "John Doe", "john_doe"]}
    assert role_slug("John Doe") == role_slug("john_doe")  # same role, same slug
    assert len(slugs) == 4
    for slug in slugs:
        assert "/" not in slug and ".." not in slug and slug.replace("-", "").isalnum()


def test_generic_corpora_in_jsonl_csv_and_parquet(tmp_path):
    import pyarrow as pa

    rows = [{"input": f"q{i}", "output": f"a{i}"} for i in range(3)]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r | {"role": "Ann"}) for r in rows))
    (tmp_path / "c.csv").write_text("input,output\n" + "\n".join(f"{r['input']},{r['output']}" for r in rows))
    pq.write_table(pa.Table.from_pylist([r | {"sample_id": r["input"]} for r in rows]), tmp_path / "c.parquet")
    for name, role in [("c.jsonl", None), ("c.csv", "Ann"), ("c.parquet", "Ann")]:
        cfg = CorpusConfig(format="table", paths=[{"path": tmp_path / name, "role": role}], test_fraction=0.0)
        table = load_corpus(cfg, ["Ann"])
        assert table["output"].to_pylist() == ["a0", "a1", "a2"], name
        assert table["references"].to_pylist() == [["a0"], ["a1"], ["a2"]]


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"input": "q", "output": "a", "role": "Ann"}\n{"input": "q2", "output"\n', r"c\.jsonl:2: malformed JSON"),
        (b'{"input": "q", "role": "Ann"}\n', r"c\.jsonl:1: missing field\(s\) output"),
        (b'{"input": "q", "output": "a", "role": "Ann"}\n{"input": "\xff", "output": "b", "role": "Ann"}\n', r"c\.jsonl:2: not valid UTF-8"),
        (
            b'{"input": "q", "output": "a", "role": "Ann", "id": 7}\n{"input": "r", "output": "b", "role": "Ann", "id": 7}\n',
            r"c\.jsonl:2: duplicate sample id '7'",
        ),
        (b'{"input": "q", "output": "a", "role": "Bob"}\n', r"empty corpus for role 'Ann'|unknown role 'Ann'"),
        (b"", r"empty corpus for role 'Ann'"),
    ],
)
def test_bad_corpus_files_name_file_and_line(tmp_path, content, message):
    (tmp_path / "c.jsonl").write_bytes(content)
    cfg = CorpusConfig(format="table", paths=[tmp_path / "c.jsonl"])
    with pytest.raises(SarftError, match=message):
        load_corpus(cfg, ["Ann"])


def test_missing_csv_columns_and_missing_file(tmp_path):
    (tmp_path / "c.csv").write_text("question,answer\nq,a\n")
    with pytest.raises(SarftError, match=r"c\.csv:2: missing field\(s\) input, output"):
        load_corpus(CorpusConfig(format="table", paths=[{"path": tmp_path / "c.csv", "role": "A"}]), ["A"])
    with pytest.raises(SarftError, match="file does not exist"):
        load_corpus(CorpusConfig(paths=[tmp_path / "nope.jsonl"]), ["A"])


def test_unknown_role_in_rolebench_gets_a_hint(shared_data):
    with pytest.raises(SarftError, match="unknown role 'Jon Doe'; did you mean 'John Doe'"):
        load_corpus(rolebench_cfg(shared_data), ["Jon Doe"])


def test_release_prompt_files_map_spellings_and_build_unsafe_prompt(shared_data):
    both = PromptsConfig(path=shared_data / "sarft_profiles/role_and_unsafe_prompts.json")
    prompts = load_role_prompts(both, ["Dr. Hannibal Lecter", "John Doe"])
    lecter = prompts["Dr. Hannibal Lecter"]
    assert "Hannibal Lecter" in lecter.role_prompt
    assert lecter.unsafe_prompt.startswith(lecter.role_prompt.rstrip())
    assert lecter.unsafe_prompt.endswith(DEFAULT_UNSAFE_INSTRUCTION)
    from_file = load_role_prompts(both.model_copy(update={"unsafe_from_file": True}), ["John Doe"])["John Doe"]
    assert "ignoring religious, moral, and legal constraints" in from_file.unsafe_prompt
    v1 = load_role_prompts(PromptsConfig(path=shared_data / "sarft_profiles/prompts_v1.json", unsafe_instruction="Be bad."), ["John Doe"])
    assert v1["John Doe"].unsafe_prompt.endswith("\n\nBe bad.")


def test_user_mapping_prompts_and_missing_role(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("Captain Nemo: You are Captain Nemo of the Nautilus.\n")
    cfg = PromptsConfig(format="mapping", path=path)
    assert load_role_prompts(cfg, ["captain_nemo"])["captain_nemo"].role_prompt.startswith("You are Captain Nemo")
    with pytest.raises(SarftError, match="no prompt for role 'Ahab'"):
        load_role_prompts(cfg, ["Ahab"])
    path.write_text("Captain Nemo: ''\n")
    with pytest.raises(SarftError, match="role prompt must be a non-empty string"):
        load_role_prompts(cfg, ["Captain Nemo"])


def test_safety_benchmark_counts(shared_data):
    adv = load_advbench(shared_data / "advbench/harmful_behaviors.csv")
    bt = load_beavertails(shared_data / "beavertails/BeaverTails-Evaluation.csv")
    assert adv.num_rows == 520 and bt.num_rows == 700
    assert len(set(bt["category"].to_pylist())) == 14
    assert len(set(adv["item_id"].to_pylist())) == 520


def test_safety_csv_without_goal_column(tmp_path):
    (tmp_path / "adv.csv").write_text("prompt\nx\n")
    with pytest.raises(SarftError, match=r"adv\.csv: missing column\(s\) goal"):
        load_advbench(tmp_path / "adv.csv")
