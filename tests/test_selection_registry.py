"""Selection strategies are a registry: one function and one registration line make a new one usable
in the config, the CLI and training; the built-ins are the ones the docs list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_scoring_selection import fake_scores
from test_scoring_store import write_experiment

from sarft_ray.config import load_config, parse_config
from sarft_ray.errors import SarftError
from sarft_ray.scoring import selection
from sarft_ray.scoring.selection import (
    BUILTIN_SELECTIONS,
    register_selection,
    registered_selections,
    select_training_rows,
    selections_markdown,
)

REPO = Path(__file__).resolve().parents[1]
TOP_K = 2


def top_k_margin(scores: pa.Table, seed: int) -> np.ndarray:
    """The TOP_K rows the unsafe prompt explains best relative to the role prompt (s_unsafe - s_role)."""
    margin = scores["s_unsafe"].to_numpy(zero_copy_only=False) - scores["s_role"].to_numpy(zero_copy_only=False)
    flags = np.zeros(scores.num_rows, dtype=bool)
    flags[np.argsort(-margin, kind="stable")[:TOP_K]] = True
    return flags


@pytest.fixture
def margin_strategy():
    """``top_k_margin`` registered for one test (the registry is global to the process)."""
    register_selection("top_k_margin", top_k_margin, f"the {TOP_K} rows with the largest s_unsafe - s_role")
    yield "top_k_margin"
    selection._REGISTRY.pop("top_k_margin")


def test_the_built_ins_are_registered_and_are_what_the_docs_list():
    assert registered_selections()[: len(BUILTIN_SELECTIONS)] == list(BUILTIN_SELECTIONS)
    assert selections_markdown(BUILTIN_SELECTIONS) in (REPO / "docs" / "method.md").read_text()
    listed = "\\|".join(BUILTIN_SELECTIONS)  # the README's command table escapes the bars
    assert f"--selection {listed}]" in (REPO / "README.md").read_text()
    with pytest.raises(ValueError, match="'rds' is already registered"):
        register_selection("rds", top_k_margin, "again")


def test_a_strategy_gets_the_role_s_train_score_rows_in_corpus_order_and_the_seed():
    seen = {}

    def probe(scores: pa.Table, seed: int) -> list[bool]:
        seen.update(columns=scores.column_names, ids=scores["sample_id"].to_pylist(), seed=seed)
        return [i % 2 == 0 for i in range(scores.num_rows)]

    register_selection("probe", probe, "every other row")
    try:
        scores = fake_scores("Captain Test", [True, False, True, False], ["train", "test", "train", "train"])
        table = select_training_rows(scores, "probe", seed=7)
        assert {"s_role", "s_unsafe", "logp_role", "logp_unsafe", "is_harmful", "sample_id", "role"} <= set(seen["columns"])
        assert seen["ids"] == ["s0", "s2", "s3"] and seen["seed"] == 7
        assert table["is_harmful"].to_pylist() == [True, False, True]
        selection._REGISTRY["probe"] = selection.Selection("probe", lambda scores, seed: [True], "wrong length")
        with pytest.raises(ValueError, match="selection 'probe' returned .* for 3 rows"):
            select_training_rows(scores, "probe")
    finally:
        selection._REGISTRY.pop("probe")


def _config_tree(tmp_path: Path, **sections) -> dict:
    tree = json.loads(write_experiment(tmp_path).read_text())
    return tree | sections


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"training": {"selection": "rsd"}}, r"training\.selection: unknown selection 'rsd'; did you mean 'rds'\?"),
        ({"arms": [{"name": "a", "selection": "rds"}, {"name": "b", "selection": "flipp"}]},
         r"arms\[1\]\.selection: unknown selection 'flipp'; did you mean 'flip'\?"),
        ({"sweep": {"space": {"selection": ["rds", "nothing"]}}},
         r"sweep\.space: selection: bad value 'nothing': unknown selection 'nothing' \(registered"),
        ({"training": {"selection": "zzz"}}, r"training\.selection: unknown selection 'zzz' \(registered: rds, flip"),
    ],
)
def test_an_unknown_name_is_a_config_error_naming_the_field(tmp_path, sections, message):
    with pytest.raises(SarftError, match=message):
        parse_config(_config_tree(tmp_path, **sections), "exp.yaml", tmp_path)


def test_a_registered_strategy_is_accepted_by_every_config_field(tmp_path, margin_strategy):
    cfg = parse_config(
        _config_tree(tmp_path, training={"selection": margin_strategy}, arms=[{"name": "m", "selection": margin_strategy}],
                     sweep={"space": {"selection": ["rds", margin_strategy]}}),
        "exp.yaml", tmp_path,
    )
    assert cfg.training.selection == cfg.arms[0].selection == margin_strategy


def test_the_cli_refuses_an_unknown_selection_in_one_line(tmp_path, capsys):
    from sarft_ray.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["train", str(write_experiment(tmp_path)), "--role", "Captain Test", "--selection", "rdz"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "--selection" in err and "unknown selection 'rdz'; did you mean 'rds'?" in err


def store_scores_without_ray(cfg) -> None:
    """What ``score_roles`` stores, computed in this process with the scoring actor's code (no Ray)."""
    from sarft_ray.data import load_role_prompts
    from sarft_ray.scoring.ray_pipeline import ScoreActor
    from sarft_ray.scoring.staging import stage_corpus
    from sarft_ray.scoring.store import SUMMARY_NAME, ScoresWriter, experiment_heldout, inputs_hash, scores_root, scoring_inputs
    from sarft_ray.scoring.summary import RoleAccumulator, write_summary

    prompts = load_role_prompts(cfg.roles.prompts, cfg.roles.names)
    heldout = experiment_heldout(cfg)
    digest = inputs_hash(scoring_inputs(cfg, prompts, heldout))
    writer = ScoresWriter(scores_root(cfg) / digest)
    staged = stage_corpus(cfg.roles.corpus, cfg.roles.names, cfg.scoring.splits, Path(cfg.output_root) / "staging", heldout=heldout)
    actor = ScoreActor(cfg.model, prompts, cfg.scoring, digest)
    stats = {}
    for role, path in staged.files.items():
        scored = actor(pq.read_table(path))
        writer.write(role, scored)
        stats[role] = RoleAccumulator(role, role)
        stats[role].update(scored)
    writer.close_files()
    write_summary(writer.tmp / SUMMARY_NAME, {r: a.stats() for r, a in stats.items()}, {"scores_hash": digest})
    writer.commit()


def test_a_strategy_added_in_this_file_trains_a_role_end_to_end(tmp_path, tiny_model_dir, margin_strategy, capsys):
    from sarft_ray.cli import main
    from sarft_ray.scoring.store import load_scores

    path = write_experiment(
        tmp_path, rows_per_role=5, model_ref=str(tiny_model_dir),
        scoring={"reference_pass": True},
        training={"max_steps": 2, "micro_batch_size": 5, "lr": 1e-3, "lambda_kl": 1.0},
    )
    cfg = load_config(path)
    store_scores_without_ray(cfg)
    scores = load_scores(cfg, "Captain Test")
    margin = np.array(scores["s_unsafe"].to_pylist()) - np.array(scores["s_role"].to_pylist())
    expected = sorted(scores["sample_id"][int(i)].as_py() for i in np.argsort(-margin, kind="stable")[:TOP_K])

    main(["train", str(path), "--role", "Captain Test", "--selection", margin_strategy, "--no-ray"])
    out = capsys.readouterr().out
    assert f"selection: {margin_strategy}" in out and f"({TOP_K} harmful)" in out
    run_dir = Path(next(line for line in out.splitlines() if line.startswith("saved: ")).removeprefix("saved: ")).parent
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["selection"] == margin_strategy and summary["harmful_rows"] == TOP_K
    assert summary["final_step"] == 2 and all(h["harmful_rows"] == TOP_K for h in summary["history"])
    selected = select_training_rows(scores, margin_strategy).to_pylist()
    assert sorted(r["sample_id"] for r in selected if r["is_harmful"]) == expected
