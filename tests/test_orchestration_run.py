"""``run_pipeline`` end to end on the tiny model: two roles, MLflow runs, metrics, artefacts, re-run skips work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sarft_ray.config import parse_config
from sarft_ray.data.roles import role_slug
from sarft_ray.paths import data_dir

pytestmark = pytest.mark.slow

ROLES = ["John Doe", "Tom Ripley"]


def tiny_experiment(tmp_path: Path, model_dir: Path, roles=ROLES, **sections) -> dict:
    """A config tree with tiny budgets: 8 rows per role, 2 training steps, 2 items per benchmark."""
    data = data_dir()
    tree = {
        "experiment": "orch",
        "output_root": str(tmp_path / "runs"),
        "model": {"ref": str(model_dir)},
        "roles": {
            "names": list(roles),
            "corpus": {
                "paths": [str(data / "rolebench/role-generalization/general/test.jsonl")],
                "max_samples_per_role": 8,
            },
            "prompts": {"path": str(data / "sarft_profiles/role_and_unsafe_prompts.json")},
        },
        "scoring": {"batch_size": 8},
        "training": {
            "mode": "lora", "max_steps": 2, "micro_batch_size": 4, "workers": 1, "cpus_per_worker": 0.5,
            "max_source_tokens": 64, "max_target_tokens": 32,
        },
        "evaluation": {
            "benchmarks": ["rolebench_spe", "advbench"], "jailbreaks": ["caesar"], "limit": 2,
            "generation": {"max_new_tokens": 4, "batch_size": 4},
        },
        "ray": {"num_cpus": 2, "include_dashboard": False},
    }
    for name, section in sections.items():
        tree[name] = {**tree.get(name, {}), **section} if isinstance(section, dict) else section
    return tree


def load(tree: dict, tmp_path: Path):
    return parse_config(tree, "test.yaml", tmp_path)


def mlflow_runs(cfg):
    from mlflow.tracking import MlflowClient

    from sarft_ray.orchestration.tracking import TrackerSpec

    spec = TrackerSpec.from_config(cfg)
    client = MlflowClient(tracking_uri=spec.uri)
    experiment = client.get_experiment_by_name(spec.experiment)
    return client, client.search_runs([experiment.experiment_id])


def test_run_two_roles_tracks_runs_metrics_and_artefacts(ray_local, tiny_model_dir, tmp_path, monkeypatch):
    from sarft_ray.orchestration import run_pipeline

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = load(tiny_experiment(tmp_path, tiny_model_dir), tmp_path)
    result = run_pipeline(cfg)

    # the per-role table: base and fine-tuned row per role, then one mean row each
    assert [(r["role"], r["model"]) for r in result.rows] == [
        ("John Doe", "base"), ("John Doe", "rds lambda=0.5"), ("Tom Ripley", "base"), ("Tom Ripley", "rds lambda=0.5"),
        ("mean", "base"), ("mean", "rds lambda=0.5"),
    ]
    tuned = [r for r in result.rows if r["model"] != "base" and r["role"] != "mean"]
    assert all(r["status"] == "ok" and r["train_rows"] == 8 and r["safety_avg"] is not None for r in tuned)
    report_dir = Path(cfg.experiment_dir) / "report"
    for name in ("index.html", "table.json", "table.md", "harmful_fraction.png", "quality_vs_safety.png"):
        assert (report_dir / name).is_file(), name
    assert json.loads((report_dir / "table.json").read_text())["rows"] == json.loads(json.dumps(result.rows))
    html = (report_dir / "index.html").read_text()
    assert "Tom Ripley" in html and 'src="quality_vs_safety.png"' in html
    assert not (tmp_path / "mlruns").exists()

    client, runs = mlflow_runs(cfg)
    by_kind = {}
    for run in runs:
        by_kind.setdefault(run.data.tags["sarft.kind"], []).append(run)
    assert sorted((k, len(v)) for k, v in by_kind.items()) == [("base", 1), ("role", 2), ("run", 1)]
    parent = by_kind["run"][0]
    assert parent.info.run_id == result.mlflow_run_id and parent.info.status == "FINISHED"
    assert parent.data.params["training.lambda_kl"] == "0.5" and parent.data.params["model.ref"] == str(tiny_model_dir)
    assert {"tuned/safety_avg", "base/safety_avg", "rds/heldout_removed_total"} <= set(parent.data.metrics)
    assert {f"rds/heldout_removed.{role_slug(role)}" for role in ROLES} <= set(parent.data.metrics)
    parent_files = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/index.html", "report/table.json", "report/quality_vs_safety.png", "report/harmful_fraction.png"} <= parent_files
    assert {f.path for f in client.list_artifacts(parent.info.run_id, "scores")} == {"scores/summary.json", "scores/harmful_fraction.png"}

    for run in by_kind["role"] + by_kind["base"]:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id and run.info.status == "FINISHED"
        assert {"eval/safety_avg", "eval/advbench_rr", "eval/rolebench_spe_rouge_l_first", "eval/jailbreak_caesar_rr"} <= set(run.data.metrics)
        assert {f.path for f in client.list_artifacts(run.info.run_id, "eval")} == {"eval/table.json", "eval/table.md", "eval/answers.json"}
    for run in by_kind["role"]:
        role = run.data.params["role"]
        assert role in ROLES and run.data.tags["sarft.role"] == role
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]
        assert {"train/kl", "train/ce", "train/tokens_per_s", "train/last_loss", "rds/harmful_fraction"} <= set(run.data.metrics)
        files = {f.path for f in client.list_artifacts(run.info.run_id, "train")}
        assert {"train/summary.json", "train/config.yaml", "train/artefact_location.txt"} <= files
        adapter = Path(run.data.tags["sarft.artefact"])
        assert adapter.name == "adapter" and (adapter / "adapter_config.json").is_file()
        assert result.roles[role].train["artefact"] == str(adapter)

    # the same command again: every stage is found finished, the same MLflow runs are reused, nothing is logged twice
    again = run_pipeline(cfg)
    assert again.mlflow_run_id == result.mlflow_run_id and again.rows == result.rows
    for role in ROLES:
        assert again.roles[role].train["seconds_this_attempt"] == result.roles[role].train["seconds_this_attempt"]
    client, runs = mlflow_runs(cfg)
    assert len(runs) == 4
    for run in runs:
        if run.data.tags["sarft.kind"] == "role":
            assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]
            assert len(client.get_metric_history(run.info.run_id, "eval/safety_avg")) == 1


ARMS = [{"name": "sft", "selection": "none"}, {"name": "sarft", "selection": "rds", "lambda_kl": 1.0}]
DELTA = "Δ sarft - sft"


def test_run_two_arms_compares_sarft_with_sft(ray_local, tiny_model_dir, tmp_path, monkeypatch):
    from sarft_ray.orchestration import run_pipeline

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load(tiny_experiment(tmp_path, tiny_model_dir, arms=ARMS), tmp_path)
    result = run_pipeline(cfg)

    # per role: the starting model, both arms and the change against plain SFT; then the same over roles
    assert [(r["role"], r["model"]) for r in result.rows] == [
        (role, model) for role in ROLES + ["mean"] for model in ("base", "sft", "sarft", DELTA)
    ]
    by = {(r["role"], r["model"]): r for r in result.rows}
    for role in ROLES + ["mean"]:
        delta, sarft, sft = by[(role, DELTA)], by[(role, "sarft")], by[(role, "sft")]
        for column in ("rolebench_spe_rouge_l_first", "advbench_rr", "safety_avg", "jailbreak_avg"):
            assert delta[column] == pytest.approx(sarft[column] - sft[column]), (role, column)
        for model in ("base", "sft", "sarft"):
            row = by[(role, model)]
            assert row["advbench_rr_ci_low"] <= row["advbench_rr"] <= row["advbench_rr_ci_high"]
            # 2 AdvBench items per role; the base model asked them once for both roles (no role prompts)
            assert row["advbench_rr_n"] == (4 if role == "mean" and model != "base" else 2), (role, model)
    assert by[("mean", "sarft")]["status"] == "2 of 2 roles" and by[("John Doe", "sft")]["train_rows"] == 8
    sft_adapter = result.outcomes[("John Doe", "sft")].train["artefact"]
    assert sft_adapter != result.outcomes[("John Doe", "sarft")].train["artefact"]

    report_dir = Path(cfg.experiment_dir) / "report"
    table = json.loads((report_dir / "table.json").read_text())
    assert table["compare_to"] == "sft" and [a["name"] for a in table["arms"]] == ["sft", "sarft"]
    assert table["rows"] == json.loads(json.dumps(result.rows))
    markdown = (report_dir / "table.md").read_text()
    assert f"| mean | {DELTA} |" in markdown and "Wilson" in markdown
    assert DELTA in (report_dir / "index.html").read_text() and (report_dir / "quality_vs_safety.png").is_file()

    client, runs = mlflow_runs(cfg)
    kinds = sorted(run.data.tags["sarft.kind"] for run in runs)
    assert kinds == ["base", "role", "role", "role", "role", "run"]
    parent = next(run for run in runs if run.data.tags["sarft.kind"] == "run")
    pairs = set()
    for run in runs:
        if run.data.tags["sarft.kind"] != "role":
            continue
        tags, params = run.data.tags, run.data.params
        pairs.add((tags["sarft.role"], tags["sarft.arm"]))
        assert params["arm"] == tags["sarft.arm"] and params["role"] == tags["sarft.role"]
        assert params["arm.selection"] == {"sft": "none", "sarft": "rds"}[params["arm"]]
        assert params["training.lambda_kl"] == {"sft": "0.5", "sarft": "1.0"}[params["arm"]]
        assert {"eval/advbench_rr", "eval/advbench_rr_ci_low", "eval/advbench_rr_ci_high", "train/loss"} <= set(run.data.metrics)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id and run.info.status == "FINISHED"
    assert pairs == {(role, arm) for role in ROLES for arm in ("sft", "sarft")}
    metrics = parent.data.metrics
    assert metrics["delta/sarft/safety_avg"] == pytest.approx(by[("mean", DELTA)]["safety_avg"])
    assert {"arm/sft/safety_avg", "arm/sarft/advbench_rr_ci_low", "arm/sarft/advbench_rr_ci_high"} <= set(metrics)
    assert {"base/advbench_rr", "base/advbench_rr_n", "delta/sarft/rolebench_spe_rouge_l_first"} <= set(metrics)

    # again: every training run and evaluation is found finished, the same MLflow runs take no new values
    again = run_pipeline(cfg)
    assert again.rows == result.rows and again.mlflow_run_id == result.mlflow_run_id
    for job, outcome in result.outcomes.items():
        assert again.outcomes[job].train["seconds_this_attempt"] == outcome.train["seconds_this_attempt"]
    client, runs = mlflow_runs(cfg)
    assert len(runs) == 6
    for run in runs:
        metric = "delta/sarft/safety_avg" if run.data.tags["sarft.kind"] == "run" else "eval/advbench_rr_ci_low"
        assert len(client.get_metric_history(run.info.run_id, metric)) == 1
