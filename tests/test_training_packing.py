"""Packed micro-batches: the rows' tokens run as one sequence, and the loss and its gradients are those of the
padded batch (float64, within 1e-6: eager attention takes its softmax in float32), for LoRA and full fine-tuning, with the sdpa and eager attention kernels."""

from __future__ import annotations

import pydantic
import pytest
import torch

from sarft_ray.models import build_tiny_model, build_tiny_tokenizer
from sarft_ray.training.compute import resolve_packing
from sarft_ray.training.config import TrainingConfig
from sarft_ray.training.loss import IGNORE_INDEX, LossOptions, rbo_forward
from sarft_ray.training.reference import build_reference, packed_inputs, policy_side, unpacked
from sarft_ray.training.worker import prepare_trainable

LENGTHS = (9, 4, 7, 1)  # right-padded to 9; a one-token row too
PROMPTS = (5, 2, 3, 1)
HARMFUL = (True, False, True, True)


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    width = max(LENGTHS)
    ids = torch.randint(3, 250, (len(LENGTHS), width), generator=generator)
    mask = (torch.arange(width)[None] < torch.tensor(LENGTHS)[:, None]).long()
    ids = ids.masked_fill(mask == 0, 0)
    labels = ids.masked_fill(torch.arange(width)[None] < torch.tensor(PROMPTS)[:, None], IGNORE_INDEX)
    labels = labels.masked_fill(mask == 0, IGNORE_INDEX)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "harmful": torch.tensor(HARMFUL)}


def _model(mode: str, attn: str) -> torch.nn.Module:
    torch.manual_seed(0)  # LoRA draws its initial A matrices from the global generator
    model = build_tiny_model(build_tiny_tokenizer()).double()
    model = prepare_trainable(model, TrainingConfig(mode=mode, lora_r=4, lora_alpha=8, lora_dropout=0.0, attn_implementation=attn))
    with torch.no_grad():  # move the policy away from the reference so the KL and its gradient are not zero
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name)), dtype=p.dtype))
    return model


def _loss_and_grads(model, mode: str, packed: bool, options: LossOptions):
    reference = build_reference(model, mode, packed)
    if mode == "full":  # the frozen copy was taken now; move the policy once more so the two differ
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.01)
    model.zero_grad()
    out = rbo_forward(policy_side(model, packed), reference, _batch(), options)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_packed_loss_and_gradients_equal_the_padded_ones(mode, attn):
    options = LossOptions(lambda_kl=2.0, kl_direction="ref_to_policy", kl_span="all", ce_norm="answer")
    padded, padded_grads = _loss_and_grads(_model(mode, attn), mode, False, options)
    packed, packed_grads = _loss_and_grads(_model(mode, attn), mode, True, options)
    assert padded.kl > 1e-6 and padded.ce > 0
    assert abs(packed.loss.item() - padded.loss.item()) < 1e-6
    assert (packed.ce, packed.kl) == pytest.approx((padded.ce, padded.kl), abs=1e-6)
    assert padded_grads.keys() == packed_grads.keys() and padded_grads
    for name, grad in padded_grads.items():
        assert torch.allclose(packed_grads[name], grad, atol=1e-6, rtol=1e-6), name


def test_a_packed_row_sees_only_itself():
    model = _model("full", "sdpa").eval()
    batch = _batch()
    side = policy_side(model, packed=True)
    with torch.no_grad():
        first = side(batch["input_ids"], batch["attention_mask"]).states
        changed = batch["input_ids"].clone()
        changed[0, :3] = 7  # the first row's tokens change; the rows after it must not notice
        second = side(changed, batch["attention_mask"]).states
    assert not torch.allclose(first[0], second[0])
    assert torch.equal(first[1:], second[1:])
    assert torch.count_nonzero(first[batch["attention_mask"] == 0]) == 0  # padding comes back as zeros


def test_packed_inputs_restart_positions_at_each_row():
    ids = torch.tensor([[5, 6, 7], [8, 0, 0], [9, 10, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    inputs = packed_inputs(ids, mask)
    assert inputs["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10]]
    assert inputs["position_ids"].tolist() == [[0, 1, 2, 0, 0, 1]]
    values = torch.arange(6.0).reshape(1, 6, 1)
    assert unpacked(values, mask)[..., 0].tolist() == [[0, 1, 2], [3, 0, 0], [4, 5, 0]]


def test_packing_setting():
    assert resolve_packing("auto", "flash_attention_2") is True
    assert resolve_packing("auto", "sdpa") is False
    assert resolve_packing(True, "eager") is True and resolve_packing(False, "flash_attention_2") is False
    assert TrainingConfig().packing == "auto" and TrainingConfig(packing=True).packing is True
    with pytest.raises(pydantic.ValidationError, match="packing"):
        TrainingConfig(packing="always")
