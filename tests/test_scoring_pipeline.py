"""The RDS stage through Ray Data: every row scored once, per-role parquet, summary, chart, reuse and --force."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import torch
from test_scoring_store import ROLES, load, write_experiment

from sarft_ray.errors import SarftError
from sarft_ray.paths import REPO_ROOT


@pytest.fixture
def experiment(tmp_path, tiny_model_dir):
    # 7 rows per role, 4 rows per actor call: one call straddles the two roles.
    return load(write_experiment(tmp_path, rows_per_role=7, model_ref=str(tiny_model_dir)))


@pytest.mark.slow
def test_scores_every_row_once_per_role_and_reuses_them(experiment, ray_local, tiny_model_dir):
    from sarft_ray.data import load_role_prompts
    from sarft_ray.models import load_model_and_tokenizer
    from sarft_ray.scoring import load_training_set, score_roles
    from sarft_ray.scoring.core import score_role_samples

    cfg = experiment
    result = score_roles(cfg, progress=False)
    assert not result.reused
    assert sorted(p.name for p in result.directory.parent.iterdir()) == [result.directory.name]  # no temp dirs left
    assert sorted(p.name for p in result.directory.iterdir()) == sorted(
        ["harmful_fraction.png", "summary.json"] + [d.name for d in result.role_dirs.values()]
    )
    summary = json.loads(result.summary_path.read_text())
    assert summary["meta"]["scores_hash"] == result.scores_hash == result.directory.name

    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    prompts = load_role_prompts(cfg.roles.prompts, cfg.roles.names)
    for role in ROLES:
        directory = result.role_dirs[role]
        assert directory.name.startswith("role=")
        table = pq.read_table(directory, partitioning=None).sort_by("row_index")
        assert table["sample_id"].to_pylist() == [f"{role[:3]}-{i}" for i in range(7)]
        assert table["row_index"].to_pylist() == list(range(7))
        assert set(table["role"].to_pylist()) == {role}
        assert set(table["scores_hash"].to_pylist()) == {result.scores_hash}
        # Scored with this role's prompts, exactly as the in-process core scores them.
        with torch.no_grad():
            expected = score_role_samples(
                model, tokenizer, prompts[role], table["input"].to_pylist(), table["output"].to_pylist(), cfg.scoring
            ).columns
        for key in ("logp_role", "logp_unsafe", "logp_role_sum"):
            assert table[key].to_pylist() == pytest.approx(expected[key], abs=1e-4)
        assert table["is_harmful"].to_pylist() == expected["is_harmful"]
        stats = summary["roles"][role]
        assert stats["samples"] == 7 and stats["harmful"] == sum(expected["is_harmful"])
        assert result.roles[role].harmful_fraction == pytest.approx(stats["harmful"] / 7)

        training = load_training_set(cfg, role, "rds")
        assert training["is_harmful"].to_pylist() == expected["is_harmful"]
        assert load_training_set(cfg, role, "all")["is_harmful"].to_pylist() == [True] * 7

    parquet = result.role_dirs[ROLES[0]] / "part-0.parquet"
    written = parquet.stat().st_mtime_ns
    again = score_roles(cfg, progress=False)
    assert again.reused and again.directory == result.directory and parquet.stat().st_mtime_ns == written

    # forced, on an autoscaling pool of 1 to 2 actors (pool sizes are not part of the scores' identity)
    autoscaled = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"min_actors": 1, "num_actors": 2})})
    forced = score_roles(autoscaled, force=True, progress=False)
    assert not forced.reused and forced.directory == result.directory
    assert parquet.stat().st_mtime_ns != written
    assert forced.roles == result.roles
    assert sorted(p.name for p in result.directory.parent.iterdir()) == [result.directory.name]


@pytest.mark.slow
def test_an_error_inside_a_scoring_actor_reaches_the_driver_as_the_users_error(ray_local):
    import ray

    from sarft_ray.scoring.ray_pipeline import user_error

    class Failing:
        def __call__(self, batch):
            raise SarftError("role 'r', sample 's': answer is empty")

    ds = ray.data.range(4).map_batches(Failing, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.5)
    with pytest.raises(Exception) as info:
        ds.take_all()
    assert not isinstance(info.value, SarftError)  # Ray wraps it ...
    assert str(user_error(info.value)) == "role 'r', sample 's': answer is empty"  # ... and its message is recovered


def test_empty_answer_fails_before_scoring_and_stores_nothing(tmp_path, tiny_model_dir):
    from sarft_ray.scoring import score_roles

    bad = {"role": "Doctor Byte", "sample_id": "blank", "input": "Anything?", "output": "   "}
    cfg = load(write_experiment(tmp_path, model_ref=str(tiny_model_dir), extra_rows=[bad]))
    with pytest.raises(SarftError, match=r"corpus\.jsonl:\d+: field 'output' is empty"):  # found where the corpus is read
        score_roles(cfg, progress=False)
    scores = tmp_path / "runs" / "unit" / "scores"
    assert not scores.exists() or list(scores.iterdir()) == []


def test_role_without_a_prompt_fails_before_scoring(tmp_path, tiny_model_dir):
    from sarft_ray.scoring import score_roles

    path = write_experiment(tmp_path, model_ref=str(tiny_model_dir))
    (tmp_path / "prompts.json").write_text(json.dumps({"Captain Test": "You are Captain Test."}))
    with pytest.raises(SarftError, match=r"prompts.json: no prompt for role 'Doctor Byte'"):
        score_roles(load(path), progress=False)
    assert not (tmp_path / "runs").exists()


def test_job_script_reports_bad_input_in_one_line(tmp_path):
    path = write_experiment(tmp_path, model_ref=str(tmp_path / "no-such-model"))
    (tmp_path / "prompts.json").write_text(json.dumps({"Captain Test": "You are Captain Test."}))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "jobs" / "score.py"), "--config", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "no prompt for role 'Doctor Byte'" in proc.stderr
