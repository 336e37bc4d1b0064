"""Model references, loading, chat formatting and tiny test models.

Names are imported lazily so that reading a config (which needs only
``ModelConfig``) does not pay for importing torch and transformers.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "EncodedPair": "chat",
    "chat_messages": "chat",
    "encode_pair": "chat",
    "format_prompt": "chat",
    "require_chat_template": "chat",
    "supports_system_role": "chat",
    "ModelConfig": "config",
    "load_model_and_tokenizer": "loading",
    "load_tokenizer": "loading",
    "resolve_dtype": "loading",
    "resolve_model_dir": "loading",
    "build_tiny_model": "tiny",
    "build_tiny_tokenizer": "tiny",
    "save_tiny_model": "tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sarft_ray.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sarft_ray.models.{module}"), name)
