"""Where reference data, caches, shipped configs and outputs live (each overridable by an environment variable)."""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from pathlib import Path

from sarft_ray.errors import SarftError

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The source checkout's root when running from one (in an installed package: the site-packages directory)."""

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def cache_dir() -> Path:
    """Caches (model wheels and checkpoints, downloads, the default data directory).

    ``SARFT_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/sarft-ray``.
    """
    env = os.environ.get("SARFT_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return (base / "sarft-ray").resolve()


def _checkout_data_dir() -> Path | None:
    """``../shared/data`` beside a source checkout (a development machine's copy), when there is one."""
    if not (REPO_ROOT / "pyproject.toml").is_file():
        return None
    shared = REPO_ROOT.parent / "shared" / "data"
    return shared.resolve() if shared.is_dir() else None


def data_dir() -> Path:
    """The reference data (AdvBench, BeaverTails, RoleBench, role prompts); ``sarft-ray data pull`` fills it.

    ``SARFT_DATA_DIR`` wins (it must name an existing directory, so a typo or
    an unmounted volume is an error rather than a fresh download); else
    ``../shared/data`` beside a source checkout, when present; else
    ``<cache>/data``, which the first command that needs a reference file
    creates and fills.
    """
    env = os.environ.get("SARFT_DATA_DIR")
    if not env:
        return _checkout_data_dir() or cache_dir() / "data"
    path = Path(env).expanduser().resolve()
    if not path.is_dir():
        problem = "not a directory" if path.exists() else (
            "directory does not exist (create it to have the reference data fetched into it, or unset SARFT_DATA_DIR)"
        )
        raise SarftError(f"SARFT_DATA_DIR: {path}: {problem}")
    return path


def default_output_root() -> Path:
    """Where a config without ``output_root`` writes: ``SARFT_OUTPUT_DIR``, else ``runs`` in the current directory."""
    env = os.environ.get("SARFT_OUTPUT_DIR")
    return Path(env).expanduser().resolve() if env else Path("runs").resolve()


def reference_file(relative: str) -> Path:
    """``<data dir>/<relative>``; a reference file the lock file lists is fetched first when missing."""
    from sarft_ray.data.pull import reference_file as fetched

    return fetched(relative)


def packaged_configs() -> Path:
    """The experiment configs and the DeepSpeed config shipped inside the package (``sarft_ray/configs``)."""
    return Path(str(resources.files("sarft_ray").joinpath("configs")))


def packaged_config_names() -> list[str]:
    return sorted(p.stem for p in packaged_configs().glob("*.yaml"))


def find_config(path: str | Path) -> Path:
    """``path`` itself, or for a bare name such as ``demo`` that is not a file here, the packaged config of that name."""
    path = Path(path)
    if path.exists() or path.parent != Path("."):
        return path
    shipped = packaged_configs()
    for candidate in (shipped / path.name, *(shipped / f"{path.name}{s}" for s in CONFIG_SUFFIXES)):
        if candidate.is_file() and candidate.suffix in CONFIG_SUFFIXES and candidate.stem != "ds_zero2":
            return candidate
    return path


def check_output_dir(path: Path) -> None:
    """Fail with one line unless ``path`` is a directory this process can write in, or can be created as one.

    The nearest existing ancestor decides: it must be a directory, and a
    temporary directory made in it (and removed at once) must succeed, because
    permission bits cannot tell for root or on a read-only mount. Nothing else
    is created, so a command that fails here leaves no trace.
    """
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise SarftError(f"{path}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file, not a directory" if existing == path else f"cannot be created: {existing} is a file"
        raise SarftError(f"{path}: {where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SarftError(f"{path}: {existing} is not writable")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".sarft-write-check-", dir=existing))
    except OSError as exc:
        raise SarftError(f"{path}: {existing} is not writable ({exc.strerror or exc})") from None
