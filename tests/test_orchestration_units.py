"""Orchestration pieces without Ray: Pareto front, best trial, sweep config, plots, report, MLflow tracking."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from sarft_ray.config import parse_config
from sarft_ray.errors import SarftError
from sarft_ray.orchestration import plots, report, stages
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


def _config_with_sweep(tmp_path, sweep: dict):
    from sarft_ray.paths import data_dir

    tree = {
        "experiment": "x",
        "output_root": str(tmp_path),
        "model": {"ref": "tiny-random"},
        "roles": {
            "names": ["John Doe", "Tom Ripley"],
            "corpus": {"paths": [str(data_dir() / "rolebench/role-generalization/general/test.jsonl")]},
            "prompts": {"path": str(data_dir() / "sarft_profiles/role_and_unsafe_prompts.json")},
        },
        "evaluation": {"benchmarks": ["rolebench_spe", "advbench"], "jailbreaks": ["caesar"]},
        "sweep": sweep,
    }
    return parse_config(tree, "sweep.yaml", tmp_path)


def test_sweep_checks_roles_and_objective_metrics_against_the_config(tmp_path):
    from ray import tune

    from sarft_ray.orchestration.sweep import check_sweep, headline_keys, search_space, sweep_name

    cfg = _config_with_sweep(tmp_path, {"space": {"lambda_kl": [0.0, 1.0], "lr": {"loguniform": [1e-5, 1e-3]}}})
    check_sweep(cfg)
    assert headline_keys(cfg) == [
        "rolebench_spe_rouge_l_first", "rolebench_spe_rouge_l_max", "advbench_rr", "jailbreak_caesar_rr",
        "safety_avg", "jailbreak_avg",
    ]
    space = search_space(cfg)
    assert space["role"] == tune.grid_search(["John Doe", "Tom Ripley"])  # every role unless the space names some
    assert space["lambda_kl"] == tune.grid_search([0.0, 1.0])
    assert sweep_name(cfg).startswith("sweep-")
    # the name follows the settings that decide the trials, not the objective or resources
    other = _config_with_sweep(tmp_path, {"space": {"lambda_kl": [0.0, 1.0], "lr": {"loguniform": [1e-5, 1e-3]}},
                                          "max_concurrent_trials": 1, "objective": {"mode": "min"}})
    assert sweep_name(other) == sweep_name(cfg)
    assert sweep_name(_config_with_sweep(tmp_path, {"space": {"lambda_kl": [0.5]}})) != sweep_name(cfg)

    spelled = _config_with_sweep(tmp_path, {"space": {"role": ["john doe"]}})
    assert search_space(spelled)["role"] == tune.grid_search(["John Doe"])
    with pytest.raises(SarftError, match="sweep.space.role: unknown role 'Jon Dough'"):
        check_sweep(_config_with_sweep(tmp_path, {"space": {"role": ["Jon Dough"]}}))
    with pytest.raises(SarftError, match=r"sweep.objective.constraints\[0\].metric: unknown metric 'beavertails_rr'"):
        check_sweep(_config_with_sweep(
            tmp_path, {"space": {"lambda_kl": [1.0]}, "objective": {"constraints": [{"metric": "beavertails_rr", "min": 1}]}}
        ))


def test_training_slots_leave_room_for_one_evaluation(tmp_path):
    from sarft_ray.orchestration.pipeline import training_slots

    def cfg(backend="ray", **training):
        base = _config_with_sweep(tmp_path, {"space": {"lambda_kl": [0.0]}})
        ev = base.evaluation.model_copy(update={"backend": backend, "num_actors": 4 if training.get("gpus_per_worker") else 1,
                                                "actor_num_gpus": 1.0 if training.get("gpus_per_worker") else 0.0})
        return base.with_updates(training=base.training.model_copy(update=training), evaluation=ev)

    laptop = [{"Alive": True, "Resources": {"CPU": 2.0}}]
    assert training_slots(cfg(workers=1, cpus_per_worker=1.0), 4, laptop) == 1  # 2 CPUs - 0.5 for evaluation
    assert training_slots(cfg(workers=1, cpus_per_worker=0.5), 4, laptop) == 3
    assert training_slots(cfg("local", workers=1, cpus_per_worker=1.0), 4, laptop) == 2
    assert training_slots(cfg(workers=1, cpus_per_worker=0.5), 2, laptop) == 2  # never more than the roles
    gpus = dict(workers=4, cpus_per_worker=4.0, gpus_per_worker=1.0)
    node = {"Alive": True, "Resources": {"CPU": 64.0, "GPU": 8.0}}
    assert training_slots(cfg(**gpus), 10, [node]) == 1  # 4 GPUs kept for the evaluation actors
    assert training_slots(cfg(**gpus), 10, [node, dict(node), {"Alive": False, "Resources": {"GPU": 8.0}}]) == 3
    assert training_slots(cfg(**gpus), 10, [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 4.0}}]) == 1  # at least 1


def test_role_headline_picks_the_role_from_an_evaluation_table():
    table = {
        "benchmarks": {
            "rolebench_spe": {"rouge_l_first": 15.0, "rouge_l_max": 20.0, "per_role": {
                "A": {"rouge_l_first": 10.0, "rouge_l_max": 12.0, "n": 2},
                "B": {"rouge_l_first": 20.0, "rouge_l_max": 28.0, "n": 2}}},
            "advbench": {"refusal_rate": 50.0, "n": 4},
            "beavertails": {"refusal_rate": 70.0, "n": 4, "per_role": {"A": {"refusal_rate": 90.0}, "B": {"refusal_rate": 50.0}}},
        }
    }
    row = stages.role_headline(table, "A")
    assert row["rolebench_spe_rouge_l_first"] == 10.0 and row["rolebench_spe_rouge_l_max"] == 12.0
    # AdvBench was asked without role prompts: the overall rate; BeaverTails per role
    assert row["advbench_rr"] == 50.0 and row["beavertails_rr"] == 90.0 and row["safety_avg"] == 70.0


def test_sweep_trial_rows_and_method_points():
    from sarft_ray.orchestration.sweep import method_points, objective_text

    rows = [
        {"role": r, "selection": sel, "lambda_kl": lam, "rolebench_spe_rouge_l_first": q, "safety_avg": s}
        for r, sel, lam, q, s in [
            ("A", "rds", 0.5, 10.0, 80.0), ("B", "rds", 0.5, 20.0, 90.0),
            ("A", "none", 0.0, 12.0, 60.0), ("B", "none", 0.0, 22.0, 70.0),
        ]
    ]
    points = method_points(rows, ["role", "selection", "lambda_kl"], {"headline": {"safety_avg": 95.0}})
    by_method = {p["method"]: p for p in points}
    assert by_method["rds"]["rolebench_spe_rouge_l_first"] == 15.0 and by_method["rds"]["safety_avg"] == 85.0
    assert by_method["rds"]["label"] == "lambda_kl=0.5" and by_method["base"]["safety_avg"] == 95.0
    objective = Objective(metric="safety_avg", constraints=[{"metric": "rolebench_spe_rouge_l_first", "min": 10, "max": 40}])
    assert objective_text(objective) == "max safety_avg; rolebench_spe_rouge_l_first >= 10 and <= 40"


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
    assert [report.fmt(v) for v in (2e-4, 0.0, 98.456, 3, "rds")] == ["2.00e-04", "0.00", "98.46", "3", "rds"]


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
