"""Corpus file formats: Alpaca and ShareGPT/OpenAI messages as LLaMA-Factory reads them, shape checks, the registry."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sarft_ray.data import CorpusConfig, load_corpus
from sarft_ray.data import formats
from sarft_ray.errors import SarftError

ALPACA = [
    {"instruction": "Who are you?", "input": "", "output": "A wizard."},
    {"instruction": "Translate", "input": "bonjour", "output": "Hello.", "id": "t1"},
    {"instruction": "And now?", "input": "", "output": "Now I rest.", "history": [["Hi", "Greetings."]]},
]
SHAREGPT = {
    "id": "c1",
    "conversations": [
        {"from": "system", "value": "You are a wizard."},
        {"from": "human", "value": "Who are you?"},
        {"from": "gpt", "value": "A wizard."},
        {"from": "human", "value": "Where from?"},
        {"from": "gpt", "value": "The tower."},
    ],
}
MESSAGES = {
    "role": "Gandalf",
    "messages": [{"role": "user", "content": "Your staff?"}, {"role": "assistant", "content": "Oak."}],
}


def write(path, records):
    if path.suffix == ".json":
        path.write_text(json.dumps(records))
    elif path.suffix == ".parquet":
        keys = list(dict.fromkeys(k for r in records for k in r))  # from_pylist takes its columns from the first row
        pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in records]), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def rows(fmt, path, role="Gandalf"):
    cfg = CorpusConfig(format=fmt, paths=[{"path": path, "role": role}], test_fraction=0.0)
    return load_corpus(cfg, [role]).select(["sample_id", "input", "output", "references"]).to_pylist()


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_alpaca_joins_instruction_and_input_and_keeps_history_pairs(tmp_path, suffix):
    got = rows("alpaca", write(tmp_path / f"a{suffix}", ALPACA))
    assert [(r["sample_id"], r["input"], r["output"]) for r in got] == [
        ("a:0", "Who are you?", "A wizard."),
        ("t1", "Translate\nbonjour", "Hello."),  # LLaMA-Factory's prompt: instruction, newline, input
        ("a:2:h0", "Hi", "Greetings."),
        ("a:2", "And now?", "Now I rest."),
    ]
    assert got[1]["references"] == ["Hello."]


def test_sharegpt_and_openai_messages_give_one_sample_per_exchange(tmp_path):
    got = rows("sharegpt", write(tmp_path / "s.jsonl", [SHAREGPT, MESSAGES]))
    assert [(r["sample_id"], r["input"], r["output"]) for r in got] == [
        ("c1:0", "Who are you?", "A wizard."),  # the system turn is skipped: roles.prompts gives the role prompt
        ("c1:1", "Where from?", "The tower."),
        ("s:1:0", "Your staff?", "Oak."),
    ]


@pytest.mark.parametrize(
    "fmt, record, message",
    [
        # the case that used to train on empty prompts: Alpaca read as a table
        ("table", ALPACA[0], r"a\.jsonl:1: this record has the fields of the 'alpaca' format .*set roles\.corpus\.format: alpaca"),
        ("alpaca", SHAREGPT, r"a\.jsonl:1: .*'sharegpt' format"),
        ("table", {"role": "G", "question": "q", "generated": ["a"]}, r"a\.jsonl:1: .*set roles\.corpus\.format: rolebench"),
        ("rolebench", {"role": "G", "input": "q", "output": "a"}, r"a\.jsonl:1: .*'table' format"),
        ("alpaca", {"prompt": "q", "completion": "a"}, r"a\.jsonl:1: missing field\(s\) instruction, output"),
        ("sharegpt", {"text": "q"}, r"a\.jsonl:1: missing field\(s\) conversations"),
        ("table", {"input": "  ", "output": "a"}, r"a\.jsonl:1: field 'input' is empty"),
        ("alpaca", {"instruction": "q", "output": ""}, r"a\.jsonl:1: field 'output' is empty"),
        ("alpaca", {"instruction": "q", "output": "a", "history": [["only one"]]}, r"'history' must be a list of \[question, answer\]"),
        (
            "sharegpt",
            {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]},
            r"a\.jsonl:1: conversations\[1\] \(from='human'\) should be 'gpt' or 'assistant'",
        ),
        ("sharegpt", {"messages": [{"role": "user", "content": "a"}]}, r"ends with a user turn that has no answer"),
        ("sharegpt", {"messages": "hello"}, r"field 'messages' must be a list of turns"),
        ("table", {"role": 7, "input": "q", "output": "a"}, r"a\.jsonl:1: field 'role' must be a string, got int"),
        ("table", {"input": "q", "output": "a", "references": {"a": 1}}, r"'references' must be a list of strings or one string"),
        ("table", {"input": "q", "output": "a", "references": ["ok", None]}, r"field 'references' must be a string"),
        (
            "sharegpt",
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": None}]},
            r"messages\[1\]\.content' must be a string",
        ),
    ],
)
def test_a_record_that_does_not_fit_its_declared_format_is_refused_with_its_place(tmp_path, fmt, record, message):
    with pytest.raises(SarftError, match=message):
        rows(fmt, write(tmp_path / "a.jsonl", [record]))


def test_a_field_only_another_format_uses_does_not_make_a_record_that_format(tmp_path):
    """A table record with a ``messages`` column, an Alpaca record with ``input``, a ShareGPT record with
    ``question``: each is read as declared, because the other format claims it through no field they share."""
    table = [{"input": "Who are you?", "output": "A wizard.", "messages": ["kept as metadata"]}]
    assert [r["input"] for r in rows("table", write(tmp_path / "t.jsonl", table))] == ["Who are you?"]
    assert [r["input"] for r in rows("alpaca", write(tmp_path / "a.jsonl", ALPACA[:1]))] == ["Who are you?"]
    shared = [MESSAGES | {"question": "a note", "generated": ["RoleBench's fields, metadata here"]}]
    assert [r["output"] for r in rows("sharegpt", write(tmp_path / "s.jsonl", shared))] == ["Oak."]
    with pytest.raises(SarftError, match=r"t2\.jsonl:1: this record has the fields of the 'alpaca' format"):
        rows("table", write(tmp_path / "t2.jsonl", [{"instruction": "q", "input": "", "output": "a"}]))


def test_file_types_each_format_reads(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"instruction": "q", "output": "a"}))
    with pytest.raises(SarftError, match=r"a\.json: expected a JSON array of records, got dict"):
        rows("alpaca", tmp_path / "a.json")
    (tmp_path / "a.csv").write_text("x\n")
    with pytest.raises(SarftError, match=r"a\.csv: unsupported file type '\.csv' \(use \.jsonl, \.json, \.parquet\)"):
        rows("sharegpt", tmp_path / "a.csv")
    (tmp_path / "r.csv").write_text("input,output,references\nWho?,Me.,It is me.\n")
    assert rows("table", tmp_path / "r.csv")[0]["references"] == ["It is me."]  # a CSV cell is one reference
    (tmp_path / "b.csv").write_text("instruction,input,output\nWho?,,Me.\n")
    assert rows("alpaca", tmp_path / "b.csv")[0]["input"] == "Who?"
    (tmp_path / "c.parquet").write_text("not parquet")
    with pytest.raises(SarftError, match=r"c\.parquet: not a readable parquet file"):
        rows("table", tmp_path / "c.parquet")


def test_unknown_format_names_the_field_and_a_close_name(tmp_path):
    from sarft_ray.config import parse_config

    tree = {"experiment": "x", "model": {"ref": "tiny-random"}, "roles": {
        "names": ["A"], "corpus": {"format": "alpacca", "paths": ["c.jsonl"]}, "prompts": {"format": "mapping", "path": "p.json"}}}
    with pytest.raises(SarftError, match=r"roles\.corpus\.format.*unknown corpus format 'alpacca'; did you mean 'alpaca'"):
        parse_config(tree, "x.yaml", tmp_path)


def test_a_format_registered_in_one_line_reads_a_corpus_end_to_end(tmp_path, monkeypatch):
    """The registry seam: a new format is a reader and one registration; config and loading take it from there."""

    def qa_rows(spec):  # "Q: ... A: ..." blocks separated by blank lines
        for number, block in enumerate(spec.path.read_text().split("\n\n")):
            question, answer = block.strip().split("\nA: ")
            yield f"{spec.path}: block {number}", {
                "role": spec.role, "sample_id": str(number), "input": question.removeprefix("Q: "),
                "output": answer, "references": [answer], "source": spec.path.stem,
            }

    monkeypatch.setitem(formats._REGISTRY, "qa", formats.CorpusFormat("qa", qa_rows, (frozenset({"q"}),), "Q/A blocks"))
    (tmp_path / "c.txt").write_text("Q: Who?\nA: Me.\n\nQ: Why?\nA: Because.\n")
    assert [(r["input"], r["output"]) for r in rows("qa", tmp_path / "c.txt")] == [("Who?", "Me."), ("Why?", "Because.")]


def test_validate_reads_an_alpaca_corpus_through_the_cli(tmp_path, capsys):
    from sarft_ray.cli import main

    write(tmp_path / "a.json", ALPACA)
    (tmp_path / "p.json").write_text(json.dumps({"Gandalf": "You are Gandalf."}))
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({
        "experiment": "x", "output_root": "out", "model": {"ref": "tiny-random"},
        "roles": {"names": ["Gandalf"], "corpus": {"format": "alpaca", "paths": [{"path": "a.json", "role": "Gandalf"}],
                  "test_fraction": 0.0}, "prompts": {"format": "mapping", "path": "p.json"}},
        "evaluation": {"benchmarks": ["advbench"], "jailbreaks": [], "limit": 2},
    }))
    main(["validate", str(tmp_path / "x.yaml")])
    assert "Gandalf" in capsys.readouterr().out
