"""Shared fixtures: reference data location, tiny models on disk, one local Ray cluster per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
os.environ.setdefault("DS_ACCELERATOR", "cpu")

# The reference copy beside the checkout, named explicitly so subprocesses (CLI, Ray jobs, the wheel test) see it too.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if _SHARED.is_dir():
    os.environ.setdefault("SARFT_DATA_DIR", str(_SHARED))

from sarft_ray.paths import data_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data directory (SARFT_DATA_DIR, else ../shared/data; `sarft-ray data pull` fills an empty one)."""
    path = data_dir()
    if not (path / "advbench").exists():
        pytest.fail(f"reference data not found at {path}; set SARFT_DATA_DIR or run `sarft-ray data pull`")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama checkpoint (ChatML template with a system role) on disk."""
    from sarft_ray.models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster (2 CPUs, no dashboard) shared by every test that needs Ray."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu", "TOKENIZERS_PARALLELISM": "false"}},
        )
    yield ray
    ray.shutdown()
