"""Ray work that cannot run fails at once in one line: too few CPUs, a broken model, a non-adapter, a stalled pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_scoring_store import write_experiment

from sarft_ray.capacity import Capacity, check
from sarft_ray.stage_needs import experiment_needs, scoring_need, sweep_need, training_need
from sarft_ray.config import load_config
from sarft_ray.errors import SarftError
from sarft_ray.preflight import check_adapter_dir
from sarft_ray.ray_startup import start_retrying
from sarft_ray.ray_utils import bounded_batches, ray_failure, root_cause

CLI = Path(sys.executable).parent / "sarft-ray"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local cluster: its size is known
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=600)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The only line on stderr (exit code 2), without its ``error: `` prefix."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def test_too_few_cpus_fail_validate_and_score_before_ray_starts(tmp_path, tiny_model_dir):
    config = write_experiment(
        tmp_path, model_ref=str(tiny_model_dir), ray={"num_cpus": 1}, scoring={"num_actors": 2, "actor_num_cpus": 1}
    )
    expected = (
        f"{config}: ray.num_cpus: 1 CPU cannot hold scoring.num_actors=2 x actor_num_cpus=1 CPU plus 1 CPU for "
        "Ray Data's read tasks (3 CPUs in all): raise ray.num_cpus to 3, lower scoring.num_actors or "
        "scoring.actor_num_cpus"
    )
    assert one_error_line(run_cli("validate", str(config))).startswith(expected)
    assert one_error_line(run_cli("score", str(config))).startswith(expected)
    assert not (tmp_path / "runs").exists()


def test_each_stage_states_what_it_holds(tmp_path):
    def cfg(**sections):
        return load_config(write_experiment(tmp_path, **sections))

    two = Capacity(2, 0, "ray.num_cpus: 2 CPUs", joined=False, gpu_label="ray.num_gpus: 0 GPU")
    assert [need.cpus for need in experiment_needs(cfg())] == [1.5, 1.0, 0.5]  # scoring, training, evaluation
    assert check(experiment_needs(cfg()), two) == []

    with pytest.raises(SarftError, match=r"^x.yaml: ray.num_cpus: 2 CPUs cannot hold training.workers=2 x "
                       r"cpus_per_worker=1.5 CPUs \(3 CPUs in all\): raise ray.num_cpus to 3, lower training.workers"):
        check([training_need(cfg(training={"workers": 2, "cpus_per_worker": 1.5}).training)], two, "x.yaml")
    with pytest.raises(SarftError, match=r"ray.num_gpus: 0 GPU cannot hold .*gpus_per_worker=1 GPU"):
        check([training_need(cfg(training={"gpus_per_worker": 1}).training)], two)

    # an autoscaling pool needs only its smallest size to start
    autoscaled = scoring_need(cfg(scoring={"min_actors": 1, "num_actors": 8}).scoring)
    assert autoscaled.cpus == 0.5 + 1 and "scoring.min_actors=1 (growing to num_actors=8)" in autoscaled.parts[0].what
    with pytest.raises(SarftError, match=r"scoring.*min_actors \(3\) must not exceed num_actors \(1\)"):
        cfg(scoring={"min_actors": 3})
    with pytest.raises(SarftError, match=r"evaluation.*min_actors \(2\) must not exceed num_actors \(1\)"):
        cfg(evaluation={"min_actors": 2})

    # every concurrent trial's driver holds its CPU while its training waits for one more
    sweep = cfg(sweep={"space": {"lambda_kl": [0.0, 1.0]}, "trial_cpus": 1, "max_concurrent_trials": 2})
    with pytest.raises(SarftError, match=r"sweep.max_concurrent_trials=2 x trial_cpus=1 CPU for trial drivers plus "
                       r"training.workers=1 x cpus_per_worker=1 CPU \(3 CPUs in all\)"):
        check([sweep_need(sweep, 2)], two)
    # without a limit Tune starts as many trials (2 roles x 2 lambdas) as their drivers' CPUs allow
    unlimited = cfg(sweep={"space": {"lambda_kl": [0.0, 1.0]}, "trial_cpus": 0.5, "max_concurrent_trials": None})
    assert sweep_need(unlimited, 2).cpus == 4 * 0.5 + 1
    assert sweep_need(unlimited, 100).cpus == 4 * 0.5 + 1

    # a cluster this process joined may grow: the same shortfall is a warning
    joined = Capacity(2, 0, "the Ray cluster (2 CPUs, 0 GPU)", joined=True)
    (warning,) = check([sweep_need(sweep, 2)], joined)
    assert warning.startswith("the Ray cluster (2 CPUs, 0 GPU) cannot hold") and "add nodes or lower" in warning


def test_broken_model_fails_in_one_line_before_ray_starts(tmp_path, tiny_model_dir):
    model = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, model)
    (model / "config.json").write_text("{not json")
    config = write_experiment(
        tmp_path, model_ref=str(model), evaluation={"benchmarks": ["advbench"], "jailbreaks": [], "limit": 1}
    )
    for command in ("score", "eval"):
        line = one_error_line(run_cli(command, str(config)))
        assert line.startswith(f"{model}: cannot load model config: ") and "config.json" in line, command
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_directory_that_is_not_an_adapter_fails_in_one_line(tmp_path, tiny_model_dir):
    config = write_experiment(tmp_path, model_ref=str(tiny_model_dir), evaluation={"benchmarks": ["advbench"], "jailbreaks": [], "limit": 1})
    line = one_error_line(run_cli("eval", str(config), "--adapter", str(tiny_model_dir)))
    assert line == f"{tiny_model_dir}: not a PEFT adapter directory (no adapter_config.json)"
    assert not (tmp_path / "runs" / "unit" / "eval").exists()

    broken = tmp_path / "adapter"
    broken.mkdir()
    (broken / "adapter_config.json").write_text('{"peft_type": "LORA",\n  oops}')
    with pytest.raises(SarftError, match=r"adapter_config.json:2: adapter config is not valid JSON"):
        check_adapter_dir(broken)
    (broken / "adapter_config.json").write_text("[1, 2]")
    with pytest.raises(SarftError, match="not a PEFT adapter config"):
        check_adapter_dir(broken)


def test_a_stalled_iteration_fails_with_its_message_instead_of_waiting():
    never = threading.Event()

    def stuck():
        yield 1
        never.wait()  # a Ray Data iterator whose next block can never be computed
        yield 2

    seen = []
    with pytest.raises(SarftError, match=r"^scoring stalled: lower scoring.num_actors \(no result from Ray for 0.2 s"):
        for item in bounded_batches(stuck(), "scoring stalled: lower scoring.num_actors", timeout_s=0.2):
            seen.append(item)
    assert seen == [1]
    never.set()

    def failing():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(bounded_batches(failing(), "unused", timeout_s=60))
    assert list(bounded_batches(iter([1, 2, 3]), "unused", timeout_s=60)) == [1, 2, 3]


def test_a_local_start_that_times_out_is_tried_again_and_other_failures_are_not(caplog):
    events, started = [], []

    def flaky(failures: int, message: str = "The current node timed out during startup. This could happen ..."):
        def start():
            events.append("start")
            # what a slow start leaves behind: processes this one started and Ray no longer tracks
            started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
            if events.count("start") <= failures:
                raise Exception(message)
        return start

    with caplog.at_level("WARNING"):
        start_retrying(flaky(2), lambda: events.append("shutdown"))
    assert events == ["start", "shutdown", "start", "shutdown", "start"]
    assert "slow to start (attempt 2 of 3)" in caplog.text
    assert [p.poll() is not None for p in started] == [True, True, False]  # the failed starts' processes are gone
    for process in started:
        process.kill()
        process.wait()
    events.clear()
    with pytest.raises(Exception, match="timed out during startup"):  # the last attempt's failure is the error
        start_retrying(flaky(3), lambda: events.append("shutdown"))
    assert events.count("start") == 3
    events.clear()
    with pytest.raises(Exception, match="address already in use"):  # anything else fails at once
        start_retrying(flaky(1, "address already in use"), lambda: events.append("shutdown"))
    assert events == ["start"]
    for process in started:
        process.kill()
        process.wait()


def test_root_cause_of_a_remote_failure_is_its_first_line():
    # the text Ray keeps of an actor whose constructor raised (its exception object is not sent back)
    remote = RuntimeError(
        "The actor died because of an error raised in its creation task, ray::MapWorker(MapBatches(ScoreActor)).__init__()\n"
        '  File "/x/transformers/configuration_utils.py", line 1137, in _dict_from_json_file\n'
        "json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)\n"
        "\nThe above exception was the direct cause of the following exception:\n\n"
        "ray.exceptions.UserCodeException: UDF failed to process a data block.\n"
    )
    assert root_cause(remote) == "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    assert str(ray_failure(remote, "/m: scoring failed")) == f"/m: scoring failed: {root_cause(remote)}"

    wrapped = RuntimeError("ray::MapWorker.submit()\n  File \"a.py\", line 1\nsarft_ray.errors.SarftError: /m: cannot load model: bad header\n")
    assert str(ray_failure(wrapped, "/m: scoring failed")) == "/m: cannot load model: bad header"
    assert root_cause(RuntimeError("The actor died unexpectedly before finishing this task.\n\tpid: 12")) == (
        "RuntimeError: The actor died unexpectedly before finishing this task."
    )


@pytest.mark.slow
def test_an_actor_that_cannot_load_its_model_fails_the_run_in_one_line(ray_local, tmp_path, tiny_model_dir):
    """Past the driver's checks (config and tokenizer load; the weights do not): the actor's error, not a retry storm."""
    import pyarrow as pa

    from sarft_ray.evaluation.config import EvaluationConfig
    from sarft_ray.evaluation.ray_generation import generate_with_ray
    from sarft_ray.models import ModelConfig

    model = tmp_path / "bad-weights"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").write_bytes(b"garbage")
    table = pa.table({"item_id": ["0"], "user": ["Hello?"], "system": pa.array([None], pa.string())})
    cfg = EvaluationConfig.model_validate({"generation": {"max_new_tokens": 2}, "actor_num_cpus": 0.5})
    with pytest.raises(SarftError) as info:
        generate_with_ray(table, ModelConfig(ref=str(model)), None, cfg)
    message = str(info.value)
    assert message.startswith(f"{model}: cannot load model: ") and "\n" not in message
