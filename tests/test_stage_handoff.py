"""Stages hand their outputs forward: training takes the scores the scoring stage stored (a ``StoredScores``:
the directory and its inputs hash) instead of finding them again from the config's inputs."""

from __future__ import annotations

import json

import pytest
from test_scoring_store import write_experiment
from test_selection_registry import store_scores_without_ray

from sarft_ray.config import load_config
from sarft_ray.errors import SarftError
from sarft_ray.scoring.store import StoredScores, find_scores

ROLE = "Captain Test"


def test_training_from_handed_scores_needs_no_lookup_and_names_the_same_run(tmp_path, tiny_model_dir):
    from sarft_ray.training.entry import train_role

    path = write_experiment(
        tmp_path, rows_per_role=4, model_ref=str(tiny_model_dir),
        training={"max_steps": 1, "micro_batch_size": 4, "max_source_tokens": 16, "max_target_tokens": 8},
    )
    cfg = load_config(path)
    store_scores_without_ray(cfg)
    stored = find_scores(cfg)  # what `sarft-ray train` finds by itself
    summary = json.loads((stored.directory / "summary.json").read_text())
    assert stored == StoredScores(stored.directory, summary["meta"]["scores_hash"]) and stored.directory.name == stored.scores_hash
    assert stored.role(ROLE).num_rows == 4

    standalone = train_role(cfg, ROLE, use_ray=False)
    assert standalone["rows"] == 4

    # the corpus changes after scoring: the config's inputs no longer name these scores ...
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + json.dumps({"role": ROLE, "sample_id": "new", "input": "Q?", "output": "A."}) + "\n")
    with pytest.raises(SarftError, match="no stored scores for role 'Captain Test'"):
        train_role(cfg, ROLE, use_ray=False)
    # ... but scores handed forward are read as they are, and name the same training run
    handed = train_role(cfg, ROLE, scores=stored, use_ray=False)
    assert handed["run_dir"] == standalone["run_dir"] and handed["rows"] == 4
