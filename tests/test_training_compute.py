"""Attention kernel and activation checkpointing: chosen per device, applied where the training model is prepared."""

from __future__ import annotations

import pydantic
import pytest
import torch

from sarft_ray.errors import SarftError
from sarft_ray.models import build_tiny_model, build_tiny_tokenizer
from sarft_ray.training.compute import resolve_attn_implementation, resolve_gradient_checkpointing
from sarft_ray.training.config import TrainingConfig
from sarft_ray.training.worker import prepare_trainable


def test_defaults_follow_the_device():
    assert resolve_attn_implementation("auto", "cpu") == "sdpa"
    assert resolve_attn_implementation("eager", "cpu") == "eager"
    assert resolve_gradient_checkpointing("auto", "full", "cuda") is True
    assert resolve_gradient_checkpointing("auto", "lora", "cuda") is False
    assert resolve_gradient_checkpointing("auto", "full", "cpu") is False
    assert resolve_gradient_checkpointing(True, "lora", "cpu") is True
    with pytest.raises(SarftError, match="training.attn_implementation"):
        resolve_attn_implementation("flash_attention_2", "cpu")


def test_config_fields():
    cfg = TrainingConfig(attn_implementation="eager", gradient_checkpointing=True)
    assert (cfg.attn_implementation, cfg.gradient_checkpointing) == ("eager", True)
    assert (TrainingConfig().attn_implementation, TrainingConfig().gradient_checkpointing) == ("auto", "auto")
    for bad in ({"attn_implementation": "fast"}, {"gradient_checkpointing": "sometimes"}):
        with pytest.raises(pydantic.ValidationError):
            TrainingConfig(**bad)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_prepared_model_uses_them_and_still_trains(mode):
    tokenizer = build_tiny_tokenizer()
    ids = torch.randint(0, 250, (2, 9), generator=torch.Generator().manual_seed(0))
    losses = {}
    for checkpointing in (False, True):
        cfg = TrainingConfig(mode=mode, lora_r=4, lora_alpha=8, lora_dropout=0.0, attn_implementation="eager",
                             gradient_checkpointing=checkpointing)
        torch.manual_seed(0)  # the same LoRA initialisation both times
        model = prepare_trainable(build_tiny_model(tokenizer), cfg)
        base = model.get_base_model() if mode == "lora" else model
        assert base.config._attn_implementation == "eager"
        assert base.model.gradient_checkpointing is checkpointing
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
        losses[checkpointing] = (float(out.loss.detach()), [g.clone() for g in grads])
    assert losses[True][0] == pytest.approx(losses[False][0], abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(losses[True][1], losses[False][1], strict=True))
