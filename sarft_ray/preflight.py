"""Driver-side checks of what Ray actors and workers will load, run before any of them starts.

A model or adapter that cannot be loaded fails inside every actor, where Ray
wraps it in pages of tracebacks (and, by default, retries). Loading the cheap
parts here first (the model's config and tokenizer; an adapter's
``adapter_config.json``) turns that into one line naming the input.
"""

from __future__ import annotations

import json
from pathlib import Path

from sarft_ray.errors import SarftError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_model_loads(model_cfg) -> str:
    """Resolve ``model.ref`` and load its config and tokenizer here; returns the location actors will load.

    A hub model is downloaded here, once, into the hub cache (its snapshot at
    the revision's current commit), so actors on this node load it from disk
    rather than each asking the hub. Raises SarftError naming the reference
    when the model does not load (a ``config.json`` that is not JSON, an
    unknown architecture, a missing tokenizer or chat template, a hub
    repository or revision that does not exist).
    """
    from transformers import AutoConfig

    from sarft_ray.models import load_tokenizer
    from sarft_ray.models.loading import model_location

    location = model_location(model_cfg, refresh=True)
    try:
        AutoConfig.from_pretrained(location, trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.revision)
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, KeyError, ...
        raise SarftError(f"{model_cfg.ref}: cannot load model config: {_first_line(exc)}") from exc
    load_tokenizer(model_cfg)
    return location


def check_adapter_dir(adapter: str | Path) -> Path:
    """The absolute adapter directory, once it is known to hold a readable ``adapter_config.json``.

    Checked before the directory's contents are hashed: a wrong path (a model
    or data directory) fails at once instead of being read in full.
    """
    path = Path(adapter).expanduser().resolve()
    if not path.is_dir():
        raise SarftError(f"{adapter}: adapter directory does not exist")
    config = path / "adapter_config.json"
    if not config.is_file():
        raise SarftError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SarftError(f"{config}:{exc.lineno}: adapter config is not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SarftError(f"{config}: cannot read adapter config: {_first_line(exc)}") from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise SarftError(f"{config}: not a PEFT adapter config (no peft_type)")
    return path
