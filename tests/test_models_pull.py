"""Hub models as snapshots: `sarft-ray models pull` downloads once, stages load from the hub cache.

A local server (tests/model_hub_server.py) answers like the Hugging Face hub's
model API; huggingface_hub is pointed at it through HF_ENDPOINT and at a
private cache through HF_HOME. Nothing here reaches the network.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from model_hub_server import ModelRepo, repo_from_dir, serve_models
from test_data_pull import run_main
from sarft_ray.errors import SarftError
from sarft_ray.models import ModelConfig, load_model_and_tokenizer, model_identity
from sarft_ray.models.hub import model_files
from sarft_ray.models.tiny import build_tiny_model, save_tiny_model
from sarft_ray.preflight import check_model_loads

REPO = "acme/tiny-chat"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, bytes]:
    """The files of a tiny model checkpoint (safetensors weights, tokenizer, chat template)."""
    return repo_from_dir(save_tiny_model(tmp_path_factory.mktemp("hub-tiny"), seed=5)).files


@pytest.fixture(scope="module")
def bin_weights(tmp_path_factory) -> bytes:
    """The same model's weights as a PyTorch ``pytorch_model.bin``."""
    path = tmp_path_factory.mktemp("hub-bin") / "pytorch_model.bin"
    torch.save(build_tiny_model(seed=5).state_dict(), path)
    return path.read_bytes()


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """Point huggingface_hub and sarft-ray's own cache at ``tmp_path``; returns a function starting a server."""
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("SARFT_CACHE_DIR", str(tmp_path / "cache"))

    def start(repos: dict[str, ModelRepo]):
        server = serve_models(repos)
        endpoint, state = server.__enter__()
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        stack.append(server)
        return state

    stack: list = []
    yield start
    for server in stack:
        server.__exit__(None, None, None)


def one_error_line(code: int, err: str, *culprits: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for culprit in culprits:
        assert culprit in lines[0], lines[0]
    return lines[0]


def test_pull_downloads_once_and_the_model_loads_offline_from_it(hub_env, tiny_files, capsys, monkeypatch):
    state = hub_env({REPO: ModelRepo(dict(tiny_files) | {"README.md": b"# tiny\n"})})
    code, out, err = run_main(["models", "pull", REPO], capsys)
    assert code == 0, err
    location = out.strip().rsplit(" at ", 1)[-1]
    assert out.startswith(f"{REPO}: ready at ") and "models--acme--tiny-chat/snapshots/" in location
    snapshot = Path(location)
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(tiny_files)  # README.md is not a model file
    assert [r.split("/")[-1] for r in state.file_gets(".safetensors")] == ["model.safetensors"]

    code, out_again, err = run_main(["models", "pull", REPO], capsys)
    assert code == 0 and out_again == out, err
    assert len(state.file_gets()) == len(tiny_files)  # the second pull fetched no file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(state.requests)
    model, tokenizer = load_model_and_tokenizer(ModelConfig(ref=REPO), require_template=True)
    assert len(state.requests) == asked  # loaded from the snapshot without a word to the hub
    for name, tensor in build_tiny_model(seed=5).state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert tokenizer.chat_template


def test_stages_load_the_snapshot_the_driver_fetched(hub_env, tiny_files):
    """The driver's preflight downloads once; what actors call afterwards asks the hub nothing."""
    state = hub_env({REPO: ModelRepo(dict(tiny_files))})
    cfg = ModelConfig(ref=REPO)
    identity_before = model_identity(cfg)
    location = check_model_loads(cfg)
    assert "models--acme--tiny-chat/snapshots/" in location
    assert len(state.file_gets(".safetensors")) == 1
    asked = len(state.requests)
    for _ in range(2):  # two actors on this node
        load_model_and_tokenizer(cfg)
    assert len(state.requests) == asked
    assert model_identity(cfg) == identity_before == cfg.model_dump(mode="json")  # stored outputs keep their names


def test_only_safetensors_are_fetched_when_both_formats_exist(hub_env, tiny_files, bin_weights, capsys):
    files = dict(tiny_files) | {"pytorch_model.bin": bin_weights}
    state = hub_env({REPO: ModelRepo(files)})
    code, out, err = run_main(["models", "pull", REPO], capsys)
    assert code == 0, err
    assert state.file_gets(".bin") == [] and len(state.file_gets(".safetensors")) == 1
    assert not list(Path(out.strip().rsplit(" at ", 1)[-1]).glob("*.bin"))


def test_bin_weights_are_fetched_when_there_are_no_safetensors(hub_env, tiny_files, bin_weights):
    files = {k: v for k, v in tiny_files.items() if k != "model.safetensors"} | {"pytorch_model.bin": bin_weights}
    state = hub_env({REPO: ModelRepo(files)})
    model, _ = load_model_and_tokenizer(ModelConfig(ref=REPO))
    assert len(state.file_gets("pytorch_model.bin")) == 1
    for name, tensor in build_tiny_model(seed=5).state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_model_files_choose_one_weights_format():
    both = ["config.json", "model.safetensors", "pytorch_model.bin", "README.md", "onnx/model.onnx", "tokenizer.model"]
    assert model_files(both) == ["config.json", "tokenizer.model", "model.safetensors"]
    sharded = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
               "consolidated.safetensors", "config.json"]
    assert model_files(sharded) == ["config.json", "model.safetensors.index.json",
                                    "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    bins = ["config.json", "pytorch_model.bin", "training_args.bin", "vocab.txt", "merges.txt"]
    assert model_files(bins) == ["config.json", "merges.txt", "vocab.txt", "pytorch_model.bin"]


def test_unknown_repository_is_one_line(hub_env, tiny_files, capsys):
    hub_env({REPO: ModelRepo(dict(tiny_files))})
    code, _, err = run_main(["models", "pull", "acme/no-such-model"], capsys)
    one_error_line(code, err, "acme/no-such-model", "no such model repository")


def test_misspelled_alias_under_an_org_suggests_the_alias(hub_env, capsys):
    hub_env({})
    code, _, err = run_main(["models", "pull", "acme/tiny-randon"], capsys)
    one_error_line(code, err, "acme/tiny-randon", "did you mean 'tiny-random'")


def test_unknown_revision_is_one_line(hub_env, tiny_files, capsys):
    state = hub_env({REPO: ModelRepo(dict(tiny_files))})
    code, _, err = run_main(["models", "pull", REPO, "--revision", "v9"], capsys)
    one_error_line(code, err, REPO, "revision v9 not found")
    assert state.file_gets() == []


def test_gated_repository_names_hf_token(hub_env, tiny_files, capsys):
    hub_env({REPO: ModelRepo(dict(tiny_files), gated=True)})
    code, _, err = run_main(["models", "pull", REPO], capsys)
    one_error_line(code, err, REPO, "gated", "HF_TOKEN")


def test_offline_with_nothing_cached_says_what_to_run(hub_env, tiny_files, capsys, monkeypatch):
    state = hub_env({REPO: ModelRepo(dict(tiny_files))})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_main(["models", "pull", REPO], capsys)
    one_error_line(code, err, REPO, "HF_HUB_OFFLINE", f"sarft-ray models pull {REPO}", "HF_HOME")
    with pytest.raises(SarftError, match="not in the hub cache"):
        check_model_loads(ModelConfig(ref=REPO))
    assert state.requests == []


def test_an_unreachable_hub_with_nothing_cached_is_one_line(hub_env, capsys, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    code, _, err = run_main(["models", "pull", REPO], capsys)
    one_error_line(code, err, REPO, "cannot be reached", f"sarft-ray models pull {REPO}")
