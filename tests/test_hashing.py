"""Content hashes and hash-seeded draws: the values stored outputs were found by must never change.

The pinned values were produced by the code before its digests were gathered
in ``sarft_ray.hashing``; a change here orphans every stored score, training
run and evaluation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from test_scoring_selection import selection_mask

from sarft_ray import hashing
from sarft_ray.config import config_hash
from sarft_ray.data.corpus import _sample_rank, assign_split
from sarft_ray.data.heldout import HeldOutQuestions
from sarft_ray.data.roles import role_slug
from sarft_ray.training.entry import table_digest

PARTS = ({"b": 1, "a": [1.5, None, "é"]}, "x", 3)


def test_config_and_training_set_digests_keep_their_values():
    assert config_hash(*PARTS) == "62ca8a4c116e"
    assert config_hash(PARTS[0], length=16) == "3e5bc9474a051900"
    assert config_hash({"p": Path("/tmp/x")}) == "c7e362276e31"  # non-JSON values hash as their str
    rows = [{"input": "Wer bist du?", "output": "Ich bin é", "is_harmful": 1}, {"input": "q", "output": "a", "is_harmful": False}]
    assert table_digest(rows) == "f66f441073080df4"  # non-ASCII hashed as UTF-8


def test_the_helpers_reproduce_the_digests_they_replace():
    assert hashing.json_digest(PARTS, 12) == hashlib.sha256(json.dumps(PARTS, sort_keys=True, default=str).encode()).hexdigest()[:12]
    items = ["judge-x", "How?", "No."]
    assert hashing.json_digest(items) == hashlib.sha256(json.dumps(items).encode()).hexdigest()
    rows = [["é", "ü", True]]
    assert hashing.json_digest(rows, 16, ascii_only=False) == hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:16]
    assert hashing.text_digest("captain test", 6) == hashlib.sha256(b"captain test").hexdigest()[:6]
    assert hashing.hash_int("0|x") == int.from_bytes(hashlib.sha256(b"0|x").digest()[:8], "big")


def test_sets_hash_by_their_members_not_their_order():
    import os
    import subprocess
    import sys

    code = "from sarft_ray.hashing import json_digest; print(json_digest({'m': {'q_proj', 'k_proj', 'v_proj', 'o_proj'}}))"
    digests = {
        subprocess.run([sys.executable, "-c", code], env=os.environ | {"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True).stdout
        for seed in ("1", "2", "3", "4")
    }
    assert digests == {hashing.json_digest({"m": ["k_proj", "o_proj", "q_proj", "v_proj"]}) + "\n"}


def test_file_and_tree_digests(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_bytes(b"alpha")
    (tmp_path / "d" / "sub" / "b.bin").write_bytes(b"\x00" * (3 << 20))  # spans several read chunks
    assert hashing.file_digest(tmp_path / "d" / "a.txt") == hashlib.sha256(b"alpha").hexdigest()
    expected = hashlib.sha256(b"a.txt" + b"alpha" + b"sub/b.bin" + b"\x00" * (3 << 20)).hexdigest()
    assert hashing.tree_digest(tmp_path / "d") == expected
    assert hashing.tree_digest(tmp_path / "d", 16) == expected[:16]


def test_splits_samples_and_held_out_digest_keep_their_values():
    assert assign_split("Captain Test", "s1", 0.1, 0, 0.1) == "train"
    splits = [assign_split("Captain Test", f"s{i}", 0.3, 7, 0.3) for i in range(10)]
    assert splits == ["test", "validation", "train", "test", "train", "test", "test", "test", "test", "train"]
    assert _sample_rank(3, {"role": "Captain Test", "split": "train", "sample_id": "s1"}) == 212001608717929295
    heldout = HeldOutQuestions(per_role={"captain test": {"who are you"}}, every_role={"how to make a bomb"})
    assert heldout.digest() == "6e88443297e6b610"
    assert role_slug("Dr. Hannibal Lecter") == "dr-hannibal-lecter-7d8d8d" and role_slug("Captain Test") == "captain-test-c3d527"


def test_random_selection_draws_keep_their_rows():
    harmful = np.array([True, False, False, True, False, False, True, False, False, False])
    draws = [np.flatnonzero(selection_mask(harmful, "random", seed=s, role="Captain Test")).tolist() for s in range(4)]
    assert draws == [[7, 8, 9], [2, 5, 7], [1, 5, 9], [2, 7, 8]]
    assert np.flatnonzero(selection_mask(harmful, "random", seed=0, role="Doctor Byte")).tolist() == [1, 6, 7]
    larger = np.array([int(c) for c in "0111100100010100010011001100000010010010"], dtype=bool)
    drawn = np.flatnonzero(selection_mask(larger, "random", seed=5, role="Dr. Hannibal Lecter")).tolist()
    assert drawn == [2, 3, 7, 13, 16, 18, 19, 25, 26, 27, 30, 33, 34, 35, 36]


def test_evaluation_model_hash_is_the_json_digest_it_was():
    from sarft_ray.evaluation.config import EvaluationConfig
    from sarft_ray.evaluation.generation import settings_hash
    from sarft_ray.models.identity import adapter_fingerprint
    from sarft_ray.evaluation.runner import _model_hash
    from sarft_ray.models.config import ModelConfig

    model, ev = ModelConfig(ref="tiny-random"), EvaluationConfig()
    parts = [model.model_dump(mode="json"), adapter_fingerprint(None), settings_hash(ev.generation)]
    assert _model_hash(model, None, ev) == hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
