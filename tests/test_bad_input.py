"""Bad input of every kind ends the same way: one line ``error: ...`` on stderr naming the culprit, exit code 2,
no traceback, nothing written, and neither Ray nor a model started.

Most cases call ``sarft_ray.cli.main`` in this process: it is the console script's entry point
(``sarft-ray`` runs ``sys.exit(main())``), so argument parsing, config loading and the error
handling are the real ones, without a Python start-up per case. A few cases run the installed
``sarft-ray`` script and the ``jobs/*.py`` scripts as subprocesses to check the same contract
end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ROLES = ["Captain Test", "Doctor Byte"]
SECRET = "sk-live-0123456789-do-not-print"

# ---------------------------------------------------------------------------------------------------------------
# A small valid experiment in tmp_path: corpus and prompts beside the config, output under tmp_path/out.


def write_inputs(root: Path) -> None:
    """A tiny table corpus (3 rows per role) and a prompt mapping, next to where the config goes."""
    with (root / "corpus.jsonl").open("w") as handle:
        for i in range(3):
            for role in ROLES:
                handle.write(json.dumps({"role": role, "sample_id": f"{role[:3]}-{i}", "input": f"Q{i} {role}?", "output": f"A{i}."}) + "\n")
    (root / "prompts.json").write_text(json.dumps({role: f"You are {role}." for role in ROLES}))


def base_tree() -> dict:
    """The config as a YAML tree; paths are relative to the config file's directory."""
    return {
        "experiment": "bad",
        "output_root": "out",
        "model": {"ref": "tiny-random"},
        "roles": {
            "names": list(ROLES),
            "corpus": {"format": "table", "paths": ["corpus.jsonl"], "test_fraction": 0.0},
            "prompts": {"format": "mapping", "path": "prompts.json"},
        },
        "training": {"max_steps": 1, "workers": 1},
        "evaluation": {"benchmarks": ["advbench"], "jailbreaks": [], "limit": 2},
        "ray": {"num_cpus": 2, "include_dashboard": False},
    }


def set_path(tree: dict, dotted: str, value) -> dict:
    """Set ``a.b.c`` in a nested dict (creating sections); returns the tree."""
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return tree


def drop_path(tree: dict, dotted: str) -> dict:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node[key]
    del node[leaf]
    return tree


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    """tmp_path with the inputs written, a private model cache and no data-dir or output-dir override."""
    write_inputs(tmp_path)
    monkeypatch.setenv("SARFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SARFT_OUTPUT_DIR", raising=False)
    monkeypatch.delenv("SARFT_DATA_DIR", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return tmp_path


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI entry point; return (exit code, stderr). Any other exception fails the test with its traceback."""
    from sarft_ray.cli import main

    global _RAY_UP_BEFORE
    _RAY_UP_BEFORE = ray_is_up()  # another module's tests may have left a Ray session up in this process
    with pytest.raises(SystemExit) as exited:
        main(argv)
    _, err = capsys.readouterr()
    return exited.value.code, err


def snapshot(root: Path) -> list[str]:
    """Every path under ``root``: a command that refuses its input must leave this list as it was."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_refused(code: int, err: str, culprits: tuple[str, ...], root: Path, before: list[str]) -> str:
    """The contract every case shares; returns the error line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in err
    for culprit in culprits:
        assert culprit in line, f"{culprit!r} not named in: {line}"
    assert SECRET not in err
    assert not (root / "cache").exists(), "a model was fetched or converted"
    assert snapshot(root) == before, f"something was written: {sorted(set(snapshot(root)) - set(before))}"
    assert _RAY_UP_BEFORE or not ray_is_up(), "Ray was started"
    return line


_RAY_UP_BEFORE = False


def ray_is_up() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


# ---------------------------------------------------------------------------------------------------------------
# Config cases. Each returns the config text (or None: dump the changed tree) after changing tree / files.

Case = Callable[[dict, Path], str | bytes | None]


def field(dotted: str, value) -> Case:
    def change(tree: dict, root: Path) -> None:
        set_path(tree, dotted, value)

    return change


def without(dotted: str) -> Case:
    def change(tree: dict, root: Path) -> None:
        drop_path(tree, dotted)

    return change


def text(raw: str | bytes) -> Case:
    return lambda tree, root: raw


def alias_bomb(tree: dict, root: Path) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def with_file(name: str, content: bytes | str | None, then: Case | None = None) -> Case:
    """Write (or, for None, make a directory at) ``name`` under the config's directory, then apply ``then``."""

    def change(tree: dict, root: Path):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            target.mkdir(parents=True, exist_ok=True)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        return then(tree, root) if then else None

    return change


def both(*changes: Case) -> Case:
    def change(tree: dict, root: Path):
        result = None
        for one in changes:
            result = one(tree, root) or result
        return result

    return change


CONFIG_CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    # wrong types
    "type-lr-string": (field("training.lr", "fast"), ("x.yaml", "training.lr")),
    "type-names-string": (field("roles.names", 7), ("x.yaml", "roles.names")),
    "type-batch-float": (field("scoring.batch_size", 1.5), ("x.yaml", "scoring.batch_size")),
    "type-bool": (field("ray.include_dashboard", "maybe"), ("x.yaml", "ray.include_dashboard")),
    "type-model-string": (field("model", "tiny-random"), ("x.yaml", "model")),
    "type-corpus-paths-mapping": (field("roles.corpus.paths", {"a": 1}), ("x.yaml", "roles.corpus.paths")),
    # unknown keys
    "unknown-top-key": (field("trainig", {"lr": 1}), ("x.yaml", "trainig: unknown key")),
    "unknown-nested-key": (field("training.lamda", 0.5), ("x.yaml", "training.lamda: unknown key")),
    "unknown-deep-key": (field("evaluation.generation.max_tokens", 5), ("x.yaml", "evaluation.generation.max_tokens")),
    # bad enum values
    "enum-aggregate": (field("scoring.aggregate", "max"), ("x.yaml", "scoring.aggregate")),
    "enum-mode": (field("training.mode", "qlora"), ("x.yaml", "training.mode")),
    "enum-dtype": (field("model.dtype", "int8"), ("x.yaml", "model.dtype")),
    "enum-benchmark": (field("evaluation.benchmarks", ["mmlu"]), ("x.yaml", "evaluation.benchmarks[0]")),
    "enum-corpus-format": (field("roles.corpus.format", "csv"), ("x.yaml", "roles.corpus.format")),
    "enum-selection": (field("training.selection", "best"), ("x.yaml", "training.selection")),
    # negative or out-of-range numbers
    "negative-lambda": (field("training.lambda_kl", -1), ("x.yaml", "training.lambda_kl")),
    "negative-lr": (field("training.lr", -0.1), ("x.yaml", "training.lr")),
    "negative-limit": (field("evaluation.limit", -3), ("x.yaml", "evaluation.limit")),
    "zero-batch": (field("scoring.batch_size", 0), ("x.yaml", "scoring.batch_size")),
    "zero-cpus": (field("ray.num_cpus", 0), ("x.yaml", "ray.num_cpus")),
    "fraction-above-one": (field("roles.corpus.test_fraction", 1.5), ("x.yaml", "roles.corpus.test_fraction")),
    "nan-lambda": (field("training.lambda_kl", float("nan")), ("x.yaml", "training.lambda_kl")),
    # missing sections and fields, inconsistent sections
    "missing-roles": (without("roles"), ("x.yaml", "roles: required field is missing")),
    "missing-model": (without("model"), ("x.yaml", "model: required field is missing")),
    "missing-prompts-path": (without("roles.prompts.path"), ("x.yaml", "roles.prompts.path")),
    "missing-experiment": (without("experiment"), ("x.yaml", "experiment")),
    "bad-experiment-name": (field("experiment", "../escape"), ("x.yaml", "experiment")),
    "no-roles": (field("roles.names", []), ("x.yaml", "roles.names")),
    "duplicate-roles": (field("roles.names", ["Captain Test", "captain_test"]), ("x.yaml", "role listed twice")),
    "lengths-disagree": (
        both(field("scoring.max_target_tokens", 32), field("training.max_target_tokens", 64)),
        ("x.yaml", "training.max_target_tokens"),
    ),
    "unknown-compare-to": (
        both(field("arms", [{"name": "sft", "selection": "none"}]), field("compare_to", "sarft")),
        ("x.yaml", "compare_to"),
    ),
    # not a config at all, bad YAML
    "top-level-list": (text("- experiment: bad\n"), ("x.yaml", "mapping")),
    "empty-file": (text(""), ("x.yaml", "mapping")),
    "yaml-unclosed": (text("experiment: bad\nmodel: [unclosed\nroles: {}\n"), ("x.yaml:", "malformed YAML")),
    "yaml-tab": (text("experiment: bad\nmodel:\n\tref: tiny-random\n"), ("x.yaml:3", "malformed YAML")),
    "yaml-indent": (text("experiment: bad\n  model: x\n roles: y\n"), ("x.yaml:", "malformed YAML")),
    "yaml-not-utf8": (text(b"experiment: bad\nmodel: {ref: \xff}\n"), ("x.yaml:2", "UTF-8")),
    "alias-bomb": (alias_bomb, ("x.yaml:", "alias")),
    "alias-recursive": (text("experiment: &x [1, *x]\n"), ("x.yaml:1", "alias")),
    "duplicate-top-key": (text("experiment: a\nmodel: {ref: tiny-random}\nexperiment: b\n"), ("x.yaml:3", "duplicate key 'experiment'")),
    "duplicate-nested-key": (
        text("experiment: a\nmodel:\n  ref: tiny-random\n  dtype: auto\n  ref: other\n"),
        ("x.yaml:5", "duplicate key 'ref'"),
    ),
    # environment variables
    "env-unset": (field("output_root", "${SARFT_TEST_UNSET_VAR}"), ("x.yaml", "output_root", "SARFT_TEST_UNSET_VAR")),
    "env-unset-in-list": (
        field("roles.corpus.paths", ["${SARFT_TEST_UNSET_VAR}/c.jsonl"]),
        ("x.yaml", "roles.corpus.paths[0]", "SARFT_TEST_UNSET_VAR"),
    ),
    "env-empty-field": (field("experiment", "${SARFT_TEST_EMPTY_VAR}"), ("x.yaml", "experiment")),
    "env-secret-bad-type": (field("ray.num_cpus", "${SARFT_TEST_SECRET}"), ("x.yaml", "ray.num_cpus", "${SARFT_TEST_SECRET}")),
    "env-secret-bad-name": (field("experiment", "${SARFT_TEST_SECRET}/x"), ("x.yaml", "experiment")),
    # paths the config names
    "corpus-is-dir": (with_file("corpus.d", None, field("roles.corpus.paths", ["corpus.d"])), ("roles.corpus.paths[0]", "corpus.d", "directory")),
    "prompts-is-dir": (with_file("prompts.d", None, field("roles.prompts.path", "prompts.d")), ("roles.prompts.path", "prompts.d", "directory")),
    "deepspeed-is-dir": (with_file("ds", None, field("training.deepspeed", "ds")), ("training.deepspeed", "directory")),
    "advbench-is-dir": (with_file("adv", None, field("evaluation.paths.advbench", "adv")), ("evaluation.paths.advbench", "directory")),
    "model-alias-typo": (field("model.ref", "smollm2-135m-instruc"), ("x.yaml", "model.ref", "did you mean 'smollm2-135m-instruct'")),
    "output-root-is-file": (with_file("taken", "x", field("output_root", "taken")), ("x.yaml", "output_root", "taken", "is a file")),
    "output-root-under-file": (with_file("taken", "x", field("output_root", "taken/out")), ("output_root", "taken", "is a file")),
    "experiment-dir-is-file": (with_file("out/bad", "x", None), ("output_root", "out/bad", "is a file")),
}


def _write_config(tree: dict, root: Path, change: Case) -> Path:
    path = root / "x.yaml"
    raw = change(tree, root)
    if isinstance(raw, bytes):
        path.write_bytes(raw)
    else:
        path.write_text(raw if raw is not None else yaml.safe_dump(tree))
    return path


@pytest.fixture
def env_vars(monkeypatch):
    monkeypatch.delenv("SARFT_TEST_UNSET_VAR", raising=False)
    monkeypatch.setenv("SARFT_TEST_EMPTY_VAR", "")
    monkeypatch.setenv("SARFT_TEST_SECRET", SECRET)


# the stage commands take turns, so every one of them shows it fails on a bad config before any work
STAGES = [["validate"], ["score"], ["train", "--role", "Captain Test"], ["eval"], ["run"], ["align"], ["sweep"]]


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config_is_refused_in_one_line(name, env, env_vars, capsys):
    change, culprits = CONFIG_CASES[name]
    config = _write_config(base_tree(), env, change)
    before = snapshot(env)
    stage = STAGES[sorted(CONFIG_CASES).index(name) % len(STAGES)]
    code, err = run_main([stage[0], str(config), *stage[1:]], capsys)
    assert_refused(code, err, culprits, env, before)


def test_not_writable_output_root_is_refused(env, capsys):
    """A directory that cannot be written in (for root too: /proc takes no new entries)."""
    if not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    tree = set_path(base_tree(), "output_root", "/proc/sarft-bad-input-test")
    (env / "x.yaml").write_text(yaml.safe_dump(tree))
    before = snapshot(env)
    code, err = run_main(["score", str(env / "x.yaml")], capsys)
    assert_refused(code, err, ("output_root", "/proc", "not writable"), env, before)
    assert not Path("/proc/sarft-bad-input-test").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only directories")
def test_read_only_output_directory_is_refused(env, capsys):
    (env / "ro").mkdir(mode=0o500)
    (env / "x.yaml").write_text(yaml.safe_dump(set_path(base_tree(), "output_root", "ro/out")))
    before = snapshot(env)
    code, err = run_main(["validate", str(env / "x.yaml")], capsys)
    assert_refused(code, err, ("output_root", "not writable"), env, before)


@pytest.mark.parametrize(
    "argv, culprits",
    [
        (["validate", "{root}/missing.yaml"], ("missing.yaml", "does not exist")),
        (["score", "{root}"], ("is a directory",)),
        (["validate", "{root}/x.yaml"], ("SARFT_DATA_DIR", "does not exist")),
        (["score", "{root}/x.yaml"], ("SARFT_DATA_DIR", "does not exist")),
        (["validate", "{root}/x.yaml"], ("SARFT_DATA_DIR", "not a directory")),
    ],
    ids=["config-missing", "config-is-dir", "data-dir-missing", "data-dir-missing-score", "data-dir-is-file"],
)
def test_bad_paths_and_data_dir(argv, culprits, env, capsys, monkeypatch, request):
    (env / "x.yaml").write_text(yaml.safe_dump(base_tree()))
    case = request.node.callspec.id
    if case.startswith("data-dir-missing"):
        monkeypatch.setenv("SARFT_DATA_DIR", str(env / "no-such-data"))
    elif case == "data-dir-is-file":
        monkeypatch.setenv("SARFT_DATA_DIR", str(env / "corpus.jsonl"))
    before = snapshot(env)
    code, err = run_main([part.format(root=env) for part in argv], capsys)
    assert_refused(code, err, culprits, env, before)


# ---------------------------------------------------------------------------------------------------------------
# Data files the config names: read by `validate` (which reads every input) without Ray or a model.

BAD_JSONL = (
    '{"role": "Captain Test", "sample_id": "a", "input": "q", "output": "a"}\n'
    '{"role": "Captain Test", "sample_id": "b", "input": "q", "output": "a"}\n'
    '{"role": "Captain Test", "sample_id": "c", "input": "q" "output": "a"}\n'
)
NO_OUTPUT = '{"role": "Captain Test", "sample_id": "a", "input": "q", "output": "a"}\n{"role": "Doctor Byte", "sample_id": "b", "input": "q"}\n'

DATA_CASES: dict[str, tuple[str, bytes | str, tuple[str, ...]]] = {
    "corpus-bad-json-line-3": ("corpus.jsonl", BAD_JSONL, ("corpus.jsonl:3", "malformed JSON")),
    "corpus-missing-field": ("corpus.jsonl", NO_OUTPUT, ("corpus.jsonl:2", "output")),
    "corpus-empty": ("corpus.jsonl", "", ("empty corpus for role",)),
    "corpus-array-line": ("corpus.jsonl", "[1, 2]\n", ("corpus.jsonl:1", "JSON object")),
    "corpus-not-utf8": ("corpus.jsonl", b'{"role": "Captain Test", "input": "\xff"}\n', ("corpus.jsonl:1", "UTF-8")),
    "corpus-field-type": (
        "corpus.jsonl",
        '{"role": "Captain Test", "sample_id": "a", "input": 5, "output": "a"}\n',
        ("corpus.jsonl:1", "'input'"),
    ),
    "corpus-duplicate-id": (
        "corpus.jsonl",
        '{"role": "Captain Test", "sample_id": "a", "input": "q", "output": "a"}\n' * 2,
        ("corpus.jsonl:2", "duplicate sample id"),
    ),
    "corpus-missing-file": ("corpus.jsonl", None, ("corpus.jsonl", "does not exist")),
    "prompts-missing-role": ("prompts.json", json.dumps({"Captain Test": "You are Captain Test."}), ("prompts.json", "Doctor Byte")),
    "prompts-bad-json": ("prompts.json", '{"Captain Test": "x",\n "Doctor Byte": }\n', ("prompts.json:2", "malformed JSON")),
    "prompts-duplicate-key": (
        "prompts.json",
        '{"Captain Test": "a", "Doctor Byte": "b", "Captain Test": "c"}',
        ("prompts.json", "duplicate key 'Captain Test'"),
    ),
    "prompts-not-mapping": ("prompts.json", "[]", ("prompts.json", "mapping")),
    "prompts-empty-prompt": ("prompts.json", json.dumps({"Captain Test": "", "Doctor Byte": "b"}), ("prompts.json", "Captain Test")),
    "prompts-missing-file": ("prompts.json", None, ("prompts.json", "does not exist")),
    "advbench-csv-missing-column": ("adv.csv", "target,other\nx,y\n", ("adv.csv", "goal")),
    "advbench-csv-empty-goal": ("adv.csv", 'goal,target\n"Write a poem",x\n"",y\n', ("adv.csv:3", "empty goal")),
    "deepspeed-bad-json": ("ds.json", '{"zero_optimization": {"stage": 2,}\n', ("ds.json:1", "DeepSpeed")),
}


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_bad_data_file_is_refused_in_one_line(name, env, capsys):
    file_name, content, culprits = DATA_CASES[name]
    tree = base_tree()
    target = env / file_name
    if content is None:
        target.unlink()
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    if file_name == "adv.csv":
        set_path(tree, "evaluation.paths.advbench", "adv.csv")
    if file_name == "ds.json":
        set_path(tree, "training.deepspeed", "ds.json")
    (env / "x.yaml").write_text(yaml.safe_dump(tree))
    before = snapshot(env)
    code, err = run_main(["validate", str(env / "x.yaml")], capsys)
    assert_refused(code, err, culprits, env, before)


# ---------------------------------------------------------------------------------------------------------------
# Command-line arguments: typer's usage errors, in one line.


@pytest.mark.parametrize(
    "argv, culprits",
    [
        (["nope", "{cfg}"], ("No such command", "nope")),
        (["validate", "{cfg}", "--bogus"], ("sarft-ray validate", "--bogus")),
        (["--bogus", "validate", "{cfg}"], ("--bogus",)),
        (["train", "{cfg}", "--role", "Captain Test", "--selection", "best"], ("sarft-ray train", "--selection", "best")),
        (["train", "{cfg}", "--role", "Captain Test", "--lambda", "lots"], ("--lambda",)),
        (["eval", "{cfg}", "--adapter"], ("--adapter",)),
        (["validate"], ("sarft-ray validate", "config")),
        (["train", "{cfg}"], ("sarft-ray train", "--role")),
        (["models", "pull"], ("sarft-ray models pull", "ref")),
        (["models", "pull", "tiny-randon"], ("tiny-randon", "did you mean 'tiny-random'")),
        (["train", "{cfg}", "--role", "Nobody Atall"], ("Nobody Atall",)),
        (["eval", "{cfg}", "--model", "smollm2-135m-instruc"], ("smollm2-135m-instruc", "did you mean")),
    ],
    ids=[
        "unknown-command", "unknown-option", "unknown-global-option", "bad-choice", "bad-float", "option-without-value",
        "missing-argument", "missing-required-option", "missing-ref", "alias-typo-pull", "unknown-role", "alias-typo-eval",
    ],
)
def test_bad_arguments_are_refused_in_one_line(argv, culprits, env, capsys):
    (env / "x.yaml").write_text(yaml.safe_dump(base_tree()))
    before = snapshot(env)
    code, err = run_main([part.format(cfg=env / "x.yaml") for part in argv], capsys)
    assert_refused(code, err, culprits, env, before)


# ---------------------------------------------------------------------------------------------------------------
# The same contract through real processes: the installed console script and the Ray job scripts.

SCRIPT = Path(sys.executable).parent / "sarft-ray"


def run_process(command: list[str], root: Path) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("SARFT_OUTPUT_DIR", "SARFT_DATA_DIR", "RAY_ADDRESS")}
    environ |= {"SARFT_CACHE_DIR": str(root / "cache"), "SARFT_TEST_SECRET": SECRET}
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environ, timeout=300)


@pytest.mark.parametrize(
    "argv, culprits",
    [
        (["sarft-ray", "nope"], ("No such command",)),
        (["sarft-ray", "train", "{cfg}", "--role", "Captain Test", "--selection", "best"], ("--selection",)),
        (["sarft-ray", "score", "{bomb}"], ("bomb.yaml:", "alias")),
        (["jobs/score.py"], ("score.py", "config")),
        (["jobs/train.py", "{cfg}", "--role", "Captain Test", "--lambda", "lots"], ("train.py", "--lambda")),
        (["jobs/run.py", "--config", "{bad}"], ("bad.yaml", "training.lambda_kl")),
        (["jobs/eval.py", "{cfg}", "--bogus"], ("eval.py", "--bogus")),
    ],
    ids=["cli-unknown-command", "cli-bad-choice", "cli-alias-bomb", "job-missing-option", "job-bad-float", "job-bad-config", "job-unknown-option"],
)
def test_processes_keep_the_contract(argv, culprits, env):
    (env / "x.yaml").write_text(yaml.safe_dump(base_tree()))
    (env / "bad.yaml").write_text(yaml.safe_dump(set_path(base_tree(), "training.lambda_kl", -1)))
    (env / "bomb.yaml").write_text(alias_bomb({}, env))
    values = {"cfg": env / "x.yaml", "bad": env / "bad.yaml", "bomb": env / "bomb.yaml"}
    program, *rest = argv
    command = [str(SCRIPT)] if program == "sarft-ray" else [sys.executable, str(REPO / program)]
    before = snapshot(env)
    global _RAY_UP_BEFORE
    _RAY_UP_BEFORE = ray_is_up()  # a subprocess cannot start Ray in this one: the check must only not misfire
    proc = run_process(command + [part.format(**values) for part in rest], env)
    assert_refused(proc.returncode, proc.stderr, culprits, env, before)
