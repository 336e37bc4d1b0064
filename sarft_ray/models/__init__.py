"""Model references, loading, chat formatting and tiny test models."""

from sarft_ray.models.chat import (
    EncodedPair,
    chat_messages,
    encode_pair,
    format_prompt,
    require_chat_template,
    supports_system_role,
)
from sarft_ray.models.config import ModelConfig
from sarft_ray.models.loading import load_model_and_tokenizer, load_tokenizer, resolve_dtype, resolve_model_dir
from sarft_ray.models.tiny import build_tiny_model, build_tiny_tokenizer, save_tiny_model

__all__ = [
    "EncodedPair",
    "ModelConfig",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "chat_messages",
    "encode_pair",
    "format_prompt",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "require_chat_template",
    "resolve_dtype",
    "resolve_model_dir",
    "save_tiny_model",
    "supports_system_role",
]
