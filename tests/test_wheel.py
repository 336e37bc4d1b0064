"""Installed means working: the built wheel, installed into a fresh environment, validates the shipped demo.

The wheel is built offline from a copy of the source (``pip wheel --no-deps
--no-build-isolation``, so the checkout gains no build/ directory) and
installed with ``pip --python`` into a new virtual environment made
``--without-pip``. That environment reaches the project's installed
dependencies through a ``.pth`` line naming .venv's site-packages: a plain
path line adds the directory to ``sys.path`` without running its ``.pth``
files, so the editable install's import hook stays off and ``sarft_ray``
comes from the wheel. The commands then run from a directory outside the
repository, with only SARFT_DATA_DIR pointing at the reference copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(map(str, command))}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtual environment holding only the freshly built sarft-ray wheel (dependencies reached via .pth)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "sarft_ray", source / "sarft_ray", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)], root)
    wheel = next((root / "dist").glob("sarft_ray-*.whl"))

    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root).stdout.strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], root)
    return venv


def outside_env(tmp: Path, shared_data: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SARFT_", "PYTHON", "VIRTUAL_ENV"))}
    return keep | {"SARFT_DATA_DIR": str(shared_data), "SARFT_OUTPUT_DIR": str(tmp / "runs"), "SARFT_CACHE_DIR": str(tmp / "cache")}


def test_installed_wheel_validates_the_packaged_demo(installed, shared_data, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = outside_env(tmp_path, shared_data)
    where = run([str(installed / "bin" / "python"), "-c", (
        "import sarft_ray, sarft_ray.paths as p\n"
        "from sarft_ray.training.deepspeed_config import DEFAULT_CONFIG\n"
        "print(sarft_ray.__file__); print(DEFAULT_CONFIG, DEFAULT_CONFIG.is_file()); print(p.packaged_config_names())"
    )], elsewhere, env).stdout.splitlines()
    assert where[0].startswith(str(installed)), where  # the wheel's copy, not the checkout
    assert where[1].startswith(str(installed)) and where[1].endswith("ds_zero2.json True"), where
    assert where[2] == "['baseline_smollm2', 'demo', 'paper', 'repro_small', 'sweep_lambda']", where

    proc = run([str(installed / "bin" / "sarft-ray"), "validate", "demo"], elsewhere, env)
    assert "demo: OK" in proc.stdout and "advbench: 520 goals" in proc.stdout
    assert proc.stderr == ""  # the data directory is complete: nothing to fetch
    assert not (tmp_path / "runs").exists() and list(elsewhere.iterdir()) == []

    listing = run([str(installed / "bin" / "sarft-ray"), "data", "list"], elsewhere, env).stdout
    assert f"data directory: {shared_data}" in listing and "ZenMoore/RoleBench@" in listing  # the lock file is packaged


def test_installed_dependencies_meet_the_declared_bounds(installed, tmp_path):
    """Every requirement of the built wheel is satisfied by the environment the tests run in."""
    script = (
        "from importlib.metadata import requires, version\n"
        "from packaging.requirements import Requirement\n"
        "bad = []\n"
        "for text in requires('sarft-ray'):\n"
        "    req = Requirement(text)\n"
        "    if req.marker is not None and not req.marker.evaluate({'extra': ''}):\n"
        "        continue\n"
        "    have = version(req.name)\n"
        "    if not req.specifier.contains(have, prereleases=True):\n"
        "        bad.append(f'{req} (installed {have})')\n"
        "print('; '.join(bad) or 'ok')\n"
    )
    proc = run([str(installed / "bin" / "python"), "-c", script], tmp_path)
    assert proc.stdout.strip() == "ok", proc.stdout
