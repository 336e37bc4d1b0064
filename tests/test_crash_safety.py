"""``kill -9`` of a stage, then a re-run: the same artefacts as an uninterrupted run, no leftovers, no orphans.

Each slow test starts one CLI stage (``score``, ``train``, ``eval``, ``run``) on the tiny model in its own
session, waits until the stage is inside its real work (a file it writes, or its Ray actor), kills the whole
process group with SIGKILL, and checks that

- every process the killed driver started (found by a marker in their environment: Ray's GCS, raylet,
  agents and workers, which Ray puts in process groups of their own) is gone within Ray's own shutdown
  time (``SURVIVOR_BOUND_S``);
- a re-run ends normally, leaves no temporary (``.tmp-*``, ``.old-*``, unregistered Ray Train checkpoint)
  anywhere in the experiment directory, and its outputs equal those of one uninterrupted ``run`` of the same
  config (parquet tables equal, JSON and markdown equal once run-specific paths and timings are left out,
  adapter weights equal: training on CPU is deterministic, and a resumed run reseeds each step).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from sarft_ray.atomic import TEMP_KINDS, remove_stale, temp_prefix, write_text
from test_orchestration_run import tiny_experiment

CLI = Path(sys.executable).parent / "sarft-ray"
MARK = "SARFT_CRASH_TEST_MARK"  # set in a stage's environment; Ray passes it on to every process it starts
ROLE = "John Doe"
STAGE_TIMEOUT_S = 1200
KILL_POINT_TIMEOUT_S = 900
# Ray workers that were still starting when their raylet died notice it when they try to connect
# (measured 4-28 s on a loaded 2-core machine); anything alive after this is an orphan.
SURVIVOR_BOUND_S = 120
# Keys whose values are timings, counts of work done in this particular run, or where a resumed run resumed.
VOLATILE_KEYS = {"seconds", "seconds_this_attempt", "run", "mean_tokens_per_s", "tokens_per_s", "step_time_s", "resumed_from_steps", "wall_s"}


# --- stale temporaries (fast) -------------------------------------------------------------------------

_KILLED_MID_WRITE = """
import os, signal, sys
from sarft_ray.atomic import write_atomic

def write(tmp):
    open(tmp, "w").write("half")
    os.kill(os.getpid(), signal.SIGKILL)

write_atomic(sys.argv[1], write)
"""


def test_a_write_removes_the_temporary_a_killed_writer_left(tmp_path):
    target = tmp_path / "table.json"
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_WRITE, str(target)], timeout=120)
    assert killed.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".tmp-table.json-") and not target.exists()

    live = tmp_path / f"{temp_prefix('table.json')}live"  # this process's own temporary: in use, kept
    live.write_text("mine")
    other = tmp_path / ".tmp-other.json-x"  # another target's: not this write's business
    other.write_text("?")
    write_text(target, "whole")
    assert target.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".tmp-other.json-x", live.name, "table.json"])


def test_remove_stale_keeps_live_and_new_temporaries_and_removes_the_rest(tmp_path):
    mine = tmp_path / f"{temp_prefix('scores')}abc"  # owner alive (this process)
    mine.mkdir()
    (mine / "part-0.parquet").write_text("x")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    orphan = tmp_path / f"{temp_prefix('scores').replace(f'-{os.getpid()}@', f'-{dead_pid}@')}def"  # owner gone
    orphan.mkdir()
    old_unnamed = tmp_path / ".old-scores-1234abcd"  # no owner in its name, older than this process
    old_unnamed.write_text("x")
    os.utime(old_unnamed, (1_000_000, 1_000_000))
    new_unnamed = tmp_path / ".tmp-scores-5678abcd"  # no owner, written after this process started
    new_unnamed.write_text("x")
    unrelated = tmp_path / "scores"
    unrelated.mkdir()

    removed = remove_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted([orphan.name, old_unnamed.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, new_unnamed.name, "scores"])
    assert remove_stale(tmp_path / "missing") == []


def test_checkpoints_ray_train_never_registered_are_removed(tmp_path):
    from sarft_ray.training.ray_trainer import SNAPSHOT, remove_unregistered_checkpoints

    storage = tmp_path / "ray"
    for name in ("checkpoint_a", "checkpoint_b", "checkpoint_c"):
        (storage / name / "state").mkdir(parents=True)
    entry = {"checkpoint_dir_name": "checkpoint_a", "metrics": {}}
    state = {"checkpoint_results": [entry], "pending_training_results": [], "latest_checkpoint_result": entry}
    (storage / SNAPSHOT).write_text(json.dumps(state))
    assert sorted(remove_unregistered_checkpoints(storage)) == ["checkpoint_b", "checkpoint_c"]
    assert sorted(p.name for p in storage.iterdir()) == ["checkpoint_a", SNAPSHOT]

    (storage / "checkpoint_d").mkdir()
    (storage / SNAPSHOT).write_text("{not json")  # a snapshot it cannot read: nothing is touched
    assert remove_unregistered_checkpoints(storage) == []
    assert (storage / "checkpoint_d").is_dir()
    (storage / SNAPSHOT).unlink()  # no snapshot: Ray Train resumes from none of them
    assert sorted(remove_unregistered_checkpoints(storage)) == ["checkpoint_a", "checkpoint_d"]
    assert remove_unregistered_checkpoints(tmp_path / "missing") == []
    # the same on storage named by a URI (ray.storage_path)
    (storage / "checkpoint_e").mkdir()
    assert remove_unregistered_checkpoints(f"file://{storage}") == ["checkpoint_e"] and not (storage / "checkpoint_e").exists()


# --- helpers: stages as processes ------------------------------------------------------------------------


def marked_processes(token: str) -> dict[int, str]:
    """pid -> command line of every process whose environment carries ``MARK=token``."""
    needle = f"{MARK}={token}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


class Stage:
    """One ``sarft-ray`` command in its own session, its output in ``log``, its processes marked by ``token``."""

    def __init__(self, root: Path, *args: str):
        self.token = uuid.uuid4().hex
        self.log = root / f"{args[0]}-{self.token[:8]}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
        env[MARK] = self.token
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [str(CLI), *args], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def finish(self) -> None:
        """Wait for a normal end (exit 0), then for its Ray processes to be gone."""
        try:
            code = self.proc.wait(timeout=STAGE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            pytest.fail(f"stage did not finish in {STAGE_TIMEOUT_S} s:\n{self.tail()}")
        assert code == 0, self.tail()
        assert self.survivors() == {}, "processes outlived a stage that ended normally"

    def kill_when(self, ready: Callable[[], bool], what: str) -> None:
        """SIGKILL the whole process group as soon as ``ready()``; fail if the stage ends first."""
        deadline = time.monotonic() + KILL_POINT_TIMEOUT_S
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"the stage ended (exit {self.proc.returncode}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                pytest.fail(f"no {what} within {KILL_POINT_TIMEOUT_S} s:\n{self.tail()}")
            time.sleep(0.1)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        assert self.proc.returncode == -signal.SIGKILL

    def survivors(self) -> dict[int, str]:
        """The processes started for this stage that are still alive after ``SURVIVOR_BOUND_S``."""
        deadline = time.monotonic() + SURVIVOR_BOUND_S
        while (alive := marked_processes(self.token)) and time.monotonic() < deadline:
            time.sleep(1)
        return alive

    def actor_running(self, name: str) -> bool:
        return any(name in command for command in marked_processes(self.token).values())


def write_config(root: Path, model_dir: Path) -> Path:
    """One role; 6 training steps with a checkpoint every 2; 4 answers between evaluation saves."""
    tree = tiny_experiment(
        root,
        model_dir,
        roles=[ROLE],
        training={"max_steps": 6, "checkpoint_every": 2},
        evaluation={"limit": 4, "save_every": 4},
    )
    path = root / "experiment.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def experiment_dir(root: Path) -> Path:
    return root / "runs" / "orch"


def leftovers(root: Path) -> list[str]:
    """Temporaries and unregistered Ray Train checkpoints anywhere under the experiment directory."""
    exp = experiment_dir(root)
    found = [str(p.relative_to(exp)) for p in exp.rglob("*") if p.name.startswith(TEMP_KINDS)]
    for storage in exp.glob("train/*/*/ray"):
        snapshot = storage / "checkpoint_manager_snapshot.json"
        registered = set()
        if snapshot.is_file():
            registered = {c["checkpoint_dir_name"] for c in json.loads(snapshot.read_text())["checkpoint_results"]}
        found += [str(p.relative_to(exp)) for p in storage.glob("checkpoint_*") if p.is_dir() and p.name not in registered]
    return found


# --- helpers: comparing outputs --------------------------------------------------------------------------


def _normal(value, roots: tuple[Path, ...]):
    """JSON-like ``value`` with run-specific paths replaced and timings left out."""
    if isinstance(value, dict):
        return {k: _normal(v, roots) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normal(v, roots) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(str(root), "<root>")
        return value
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def assert_same_outputs(expected: Path, actual: Path, roots: tuple[Path, Path]) -> None:
    """Same files under both directories, with equal content where content is deterministic.

    Parquet: equal tables. JSON: equal after ``_normal``. Markdown and YAML: equal text with the roots
    replaced. safetensors: equal tensors. Images, HTML, sqlite and DeepSpeed state: present on both sides.
    """
    import torch
    from safetensors.torch import load_file

    names = sorted(str(p.relative_to(expected)) for p in expected.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(actual)) for p in actual.rglob("*") if p.is_file())
    for name in names:
        a, b = expected / name, actual / name
        if a.suffix == ".parquet":
            left, right = pq.read_table(a), pq.read_table(b)
            assert left.schema == right.schema and left.equals(right), name
        elif a.suffix == ".json":
            assert _normal(json.loads(a.read_text()), roots) == _normal(json.loads(b.read_text()), roots), name
        elif a.suffix in (".md", ".yaml", ".jinja", ".txt"):
            assert _normal(a.read_text(), roots) == _normal(b.read_text(), roots), name
        elif a.suffix == ".safetensors":
            left, right = load_file(a), load_file(b)
            assert left.keys() == right.keys(), name
            assert all(torch.equal(left[k], right[k]) for k in left), f"{name}: weights differ"


# --- the uninterrupted run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir, shared_data) -> Path:
    """Root of one uninterrupted ``sarft-ray run`` of the crash-test config."""
    root = tmp_path_factory.mktemp("uninterrupted")
    config = write_config(root, tiny_model_dir)
    Stage(root, "run", str(config)).finish()
    assert leftovers(root) == []
    return root


def _only(pattern: str, root: Path) -> Path:
    found = sorted(experiment_dir(root).glob(pattern))
    assert len(found) == 1, found
    return found[0]


# --- one kill per stage ------------------------------------------------------------------------------


@pytest.mark.slow
def test_score_killed_while_its_actor_scores(reference, tiny_model_dir, tmp_path):
    config = write_config(tmp_path, tiny_model_dir)
    scores = experiment_dir(tmp_path) / "scores"
    killed = Stage(tmp_path, "score", str(config))
    killed.kill_when(
        lambda: any(scores.glob(".tmp-*")) and killed.actor_running("MapWorker(MapBatches(ScoreActor))"),
        "a scoring actor with the scores directory under construction",
    )
    assert killed.survivors() == {}, "processes of the killed driver outlived it"
    assert [p.name[:5] for p in scores.iterdir()] == [".tmp-"]  # half-built, not in place

    Stage(tmp_path, "score", str(config)).finish()
    assert leftovers(tmp_path) == []
    assert_same_outputs(_only("scores/*", reference), _only("scores/*", tmp_path), (reference, tmp_path))


@pytest.mark.slow
def test_train_killed_after_its_first_checkpoint(reference, tiny_model_dir, tmp_path):
    config = write_config(tmp_path, tiny_model_dir)
    scored = _only("scores/*", reference)
    shutil.copytree(scored, experiment_dir(tmp_path) / "scores" / scored.name)
    train_dir = experiment_dir(tmp_path) / "train"
    killed = Stage(tmp_path, "train", str(config), "--role", ROLE)
    killed.kill_when(lambda: any(train_dir.glob("*/*/ray/checkpoint_manager_snapshot.json")), "a registered checkpoint")
    assert killed.survivors() == {}, "processes of the killed driver outlived it"
    assert not any(train_dir.glob("*/*/summary.json")), "killed after training had finished"

    Stage(tmp_path, "train", str(config), "--role", ROLE).finish()
    assert leftovers(tmp_path) == []
    run_dir = _only("train/*/*", tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_step"] == 6 and summary["resumed_from_steps"], "the re-run did not resume"
    expected = _only("train/*/*", reference)
    assert run_dir.name == expected.name  # same inputs, same run hash
    roots = (reference, tmp_path)
    assert_same_outputs(expected / "adapter", run_dir / "adapter", roots)
    assert _normal(json.loads((expected / "summary.json").read_text()), roots) == _normal(summary, roots)
    assert _normal((expected / "config.yaml").read_text(), roots) == _normal((run_dir / "config.yaml").read_text(), roots)


@pytest.mark.slow
def test_eval_killed_between_two_saves(reference, tiny_model_dir, tmp_path):
    config = write_config(tmp_path, tiny_model_dir)
    evals = experiment_dir(tmp_path) / "eval"
    killed = Stage(tmp_path, "eval", str(config))
    killed.kill_when(lambda: any(evals.glob("*/*/generations.parquet")), "the first saved generations")
    assert killed.survivors() == {}, "processes of the killed driver outlived it"
    assert not any(evals.glob("*/table.json")), "killed after the evaluation had finished"

    Stage(tmp_path, "eval", str(config)).finish()
    assert leftovers(tmp_path) == []
    actual = _only("eval/*/table.json", tmp_path).parent
    assert_same_outputs(experiment_dir(reference) / "eval" / actual.name, actual, (reference, tmp_path))


@pytest.mark.slow
def test_run_killed_while_training(reference, tiny_model_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    config = write_config(tmp_path, tiny_model_dir)
    train_dir = experiment_dir(tmp_path) / "train"
    killed = Stage(tmp_path, "run", str(config))
    killed.kill_when(lambda: any(train_dir.glob("*/*/ray/checkpoint_manager_snapshot.json")), "a registered checkpoint")
    assert killed.survivors() == {}, "processes of the killed driver outlived it"
    assert not (experiment_dir(tmp_path) / "report").exists(), "killed after the run had finished"

    Stage(tmp_path, "run", str(config)).finish()
    assert leftovers(tmp_path) == []
    roots = (reference, tmp_path)
    for pattern in ("scores/*", "train/*/*/adapter", "eval/*"):
        for expected in sorted(experiment_dir(reference).glob(pattern)):
            if expected.is_dir():
                assert_same_outputs(expected, experiment_dir(tmp_path) / expected.relative_to(experiment_dir(reference)), roots)
    report = experiment_dir(tmp_path) / "report"
    for name in ("table.json", "table.md"):
        left = (experiment_dir(reference) / "report" / name).read_text()
        right = (report / name).read_text()
        if name.endswith(".json"):
            assert _normal(json.loads(left), roots) == _normal(json.loads(right), roots), name
        else:
            assert _normal(left, roots) == _normal(right, roots), name

    def runs(root: Path) -> list[tuple[str, str]]:
        client = MlflowClient(tracking_uri=f"sqlite:///{experiment_dir(root) / 'mlflow.db'}")
        found = client.search_runs([e.experiment_id for e in client.search_experiments()])
        return sorted((r.data.tags.get("sarft.kind", ""), r.info.status) for r in found)

    assert runs(tmp_path) == runs(reference)  # the killed run's MLflow runs were resumed and finished, none added
