"""The ``model`` section of an experiment config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sarft_ray.config_base import StrictModel


class ModelConfig(StrictModel):
    """Which model to start from: a hub id, a local directory, a ``.gguf`` file or an alias."""

    ref: str = Field(min_length=1, description="hub id, local dir, .gguf file, or alias (smollm2-135m-instruct, tiny-random)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    revision: str | None = None
    no_system_prompt: Literal["empty_turn", "template_default"] = Field(
        default="empty_turn",
        description="what 'no system prompt' renders as: an explicit empty system turn (the release's) "
        "or the chat template's own default system text",
    )
