"""Selection strategies (rds, flip, random, all, none) and the training set that training reads."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from test_scoring_store import load, write_experiment

from sarft_ray.errors import SarftError
from sarft_ray.scoring.schema import (
    SCORE_FIELDS,
    STAGED_SCHEMA,
    TRAINING_SET_SCHEMA,
    scores_table,
)
from sarft_ray.scoring.selection import apply_selection, select_training_rows

HARMFUL = np.array([True, False, False, True, False, False, True, False, False, False])


def selection_mask(harmful: np.ndarray, selection: str, seed: int = 0, role: str = "") -> np.ndarray:
    """The flags a strategy assigns to rows that carry only their RDS flags (in a fixed row order)."""
    harmful = np.asarray(harmful, dtype=bool)
    scores = pa.table({"role": [role] * len(harmful), "is_harmful": pa.array(harmful, type=pa.bool_())})
    return apply_selection(selection, scores, seed)


def test_rds_flip_all_none():
    assert selection_mask(HARMFUL, "rds").tolist() == HARMFUL.tolist()
    assert selection_mask(HARMFUL, "flip").tolist() == (~HARMFUL).tolist()
    assert selection_mask(HARMFUL, "all").all()
    assert not selection_mask(HARMFUL, "none").any()


def test_random_matches_the_rds_size_is_seeded_and_per_role():
    draws = [selection_mask(HARMFUL, "random", seed=s, role="Captain Test") for s in range(20)]
    assert all(d.sum() == HARMFUL.sum() for d in draws)
    again = selection_mask(HARMFUL, "random", seed=0, role="Captain Test")
    assert again.tolist() == draws[0].tolist()
    assert len({tuple(d.tolist()) for d in draws}) > 5  # different seeds give different subsets
    other_role = [selection_mask(HARMFUL, "random", seed=s, role="Doctor Byte") for s in range(20)]
    assert [d.tolist() for d in other_role] != [d.tolist() for d in draws]
    assert not selection_mask(np.zeros(4, bool), "random").any()


def test_unknown_selection_is_a_user_error():
    with pytest.raises(SarftError, match=r"training.selection: unknown selection 'best'"):
        selection_mask(HARMFUL, "best")


def fake_scores(role: str, harmful: list[bool], splits: list[str]) -> pa.Table:
    n = len(harmful)
    staged = pa.table(
        {
            "role": [role] * n,
            "sample_id": [f"s{i}" for i in range(n)],
            "input": [f"q{i}" for i in range(n)],
            "output": [f"a{i}" for i in range(n)],
            "references": [[f"a{i}"] for i in range(n)],
            "split": splits,
            "source": ["unit"] * n,
            "row_index": list(range(n)),
        },
        schema=STAGED_SCHEMA,
    )
    columns = {f.name: [-1.0] * n for f in SCORE_FIELDS if f.type == pa.float64()}
    columns |= {"is_harmful": harmful, "n_answer_tokens": [3] * n, "truncated": [False] * n}
    # Stored order differs from corpus order: selection must sort by row_index.
    return scores_table(staged, columns, "h").take(list(range(n))[::-1])


def test_training_set_keeps_train_rows_in_corpus_order_with_the_selected_flag():
    scores = fake_scores("Captain Test", [True, False, True, False, False], ["train", "train", "test", "train", "train"])
    rds = select_training_rows(scores, "rds")
    assert rds.schema == TRAINING_SET_SCHEMA
    assert rds["sample_id"].to_pylist() == ["s0", "s1", "s3", "s4"]
    assert rds["is_harmful"].to_pylist() == [True, False, False, False]
    assert select_training_rows(scores, "flip")["is_harmful"].to_pylist() == [False, True, True, True]
    assert sum(select_training_rows(scores, "random", seed=3)["is_harmful"].to_pylist()) == 1
    with pytest.raises(ValueError, match="one role"):
        select_training_rows(pa.concat_tables([scores, fake_scores("Doctor Byte", [True], ["train"])]), "rds")


def test_load_training_set_without_stored_scores_says_how_to_make_them(tmp_path):
    from sarft_ray.scoring import load_training_set

    cfg = load(write_experiment(tmp_path))
    with pytest.raises(SarftError, match=r"no stored scores for role 'Captain Test' under .*; run `sarft-ray score CONFIG` first"):
        load_training_set(cfg, "captain_test", "rds")
    with pytest.raises(SarftError, match=r"roles.names: unknown role 'Captain Tost'"):
        load_training_set(cfg, "Captain Tost", "rds")
