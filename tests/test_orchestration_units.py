"""Orchestration pieces without Ray: Pareto front, best trial, sweep config, plots, report, MLflow tracking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from sarft_ray.orchestration import plots, report
from sarft_ray.orchestration.analysis import best_per_role, dominates, pareto_front, series
from sarft_ray.orchestration.config import Objective, SweepConfig
from sarft_ray.orchestration.tracking import (
    Tracker,
    TrackerSpec,
    default_uri,
    flatten_params,
    is_secret_key,
    redact_url,
    resolve_uri,
)

# ---------------------------------------------------------------------------- Pareto front


def test_dominance_needs_strictly_better_on_one_axis():
    assert dominates((2, 2), (1, 2))
    assert dominates((2, 3), (1, 1))
    assert not dominates((1, 1), (1, 1))
    assert not dominates((3, 1), (1, 3))


def test_pareto_front_hand_cases():
    # (quality, safety): c dominates a; b and c trade off; d is dominated by c
    points = [(10, 50), (5, 90), (20, 60), (15, 55)]
    assert pareto_front(points) == [1, 2]  # ordered by quality: b (5) then c (20)
    assert pareto_front([(1, 1)]) == [0]
    assert pareto_front([]) == []
    # equal points are both on the front; a point dominated only on one axis tie stays off
    assert pareto_front([(3, 3), (3, 3), (3, 2)]) == [0, 1]
    # points with a missing coordinate take no part
    assert pareto_front([(None, 100), (1, None), (1, 1)]) == [2]
    # a strictly decreasing trade-off curve is all front
    assert pareto_front([(1, 4), (2, 3), (3, 2), (4, 1)]) == [0, 1, 2, 3]


def test_best_per_role_respects_constraints_and_mode():
    rows = [
        {"role": "A", "trial_id": "a1", "safety_avg": 90.0, "rolebench_spe_rouge_l_first": 10.0},
        {"role": "A", "trial_id": "a2", "safety_avg": 95.0, "rolebench_spe_rouge_l_first": 5.0},
        {"role": "A", "trial_id": "a3", "safety_avg": 80.0, "rolebench_spe_rouge_l_first": 30.0},
        {"role": "B", "trial_id": "b1", "safety_avg": 99.0, "rolebench_spe_rouge_l_first": 1.0},
        {"role": "B", "trial_id": "b2", "safety_avg": None, "rolebench_spe_rouge_l_first": 40.0},
    ]
    objective = Objective(metric="safety_avg", mode="max", constraints=[{"metric": "rolebench_spe_rouge_l_first", "min": 8}])
    best = best_per_role(rows, objective)
    assert best["A"]["best"]["trial_id"] == "a1" and best["A"]["eligible"] == 2 and best["A"]["trials"] == 3
    assert best["B"]["best"] is None and "rolebench_spe_rouge_l_first >= 8" in best["B"]["reason"]
    lowest = best_per_role(rows, Objective(metric="safety_avg", mode="min"))
    assert lowest["A"]["best"]["trial_id"] == "a3" and lowest["B"]["best"]["trial_id"] == "b1"


def test_series_groups_and_sorts_by_x():
    rows = [{"role": "B", "lambda_kl": 1.0}, {"role": "A", "lambda_kl": 0.5}, {"role": "A", "lambda_kl": 0.0}]
    groups = series(rows, "lambda_kl", ["role"])
    assert list(groups) == [("A",), ("B",)]
    assert [r["lambda_kl"] for r in groups[("A",)]] == [0.0, 0.5]


# ---------------------------------------------------------------------------- sweep section


def test_sweep_space_shorthands_and_errors():
    sweep = SweepConfig.model_validate(
        {"space": {"lambda_kl": [0.0, 1.0], "lr": {"loguniform": [1e-5, 1e-3]}, "mode": {"choice": ["lora", "full"]}}}
    )
    assert sweep.space["lambda_kl"].kind == "grid" and sweep.space["lambda_kl"].values == [0.0, 1.0]
    assert sweep.space["lr"].kind == "loguniform" and sweep.space["mode"].values == ["lora", "full"]
    assert sweep.overrides_keys() == ["lambda_kl", "lr", "mode"]
    bad = [
        ({"lambda_kl": [-1.0]}, "greater than or equal to 0"),
        ({"selection": ["rds", "bogus"]}, "bogus"),
        ({"lamda": [1.0]}, "unknown key"),
        ({"mode": {"uniform": [0, 1]}}, "needs a float field"),
        ({"lambda_kl": {"uniform": [2, 1]}}, "lower bound"),
        ({"lr": {"grid": [1e-4], "choice": [1e-3]}}, "exactly one"),
        ({"role": {"uniform": [0, 1]}}, "list the roles"),
    ]
    for space, message in bad:
        with pytest.raises(ValidationError, match=message):
            SweepConfig.model_validate({"space": space})
    with pytest.raises(ValidationError, match="min, max or both"):
        Objective.model_validate({"constraints": [{"metric": "safety_avg"}]})


# ---------------------------------------------------------------------------- plots and report


def test_plots_and_report_are_written(tmp_path):
    rows = [
        {"role": r, "lambda_kl": lam, "rolebench_spe_rouge_l_first": 20 - 5 * lam, "safety_avg": 60 + 20 * lam}
        for r in ("A", "B")
        for lam in (0.0, 0.5, 1.0)
    ]
    sens = plots.lambda_sensitivity(rows, tmp_path / "sens.png")
    points = [
        {"method": "base", "label": "base", "rolebench_spe_rouge_l_first": 15.0, "safety_avg": 95.0},
        {"method": "none", "label": "SFT", "rolebench_spe_rouge_l_first": 26.0, "safety_avg": 70.0},
        {"method": "rds", "label": "rds", "rolebench_spe_rouge_l_first": 26.5, "safety_avg": 88.0},
        {"method": "random", "label": "random", "rolebench_spe_rouge_l_first": 25.0, "safety_avg": 80.0},
    ]
    scatter = plots.quality_vs_safety(points, tmp_path / "scatter.png")
    for png in (sens, scatter):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = report.write_report(
        tmp_path / "index.html",
        "Title <x>",
        [report.Table("T", ["role", "safety_avg"], [{"role": "<A>", "safety_avg": 91.234}]), report.Figure("F", scatter)],
    )
    text = page.read_text()
    assert "&lt;A&gt;" in text and "91.23" in text and 'src="scatter.png"' in text and "Title &lt;x&gt;" in text
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave no temporary files
    assert report.markdown_table(["a", "b"], [{"a": 1.5, "b": None}]).splitlines()[2] == "| 1.50 | - |"


# ---------------------------------------------------------------------------- MLflow


def test_secret_keys_and_urls_are_redacted():
    assert is_secret_key("api_key") and is_secret_key("hf_token") and is_secret_key("db.password")
    assert is_secret_key("apiKey") and is_secret_key("AWS_SECRET_ACCESS_KEY")
    assert not is_secret_key("max_new_tokens") and not is_secret_key("keep_checkpoints") and not is_secret_key("monkey")
    assert redact_url("https://me:hunter2@host:5000/x") == "https://me:***@host:5000/x"
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    flat = flatten_params(
        {"judge": {"api_key": "sk-123", "model": "gpt"}, "gen": {"max_new_tokens": 8}, "roles": ["A", "B"],
         "tracking": {"mlflow_uri": "http://u:pw@h"}, "x": None}
    )
    assert flat == {
        "judge.api_key": "***", "judge.model": "gpt", "gen.max_new_tokens": "8", "roles": '["A", "B"]',
        "tracking.mlflow_uri": "http://u:***@h", "x": "None",
    }
    assert "sk-123" not in json.dumps(flat)


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert default_uri(tmp_path).startswith("sqlite:////")
    assert resolve_uri(None, tmp_path) == default_uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_uri(None, tmp_path) == "http://127.0.0.1:5000"
    assert resolve_uri("sqlite:////elsewhere.db", tmp_path) == "sqlite:////elsewhere.db"


def test_tracker_runs_are_nested_and_logging_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    exp = tmp_path / "exp"
    spec = TrackerSpec(default_uri(exp), "demo", (exp / "mlartifacts").as_uri())
    tracker = Tracker(spec)
    parent = tracker.open_run("run/k", "run demo", "run")
    child = tracker.open_run("run/k/role/a", "A", "role", parent_id=parent)
    tracker.log_params(child, {"training.lr": "0.0002", "role": "A"})
    history = [{"step": 1, "loss": 2.0, "kl": 0.1}, {"step": 2, "loss": 1.5, "kl": 0.2}]
    assert tracker.log_history(child, history, ["loss", "kl"]) == 2
    tracker.log_summary(child, {"safety_avg": 50.0, "note": "text is skipped"})
    (tmp_path / "table.json").write_text("{}")
    tracker.log_artifact(child, tmp_path / "table.json", "eval")
    tracker.finish(child)
    tracker.finish(parent)

    # a second driver (a resumed run) finds the same runs and only adds what is new
    again = Tracker(spec)
    assert again.open_run("run/k", "run demo", "run") == parent
    assert again.open_run("run/k/role/a", "A", "role", parent_id=parent) == child
    again.log_params(child, {"training.lr": "0.0002", "role": "A", "extra": "1"})
    assert again.log_history(child, history + [{"step": 3, "loss": 1.0, "kl": 0.3}], ["loss", "kl"]) == 1
    again.log_summary(child, {"safety_avg": 50.0})
    client = again.client
    assert [m.step for m in client.get_metric_history(child, "train/loss")] == [1, 2, 3]
    assert len(client.get_metric_history(child, "safety_avg")) == 1
    run = client.get_run(child)
    assert run.data.params == {"training.lr": "0.0002", "role": "A", "extra": "1"}
    assert run.data.tags["mlflow.parentRunId"] == parent and run.info.status == "RUNNING"
    assert again.artifact_names(child, "eval") == {"table.json"}
    assert (exp / "mlflow.db").is_file() and not (tmp_path / "mlruns").exists()
    assert (exp / "mlartifacts").is_dir()
    assert again.open_run("run/k", "run demo", "run", reuse=False) != parent
