"""How each stage names its stored outputs: the model identity, the scores, training runs, evaluations,
the alignment, judge ids and verdict-cache keys.

The pinned values were produced by the code before these names were gathered
in one place (``sarft_ray.models.identity``, ``sarft_ray.hashing``); a change
here orphans stored results under runs/.
"""

from __future__ import annotations

import os
from pathlib import Path

from sarft_ray.config import config_hash, parse_config
from sarft_ray.hashing import json_digest
from sarft_ray.models.config import ModelConfig

FIXED_NS = 1_700_000_000_000_000_000


def _local_model(root: Path) -> None:
    """A model directory and a GGUF file with fixed contents and modification times, under ``root``."""
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"w" * 10)
    (model / "notes.txt").write_text("not weights")
    (root / "m.gguf").write_bytes(b"gguf")
    for path in [*model.iterdir(), root / "m.gguf"]:
        os.utime(path, ns=(FIXED_NS, FIXED_NS))


def _tree(tmp_path: Path, shared_data: Path, **extra) -> dict:
    return {
        "experiment": "pin",
        "output_root": str(tmp_path / "runs"),
        "model": {"ref": "tiny-random"},
        "roles": {
            "names": ["John Doe"],
            "corpus": {"paths": [str(shared_data / "rolebench/role-generalization/general/test.jsonl")], "max_samples_per_role": 6},
            "prompts": {"path": str(shared_data / "sarft_profiles/role_and_unsafe_prompts.json")},
        },
        "evaluation": {"jailbreaks": []},
        **extra,
    }


def test_model_fingerprint_of_an_alias_a_directory_and_a_gguf_file(tmp_path, monkeypatch):
    from sarft_ray.models.identity import model_identity as model_fingerprint  # the scoring store's name for it

    _local_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert json_digest(model_fingerprint(ModelConfig(ref="tiny-random"))) == (
        "549027232880d4337144d71e948a58c231a15c8d6322a61546ba3f893b785e7c"
    )
    local = model_fingerprint(ModelConfig(ref="model"))
    assert local["weights"] == [["model.safetensors", 10, FIXED_NS]]  # weights only, by name, size and time
    assert json_digest(local) == "00624e4a3d56f15fb4d91b448dbd48a3abe668bb4019d3e28315dee5eacbf03f"
    assert model_fingerprint(ModelConfig(ref="m.gguf"))["file"] == [4, FIXED_NS]
    assert json_digest(model_fingerprint(ModelConfig(ref="m.gguf", dtype="bfloat16"))) == (
        "9ad63c8f79304ceb5c9a8effa014106d10b13e3b36bb3c96c8a34fcbb15e3d3e"
    )


def test_scores_training_run_and_evaluation_hashes(tmp_path, shared_data):
    from sarft_ray.data import load_role_prompts
    from sarft_ray.evaluation.runner import _model_hash
    from sarft_ray.models.identity import local_ref
    from sarft_ray.scoring.store import experiment_heldout, inputs_hash, scoring_inputs
    from sarft_ray.training.config import TrainingConfig
    from sarft_ray.training.entry import run_hash

    cfg = parse_config(_tree(tmp_path, shared_data), "x.yaml", tmp_path)
    prompts = load_role_prompts(cfg.roles.prompts, cfg.roles.names)
    assert inputs_hash(scoring_inputs(cfg, prompts, experiment_heldout(cfg))) == "e775d9d5377e98d6"
    model = cfg.model.model_dump(mode="json")
    assert run_hash(model, TrainingConfig(), "abc", "sys", {"zero": 2}) == "6a2fe0d93566"

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "w.bin").write_bytes(b"x")
    assert _model_hash(cfg.model, adapter, cfg.evaluation) == "8cfdbb9b0d75"
    _local_model(tmp_path)
    # a local checkpoint is named by its absolute path, however it was spelled
    resolved = local_ref(cfg.model, str(tmp_path / "model" / ".." / "model"))
    assert resolved.ref == str((tmp_path / "model").resolve())
    absolute = ModelConfig(ref=str((tmp_path / "model").resolve()))
    assert _model_hash(resolved, None, cfg.evaluation) == _model_hash(absolute, None, cfg.evaluation)


def test_alignment_and_distillation_directories(tmp_path, shared_data):
    from sarft_ray.alignment.stage import alignment_inputs, distill_dir

    tree = _tree(tmp_path, shared_data, alignment={"benign_train": 6, "benign_eval": 3, "role_questions": 0})
    tree["evaluation"] = {"beavertails_split": {"use": "test"}, "jailbreaks": []}
    cfg = parse_config(tree, "x.yaml", tmp_path)
    assert distill_dir(cfg).name == "distill-caa36358d89d"
    assert config_hash(alignment_inputs(cfg), length=16) == "c570ced0f63ed9e7"


def test_judge_ids_and_verdict_cache_keys():
    from sarft_ray.evaluation.judges import JudgeItem, KeywordJudge
    from sarft_ray.evaluation.judges.cache import cache_key
    from sarft_ray.evaluation.judges.openai_chat import OpenAIChatJudge

    assert KeywordJudge().judge_id == "keyword-opening:68ec032fa5a9:window=None"
    assert KeywordJudge(window=50).judge_id == "keyword-opening:68ec032fa5a9:window=50"
    assert OpenAIChatJudge("http://h/v1", "m", api_key_env=None).judge_id == "openai:m@http://h/v1:c030c4a1d937"
    assert cache_key("j", JudgeItem("p", "r é")) == "0bb2591c618730770949b29f2d5a76aac8472fed08c4996bd0e16022117dcdfe"


def test_distilled_item_ids_and_gguf_cache_names(tmp_path):
    import hashlib

    from sarft_ray.alignment.stage import distill_item_id
    from sarft_ray.models.loading import gguf_cache_name

    assert distill_item_id("hello") == "distill-2cf24dba5fb0a30e"
    _local_model(tmp_path)
    path = tmp_path / "m.gguf"
    key = hashlib.sha256(f"{path.resolve()}|4|{FIXED_NS}".encode()).hexdigest()[:16]  # the formula it replaced
    assert gguf_cache_name(path) == f"gguf-m-{key}"


def test_seeded_refusals_beavertails_parts_and_benign_ranks():
    """What the alignment trains on and which BeaverTails prompts are test items are drawn from sha256 ranks."""
    import pyarrow as pa

    from sarft_ray.alignment.data import benign_split, refusal_for
    from sarft_ray.data.safety import beavertails_parts

    picked = [refusal_for(f"How do I do {i}?", seed=s)[:30] for i, s in [(1, 0), (2, 0), (3, 7)]]
    assert picked == ["No, I can't help with that. Le", "I apologize, but I can't help ", "I'm sorry, but I can't help wi"]
    table = pa.table({"prompt": [f"p{i}" for i in range(12)], "category": ["a", "b", "c"] * 4})
    assert beavertails_parts(table, 1, 1, seed=5) == [
        "train", "train", "validation", "test", "validation", "train", "validation", "train", "train", "train", "test", "test",
    ]
    split = benign_split([f"Instruction number {i}" for i in range(10)], set(), 4, 2, 3)
    assert split.train == [f"Instruction number {i}" for i in (2, 9, 6, 1)]
    assert split.eval == ["Instruction number 0", "Instruction number 3"]
