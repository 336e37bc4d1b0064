"""Staging the corpus (streamed, bounded memory), the content hash, summaries and atomic score directories."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarft_ray.config import parse_config
from sarft_ray.data import load_role_prompts
from sarft_ray.data.roles import role_slug
from sarft_ray.errors import SarftError
from sarft_ray.scoring.staging import stage_corpus
from sarft_ray.scoring.store import ScoresWriter, experiment_heldout, inputs_hash, scoring_inputs
from sarft_ray.scoring.summary import (
    RoleAccumulator,
    plot_harmful_fraction,
    read_summary,
    write_summary,
)

ROLES = ["Captain Test", "Doctor Byte"]


def write_experiment(tmp_path: Path, rows_per_role: int = 6, model_ref: str = "tiny-random", extra_rows=(), **sections) -> Path:
    """A small experiment on disk: a jsonl corpus, a prompt mapping and a config YAML (returns its path)."""
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w") as handle:
        for i in range(rows_per_role):
            for role in ROLES:
                row = {"role": role, "sample_id": f"{role[:3]}-{i}", "input": f"Question {i} for {role}?", "output": f"Answer {i}, says {role}."}
                handle.write(json.dumps(row) + "\n")
        for row in extra_rows:
            handle.write(json.dumps(row) + "\n")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"Captain_Test": "You are Captain Test, a pirate.", "Doctor Byte": "You are Doctor Byte, a robot."}))
    config = {
        "experiment": "unit",
        "output_root": str(tmp_path / "runs"),
        "model": {"ref": model_ref},
        "roles": {
            "names": ROLES,
            "corpus": {"format": "table", "paths": [str(corpus)], "test_fraction": 0.0},
            "prompts": {"format": "mapping", "path": str(prompts)},
        },
        "scoring": {"batch_size": 4, "rows_per_call": 4, "num_actors": 1, "actor_num_cpus": 0.5, "torch_threads": 1},
    }
    for key, value in sections.items():
        config.setdefault(key, {}).update(value)
    path = tmp_path / "experiment.yaml"
    path.write_text(json.dumps(config))
    return path


def load(path: Path):
    from sarft_ray.config import load_config

    return load_config(path)


def test_staging_writes_one_file_per_role_with_row_indices(tmp_path):
    cfg = load(write_experiment(tmp_path, rows_per_role=5, roles={"corpus": {"format": "table", "paths": [str(tmp_path / "corpus.jsonl")], "max_samples_per_role": 3, "test_fraction": 0.0}}))
    staged = stage_corpus(cfg.roles.corpus, cfg.roles.names, ["train"], tmp_path / "staged", chunk_rows=2)
    assert staged.counts == {"Captain Test": 3, "Doctor Byte": 3}
    table = pq.read_table(staged.files["Doctor Byte"])
    assert table["row_index"].to_pylist() == [0, 1, 2]
    ids = table["sample_id"].to_pylist()
    # a seeded sample, kept in corpus order
    assert len(set(ids)) == 3 and set(ids) <= {f"Doc-{i}" for i in range(5)} and ids == sorted(ids)
    assert staged.heldout_removed == {"Captain Test": 0, "Doctor Byte": 0}
    assert set(table["role"].to_pylist()) == {"Doctor Byte"}
    assert pq.ParquetFile(staged.files["Doctor Byte"]).num_row_groups == 2  # written in chunks of 2


def test_staging_rejects_empty_and_unknown_roles(tmp_path):
    cfg = load(write_experiment(tmp_path))
    corpus = cfg.roles.corpus
    with pytest.raises(SarftError, match=r"roles.corpus: unknown role 'Captain Tset'; did you mean 'Captain Test'"):
        stage_corpus(corpus, ["Captain Tset"], ["train"], tmp_path / "a")
    with pytest.raises(SarftError, match=r"role 'Captain Test' has no rows in split\(s\) test \(scoring.splits\)"):
        stage_corpus(corpus, ["Captain Test"], ["test"], tmp_path / "b")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    empty_cfg = corpus.model_copy(update={"paths": [corpus.paths[0].model_copy(update={"path": empty})]})
    with pytest.raises(SarftError, match=r"empty corpus for role 'Captain Test' in .*empty.jsonl"):
        stage_corpus(empty_cfg, ["Captain Test"], ["train"], tmp_path / "c")


def test_staging_streams_a_corpus_much_larger_than_its_memory_use(tmp_path):
    """Staging a ~120 MB corpus grows the process by a small fraction of it (after a warm-up run
    has paid pyarrow's one-off allocations); reading it whole would need several times its size."""
    answer = "word " * 400
    for name, rows in (("small.jsonl", 500), ("big.jsonl", 60_000)):
        with (tmp_path / name).open("w") as handle:
            for i in range(rows):
                handle.write(json.dumps({"role": ROLES[i % 2], "sample_id": str(i), "input": f"q{i}", "output": answer}) + "\n")
    size_mb = (tmp_path / "big.jsonl").stat().st_size / 2**20
    script = textwrap.dedent(
        f"""
        import resource
        from pathlib import Path
        from sarft_ray.data import CorpusConfig
        from sarft_ray.scoring.staging import stage_corpus
        def stage(name):
            cfg = CorpusConfig(format="table", paths=[{{"path": "{tmp_path}/" + name}}], test_fraction=0.0)
            return stage_corpus(cfg, {ROLES!r}, ["train"], Path("{tmp_path}") / ("staged-" + name), chunk_rows=256)
        stage("small.jsonl")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        staged = stage("big.jsonl")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(staged.total, (after - before) / 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    total, grown_mb = int(out[0]), float(out[1])
    assert total == 60_000
    assert size_mb > 100
    assert grown_mb < size_mb / 8, f"peak memory grew by {grown_mb:.0f} MB while staging {size_mb:.0f} MB"


def test_hash_follows_what_changes_the_scores_and_ignores_speed_settings(tmp_path):
    path = write_experiment(tmp_path)
    cfg = load(path)

    def digest(c, heldout=None):
        heldout = experiment_heldout(c) if heldout is None else heldout
        return inputs_hash(scoring_inputs(c, load_role_prompts(c.roles.prompts, c.roles.names), heldout))

    base = digest(cfg)
    assert digest(load(path)) == base
    faster = cfg.scoring.model_copy(update={"batch_size": 32, "rows_per_call": 64, "num_actors": 3, "prefix_reuse": False, "torch_threads": 2})
    assert digest(cfg.with_updates(scoring=faster)) == base
    assert digest(cfg.with_updates(scoring=cfg.scoring.model_copy(update={"aggregate": "sum"}))) != base
    assert digest(cfg.with_updates(scoring=cfg.scoring.model_copy(update={"max_target_tokens": 64}))) != base
    assert digest(cfg.with_updates(model=cfg.model.model_copy(update={"ref": "smollm2-135m-instruct"}))) != base
    corpus = cfg.roles.corpus.model_copy(update={"max_samples_per_role": 2})
    assert digest(cfg.with_updates(roles=cfg.roles.model_copy(update={"corpus": corpus}))) != base
    resampled = corpus.model_copy(update={"sample_seed": 1})
    assert digest(cfg.with_updates(roles=cfg.roles.model_copy(update={"corpus": resampled}))) != digest(
        cfg.with_updates(roles=cfg.roles.model_copy(update={"corpus": corpus}))
    )
    # the precision scores are computed in: bf16 on a GPU is not fp32 on a CPU
    on_gpu = cfg.with_updates(scoring=cfg.scoring.model_copy(update={"num_gpus_per_actor": 1}))
    assert digest(on_gpu) != base
    assert digest(on_gpu.with_updates(model=cfg.model.model_copy(update={"dtype": "float32"}))) != digest(on_gpu)
    assert digest(cfg.with_updates(model=cfg.model.model_copy(update={"dtype": "bfloat16"}))) != base
    # the evaluation questions held out of the corpus
    more = experiment_heldout(cfg)
    more.add("extra", ["One more evaluation question?"], "Captain Test")
    assert digest(cfg, more) != base
    fewer = cfg.evaluation.model_copy(update={"benchmarks": ["advbench"]})
    assert digest(cfg.with_updates(evaluation=fewer)) != base
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(prompts_file.read_text().replace("a pirate", "a privateer"))
    assert digest(cfg) != base
    prompts_file.write_text(prompts_file.read_text().replace("a privateer", "a pirate"))
    with (tmp_path / "corpus.jsonl").open("a") as handle:
        handle.write(json.dumps({"role": "Doctor Byte", "sample_id": "new", "input": "q", "output": "a"}) + "\n")
    assert digest(cfg) != base


def test_parse_config_accepts_the_scoring_section(tmp_path):
    cfg = parse_config(
        json.loads(write_experiment(tmp_path).read_text()) | {"scoring": {"splits": ["train", "test"], "torch_threads": 2}},
        "x.yaml",
        tmp_path,
    )
    assert cfg.scoring.splits == ["train", "test"]
    with pytest.raises(SarftError, match=r"scoring.splits"):
        parse_config(json.loads(write_experiment(tmp_path).read_text()) | {"scoring": {"splits": ["dev"]}}, "x.yaml", tmp_path)


def score_rows(role: str, indices: list[int], harmful: list[bool]) -> pa.Table:
    n = len(indices)
    return pa.table(
        {
            "role": [role] * n,
            "row_index": indices,
            "is_harmful": harmful,
            "truncated": [False] * n,
            "logp_role": [-1.0] * n,
            "logp_unsafe": [-0.5 if h else -2.0 for h in harmful],
            "logp_none": pa.nulls(n, pa.float64()),
            "s_role": pa.nulls(n, pa.float64()),
            "s_unsafe": pa.nulls(n, pa.float64()),
            "n_answer_tokens": [10] * n,
        }
    )


def test_accumulator_counts_and_detects_lost_or_repeated_rows():
    acc = RoleAccumulator("Captain Test", role_slug("Captain Test"))
    acc.update(score_rows("Captain Test", [0, 1], [True, False]))
    acc.update(score_rows("Captain Test", [2, 3], [True, True]))
    assert acc.exactly_once(4)
    stats = acc.stats()
    assert (stats.samples, stats.harmful, stats.harmful_fraction) == (4, 3, 0.75)
    assert stats.mean_logp_unsafe == pytest.approx((-0.5 * 3 - 2.0) / 4)
    assert stats.mean_s_role is None and stats.mean_answer_tokens == 10

    repeated = RoleAccumulator("r", "r")
    repeated.update(score_rows("r", [0, 1, 1, 3], [False] * 4))  # row 2 lost, row 1 twice: count still 4
    assert not repeated.exactly_once(4)
    short = RoleAccumulator("r", "r")
    short.update(score_rows("r", [0, 1, 2], [False] * 3))
    assert not short.exactly_once(4)


def test_summary_round_trip_and_chart(tmp_path):
    stats = {}
    for role, harmful in (("Captain Test", [True, False]), ("Doctor Byte", [False, False])):
        acc = RoleAccumulator(role, role_slug(role))
        acc.update(score_rows(role, [0, 1], harmful))
        stats[role] = acc.stats()
    write_summary(tmp_path / "summary.json", stats, {"scores_hash": "abc"})
    again, meta = read_summary(tmp_path / "summary.json")
    assert again == stats and meta == {"scores_hash": "abc"}
    plot_harmful_fraction(stats, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.png", "summary.json"]  # no temp files left
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is written
        write_summary(tmp_path / "nan.json", stats, {"scores_hash": float("nan")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.png", "summary.json"]


def test_scores_directory_appears_only_on_commit_and_replaces_the_old_one(tmp_path):
    final = tmp_path / "scores" / "h1"
    writer = ScoresWriter(final)
    (writer.tmp / "marker").write_text("new")
    assert not final.exists()
    writer.commit()
    assert (final / "marker").read_text() == "new"

    again = ScoresWriter(final)
    (again.tmp / "marker").write_text("newer")
    again.abort()
    assert (final / "marker").read_text() == "new"
    forced = ScoresWriter(final)
    (forced.tmp / "marker").write_text("forced")
    forced.commit()
    assert (final / "marker").read_text() == "forced"
    assert [p.name for p in final.parent.iterdir()] == ["h1"]
