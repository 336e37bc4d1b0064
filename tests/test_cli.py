"""The command line people know: ``--set`` on every config command, ``--version``, ``run --role``, progress and
Ray's console output off by default, and ``jobs/*.py`` that take exactly the CLI's arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from sarft_ray.config import load_config
from sarft_ray.errors import SarftError

REPO = Path(__file__).resolve().parents[1]
ROLES = ["Captain Test", "Doctor Byte"]


def tree() -> dict:
    return {
        "experiment": "cli",
        "output_root": "out",
        "model": {"ref": "tiny-random"},
        "roles": {
            "names": list(ROLES),
            "corpus": {"format": "table", "paths": ["corpus.jsonl"], "test_fraction": 0.0},
            "prompts": {"format": "mapping", "path": "prompts.json"},
        },
        "training": {"max_steps": 1, "workers": 1},
        "arms": [{"name": "sft", "selection": "none"}, {"name": "sarft", "selection": "rds", "lambda_kl": 1.0}],
        "evaluation": {"benchmarks": ["advbench"], "jailbreaks": [], "limit": 2},
        "ray": {"num_cpus": 2, "include_dashboard": False},
    }


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    """A small valid config with its inputs in tmp_path/conf; the current directory is tmp_path/work."""
    conf = tmp_path / "conf"
    conf.mkdir()
    with (conf / "corpus.jsonl").open("w") as handle:
        for role in ROLES:
            handle.write(json.dumps({"role": role, "sample_id": f"{role[:3]}-0", "input": "Q?", "output": "A."}) + "\n")
    (conf / "prompts.json").write_text(json.dumps({role: f"You are {role}." for role in ROLES}))
    path = conf / "x.yaml"
    path.write_text(yaml.safe_dump(tree()))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SARFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return path


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    from sarft_ray.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def ray_up() -> bool:
    """Whether Ray runs in this process (an earlier test may have started it; a refused command must not)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


# ---------------------------------------------------------------------------------------------------------------
# --set


def test_set_values_are_yaml_applied_in_order_before_validation(config):
    cfg = load_config(
        config,
        [
            "training.lambda_kl=3",
            "training.use_system_prompt=false",
            "roles.names=[Doctor Byte]",
            "arms.1.lambda_kl=2.5",
            "evaluation.limit=null",
            "training.lr=1e-3",
            "training.lr=2e-4",  # later wins
            "sweep.space.lambda_kl=[0.5, 1]",  # a section the file does not have
        ],
    )
    assert cfg.training.lambda_kl == 3.0 and cfg.training.use_system_prompt is False
    assert cfg.roles.names == ["Doctor Byte"] and cfg.evaluation.limit is None
    assert cfg.training.lr == pytest.approx(2e-4)
    assert [a.lambda_kl for a in cfg.arms] == [None, 2.5]
    assert cfg.sweep is not None and "lambda_kl" in cfg.sweep.space
    # without overrides: the file as written
    assert load_config(config).training.lambda_kl == 0.5


def test_set_relative_path_is_taken_from_the_current_directory(config, tmp_path):
    cfg = load_config(config, ["output_root=elsewhere"])
    assert Path(cfg.output_root) == tmp_path / "work" / "elsewhere"
    # in the file, a relative path is the config directory's
    assert Path(load_config(config).output_root) == tmp_path / "conf" / "out"


@pytest.mark.parametrize(
    "override, culprits",
    [
        ("training.lamda_kl=3", ("x.yaml", "training.lamda_kl: unknown key")),
        ("training.lambda_kl=-1", ("x.yaml", "training.lambda_kl", "-1")),
        ("training.lambda_kl=lots", ("x.yaml", "training.lambda_kl")),
        ("arms.5.lambda_kl=1", ("--set arms.5.lambda_kl=1", "arms[5]", "no such item")),
        ("experiment.name=x", ("--set experiment.name=x", "experiment is a value")),
        ("training.lambda_kl", ("--set training.lambda_kl", "KEY.PATH=VALUE")),
        ("training..lr=1", ("--set training..lr=1", "empty field name")),
        ("training.lr=[1,", ("--set training.lr=[1,", "malformed YAML")),
        ("arms=&a [*a]", ("--set arms=&a [*a]", "alias")),
    ],
    ids=["unknown-field", "out-of-range", "wrong-type", "no-such-item", "not-a-section", "no-value", "empty-name",
         "bad-yaml", "recursive-alias"],
)
def test_bad_set_is_one_line_naming_the_field(override, culprits, config, capsys):
    before, ray_before = snapshot(config.parent.parent), ray_up()
    code, _, err = run_main(["validate", str(config), "--set", override], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])
    assert snapshot(config.parent.parent) == before
    assert ray_up() == ray_before, "Ray was started"


@pytest.mark.parametrize("command", [["validate"], ["score"], ["eval"], ["align"], ["run"], ["sweep"], ["train", "--role", "Captain Test"]])
def test_every_config_command_takes_set(command, config, capsys):
    # the override is applied (and refused) by every command that reads a config, before any work
    code, _, err = run_main([command[0], str(config), *command[1:], "--set", "training.lamda_kl=1"], capsys)
    assert code == 2 and "training.lamda_kl: unknown key" in err, err


def test_validate_with_set(config, capsys):
    code, out, _ = run_main(["validate", str(config), "--set", "training.lambda_kl=2", "--set", "evaluation.limit=1"], capsys)
    assert code == 0 and out.strip().endswith(f"{config}: OK")


# ---------------------------------------------------------------------------------------------------------------
# --version, run --role


def test_version(capsys):
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and out.strip() == f"sarft-ray {version('sarft-ray')}"


def test_run_role_is_checked_with_a_did_you_mean(config, capsys):
    before, ray_before = snapshot(config.parent.parent), ray_up()
    code, _, err = run_main(["run", str(config), "--role", "Captain Test", "--role", "Docter Byte"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "roles.names: unknown role 'Docter Byte'; did you mean 'Doctor Byte'?" in err
    assert snapshot(config.parent.parent) == before
    assert ray_up() == ray_before, "Ray was started"


def test_restrict_roles_keeps_the_named_roles_in_order(config):
    from sarft_ray.cli_options import restrict_roles

    cfg = load_config(config)
    assert restrict_roles(cfg, None) is cfg
    picked = restrict_roles(cfg, ["doctor byte", "Doctor Byte"])
    assert picked.roles.names == ["Doctor Byte"] and cfg.roles.names == ROLES
    with pytest.raises(SarftError, match="unknown role 'Nobody'"):
        restrict_roles(cfg, ["Nobody"])


# ---------------------------------------------------------------------------------------------------------------
# progress and Ray's console output


def test_bars_show_on_a_terminal_or_with_verbose(monkeypatch):
    from sarft_ray import progress

    monkeypatch.setattr(progress, "_state", {"verbose": False})
    assert not progress.bars_enabled()  # pytest's captured stderr is no terminal
    assert progress.bar(3, "quiet").disable
    progress.configure(verbose=True)
    assert progress.bars_enabled() and not progress.bar(3, "shown").disable
    assert progress.bar(3, "off", enabled=False).disable


def test_steps_reach_the_driver_without_ray():
    from sarft_ray.progress import StepRelay, TrainingBars

    relay = StepRelay()
    send = relay.sender(("John Doe", "sarft"))
    send({"step": 1, "loss": 2.0, "total_steps": 2})
    send({"step": 2, "loss": 1.5, "total_steps": 2})
    got = relay.drain()
    assert got == [(("John Doe", "sarft"), {"step": 1, "loss": 2.0, "total_steps": 2}),
                   (("John Doe", "sarft"), {"step": 2, "loss": 1.5, "total_steps": 2})]
    assert relay.drain() == []
    bars = TrainingBars()
    for job, metrics in got:
        bars.update(job, metrics)
    assert bars.steps == {("John Doe", "sarft"): 2}
    bars.update(("John Doe", "sarft"), {"step": 1})  # a step seen before moves nothing
    assert bars.steps == {("John Doe", "sarft"): 2}
    bars.close()


def test_command_argv_maps_a_job_onto_the_cli():
    from sarft_ray.job_entry import command_argv

    assert command_argv("run", ["c.yaml", "--force"]) == ["run", "c.yaml", "--force"]
    assert command_argv("run", ["--config", "c.yaml", "--verbose"]) == ["--verbose", "run", "c.yaml"]
    assert command_argv("score", ["--force", "--config=c.yaml", "--debug"]) == ["--debug", "score", "c.yaml", "--force"]
    assert command_argv("train", ["c.yaml", "--role", "A", "--set", "training.lr=1"]) == [
        "train", "c.yaml", "--role", "A", "--set", "training.lr=1"]


def _job(script: str, *args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    return subprocess.run([sys.executable, str(REPO / "jobs" / script), *args], capture_output=True, text=True,
                          cwd=REPO, env=environ, timeout=300)


def test_jobs_take_exactly_the_cli_arguments(config):
    shown = _job("train.py", "--help")
    assert shown.returncode == 0
    for option in ("--role", "--selection", "--lambda", "--no-ray", "--force", "--set"):
        assert option in shown.stdout, option
    assert _job("run.py", "--version").stdout.strip() == f"sarft-ray {version('sarft-ray')}"
    bad = _job("run.py", str(config), "--role", "Nobody", "--set", "training.lambda_kl=1")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"error: {config}: roles.names: unknown role 'Nobody'"], bad.stderr
    usage = _job("score.py", str(config), "--bogus")
    assert usage.returncode == 2 and usage.stderr.startswith("error: score.py: No such option: --bogus"), usage.stderr


def test_judging_moves_one_progress_line_per_benchmark(monkeypatch, capsys):
    import pyarrow as pa

    from sarft_ray import progress
    from sarft_ray.evaluation.judges.keyword import KeywordJudge
    from sarft_ray.evaluation.runner import JUDGE_PART, judge_benchmark

    monkeypatch.setattr(progress, "_state", {"verbose": True})
    replies = ["I'm sorry, but I cannot help with that.", "Sure, here is how."] * JUDGE_PART  # more than one part
    rows = [{"item_id": f"a{i}", "role": None, "category": None, "goal": f"goal {i}", "response": reply}
            for i, reply in enumerate(replies)]
    table, hits = judge_benchmark("advbench", pa.Table.from_pylist(rows), KeywordJudge(), None)
    assert table.column("label").to_pylist() == ["refusal", "compliance"] * JUDGE_PART and hits == 0
    err = capsys.readouterr().err
    assert "judging advbench: 100%" in err and f"{len(replies)}/{len(replies)}" in err
