"""Training inputs: the step plan, batching, DeepSpeed config resolution and every bad-input error."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from sarft_ray.config import parse_config
from sarft_ray.errors import SarftError
from sarft_ray.training.config import TrainingConfig
from sarft_ray.training.data import Example, StepPlan, check_training_table, collate
from sarft_ray.training.deepspeed_config import resolve_config
from sarft_ray.training.entry import train_role
from sarft_ray.training.loss import IGNORE_INDEX
from sarft_ray.training.ray_trainer import check_cluster_fits, placeable_workers


def experiment(tmp_path: Path, shared_data: Path, model_dir: Path | str = "tiny-random", **training):
    data = {
        "experiment": "t",
        "output_root": str(tmp_path / "out"),
        "model": {"ref": str(model_dir)},
        "roles": {
            "names": ["John Doe"],
            "corpus": {"paths": [str(shared_data / "rolebench/role-generalization/role_specific/test.jsonl")]},
            "prompts": {"path": str(shared_data / "sarft_profiles/role_and_unsafe_prompts.json")},
        },
        "training": training,
    }
    return parse_config(data, "exp.yaml", tmp_path).model_copy(update={"source": tmp_path / "exp.yaml"})


def rows_table(n: int = 4, harmful=None) -> pa.Table:
    return pa.table(
        {
            "input": [f"q{i}" for i in range(n)],
            "output": [f"a{i}" for i in range(n)],
            "is_harmful": harmful if harmful is not None else [i % 2 == 0 for i in range(n)],
        }
    )


# --- step plan and batching -------------------------------------------------------------


def test_step_plan_covers_every_row_each_epoch_and_fills_the_last_batch():
    plan = StepPlan(num_rows=10, micro_batch_size=2, grad_accum_steps=2, world_size=2, seed=3, epochs=2)
    assert (plan.global_batch, plan.steps_per_epoch, plan.total_steps, plan.repeated_rows) == (8, 2, 4, 6)
    for epoch in range(2):
        seen = []
        for step in range(epoch * 2, epoch * 2 + 2):
            parts = [plan.micro_batches(step, rank) for rank in range(2)]
            assert all(len(mb) == 2 for part in parts for mb in part)  # equal work on every rank
            seen += [i for part in parts for mb in part for i in mb]
        assert set(seen) == set(range(10)) and len(seen) == 16
    # same seed, same plan; the epochs differ in order
    again = StepPlan(num_rows=10, micro_batch_size=2, grad_accum_steps=2, world_size=2, seed=3, epochs=2)
    assert again.micro_batches(1, 1) == plan.micro_batches(1, 1)
    assert plan.micro_batches(0, 0) != plan.micro_batches(2, 0)


def test_max_steps_overrides_epochs():
    plan = StepPlan(num_rows=4, micro_batch_size=4, grad_accum_steps=1, world_size=1, seed=0, epochs=1, max_steps=7)
    assert plan.total_steps == 7
    assert sorted(plan.micro_batches(6, 0)[0]) == [0, 1, 2, 3]


def test_collate_right_pads_and_masks_prompt_labels():
    batch = collate([Example([5, 6, 7], [IGNORE_INDEX, 6, 7], True), Example([8, 9], [IGNORE_INDEX, 9], False)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [IGNORE_INDEX, 9, IGNORE_INDEX]]
    assert batch["harmful"].tolist() == [True, False]


# --- DeepSpeed config ---------------------------------------------------------------------


def test_deepspeed_autos_follow_the_training_config_and_dtype():
    cfg = TrainingConfig(micro_batch_size=3, grad_accum_steps=2, max_grad_norm=0.5)
    ds = resolve_config(cfg, world_size=2, dtype=torch.float32)
    assert ds["zero_optimization"]["stage"] == 2
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"]) == (3, 2, 12)
    assert ds["gradient_clipping"] == 0.5
    assert ds["bf16"]["enabled"] is False and ds["fp16"]["enabled"] is False
    assert resolve_config(cfg, 1, torch.bfloat16)["bf16"]["enabled"] is True


def test_deepspeed_config_that_does_not_parse(tmp_path):
    bad = tmp_path / "ds.json"
    bad.write_text('{\n  "zero_optimization": {"stage": 2,}\n}\n')
    with pytest.raises(SarftError, match=r"ds\.json:2: training\.deepspeed: invalid JSON"):
        resolve_config(TrainingConfig(deepspeed=bad), 1, torch.float32)


def test_deepspeed_config_contradicting_the_training_config(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": 4}))
    with pytest.raises(SarftError, match="train_micro_batch_size_per_gpu is 4 but the training config gives 8"):
        resolve_config(TrainingConfig(deepspeed=path, micro_batch_size=8), 1, torch.float32)
    with pytest.raises(SarftError, match="file not found"):
        resolve_config(TrainingConfig(deepspeed=tmp_path / "missing.json"), 1, torch.float32)


# --- training set -------------------------------------------------------------------------


def test_training_set_checks():
    check_training_table(rows_table(), "t")
    with pytest.raises(SarftError, match="t: training set has no column 'is_harmful'"):
        check_training_table(rows_table().drop(["is_harmful"]), "t")
    with pytest.raises(SarftError, match="'is_harmful' must be boolean, got int64"):
        check_training_table(rows_table(harmful=[1, 0, 1, 0]), "t")
    with pytest.raises(SarftError, match="row 2: column 'is_harmful' is null"):
        check_training_table(rows_table(harmful=[True, False, None, True]), "t")
    with pytest.raises(SarftError, match="no rows"):
        check_training_table(rows_table(0, harmful=pa.array([], pa.bool_())), "t")


# --- train_role refuses bad input before any work starts ---------------------------------


def test_negative_lambda_is_rejected(tmp_path, shared_data):
    cfg = experiment(tmp_path, shared_data)
    with pytest.raises(SarftError, match=r"exp\.yaml: training\.lambda_kl: .*greater than or equal to 0"):
        train_role(cfg, "John Doe", lambda_kl=-0.5, training_set=rows_table())
    with pytest.raises(SarftError, match=r"training\.lambda_kl"):
        experiment(tmp_path, shared_data, lambda_kl=-1)


def test_role_without_scores_asks_for_scoring_first(tmp_path, shared_data):
    cfg = experiment(tmp_path, shared_data)
    with pytest.raises(SarftError, match=r"no stored scores for role 'John Doe'.*run `sarft-ray score"):
        train_role(cfg, "John Doe", use_ray=False)


def test_unknown_role_and_bad_training_set(tmp_path, shared_data):
    cfg = experiment(tmp_path, shared_data)
    with pytest.raises(SarftError, match="unknown role 'Jon Dough'"):
        train_role(cfg, "Jon Dough", training_set=rows_table())
    with pytest.raises(SarftError, match="training set of role 'John Doe': column 'is_harmful' must be boolean"):
        train_role(cfg, "John Doe", training_set=rows_table(harmful=["yes", "no", "yes", "no"]), use_ray=False)
    with pytest.raises(SarftError, match="has no column 'is_harmful'"):
        train_role(cfg, "John Doe", training_set=rows_table().drop(["is_harmful"]), use_ray=False)


def test_unparsable_deepspeed_config_fails_before_training(tmp_path, shared_data):
    bad = tmp_path / "ds.json"
    bad.write_text("{ not json")
    cfg = experiment(tmp_path, shared_data, deepspeed=str(bad))
    with pytest.raises(SarftError, match=r"ds\.json:1: training\.deepspeed: invalid JSON"):
        train_role(cfg, "John Doe", training_set=rows_table(), use_ray=False)


def test_release_form_pins_the_loss_settings(tmp_path, shared_data):
    assert TrainingConfig(release_form=True).loss_settings() == {
        "kl_direction": "ref_to_policy", "kl_span": "all", "ce_norm": "sequence"
    }
    with pytest.raises(SarftError, match="release_form fixes kl_span"):
        experiment(tmp_path, shared_data, release_form=True, kl_span="answer")


# --- cluster capacity ---------------------------------------------------------------------


def test_placeable_workers_counts_per_node():
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}, {"Alive": True, "Resources": {"CPU": 1.0, "GPU": 1.0}},
             {"Alive": False, "Resources": {"CPU": 64.0}}]
    assert placeable_workers(nodes, cpus=0.5, gpus=0) == 6
    assert placeable_workers(nodes, cpus=1, gpus=1) == 1
    assert placeable_workers(nodes, cpus=3, gpus=0) == 0


def test_more_workers_than_the_cluster_holds_fails_fast(ray_local, tmp_path, shared_data):
    cfg = experiment(tmp_path, shared_data, workers=5, cpus_per_worker=0.5)
    with pytest.raises(SarftError, match=r"ray\.num_cpus: 2 CPUs cannot hold training\.workers=5 x cpus_per_worker=0\.5 CPU \(2\.5 CPUs in all\)"):
        check_cluster_fits(cfg.training)
    with pytest.raises(SarftError, match="GPU"):
        check_cluster_fits(TrainingConfig(workers=1, gpus_per_worker=1))
    with pytest.raises(SarftError, match="cannot hold"):
        train_role(cfg, "John Doe", training_set=rows_table())
