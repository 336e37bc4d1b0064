"""Experiment config: validation messages, env expansion, path resolution, and the CLI's error contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sarft_ray.config import load_config
from sarft_ray.errors import SarftError

REPO = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path, shared_data: Path, **changes) -> Path:
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["roles"]["corpus"]["paths"] = [
        str(shared_data / "rolebench/role-generalization/role_specific/test.jsonl"),
    ]
    data["roles"]["prompts"]["path"] = str(shared_data / "sarft_profiles/role_and_unsafe_prompts.json")
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sarft_ray.cli", *args], capture_output=True, text=True, cwd=REPO,
        env=None if env is None else {**os.environ, **env},
    )


def test_shipped_configs_validate(tmp_path, monkeypatch):
    monkeypatch.setenv("SARFT_OUTPUT_DIR", str(tmp_path / "runs"))  # loading checks the output root; keep runs/ untouched
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)
    assert not (tmp_path / "runs").exists()


def test_relative_paths_resolve_against_the_config_file(tmp_path, shared_data):
    cfg = load_config(write_config(tmp_path, shared_data, output_root="out"))
    assert cfg.output_root == (tmp_path / "out").resolve()
    assert cfg.experiment_dir == cfg.output_root / "demo"


def test_env_variables_expand_with_defaults(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("MY_OUT", str(tmp_path / "elsewhere"))
    cfg = load_config(write_config(tmp_path, shared_data, output_root="${MY_OUT}"))
    assert cfg.output_root == tmp_path / "elsewhere"
    cfg = load_config(write_config(tmp_path, shared_data, output_root="${NOT_SET_ANYWHERE:-fallback}"))
    assert cfg.output_root == tmp_path / "fallback"
    with pytest.raises(SarftError, match=r"x\.yaml: output_root: environment variable NOT_SET_ANYWHERE is not set"):
        load_config(write_config(tmp_path, shared_data, output_root="${NOT_SET_ANYWHERE}"))


def test_empty_variable_takes_the_default_as_in_a_shell(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("MY_EMPTY", "")
    cfg = load_config(write_config(tmp_path, shared_data, output_root="${MY_EMPTY:-fallback}"))
    assert cfg.output_root == tmp_path / "fallback"


def test_values_from_the_environment_are_not_shown_in_errors(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("MY_SECRET_CPUS", "sk-do-not-print-me")
    with pytest.raises(SarftError) as caught:
        load_config(write_config(tmp_path, shared_data, ray={"num_cpus": "${MY_SECRET_CPUS}"}))
    assert "ray.num_cpus" in str(caught.value) and "${MY_SECRET_CPUS}" in str(caught.value)
    assert "sk-do-not-print-me" not in str(caught.value)


def test_relative_model_path_resolves_against_the_config_file(tmp_path, shared_data, tiny_model_dir):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny")
    for ref in ("./models/tiny", "models/tiny"):
        cfg = load_config(write_config(tmp_path, shared_data, model={"ref": ref}))
        assert cfg.model.ref == str((tmp_path / "models" / "tiny").resolve())
    for kept in ("tiny-random", "HuggingFaceTB/SmolLM2-135M-Instruct", str(tiny_model_dir)):
        assert load_config(write_config(tmp_path, shared_data, model={"ref": kept})).model.ref == kept


def test_misspelled_alias_gets_a_suggestion_not_a_hub_lookup(tmp_path, shared_data):
    from sarft_ray.models import resolve_model_dir

    with pytest.raises(SarftError, match=r"model\.ref: 'smollm2-135m-instruc' is not a model alias .*did you mean 'smollm2-135m-instruct'"):
        load_config(write_config(tmp_path, shared_data, model={"ref": "smollm2-135m-instruc"}))
    with pytest.raises(SarftError, match=r"did you mean 'tiny-random'"):
        resolve_model_dir("tiny-randon")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"training__lambda_kl": -1}, r"x\.yaml: training\.lambda_kl: input should be greater than or equal to 0, got -1"),
        ({"training__lamda": 0.5}, r"x\.yaml: training\.lamda: unknown key"),
        ({"scoring__aggregate": "max"}, r"x\.yaml: scoring\.aggregate: input should be 'mean' or 'sum', got \"max\""),
        ({"roles__names": []}, r"x\.yaml: roles\.names: list should have at least 1 item"),
        ({"roles__names": ["John Doe", "john_doe"]}, r"x\.yaml: roles: role listed twice"),
        ({"experiment": "../escape"}, r"x\.yaml: experiment: string should match pattern"),
        ({"model": {}}, r"x\.yaml: model\.ref: required field is missing"),
    ],
)
def test_bad_fields_name_file_and_dotted_path(tmp_path, shared_data, changes, message):
    with pytest.raises(SarftError, match=message):
        load_config(write_config(tmp_path, shared_data, **changes))


def test_malformed_yaml_reports_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("experiment: demo\nmodel: [unclosed\n")
    with pytest.raises(SarftError, match=r"bad\.yaml:\d+: malformed YAML"):
        load_config(path)


def test_cli_validate_demo_passes(tmp_path):
    proc = run_cli("validate", "configs/demo.yaml", env={"SARFT_OUTPUT_DIR": str(tmp_path / "runs")})
    assert proc.returncode == 0, proc.stderr
    assert "configs/demo.yaml: OK" in proc.stdout
    assert "role John Doe:" in proc.stdout


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, shared_data):
    path = write_config(tmp_path, shared_data, training__lambda_kl=-1)
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(f"error: {path}: training.lambda_kl")
    debug = run_cli("--debug", "validate", str(path))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_cli_validate_reports_missing_model_path_and_unknown_role(tmp_path, shared_data):
    proc = run_cli("validate", str(write_config(tmp_path, shared_data, model={"ref": str(tmp_path / "nope")})))
    assert proc.returncode == 2 and "model path does not exist" in proc.stderr
    proc = run_cli("validate", str(write_config(tmp_path, shared_data, roles__names=["Jon Doe"])))
    assert proc.returncode == 2 and "unknown role 'Jon Doe'" in proc.stderr


def test_cli_models_pull_tiny_alias(tmp_path):
    import os

    env = dict(os.environ, SARFT_CACHE_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "sarft_ray.cli", "models", "pull", "tiny-random"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "models" / "tiny-random" / "config.json").exists()
