"""No credential is ever written: a canary secret in every secret-bearing field, then a search of every output.

The fields: user info in ``tracking.mlflow_uri``, ``ray.address`` and the
judge's ``base_url``, and the judge's API key (an environment variable the
config names). The writers run for real: an evaluation of the tiny model
through the CLI, judged by a chat-completions server on a local port that
echoes the key and a URL back in its verdicts; MLflow logging of the resolved
config into a sqlite store (a file URI cannot carry user info, so the tracker
is pointed there and fed the config whose ``mlflow_uri`` does); the resolved
config as training writes it. Every file under the output directory, the
captured stdout/stderr and the log records are then searched for the canary.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from chat_server import ChatHandler, closed_port, serving

from sarft_ray import cli
from sarft_ray.config import load_config
from sarft_ray.models import save_tiny_model
from sarft_ray.paths import data_dir
from sarft_ray.secrets import (
    install_log_redaction,
    is_secret_key,
    redact_text,
    redact_tree,
    redact_url,
    register_secret,
)

CANARY = f"canary{uuid.uuid4().hex}"
KEY_ENV = "SARFT_TEST_JUDGE_KEY"
KEY = f"sk-{CANARY}-key"
MLFLOW_URI = f"http://tracker:{CANARY}-mlflow@127.0.0.1:{closed_port()}"
RAY_ADDRESS = f"ray://head:{CANARY}-ray@127.0.0.1:10001"
ROLE = "Tom Ripley"


# ---------------------------------------------------------------------------- helpers


def leaks(root: Path) -> list[str]:
    """Every file under ``root`` holding the canary: raw bytes, decoded parquet values, sqlite dumps."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        texts = [path.read_bytes().decode("utf-8", "replace")]
        if path.suffix == ".parquet":  # compressed pages could hide a value from a byte search
            texts.append(str(pq.read_table(path).to_pylist()))
        if path.suffix in (".sqlite", ".db"):
            with sqlite3.connect(path) as db:
                texts.append("\n".join(db.iterdump()))
        if any(CANARY in text for text in texts):
            found.append(str(path.relative_to(root)))
    return found


def write_config(tmp_path: Path, model_dir: Path, base_url: str, **evaluation) -> Path:
    general = data_dir() / "rolebench" / "role-generalization" / "general" / "test.jsonl"
    prompts = data_dir() / "sarft_profiles" / "role_and_unsafe_prompts.json"
    data = {
        "experiment": "secrets",
        "output_root": str(tmp_path / "runs"),
        "model": {"ref": str(model_dir)},
        "roles": {"names": [ROLE], "corpus": {"paths": [str(general)]}, "prompts": {"path": str(prompts)}},
        "evaluation": {
            "benchmarks": ["advbench"],
            "jailbreaks": [],
            "limit": 2,
            "backend": "local",
            "generation": {"max_new_tokens": 4, "batch_size": 2},
            "judge": {"kind": "openai", "base_url": base_url, "model": "judge", "api_key_env": KEY_ENV,
                      "max_retries": 1, "backoff_s": 0.01},
            **evaluation,
        },
        "tracking": {"mlflow_uri": MLFLOW_URI},
        "ray": {"address": RAY_ADDRESS, "num_cpus": 2, "include_dashboard": False},
    }
    path = tmp_path / "secrets.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(monkeypatch, *args: str) -> int:
    """``sarft-ray <args>`` in this process (so the local judge server is reachable); the exit code."""
    monkeypatch.setattr(sys, "argv", ["sarft-ray", *args])
    try:
        cli.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


# ---------------------------------------------------------------------------- the helpers themselves


def test_redact_url():
    assert redact_url("https://me:hunter2@host:5000/x") == "https://me:***@host:5000/x"
    assert redact_url("https://ghp_token123@host/x") == "https://***@host/x"  # a lone user info may be a token
    assert redact_url("http://u:p@ss@host/x") == "http://u:***@host/x"  # "@" inside the password
    assert redact_url("https://h/v1?api-version=2&api_key=sk-1&key=abc") == "https://h/v1?api-version=2&api_key=***&key=***"
    for untouched in ("sqlite:////tmp/x.db", "http://127.0.0.1:5000", "ray://head:10001", "runs/x@y", "auto"):
        assert redact_url(untouched) == untouched


def test_redact_text_and_tree():
    register_secret(f"{CANARY}-registered")
    text = f"see http://a:{CANARY}@h/x and 'ray://{CANARY}@h:1', key {CANARY}-registered."
    assert redact_text(text) == "see http://a:***@h/x and 'ray://***@h:1', key ***."
    tree = {"judge": {"api_key": "sk-plain", "api_key_env": "OPENAI_API_KEY", "base_url": f"http://u:{CANARY}@h"},
            "list": [f"x {CANARY}-registered", 3], "none": {"token": None}}
    assert redact_tree(tree) == {
        "judge": {"api_key": "***", "api_key_env": "OPENAI_API_KEY", "base_url": "http://u:***@h"},
        "list": ["x ***", 3], "none": {"token": None},
    }
    assert not is_secret_key("api_key_env") and is_secret_key("api_key") and is_secret_key("hfToken")


def test_log_records_are_redacted(caplog):
    install_log_redaction()
    register_secret(KEY)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="sarft_ray.ray_utils")  # an earlier command may have quietened it
    logging.getLogger("sarft_ray.ray_utils").info("joining Ray cluster at %s", RAY_ADDRESS)
    logging.getLogger("elsewhere").warning(f"sent {KEY}")
    try:
        raise RuntimeError(f"failed on {MLFLOW_URI}")
    except RuntimeError:
        logging.getLogger("elsewhere").exception("oops")
    assert [r.getMessage() for r in caplog.records][:2] == [
        "joining Ray cluster at ray://head:***@127.0.0.1:10001", "sent ***"
    ]
    assert CANARY not in caplog.text and "tracker:***@" in caplog.text


# ---------------------------------------------------------------------------- the real writers


def test_evaluation_writes_no_secret(tmp_path, model_dir, key_env, monkeypatch, capfd, caplog):
    caplog.set_level(logging.INFO)
    echo = f" (you sent Bearer {KEY}; tracking at {MLFLOW_URI})"  # a judge repeating what it was told
    with serving(expected_auth=f"Bearer {KEY}", echo=echo) as url:
        config = write_config(tmp_path, model_dir, url)
        assert run_cli(monkeypatch, "-v", "eval", str(config)) == 0
        assert set(ChatHandler.auth) == {f"Bearer {KEY}"}  # the key was sent, as Bearer and only that
    out, err = capfd.readouterr()
    runs = tmp_path / "runs"
    verdicts = pq.read_table(next(runs.glob("secrets/eval/*/advbench/verdicts.parquet"))).to_pylist()
    assert len(verdicts) == 2 and all("***" in v["raw"] for v in verdicts)  # the echo reached the writer, redacted
    assert (runs / "secrets" / "eval" / "verdict_cache.sqlite").is_file()
    assert leaks(runs) == []
    assert CANARY not in out + err + caplog.text
    assert "stored in" in out


def test_mlflow_and_the_resolved_config_hold_no_secret(tmp_path, model_dir, key_env):
    from sarft_ray.atomic import write_text
    from sarft_ray.orchestration.tracking import Tracker, TrackerSpec, default_uri, flatten_params, ui_hint
    from sarft_ray.secrets import register_config_secrets

    cfg = load_config(write_config(tmp_path, model_dir, f"http://judge:{CANARY}-judge@127.0.0.1:1/v1"))
    register_config_secrets(cfg)  # what TrackerSpec.from_config does, without contacting mlflow_uri
    root = cfg.experiment_dir
    spec = TrackerSpec(default_uri(root), "secrets", (Path(root).resolve() / "mlartifacts").as_uri())
    tracker = Tracker(spec)
    run_id = tracker.open_run("k", "run", "run", tags={"sarft.tracking": cfg.tracking.mlflow_uri})
    resolved = cfg.resolved()
    assert CANARY in str(resolved)  # the canary is really in the config the writers get
    tracker.log_params(run_id, flatten_params(resolved))
    tracker.set_tags(run_id, {"sarft.ray": cfg.ray.address, "sarft.key": KEY})
    tracker.log_json(run_id, resolved, "config/resolved.json")
    tracker.log_text(run_id, f"judge key {KEY}\n", "config/notes.txt")
    write_text(root / "train" / "config.yaml", yaml.safe_dump({"role": ROLE, **resolved}, sort_keys=False))
    tracker.log_artifact(run_id, root / "train" / "config.yaml", "train")
    tracker.finish(run_id)

    params = tracker.client.get_run(run_id).data.params
    assert params["tracking.mlflow_uri"] == "http://tracker:***@127.0.0.1:" + MLFLOW_URI.rsplit(":", 1)[1]
    assert params["evaluation.judge.api_key_env"] == KEY_ENV  # the variable's name is no secret
    assert yaml.safe_load((root / "train" / "config.yaml").read_text())["ray"]["address"] == (
        "ray://head:***@127.0.0.1:10001"
    )
    assert leaks(Path(cfg.output_root)) == []
    assert CANARY not in ui_hint(cfg.tracking.mlflow_uri)


def test_a_tracker_spec_is_safe_to_pickle(tmp_path, model_dir):
    # A sweep pickles the spec into Tune's state under the sweep directory; the password stays in memory.
    from sarft_ray.orchestration import tracking

    cfg = load_config(write_config(tmp_path, model_dir, "http://127.0.0.1:1/v1"))
    spec = tracking.TrackerSpec.from_config(cfg)
    assert CANARY not in pickle.dumps(spec).decode("latin-1") and spec.uri.startswith("http://tracker:***@")
    assert tracking._FULL_URIS[spec.uri] == MLFLOW_URI  # what Tracker hands to MlflowClient


# ---------------------------------------------------------------------------- judge failures end the run


def _nothing_generated(tmp_path: Path) -> bool:
    return not list((tmp_path / "runs").rglob("generations.parquet"))


def test_url_credentials_in_the_judge_url_end_the_run(tmp_path, model_dir, key_env, monkeypatch, capfd):
    with serving() as url:
        config = write_config(tmp_path, model_dir, url.replace("http://", f"http://judge:{CANARY}@"))
        assert run_cli(monkeypatch, "eval", str(config)) == 2
        assert ChatHandler.auth == []
    out, err = capfd.readouterr()
    assert err.startswith("error: evaluation.judge.base_url: http://judge:***@127.0.0.1:") and err.count("\n") == 1
    assert CANARY not in out + err and _nothing_generated(tmp_path) and leaks(tmp_path / "runs") == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_ends_the_run_before_generation(tmp_path, model_dir, key_env, monkeypatch, capfd, status):
    with serving(expected_auth="Bearer another-key") as url:
        ChatHandler.status_for_bad_auth = status
        config = write_config(tmp_path, model_dir, url)
        assert run_cli(monkeypatch, "eval", str(config)) == 2
        assert len(ChatHandler.auth) == 1  # one preflight request, not retried
    out, err = capfd.readouterr()
    assert err == f"error: evaluation.judge: {url} refused the API key from environment variable {KEY_ENV} (HTTP {status})\n"
    assert CANARY not in out + err and _nothing_generated(tmp_path)


def test_an_unreachable_judge_ends_the_run_before_generation(tmp_path, model_dir, key_env, monkeypatch, capfd):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    assert run_cli(monkeypatch, "eval", str(write_config(tmp_path, model_dir, url))) == 2
    out, err = capfd.readouterr()
    assert err.startswith(f"error: evaluation.judge.base_url: cannot reach {url} after 2 attempt(s)") and err.count("\n") == 1
    assert _nothing_generated(tmp_path)


def test_a_missing_key_variable_is_named_by_validate_and_eval(tmp_path, model_dir, monkeypatch, capfd):
    monkeypatch.delenv(KEY_ENV, raising=False)
    config = write_config(tmp_path, model_dir, "http://127.0.0.1:1/v1")
    expected = f"error: evaluation.judge.api_key_env: environment variable {KEY_ENV} is not set"
    assert run_cli(monkeypatch, "validate", str(config)) == 2
    assert capfd.readouterr().err.startswith(expected)
    assert run_cli(monkeypatch, "eval", str(config)) == 2
    assert capfd.readouterr().err.startswith(expected) and _nothing_generated(tmp_path)

    monkeypatch.setenv(KEY_ENV, KEY)  # set, validate names the variable and never prints its value
    assert run_cli(monkeypatch, "validate", str(config)) == 0
    out = capfd.readouterr().out
    assert f"key from ${KEY_ENV}" in out and CANARY not in out
