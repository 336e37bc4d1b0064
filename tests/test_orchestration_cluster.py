"""Against a real `ray start --head` cluster with token authentication (started and stopped by this module):
`ray job submit` of jobs/run.py, a sweep whose driver is killed and then resumed, and a scoring pool the
joined cluster cannot hold (a warning, then a stall that ends in one line instead of a wait without end)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sarft_ray.paths import data_dir
from test_orchestration_run import ROLES, load, mlflow_runs, tiny_experiment
from test_scoring_store import write_experiment

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Head:
    dashboard: str  # http://127.0.0.1:PORT, for `ray job ...`
    env: dict  # token, auth mode and RAY_ADDRESS for drivers and clients


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def ray_head():
    """A 2-CPU head node with token auth and its dashboard on 127.0.0.1; only this process's cluster is stopped."""
    gcs, dashboard, client, agent = _free_ports(4)
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env |= {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the job's `python` is this environment's
        "DS_ACCELERATOR": "cpu",
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # nothing to drain: stop at once
    }
    log = open(Path(temp_dir) / "head.log", "w")
    # --block keeps the cluster's processes children of this one: terminating it stops exactly this cluster
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus=2", f"--port={gcs}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
         f"--dashboard-agent-listen-port={agent}", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 180
        while True:
            probe = subprocess.run([str(BIN / "ray"), "job", "list", "--address", url], env=env, capture_output=True, text=True)
            if probe.returncode == 0:
                break
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Ray head did not come up:\n{(Path(temp_dir) / 'head.log').read_text()[-3000:]}")
            time.sleep(2)
        yield Head(url, env | {"RAY_ADDRESS": f"127.0.0.1:{gcs}"})
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _write(tree: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def test_job_submit_with_token_runs_the_pipeline(ray_head, tiny_model_dir, tmp_path):
    tree = tiny_experiment(tmp_path, tiny_model_dir, roles=["John Doe"], evaluation={"backend": "local"})
    config = _write(tree, tmp_path / "job.yaml")

    # a client without the token is refused
    anonymous = {k: v for k, v in ray_head.env.items() if k != "RAY_AUTH_TOKEN"} | {"HOME": str(tmp_path)}
    refused = subprocess.run([str(BIN / "ray"), "job", "list", "--address", ray_head.dashboard],
                             env=anonymous, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0

    submitted = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", ray_head.dashboard, "--working-dir", str(REPO),
         # the uploaded package cannot find the data beside the repository: say where it is
         "--runtime-env-json", json.dumps({"env_vars": {"SARFT_DATA_DIR": str(data_dir())}}),
         "--", "python", "jobs/run.py", "--config", str(config)],
        env=ray_head.env, capture_output=True, text=True, timeout=1200,
    )
    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, output[-5000:]
    assert "succeeded" in output.lower() and "report:" in output

    cfg = load(tree, tmp_path)
    assert (Path(cfg.experiment_dir) / "report" / "index.html").is_file()
    _, runs = mlflow_runs(cfg)
    kinds = sorted(r.data.tags["sarft.kind"] for r in runs)
    assert kinds == ["base", "role", "run"] and all(r.info.status == "FINISHED" for r in runs)


def _trial_states(sweep_dir: Path) -> dict[str, str]:
    """trial id -> status, from Tune's latest saved experiment state."""
    states = sorted(sweep_dir.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
    except (OSError, json.JSONDecodeError):  # caught mid-write
        return {}
    trials = [json.loads(item[0]) for item in data["trial_data"]]
    return {t["trial_id"]: t["status"] for t in trials}


def _result_lines(sweep_dir: Path) -> dict[str, int]:
    """trial id -> number of results it reported (one line per report in result.json)."""
    out = {}
    for path in sweep_dir.glob("sweep_trial_*/result.json"):
        trial_id = "_".join(path.parent.name.split("_")[2:4])
        out[trial_id] = len(path.read_text().splitlines())
    return out


def test_sweep_2x2_resumes_after_its_driver_is_killed(ray_head, tiny_model_dir, tmp_path):
    sweep = {
        "name": "grid",
        "space": {"lambda_kl": [0.0, 1.0]},  # x the two roles = 4 trials
        "max_concurrent_trials": 2,
        "objective": {"metric": "safety_avg", "constraints": [{"metric": "rolebench_spe_rouge_l_first", "min": 0}]},
    }
    tree = tiny_experiment(tmp_path, tiny_model_dir, evaluation={"backend": "local"}, sweep=sweep)
    config = _write(tree, tmp_path / "sweep.yaml")
    cfg = load(tree, tmp_path)
    sweep_dir = Path(cfg.experiment_dir) / "sweeps" / "grid"
    command = [sys.executable, "jobs/sweep.py", "--config", str(config)]

    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=REPO, env=ray_head.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 900
        while not any(s == "TERMINATED" for s in _trial_states(sweep_dir).values()):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-5000:]
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.5)
        first.send_signal(signal.SIGKILL)  # the driver dies without any chance to clean up
        first.wait()
    finished = {t for t, s in _trial_states(sweep_dir).items() if s == "TERMINATED"}
    assert 1 <= len(finished) < 4, "the driver was killed too late to leave unfinished trials"
    reports_before = _result_lines(sweep_dir)

    # --verbose: the "resuming" line is an INFO log, shown only when asked for
    resumed = subprocess.run(command + ["--verbose"], cwd=REPO, env=ray_head.env, capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-5000:]
    assert "resuming sweep grid" in resumed.stdout + resumed.stderr

    states = _trial_states(sweep_dir)
    assert len(states) == 4 and set(states.values()) == {"TERMINATED"}
    reports_after = _result_lines(sweep_dir)
    for trial_id in finished:  # finished trials were not run again: no result was added to theirs
        assert reports_after[trial_id] == reports_before[trial_id] > 1

    trials = json.loads((sweep_dir / "report" / "trials.json").read_text())["rows"]
    assert sorted((t["role"], t["lambda_kl"]) for t in trials) == sorted((r, lam) for r in ROLES for lam in (0.0, 1.0))
    assert all(t["status"] == "ok" and t["safety_avg"] is not None for t in trials)
    best = json.loads((sweep_dir / "report" / "best.json").read_text())["best"]
    assert sorted(b["role"] for b in best) == sorted(ROLES) and all(b["best trial"] for b in best)
    for name in ("index.html", "lambda_sensitivity.png", "quality_vs_safety.png", "trials.md"):
        assert (sweep_dir / "report" / name).is_file(), name

    client, runs = mlflow_runs(cfg)
    parents = [r for r in runs if r.data.tags["sarft.kind"] == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # the killed driver's run was resumed
    trial_runs = [r for r in runs if r.data.tags["sarft.kind"] == "trial"]
    assert len(trial_runs) == 4
    assert sorted(r.data.params["trial.lambda_kl"] for r in trial_runs) == ["0.0", "0.0", "1.0", "1.0"]
    for run in trial_runs:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id and run.info.status == "FINISHED"
        assert {"eval/safety_avg", "eval/rolebench_spe_rouge_l_first", "train/last_loss"} <= set(run.data.metrics)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]
        assert run.data.params["training.lambda_kl"] == run.data.params["trial.lambda_kl"]


def test_a_pool_the_joined_cluster_cannot_hold_warns_then_stops_when_it_stalls(ray_head, tiny_model_dir, tmp_path):
    # two 1-CPU actors take the head's 2 CPUs, so Ray Data's read task never runs; a joined cluster might grow,
    # so the driver warns, starts, and gives up after the stall bound instead of waiting forever
    config = write_experiment(tmp_path, model_ref=str(tiny_model_dir), scoring={"num_actors": 2, "actor_num_cpus": 1})
    env = ray_head.env | {"SARFT_RAY_STALL_TIMEOUT_S": "20"}
    proc = subprocess.run([str(BIN / "sarft-ray"), "score", str(config)], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-5000:]
    assert any("the Ray cluster (2 CPUs, 0 GPU) cannot hold scoring.num_actors=2 x actor_num_cpus=1 CPU plus 1 CPU "
               "for Ray Data's read tasks (3 CPUs in all): add nodes or lower scoring.num_actors" in line for line in lines)
    (error,) = [line for line in lines if line.startswith("error: ")]  # Ray's own log lines may come after it
    assert error.startswith("error: RDS scoring stalled: it needs scoring.num_actors=2"), proc.stderr[-5000:]
    assert "lower scoring.num_actors" in error and "no result from Ray for 20 s" in error
    assert not list((tmp_path / "runs" / "unit" / "scores").glob("[!.]*"))  # nothing stored
