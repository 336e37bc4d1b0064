"""What names a starting model in every stage's stored outputs.

Scores, training runs, evaluations and the alignment are stored under hashes
of their inputs, the model first. One function says what identifies a model:

- ``model_identity(model_cfg)``: the ``model`` section as configured plus,
  for a local checkpoint, what changes when its weights do: ``config.json``'s
  sha256 and each weights file's name, size and modification time (a single
  file, such as a ``.gguf``: its size and modification time). Scoring and the
  alignment name their outputs by it.
- ``model_identity(model_cfg, weights=False)``: the section alone. Training
  runs and evaluations are named by it: their stored results were named so
  before weights were fingerprinted, and what they start from is an alias, a
  hub id at a revision, or a directory whose path changes with its content
  (an aligned model, a training run).
- ``adapter_fingerprint(adapter)``: the content hash of a PEFT adapter directory,
  without what only says where it was made: ``adapter_config.json``'s
  ``base_model_name_or_path`` (the local folder the base was loaded from,
  which differs between machines and caches) and the generated ``README.md``.
  The base model is named beside it by ``model_identity``.
- ``local_ref(model_cfg, ref)``: the section with ``ref`` in place, a local
  checkpoint named by its absolute path however it was spelled.

Each function's output for a given model must never change (pinned in
tests/test_stage_identity.py): stored results are found again by it.
"""

from __future__ import annotations

from pathlib import Path

from sarft_ray.hashing import file_digest, tree_digest
from sarft_ray.models.config import ModelConfig

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def model_identity(model_cfg: ModelConfig, weights: bool = True) -> dict:
    """The model section as JSON-able data; with ``weights``, plus what changes when a local model's weights do."""
    from sarft_ray.models.loading import ALIASES

    out = model_cfg.model_dump(mode="json")
    path = Path(model_cfg.ref).expanduser()
    if not weights or model_cfg.ref in ALIASES or not path.exists():
        return out
    if path.is_file():
        stat = path.stat()
        out["file"] = [stat.st_size, stat.st_mtime_ns]
        return out
    config = path / "config.json"
    out["config_sha256"] = file_digest(config) if config.exists() else None
    out["weights"] = sorted(
        [p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES
    )
    return out


def adapter_fingerprint(adapter: str | Path | None) -> str | None:
    """Content hash of an adapter directory, so a retrained adapter at the same path is new (None: no adapter)."""
    if adapter is None:
        return None
    return tree_digest(adapter, 16, _what_an_adapter_computes)


def _what_an_adapter_computes(path: Path) -> bytes | None:
    if path.name == "README.md":  # PEFT's model card: the base's local path and library versions
        return b""
    if path.name == "adapter_config.json":
        import json

        config = json.loads(path.read_text())
        config.pop("base_model_name_or_path", None)
        return json.dumps(config, sort_keys=True).encode()
    return None


def local_ref(model_cfg: ModelConfig, ref: str | None = None) -> ModelConfig:
    """``model_cfg`` with ``ref`` (None: its own) in place; an existing path becomes absolute, so one
    checkpoint has one name however it was spelled."""
    if ref is not None:
        model_cfg = model_cfg.model_copy(update={"ref": ref})
    path = Path(model_cfg.ref).expanduser()
    if path.exists():
        model_cfg = model_cfg.model_copy(update={"ref": str(path.resolve())})
    return model_cfg
