"""ray.storage_path: shared storage for Ray Train checkpoints, named by an absolute path or a URI."""

from __future__ import annotations

import pytest

from sarft_ray.config import parse_config
from sarft_ray.errors import SarftError
from sarft_ray.storage import join, list_dirs, read_text, remove_dir, run_storage


def config(tmp_path, storage_path):
    tree = {"experiment": "x", "model": {"ref": "tiny-random"}, "ray": {"storage_path": storage_path}, "roles": {
        "names": ["A"], "corpus": {"format": "table", "paths": ["c.jsonl"]}, "prompts": {"format": "mapping", "path": "p.json"}}}
    return parse_config(tree, "x.yaml", tmp_path)


@pytest.mark.parametrize(
    "value, message",
    [
        ("runs/shared", r"x\.yaml: ray\.storage_path: .*'runs/shared' must be an absolute path or a URI"),
        ("nosuchscheme://bucket/x", r"ray\.storage_path: .*unknown storage scheme 'nosuchscheme://'"),
        ("file://relative/x", r"ray\.storage_path: .*a file:// URI names an absolute path"),
        ("s3://", r"ray\.storage_path: .*names no bucket"),
    ],
)
def test_storage_that_not_every_node_could_reach_is_refused(tmp_path, value, message):
    with pytest.raises(SarftError, match=message):
        config(tmp_path, value)


def test_cloud_uris_are_accepted_without_asking_the_network(tmp_path):
    # opening s3:// through pyarrow would look up the bucket's region: validation must not depend on that
    assert config(tmp_path, "s3://no-such-bucket-here/sarft").ray.storage_path == "s3://no-such-bucket-here/sarft"
    assert config(tmp_path, "gs://bucket/runs").ray.storage_path == "gs://bucket/runs"


def test_each_run_keeps_its_place_below_the_output_root(tmp_path):
    cfg = config(tmp_path, f"file://{tmp_path}/shared/")
    run_dir = cfg.experiment_dir / "train" / "role=a" / "abc"
    assert run_storage(cfg.ray.storage_path, run_dir, cfg.output_root) == f"file://{tmp_path}/shared/x/train/role=a/abc"
    assert run_storage(None, run_dir, cfg.output_root) == str(run_dir.resolve())
    minio = config(tmp_path, "s3://bucket/sarft?endpoint_override=minio:9000").ray.storage_path
    assert run_storage(minio, run_dir, cfg.output_root) == "s3://bucket/sarft/x/train/role=a/abc?endpoint_override=minio:9000"
    with pytest.raises(SarftError, match="not under output_root"):
        run_storage(cfg.ray.storage_path, tmp_path.parent / "elsewhere", cfg.output_root)


def test_listing_reading_and_removing_through_a_uri(tmp_path):
    (tmp_path / "ray" / "checkpoint_1").mkdir(parents=True)
    (tmp_path / "ray" / "other").mkdir()
    (tmp_path / "ray" / "state.json").write_text("{}")
    location = f"file://{tmp_path}/ray"
    assert list_dirs(location, "checkpoint_") == ["checkpoint_1"] and list_dirs(f"file://{tmp_path}/absent") == []
    assert read_text(join(location, "state.json")) == "{}" and read_text(join(location, "none.json")) is None
    remove_dir(join(location, "checkpoint_1"))
    remove_dir(join(location, "checkpoint_1"))  # gone already: nothing to do
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["other", "state.json"]
