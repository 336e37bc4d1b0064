"""Two Ray Train workers running DeepSpeed ZeRO-2 on CPU: learning, worker failure, driver restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_training_recipe import ALL_LINEAR, experiment, memo_table, reload_and_generate, trajectory

from sarft_ray.training.entry import train_role
from sarft_ray.training.ray_trainer import TrainingFailed

pytestmark = pytest.mark.slow


def test_two_worker_lora_survives_a_worker_failure(ray_local, tmp_path, shared_data, tiny_model_dir, monkeypatch):
    common = dict(
        mode="lora", lr=3e-3, micro_batch_size=2, max_steps=10, workers=2, cpus_per_worker=0.5,
        checkpoint_every=3, max_failures=1, lora_target_modules=ALL_LINEAR, lora_dropout=0.3,
    )
    reference = train_role(experiment(tmp_path / "reference", shared_data, tiny_model_dir, **common), "John Doe",
                           lambda_kl=0.5, training_set=memo_table())
    # the last worker exits after step 4; the group restarts from the step-3 checkpoint
    monkeypatch.setenv("SARFT_FAIL_AT_STEP", "4")
    cfg = experiment(tmp_path, shared_data, tiny_model_dir, **common)
    summary = train_role(cfg, "John Doe", lambda_kl=0.5, training_set=memo_table())
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "fault_injected_at_step_4").is_file()
    assert summary["world_size"] == 2 and summary["global_batch_size"] == 4
    assert summary["final_step"] == 10 and summary["resumed_from_steps"] == [3]
    history = summary["history"]
    assert [h["step"] for h in history] == list(range(1, 11))
    assert all(h["rows"] == 4 and h["harmful_rows"] == 2 for h in history)
    # each worker's dropout masks, the optimizer and the LR schedule replay: the losses of the reference run
    # (which holds even if the reference itself had to restart: resume is exact)
    assert trajectory(history) == trajectory(reference["history"])
    assert history[-1]["loss"] < history[0]["loss"] - 0.3
    assert json.loads((run_dir / "summary.json").read_text())["final_step"] == 10
    base_ce, trained_ce = reload_and_generate(Path(summary["artefact"]), tiny_model_dir)
    assert trained_ce < base_ce - 0.3


def test_two_worker_full_run_resumes_after_the_driver_gives_up(ray_local, tmp_path, shared_data, tiny_model_dir):
    common = dict(mode="full", lr=1e-3, micro_batch_size=2, max_steps=6, workers=2, cpus_per_worker=0.5, checkpoint_every=2)
    reference = train_role(experiment(tmp_path / "reference", shared_data, tiny_model_dir, **common), "John Doe",
                           training_set=memo_table())
    shared = tmp_path / "shared-storage"  # what every node of a cluster would reach, named by a URI

    def on_shared_storage(cfg):
        return cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"storage_path": f"file://{shared}"})})

    # no restarts allowed: the injected failure at step 3 ends the run with a clear error
    failing = on_shared_storage(experiment(tmp_path, shared_data, tiny_model_dir, **common, max_failures=0, fail_at_step=3))
    with pytest.raises(TrainingFailed, match="running the same command again resumes"):
        train_role(failing, "John Doe", training_set=memo_table())
    # the same command again (fault settings are not part of the run's identity) resumes from step 2
    cfg = on_shared_storage(experiment(tmp_path, shared_data, tiny_model_dir, **common))
    summary = train_role(cfg, "John Doe", training_set=memo_table())
    assert summary["final_step"] == 6 and summary["resumed_from_steps"] == [2]
    # Ray Train's checkpoints went to the shared storage, in the run's place below the output root;
    # the artefact was installed in the run directory
    run_dir = Path(summary["run_dir"])
    place = shared / run_dir.resolve().relative_to(Path(cfg.output_root).resolve()) / "ray"
    assert any(place.glob("checkpoint_*")) and not (run_dir / "ray").exists()
    assert Path(summary["artefact"]).parent == run_dir
    assert [h["step"] for h in summary["history"]] == list(range(1, 7))
    assert trajectory(summary["history"]) == trajectory(reference["history"])  # optimizer and LR state replay
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"] - 0.3
    base_ce, trained_ce = reload_and_generate(Path(summary["artefact"]), tiny_model_dir)
    assert trained_ce < base_ce - 0.3
