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


def test_settings_sort_by_value_so_a_tie_goes_to_the_smallest_lambda():
    from sarft_ray.orchestration.analysis import setting_order

    assert sorted([10.0, "rds", None, 3.0, 1, 0.0], key=setting_order) == [0.0, 1, 3.0, 10.0, "rds", None]
    rows = [{"role": "A", "trial_id": f"t{lam}", "lambda_kl": lam, "beavertails_rr": 100.0} for lam in (10.0, 3.0, 1.0)]
    rows.sort(key=lambda r: setting_order(r["lambda_kl"]))  # as run_sweep orders its rows
    assert best_per_role(rows, Objective(metric="beavertails_rr"))["A"]["best"]["lambda_kl"] == 1.0


def test_a_relative_constraint_measures_each_role_against_its_own_reference_trial():
    from sarft_ray.orchestration.sweep_report import objective_text

    rows = [
        {"role": "A", "trial_id": "a0", "lambda_kl": 0.0, "beavertails_rr": 50.0, "rouge": 20.0},
        {"role": "A", "trial_id": "a1", "lambda_kl": 1.0, "beavertails_rr": 70.0, "rouge": 19.5},
        {"role": "A", "trial_id": "a3", "lambda_kl": 3.0, "beavertails_rr": 90.0, "rouge": 18.0},  # 2 points below SFT
        {"role": "B", "trial_id": "b1", "lambda_kl": 1.0, "beavertails_rr": 95.0, "rouge": 30.0},  # B's SFT trial failed
    ]
    constraint = {"metric": "rouge", "min": -1.0, "relative_to": {"lambda_kl": 0}}
    best = best_per_role(rows, Objective(metric="beavertails_rr", constraints=[constraint]))
    assert best["A"]["best"]["trial_id"] == "a1" and best["A"]["eligible"] == 2  # a0 (its own reference) and a1
    assert best["B"]["best"] is None and best["B"]["reason"] == "no trial to measure rouge >= (lambda_kl=0) - 1 against"
    band = Objective(metric="beavertails_rr", constraints=[constraint | {"max": 0.0}])
    assert objective_text(band) == "max beavertails_rr; rouge >= (lambda_kl=0) - 1 and <= (lambda_kl=0) + 0"


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

    from sarft_ray.orchestration.sweep_space import check_sweep, headline_keys, search_space, sweep_name

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
    # nor how fast or where the work runs (threads, actors, checkpoint cadence), in any section
    moved = cfg.with_updates(
        evaluation=cfg.evaluation.model_copy(update={"torch_threads": 3, "num_actors": 2, "save_every": 7}),
        scoring=cfg.scoring.model_copy(update={"batch_size": 3, "torch_threads": 5}),
        training=cfg.training.model_copy(update={"checkpoint_every": 9, "cpus_per_worker": 3}),
    )
    assert sweep_name(moved) == sweep_name(cfg)
    decoded = cfg.with_updates(evaluation=cfg.evaluation.model_copy(
        update={"generation": cfg.evaluation.generation.model_copy(update={"max_new_tokens": 3})}))
    assert sweep_name(decoded) != sweep_name(cfg)  # what the answers are made with still counts
    on_gpu = cfg.with_updates(scoring=cfg.scoring.model_copy(update={"num_gpus_per_actor": 1.0}))
    assert sweep_name(on_gpu) != sweep_name(cfg)  # so does the device (another precision)

    spelled = _config_with_sweep(tmp_path, {"space": {"role": ["john doe"]}})
    assert search_space(spelled)["role"] == tune.grid_search(["John Doe"])
    with pytest.raises(SarftError, match="sweep.space.role: unknown role 'Jon Dough'"):
        check_sweep(_config_with_sweep(tmp_path, {"space": {"role": ["Jon Dough"]}}))
    with pytest.raises(SarftError, match=r"sweep.objective.constraints\[0\].metric: unknown metric 'beavertails_rr'"):
        check_sweep(_config_with_sweep(
            tmp_path, {"space": {"lambda_kl": [1.0]}, "objective": {"constraints": [{"metric": "beavertails_rr", "min": 1}]}}
        ))
    relative = {"metric": "advbench_rr", "min": -1, "relative_to": {"lambda_kl": 0}}
    check_sweep(_config_with_sweep(tmp_path, {"space": {"lambda_kl": [0.0, 1.0]}, "objective": {"constraints": [relative]}}))
    for space, message in [
        ({"lambda_kl": [1.0]}, r"constraints\[0\]\.relative_to\.lambda_kl: no trial has lambda_kl=0 \(sweep.space.lambda_kl: \[1.0\]\)"),
        ({"lr": [1e-4]}, r"constraints\[0\]\.relative_to\.lambda_kl: 'lambda_kl' is not swept \(sweep.space has lr\)"),
    ]:
        with pytest.raises(SarftError, match=message):
            check_sweep(_config_with_sweep(tmp_path, {"space": space, "objective": {"constraints": [relative]}}))


def test_a_sweep_whose_tune_state_this_version_cannot_read_starts_afresh(tmp_path, caplog):
    """Tune pickles this package's objects: after an upgrade moved a class, resuming starts over (stages are cached)."""
    import pickle

    from ray import tune

    from sarft_ray.orchestration.sweep import STATE_FILE, make_tuner

    cfg = _config_with_sweep(tmp_path, {"space": {"lambda_kl": [0.0]}})
    path = tmp_path / "sweeps" / "sweep-old"
    path.mkdir(parents=True)
    # a pickle naming a class that no longer exists where it was
    (path / "tuner.pkl").write_bytes(pickle.dumps(0).replace(b"K\x00", b"csarft_ray.orchestration.config\nGone\n"))
    assert tune.Tuner.can_restore(str(path))
    with caplog.at_level("WARNING"):
        tuner = make_tuner(cfg, path, True, logger=None)
    assert isinstance(tuner, tune.Tuner)
    assert "cannot be read by this version" in caplog.text and "Gone" in caplog.text
    assert b"Gone" not in (path / "tuner.pkl").read_bytes()  # the new Tuner's state replaced the old
    assert (path / STATE_FILE).is_file()


def test_training_slots_leave_room_for_one_evaluation(tmp_path):
    from sarft_ray.orchestration.run_workers import training_slots

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
    from sarft_ray.orchestration.sweep_report import method_points, objective_text

    rows = [
        {"role": r, "selection": sel, "lambda_kl": lam, "rolebench_spe_rouge_l_first": q, "safety_avg": s}
        for r, sel, lam, q, s in [
            ("A", "rds", 0.5, 10.0, 80.0), ("B", "rds", 0.5, 20.0, 90.0),
            ("A", "none", 0.0, 12.0, 60.0), ("B", "none", 0.0, 22.0, 70.0),
        ]
    ]
    base = {"benchmarks": {"beavertails": {"refusal_rate": 95.0, "n": 20}}}
    points = method_points(rows, ["role", "selection", "lambda_kl"], base)
    by_method = {p["method"]: p for p in points}
    assert by_method["rds"]["rolebench_spe_rouge_l_first"] == 15.0 and by_method["rds"]["safety_avg"] == 85.0
    assert by_method["rds"]["label"] == "lambda_kl=0.5" and by_method["base"]["safety_avg"] == 95.0
    objective = Objective(metric="safety_avg", constraints=[{"metric": "rolebench_spe_rouge_l_first", "min": 10, "max": 40}])
    assert objective_text(objective) == "max safety_avg; rolebench_spe_rouge_l_first >= 10 and <= 40"


# ---------------------------------------------------------------------------- plots and report


def test_plots_take_role_quality_from_the_figure_the_rows_have_and_the_base_model_from_the_same_roles():
    """A sweep judged on validation questions has no SPE figure: its plots show the validation ROUGE-L."""
    from sarft_ray.orchestration.analysis import quality_metric
    from sarft_ray.orchestration.sweep_report import method_points

    rows = [{"role": "A", "selection": "rds", "lambda_kl": lam, "rolebench_val_rouge_l_first": 18.0 + lam,
             "rolebench_spe_rouge_l_first": None, "safety_avg": 70.0 + lam} for lam in (0.0, 1.0)]
    assert quality_metric(rows) == "rolebench_val_rouge_l_first"
    assert quality_metric(rows + [{"rolebench_spe_rouge_l_first": 1.0}]) == "rolebench_spe_rouge_l_first"
    assert quality_metric([{"rolebench_raw_rouge_l_first": 1.0}]) == "rolebench_raw_rouge_l_first"
    # character questions before the mean over both kinds
    assert quality_metric(rows + [{"rolebench_val_spe_rouge_l_first": 1.0}]) == "rolebench_val_spe_rouge_l_first"
    assert quality_metric([{"safety_avg": 1.0}]) == "rolebench_spe_rouge_l_first"  # nothing to plot: the usual axis
    # the base model was evaluated on every role; its point is its mean over the roles the trials ran on (A)
    per_role = {role: {"rouge_l_first": q, "rouge_l_max": q, "n": 5} for role, q in (("A", 17.0), ("B", 30.0))}
    base = {"headline": {"rolebench_val_rouge_l_first": 23.5, "safety_avg": 95.0},
            "benchmarks": {"rolebench_val": {"rouge_l_first": 23.5, "rouge_l_max": 23.5, "per_role": per_role},
                           "beavertails": {"refusal_rate": 95.0, "n": 20}}}
    points = method_points(rows, ["role", "lambda_kl"], base, "rolebench_val_rouge_l_first")
    assert [p["rolebench_val_rouge_l_first"] for p in points] == [18.0, 19.0, 17.0]
    assert points[-1] == {"method": "base", "label": "base", "rolebench_val_rouge_l_first": 17.0, "safety_avg": 95.0}



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


# ---------------------------------------------------------------------------- arms and the comparison table


def _config_with_arms(tmp_path, **keys):
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
        "training": {"lambda_kl": 0.5, "lr": 2e-4},
        **keys,
    }
    return parse_config(tree, "arms.yaml", tmp_path)


TWO_ARMS = [{"name": "sft", "selection": "none"}, {"name": "sarft", "selection": "rds", "lambda_kl": 1.0, "lr": 1e-4}]


def test_arms_take_training_overrides_and_default_compare_to_plain_sft(tmp_path):
    from sarft_ray.orchestration.arms import compare_to, resolve_arms

    cfg = _config_with_arms(tmp_path, arms=TWO_ARMS)
    sft, sarft = resolve_arms(cfg)
    assert (sft.name, sft.training.selection, sft.training.lambda_kl, sft.training.lr) == ("sft", "none", 0.5, 2e-4)
    assert (sarft.training.selection, sarft.training.lambda_kl, sarft.training.lr) == ("rds", 1.0, 1e-4)
    assert sarft.overrides == {"selection": "rds", "lambda_kl": 1.0, "lr": 1e-4}
    assert sarft.metric_prefix == "arm/sarft/" and sarft.run_key("run/k/role/a") == "run/k/role/a/arm/sarft"
    assert sarft.describe() == "sarft: selection rds, lambda_kl 1, lr 0.0001"
    assert compare_to(cfg) == "sft"
    assert cfg.resolved()["arms"] == TWO_ARMS  # written back as given, not with every training field
    assert compare_to(_config_with_arms(tmp_path, arms=TWO_ARMS, compare_to="sarft")) == "sarft"
    assert compare_to(_config_with_arms(tmp_path, arms=TWO_ARMS[1:])) is None  # no plain SFT arm: no deltas

    # without arms: one arm from the training section, labelled and tracked as before
    (single,) = resolve_arms(_config_with_arms(tmp_path))
    assert single.name == "rds lambda=0.5" and single.metric_prefix == "tuned/" and single.run_key("r") == "r"
    # the arms are part of a run's key only: a sweep of the same config keeps its name
    from sarft_ray.orchestration.sweep_space import sweep_key

    sweep = {"space": {"lambda_kl": [0.0, 1.0]}}
    with_arms = _config_with_arms(tmp_path, sweep=sweep, arms=TWO_ARMS)
    assert sweep_key(_config_with_arms(tmp_path, sweep=sweep)) == sweep_key(with_arms)


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"arms": [TWO_ARMS[0], {**TWO_ARMS[1], "lambda_kl": -1}]},
         r"arms\.yaml: arms\[1\]\.lambda_kl: input should be greater than or equal to 0, got -1"),
        ({"arms": [TWO_ARMS[0], {**TWO_ARMS[1], "name": "sft"}]}, r"arms\[1\]\.name: arm name 'sft' is used twice"),
        ({"arms": [{"name": "my arm", "selection": "none"}]}, r"arms\[0\]\.name: string should match pattern"),
        ({"arms": [{"name": "base", "selection": "none"}]}, r"arms\[0\]\.name: 'base' is a row of the table"),
        ({"arms": [{"name": "a", "selection": "best"}]}, r"arms\[0\]\.selection: unknown selection 'best' \(registered: rds, flip"),
        ({"arms": [{"name": "a", "lambda_kl": 1.0}]}, r"arms\[0\]\.selection: required field is missing"),
        ({"arms": [TWO_ARMS[0], {"name": "a", "selection": "rds", "lamda": 1}]}, r"arms\[1\]\.lamda: unknown key"),
        ({"arms": [{"name": "a", "selection": "rds", "max_target_tokens": 64}]},
         r"arms\[0\]\.max_target_tokens: scoring shares this length"),
        ({"arms": [{"name": "a", "selection": "rds", "kl_span": "answer"}], "training": {"release_form": True}},
         r"arms\[0\]: release_form fixes kl_span"),
        ({"arms": []}, r"arms: list should have at least 1 item"),
        ({"arms": TWO_ARMS, "compare_to": "rds"}, r"compare_to: unknown arm 'rds'; the arms are sft, sarft"),
        ({"compare_to": "sft"}, r"compare_to: names an arm, but the config lists no arms"),
    ],
)
def test_arms_errors_name_the_field(tmp_path, keys, message):
    with pytest.raises(SarftError, match=message):
        _config_with_arms(tmp_path, **keys)


def _verdicts(counts: dict, source: str):
    from sarft_ray.orchestration.comparison import Verdicts

    return {name: Verdicts(r, n, f"{source}/{name}") for name, (r, n) in counts.items()}


def _hand_results():
    """Two roles; the base model asked AdvBench once without role prompts (one source for both roles)."""
    from sarft_ray.orchestration.comparison import Result, Verdicts

    shared = {"advbench": Verdicts(2, 10, "base/advbench/all")}
    base = {
        "A": Result({"rolebench_spe_rouge_l_first": 10.0}, shared | _verdicts({"beavertails": (5, 10)}, "base/A")),
        "B": Result({"rolebench_spe_rouge_l_first": 12.0}, shared | _verdicts({"beavertails": (3, 10)}, "base/B")),
    }
    arms = {
        ("A", "sft"): (20.0, {"advbench": (1, 10), "beavertails": (2, 10)}, 3.0),
        ("B", "sft"): (30.0, {"advbench": (3, 10), "beavertails": (4, 10)}, 2.0),
        ("A", "sarft"): (18.0, {"advbench": (6, 10), "beavertails": (7, 10)}, 3.5),
        ("B", "sarft"): (29.0, {"advbench": (8, 10), "beavertails": (6, 10)}, 2.5),
    }
    results = {
        job: Result({"rolebench_spe_rouge_l_first": q}, _verdicts(v, "/".join(job)), {"rows": 8, "last_loss": loss})
        for job, (q, v, loss) in arms.items()
    }
    return base, results


def test_comparison_table_has_base_arms_and_deltas_against_sft_per_role_and_mean():
    from sarft_ray.orchestration.comparison import comparison_rows

    base, results = _hand_results()
    rows = comparison_rows(["A", "B"], ["sft", "sarft"], "sft", base, results, {"A": 0.25, "B": 0.5})
    assert [(r["role"], r["model"]) for r in rows] == [
        ("A", "base"), ("A", "sft"), ("A", "sarft"), ("A", "Δ sarft - sft"),
        ("B", "base"), ("B", "sft"), ("B", "sarft"), ("B", "Δ sarft - sft"),
        ("mean", "base"), ("mean", "sft"), ("mean", "sarft"), ("mean", "Δ sarft - sft"),
    ]
    by = {(r["role"], r["model"]): r for r in rows}
    for role in ("A", "B", "mean"):
        delta, sarft, sft = by[(role, "Δ sarft - sft")], by[(role, "sarft")], by[(role, "sft")]
        for column in ("rolebench_spe_rouge_l_first", "advbench_rr", "beavertails_rr", "safety_avg"):
            assert delta[column] == pytest.approx(sarft[column] - sft[column]), (role, column)
    # by hand: A 60-10, 70-20, 65-15, 18-20; B 80-30, 60-40, 70-35, 29-30
    rates = ("advbench_rr", "beavertails_rr", "safety_avg")
    assert [by[("A", "Δ sarft - sft")][c] for c in rates] == [50.0, 50.0, 50.0]
    assert by[("A", "Δ sarft - sft")]["rolebench_spe_rouge_l_first"] == -2.0
    assert by[("B", "Δ sarft - sft")]["beavertails_rr"] == pytest.approx(20.0)
    assert by[("B", "Δ sarft - sft")]["safety_avg"] == pytest.approx(35.0)

    # mean rows: rates pooled over roles (sft AdvBench 4/20, BeaverTails 6/20; sarft 14/20, 13/20)
    sft, sarft = by[("mean", "sft")], by[("mean", "sarft")]
    assert (sft["advbench_rr"], sft["advbench_rr_n"], sft["advbench_rr_refusals"]) == (20.0, 20, 4)
    assert sft["safety_avg"] == 25.0 and sft["safety_avg_n"] == 40 and sft["safety_avg_refusals"] == 10
    assert sarft["advbench_rr"] == 70.0 and sarft["beavertails_rr"] == 65.0 and sarft["safety_avg"] == 67.5
    assert by[("mean", "Δ sarft - sft")]["safety_avg"] == pytest.approx(42.5)
    assert by[("mean", "Δ sarft - sft")]["rolebench_spe_rouge_l_first"] == pytest.approx(-1.5)
    assert sarft["train_rows"] == 8 and sarft["last_loss"] == 3.0 and sarft["harmful_fraction"] == 0.375
    assert sarft["status"] == "2 of 2 roles"
    # Wilson intervals in %: sarft on B AdvBench 8/10 -> [49.02, 94.33]
    assert (by[("B", "sarft")]["advbench_rr_ci_low"], by[("B", "sarft")]["advbench_rr_ci_high"]) == pytest.approx(
        (49.02, 94.33), abs=5e-3
    )
    # the base model's AdvBench verdicts are shared by both roles: pooled once (2/10, not 4/20)
    assert by[("mean", "base")]["advbench_rr_n"] == 10 and by[("mean", "base")]["beavertails_rr_n"] == 20


def test_comparison_table_with_failures_and_without_compare_to():
    from sarft_ray.orchestration.comparison import comparison_rows

    base, results = _hand_results()
    del results[("B", "sarft")]
    rows = comparison_rows(["A", "B"], ["sft", "sarft"], "sft", None, results, {}, {"base": "E1", ("B", "sarft"): "E2"})
    by = {(r["role"], r["model"]): r for r in rows}
    assert by[("A", "base")]["status"] == "failed: E1" and by[("B", "sarft")]["status"] == "failed: E2"
    assert ("B", "Δ sarft - sft") not in by and ("mean", "base") not in by
    # the mean delta is taken over the roles both arms finished (A only)
    mean_delta = by[("mean", "Δ sarft - sft")]
    assert mean_delta["advbench_rr"] == 50.0 and mean_delta["status"] == "1 of 2 roles"
    plain = comparison_rows(["A", "B"], ["sft", "sarft"], None, base, results, {})
    assert not [r for r in plain if r["kind"] == "delta"]


def test_comparison_text_and_mlflow_metrics():
    from sarft_ray.orchestration.comparison import comparison_metrics, comparison_rows, text_table

    base, results = _hand_results()
    rows = comparison_rows(["A", "B"], ["sft", "sarft"], "sft", base, results, {"A": 0.25, "B": 0.5})
    headers, text = text_table(rows)
    assert headers[:2] == ["role", "model"] and "AdvBench RR" in headers and "Jailbreak avg" not in headers  # empty
    assert "status" not in headers and "status" in text_table(rows, status=True)[0]
    by = {(r["role"], r["model"]): r for r in text}
    assert by[("B", "sarft")]["AdvBench RR"] == "80.0 [49.0, 94.3] n=10"
    assert by[("A", "Δ sarft - sft")]["AdvBench RR"] == "+50.0" and by[("A", "Δ sarft - sft")]["SPE R-L"] == "-2.00"
    assert by[("A", "Δ sarft - sft")]["train rows"] == ""
    markdown = report.markdown_table(headers, text)
    assert "| mean | Δ sarft - sft |" in markdown

    metrics = comparison_metrics(rows)
    assert metrics["arm/sarft/safety_avg"] == 67.5 and metrics["delta/sarft/safety_avg"] == pytest.approx(42.5)
    assert metrics["base/advbench_rr_n"] == 10 and "arm/sft/advbench_rr_ci_low" in metrics
    assert "arm/sarft/advbench_rr_ci_high" in metrics and not any(k.startswith("delta/sft/") for k in metrics)
    assert "tuned/safety_avg" in comparison_metrics(rows, {"sarft": "tuned/"})


def test_role_verdicts_follow_role_headline():
    table = {
        "model": {"hash": "h1"},
        "benchmarks": {
            "rolebench_spe": {"rouge_l_first": 15.0, "rouge_l_max": 20.0, "per_role": {}},
            "advbench": {"refusal_rate": 50.0, "n": 5, "n_refusal": 2, "n_compliance": 2, "n_invalid": 1},
            "beavertails": {"refusal_rate": 70.0, "n": 4, "n_refusal": 3, "n_compliance": 1, "n_invalid": 0,
                            "per_role": {"A": {"n_refusal": 1, "n_compliance": 1, "refusal_rate": 50.0}}},
        },
    }
    verdicts = stages.role_verdicts(table, "A")
    assert set(verdicts) == {"advbench", "beavertails"}  # RoleBench has no verdicts
    advbench = verdicts["advbench"]  # 2 refusals of 4 valid verdicts (one invalid left out)
    assert (advbench.refusals, advbench.n, advbench.source) == (2, 4, "h1/advbench/all")
    assert (verdicts["beavertails"].refusals, verdicts["beavertails"].n) == (1, 2)
    assert verdicts["beavertails"].source == "h1/beavertails/A"
    assert stages.role_verdicts(table, None)["beavertails"].n == 4


def test_run_scatter_front_compares_means_not_one_role_with_another():
    from sarft_ray.orchestration.run_report import scatter_points

    def row(role, arm, quality, safety):
        return {"role": role, "arm": arm, "kind": "arm", "status": "ok",
                "rolebench_spe_rouge_l_first": quality, "safety_avg": safety}

    rows = [row("A", "sft", 19.0, 88.0), row("B", "sft", 16.0, 63.0), row("A", "sarft", 8.0, 97.0),
            row("B", "sarft", 15.0, 97.0), row("mean", "sft", 17.5, 75.5), row("mean", "sarft", 11.5, 97.0)]
    points = scatter_points(rows, [])
    assert [p["front"] for p in points] == [False, False, False, False, True, True]
    assert all(p["front"] for p in scatter_points(rows[:1] + rows[2:3], []))  # one role: its own points
