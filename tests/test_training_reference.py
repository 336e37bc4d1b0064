"""Reference models: LoRA shares the network (adapter off), full fine-tuning keeps a frozen copy."""

from __future__ import annotations

import torch

from sarft_ray.models import build_tiny_model, build_tiny_tokenizer
from sarft_ray.training.config import TrainingConfig
from sarft_ray.training.recipe import prepare_trainable
from sarft_ray.training.reference import (
    AdapterDisabledReference,
    FrozenCopyReference,
    build_reference,
)


def _inputs():
    ids = torch.randint(0, 250, (2, 9), generator=torch.Generator().manual_seed(1))
    return ids, torch.ones_like(ids)


def _storages(module: torch.nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in module.parameters()}


def _bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def test_lora_reference_is_the_same_network_with_the_adapter_off():
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_model(tokenizer)
    ids, mask = _inputs()
    with torch.no_grad():
        start = base(input_ids=ids, attention_mask=mask).logits.clone()
    model = prepare_trainable(base, TrainingConfig(mode="lora", lora_r=4, lora_alpha=8))
    before = _storages(model), _bytes(model)
    reference = build_reference(model, "lora")
    assert isinstance(reference, AdapterDisabledReference)
    assert reference.model is model
    # no parameter was copied: same storages, same total size
    assert (_storages(model), _bytes(model)) == before
    assert _storages(reference.model) == before[0]

    # move the adapter away from zero: the policy changes, the reference stays the starting model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    assert model.training
    with torch.no_grad():
        policy = model(input_ids=ids, attention_mask=mask).logits
    ref = reference(ids, mask)
    assert model.training  # the reference forward restores train mode
    assert torch.allclose(ref, start, atol=1e-5)
    assert not torch.allclose(policy, start, atol=1e-3)
    assert not ref.requires_grad


def test_full_reference_is_a_frozen_copy():
    tokenizer = build_tiny_tokenizer()
    model = prepare_trainable(build_tiny_model(tokenizer), TrainingConfig(mode="full"))
    ids, mask = _inputs()
    with torch.no_grad():
        start = model(input_ids=ids, attention_mask=mask).logits.clone()
    reference = build_reference(model, "full")
    assert isinstance(reference, FrozenCopyReference)
    assert not reference.model.training
    assert all(not p.requires_grad for p in reference.model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert _storages(reference.model).isdisjoint(_storages(model))

    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    optimizer.step()
    with torch.no_grad():
        policy = model(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(reference(ids, mask), start, atol=1e-5)
    assert not torch.allclose(policy, start, atol=1e-3)
