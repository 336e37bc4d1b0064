"""Reference data that fetches itself: `sarft-ray data pull`, data references in configs, and every way a fetch fails.

A local server (tests/hub_server.py) answers like the Hugging Face hub and
raw.githubusercontent.com, serving the lock file's upstream files rebuilt from
../shared/data; huggingface_hub is pointed at it through HF_ENDPOINT. Nothing
here reaches the network.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from hub_server import serve_hub
from sarft_ray.data.manifest import load_manifest, parse_manifest
from sarft_ray.data.pull import verify
from sarft_ray.errors import SarftError
from sarft_ray.hashing import file_digest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub(shared_data, tmp_path, monkeypatch):
    """``(state, data_dir)``: the server running, an empty data directory, private caches."""
    with serve_hub(shared_data) as (endpoint, state):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setenv("SARFT_GITHUB_RAW_ENDPOINT", endpoint)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("SARFT_CACHE_DIR", str(tmp_path / "cache"))
        data = tmp_path / "data"
        data.mkdir()
        monkeypatch.setenv("SARFT_DATA_DIR", str(data))
        yield state, data


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the console script's entry point in this process: ``(exit code, stdout, stderr)``."""
    from sarft_ray.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exited:
        code = exited.code
    out, err = capsys.readouterr()
    return code, out, err


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def assert_one_error_line(code: int, err: str, *culprits: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("fetching ")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for culprit in culprits:
        assert culprit in lines[0], lines[0]
    return lines[0]


def test_lock_file_describes_the_reference_copy(shared_data):
    """Every lock entry's rows, columns and sha256 hold for ../shared/data, and `data verify` says so."""
    entries = load_manifest()
    assert {e.path for e in entries} == {p for p in files_under(shared_data) if p != "README.md"}
    lines, failures = verify(shared_data)
    assert failures == [] and len(lines) == len(entries)
    for entry in entries:
        assert entry.source.revision and len(entry.source.revision) == 40, entry.name  # pinned to a commit
        assert entry.checked, entry.name  # each says what was verified


def test_a_broken_lock_entry_is_one_line():
    with pytest.raises(SarftError, match=r"files\[0\]: missing 'sha256'"):
        parse_manifest({"format": 1, "files": [{"name": "x", "path": "x.csv", "format": "csv", "rows": 1, "source": {}}]})
    with pytest.raises(SarftError, match=r"path must stay inside"):
        parse_manifest({"format": 1, "files": [{"name": "x", "path": "../x.csv", "format": "csv", "rows": 1, "sha256": "0",
                                                 "source": {"hub": "a/b", "revision": "r", "path": "p"}}]})


def test_pull_fetches_checks_and_installs_every_file(hub, shared_data, capsys):
    state, data = hub
    code, out, err = run_main(["data", "pull"], capsys)
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("fetching 9 reference file(s)"), err
    # byte-identical to the reference copy, transforms included (LF -> CRLF, parquet -> CSV)
    for entry in load_manifest():
        assert file_digest(data / entry.path) == file_digest(shared_data / entry.path), entry.path
    assert files_under(data) == sorted(e.path for e in load_manifest())  # no temporary files left
    assert any(r.startswith("HEAD /datasets/ZenMoore/RoleBench/resolve/ddd19ae") for r in state.requests)
    assert any(r.startswith("GET /cdn/") for r in state.requests)  # the parquet came through the LFS redirect
    # a second pull finds everything in place and asks the server nothing
    state.requests.clear()
    code, out, err = run_main(["data", "pull"], capsys)
    assert code == 0 and err == "" and state.requests == []
    assert out.count("(present)") == 9


@pytest.mark.parametrize(
    "name, fault, culprits",
    [
        ("rolebench-spe", "corrupt", ("rolebench/instruction-generalization/role_specific/test.jsonl", "sha256")),
        ("beavertails", "corrupt", ("beavertails/BeaverTails-Evaluation.csv",)),
        ("rolebench-rolegen-general", "truncate", ("rolebench/role-generalization/general/test.jsonl", "2500 rows", "expects 5000")),
        ("advbench", "corrupt", ("llm-attacks/llm-attacks", "sha256")),
        ("sarft-prompts", "truncate", ("prompt_v2.json", "sha256")),
        ("rolebench-spe", "short", ("ZenMoore/RoleBench", "download failed")),
        ("beavertails", "short", ("BeaverTails-Evaluation", "download failed")),
        ("advbench", "short", ("harmful_behaviors.csv", "cut off")),
    ],
    ids=["hub-corrupt", "lfs-corrupt", "hub-truncated", "github-corrupt", "github-truncated", "hub-short-body",
         "lfs-short-body", "github-short-body"],
)
def test_a_bad_download_is_one_line_and_leaves_nothing_behind(hub, capsys, name, fault, culprits):
    state, data = hub
    state.faults[name] = fault
    entry = next(e for e in load_manifest() if e.name == name)
    code, _, err = run_main(["data", "pull", name], capsys)
    assert_one_error_line(code, err, *culprits)
    assert files_under(data) == []  # nothing half-written, no temporary file
    # the spoiled bytes were dropped from the cache: once the server is fixed, the same command succeeds
    del state.faults[name]
    code, _, err = run_main(["data", "pull", name], capsys)
    assert code == 0, err
    assert files_under(data) == [entry.path]


def test_files_already_in_place_survive_a_failed_pull(hub, capsys):
    state, data = hub
    assert run_main(["data", "pull", "advbench"], capsys)[0] == 0
    before = file_digest(data / "advbench/harmful_behaviors.csv")
    state.faults["advbench"] = "corrupt"
    code, _, err = run_main(["data", "pull", "--force", "advbench"], capsys)
    assert_one_error_line(code, err, "sha256")
    assert file_digest(data / "advbench/harmful_behaviors.csv") == before


def test_unknown_revision_and_file_are_one_line(hub, tmp_path, capsys):
    from sarft_ray.data.pull import resolve_data_ref

    with pytest.raises(SarftError, match=r"revision 0{40} not found in ZenMoore/RoleBench"):
        resolve_data_ref("hf://datasets/ZenMoore/RoleBench@" + "0" * 40 + "/rolebench-eng/role-generalization/general/test.jsonl")
    with pytest.raises(SarftError, match=r"no such file in ZenMoore/RoleBench"):
        resolve_data_ref("hf://datasets/ZenMoore/RoleBench/nope.jsonl")
    with pytest.raises(SarftError, match=r"no such dataset repository"):
        resolve_data_ref("hf://datasets/nobody/nothing/x.jsonl")
    with pytest.raises(SarftError, match=r"hf://datasets/OWNER/NAME\[@REVISION\]/PATH"):
        resolve_data_ref("hf://datasets/justaname")


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again when the block ends: refused


def test_offline_says_which_files_to_put_where(tmp_path, monkeypatch, capsys):
    dead = closed_port()
    data = tmp_path / "data"
    data.mkdir()
    for name, value in {"HF_ENDPOINT": dead, "SARFT_GITHUB_RAW_ENDPOINT": dead, "SARFT_DATA_DIR": str(data),
                        "HF_HUB_CACHE": str(tmp_path / "hf"), "SARFT_CACHE_DIR": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_main(["data", "pull"], capsys)
    line = assert_one_error_line(code, err, "cannot reach", str(data), "or set SARFT_DATA_DIR")
    for entry in load_manifest():
        assert entry.path in line and entry.source.ref in line
    assert files_under(data) == []


def demo_without_paths(tmp_path: Path, **paths) -> Path:
    """The shipped demo config, with the given data fields replaced."""
    tree = yaml.safe_load((REPO / "sarft_ray/configs/demo.yaml").read_text())
    tree["output_root"] = str(tmp_path / "runs")
    for dotted, value in paths.items():
        node = tree
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_demo_fetches_the_data_when_the_default_directory_is_missing(hub, tmp_path, monkeypatch, capsys):
    """No SARFT_DATA_DIR and no ../shared/data beside the code: the default cache directory is filled on first use."""
    import sarft_ray.paths as paths

    state, _ = hub
    monkeypatch.delenv("SARFT_DATA_DIR")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "installed")  # as in an installed package: no checkout beside it
    default = tmp_path / "cache" / "data"
    monkeypatch.setenv("SARFT_OUTPUT_DIR", str(tmp_path / "runs"))
    code, out, err = run_main(["validate", "demo"], capsys)
    assert code == 0, err
    assert err.count("\n") == 1 and f"into {default}" in err  # one line says what is fetched where
    assert "demo: OK" in out and "advbench: 520 goals" in out
    assert files_under(default) == sorted(e.path for e in load_manifest())
    assert not (tmp_path / "runs").exists()


def test_configs_accept_hub_references(hub, tmp_path, shared_data, capsys):
    from sarft_ray.config import load_config

    rolebench = "hf://datasets/ZenMoore/RoleBench@ddd19ae40150d0f73f4d3cfedb0cec8e4e013c2e/rolebench-eng"
    cfg = load_config(demo_without_paths(
        tmp_path,
        roles__corpus__paths=[f"{rolebench}/role-generalization/general/test.jsonl"],
        roles__prompts__path="sarft-data://sarft_profiles/role_and_unsafe_prompts.json",
        evaluation__paths={"rolebench_spe": f"{rolebench}/instruction-generalization/role_specific/test.jsonl"},
    ))
    corpus = cfg.roles.corpus.paths[0].path
    assert tmp_path / "hf-cache" in corpus.parents  # downloaded into the hub cache
    assert file_digest(corpus) == file_digest(shared_data / "rolebench/role-generalization/general/test.jsonl")
    spe = shared_data / "rolebench/instruction-generalization/role_specific/test.jsonl"
    assert file_digest(cfg.evaluation.paths.rolebench_spe) == file_digest(spe)
    assert cfg.roles.prompts.path == tmp_path / "data" / "sarft_profiles/role_and_unsafe_prompts.json"  # fetched on use


def test_a_bad_data_reference_names_the_field(hub, tmp_path, capsys):
    config = demo_without_paths(tmp_path, roles__prompts__path="sarft-data://sarft_profiles/nope.json")
    code, _, err = run_main(["validate", str(config)], capsys)
    assert_one_error_line(code, err, "roles.prompts.path", "not a reference data file")
    config = demo_without_paths(tmp_path, output_root="hf://datasets/a/b/c")
    code, _, err = run_main(["validate", str(config)], capsys)
    assert_one_error_line(code, err, "output_root", "not a data reference")


def test_a_hub_file_that_is_a_locked_source_is_checked(hub, tmp_path):
    from sarft_ray.data.pull import resolve_data_ref

    state, _ = hub
    state.faults["rolebench-spe-rolegpt"] = "corrupt"
    ref = ("hf://datasets/ZenMoore/RoleBench@ddd19ae40150d0f73f4d3cfedb0cec8e4e013c2e"
           "/rolebench-eng/instruction-generalization/role_specific/rolegpt_baseline.jsonl")
    with pytest.raises(SarftError, match=r"rolegpt_baseline\.jsonl: .*differ"):
        resolve_data_ref(ref)
    del state.faults["rolebench-spe-rolegpt"]  # the spoiled copy left the cache: a fixed server is asked again
    locked = next(e for e in load_manifest() if e.name == "rolebench-spe-rolegpt")
    assert file_digest(resolve_data_ref(ref)) == locked.sha256


def test_verify_reports_a_changed_file(hub, capsys):
    state, data = hub
    assert run_main(["data", "pull", "sarft-descriptions"], capsys)[0] == 0
    target = data / "sarft_profiles/role_descriptions.json"
    descriptions = json.loads(target.read_text())
    descriptions["Doctor Who"] += "!"
    target.write_text(json.dumps(descriptions))
    code, out, err = run_main(["data", "verify"], capsys)
    assert_one_error_line(code, err, "sarft-descriptions")
    assert "sarft-descriptions: FAILED" in out and "advbench: " in out and "missing" in out
