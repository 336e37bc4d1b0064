"""Reference models: LoRA shares the network (adapter off), full fine-tuning keeps a frozen copy.

Both sides hand over final hidden states and the output layer; the output layer projects nothing during the forward.
"""

from __future__ import annotations

import torch

from sarft_ray.models import build_tiny_model, build_tiny_tokenizer
from sarft_ray.training.config import TrainingConfig
from sarft_ray.training.recipe import prepare_trainable
from sarft_ray.training.reference import (
    AdapterDisabledReference,
    FrozenCopyReference,
    build_reference,
    policy_side,
)


def logits_of(side) -> torch.Tensor:
    """Full logits from a side's hidden states (what the loss computes chunk by chunk)."""
    return side.layer.logits(side.states)


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
    ref = logits_of(reference(ids, mask))
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
    assert torch.allclose(logits_of(reference(ids, mask)), start, atol=1e-5)
    assert not torch.allclose(policy, start, atol=1e-3)


def test_sides_hand_over_hidden_states_and_the_output_layer_projects_nothing():
    tokenizer = build_tiny_tokenizer()
    model = prepare_trainable(build_tiny_model(tokenizer), TrainingConfig(mode="lora", lora_r=4, lora_alpha=8))
    ids, mask = _inputs()
    seen = []
    head = model.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    try:
        side = policy_side(model)(ids, mask)
        ref = build_reference(model, "lora")(ids, mask)
    finally:
        handle.remove()
    assert seen == [(2, 0, 64), (2, 0, 64)]  # no position went through lm_head during either forward
    assert side.states.shape == ref.states.shape == (2, 9, 64)
    assert side.states.requires_grad and not ref.states.requires_grad
    assert side.layer.weight is head.weight  # plain nn.Linear: the fused path
    with torch.no_grad():
        assert torch.allclose(logits_of(side), model(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
    # the hooks are gone: an ordinary forward gives full logits
    assert model(input_ids=ids, attention_mask=mask).logits.shape == (2, 9, len(tokenizer))


def test_lora_on_the_output_layer_is_switched_off_for_the_reference():
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_model(tokenizer)
    ids, mask = _inputs()
    with torch.no_grad():
        start = base(input_ids=ids, attention_mask=mask).logits.clone()
    model = prepare_trainable(base, TrainingConfig(mode="lora", lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules=["q_proj", "lm_head"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    side = policy_side(model)(ids, mask)
    assert side.layer.weight is None  # a LoRA-wrapped lm_head goes through the checkpointed path
    with torch.no_grad():
        assert torch.allclose(logits_of(side), model(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
        assert torch.allclose(logits_of(build_reference(model, "lora")(ids, mask)), start, atol=1e-5)


def test_a_model_that_changes_its_logits_hands_over_full_logits():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=1, head_dim=16, final_logit_softcapping=5.0)
    model = Gemma2ForCausalLM(config).eval()
    ids, mask = _inputs()
    side = policy_side(model)(ids, mask)
    assert side.layer.forward is None  # the states are the (soft-capped) logits
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits
    assert float(want.abs().max()) <= 5.0
    assert torch.allclose(side.states, want, atol=1e-6)
