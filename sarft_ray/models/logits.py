"""Which models change their logits after the output layer (so hidden states alone do not give them)."""

from __future__ import annotations


def changes_logits(config) -> bool:
    """Configs known to change the logits after the output layer: soft capping (Gemma 2/3), a logit scale
    (Cohere) or divisor (Granite). A multimodal config is read through its text config."""
    get = getattr(config, "get_text_config", None)
    config = get() if callable(get) else config
    return bool(getattr(config, "final_logit_softcapping", None)) or any(
        getattr(config, name, None) not in (None, 1, 1.0) for name in ("logit_scale", "logits_scaling")
    )
