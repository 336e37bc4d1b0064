"""The RBO loss against values worked out by hand with plain floats."""

from __future__ import annotations

import math

import pytest
import torch

from sarft_ray.training.loss import (
    IGNORE_INDEX,
    LossOptions,
    ce_per_row,
    kl_per_row,
    rbo_forward,
    rbo_loss,
    reference_targets,
    token_kl,
)

IGN = IGNORE_INDEX


def softmax(xs):
    exps = [math.exp(x) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


# Two rows, four positions, vocabulary of three. Row 0: prompt [0], answer [1, 2], then padding.
# Row 1: prompt [0, 1], answer [2, 0, ...] cut at length 4 (no padding).
LOGITS = torch.tensor(
    [
        [[0.0, 1.0, 0.0], [0.5, 0.0, 2.0], [1.0, 1.0, 1.0], [3.0, 0.0, 0.0]],
        [[0.2, 0.1, 0.0], [0.0, 0.0, 1.5], [2.0, -1.0, 0.0], [0.0, 0.3, 0.0]],
    ]
)
INPUT_IDS = torch.tensor([[0, 1, 2, 0], [0, 1, 2, 0]])
LABELS = torch.tensor([[IGN, 1, 2, IGN], [IGN, IGN, 2, 0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
REF_LOGITS = torch.tensor(
    [
        [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [9.0, 9.0, 9.0]],
        [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 2.0], [1.0, 2.0, 3.0]],
    ]
)


def nll(row, pos, token):
    return -math.log(softmax(LOGITS[row, pos].tolist())[token])


# Row 0: position 0 predicts 1, position 1 predicts 2.  Row 1: position 1 predicts 2, position 2 predicts 0.
CE_SUM = [nll(0, 0, 1) + nll(0, 1, 2), nll(1, 1, 2) + nll(1, 2, 0)]


def test_ce_per_answer_token():
    got = ce_per_row(LOGITS, LABELS, MASK, "answer")
    assert got.tolist() == pytest.approx([CE_SUM[0] / 2, CE_SUM[1] / 2], rel=1e-6)


def test_ce_per_sequence_token_like_the_release():
    got = ce_per_row(LOGITS, LABELS, MASK, "sequence")
    assert got.tolist() == pytest.approx([CE_SUM[0] / 3, CE_SUM[1] / 4], rel=1e-6)


def test_token_kl_both_directions():
    p_theta = softmax([0.5, 0.0, 2.0])
    p_ref = softmax([0.0, 0.0, 0.0])
    a, b = torch.tensor([0.5, 0.0, 2.0]), torch.zeros(3)
    assert float(token_kl(a, b, "ref_to_policy")) == pytest.approx(kl(p_ref, p_theta), rel=1e-6)
    assert float(token_kl(a, b, "policy_to_ref")) == pytest.approx(kl(p_theta, p_ref), rel=1e-6)
    assert kl(p_ref, p_theta) != pytest.approx(kl(p_theta, p_ref))  # the test tells them apart


def _row_kl(row, positions, direction):
    values = []
    for pos in positions:
        p = softmax(LOGITS[row, pos].tolist())
        q = softmax(REF_LOGITS[row, pos].tolist())
        values.append(kl(q, p) if direction == "ref_to_policy" else kl(p, q))
    return sum(values) / len(values)


@pytest.mark.parametrize("direction", ["ref_to_policy", "policy_to_ref"])
def test_kl_spans(direction):
    all_pos = MASK.bool()
    got = kl_per_row(LOGITS, reference_targets(REF_LOGITS, all_pos), direction)
    # "all": every non-padding position, including the last one (the release's choice)
    assert got.tolist() == pytest.approx([_row_kl(0, [0, 1, 2], direction), _row_kl(1, [0, 1, 2, 3], direction)], rel=1e-6)
    answer_pos = torch.tensor([[True, True, False, False], [False, True, True, False]])
    got = kl_per_row(LOGITS, reference_targets(REF_LOGITS, answer_pos), direction)
    assert got.tolist() == pytest.approx([_row_kl(0, [0, 1], direction), _row_kl(1, [1, 2], direction)], rel=1e-6)


def test_rbo_loss_release_form_by_hand():
    # Row 1 harmful only: KL term is KL_1 summed over harmful rows divided by the batch size (2).
    opts = LossOptions.release(lambda_kl=0.7)
    harmful = torch.tensor([False, True])
    out = rbo_loss(LOGITS, LABELS, MASK, harmful, REF_LOGITS[1:], opts)
    ce = (CE_SUM[0] / 3 + CE_SUM[1] / 4) / 2
    kl1 = _row_kl(1, [0, 1, 2, 3], "ref_to_policy")
    assert float(out.loss) == pytest.approx(ce + 0.7 * kl1 / 2, rel=1e-6)
    assert out.ce == pytest.approx(ce, rel=1e-6)
    assert out.kl == pytest.approx(kl1, rel=1e-6)
    assert (out.harmful_rows, out.rows) == (1, 2)


def test_rbo_loss_default_form_by_hand():
    opts = LossOptions(lambda_kl=2.0, kl_direction="policy_to_ref", kl_span="answer", ce_norm="answer")
    harmful = torch.tensor([True, True])
    out = rbo_loss(LOGITS, LABELS, MASK, harmful, REF_LOGITS, opts)
    ce = (CE_SUM[0] / 2 + CE_SUM[1] / 2) / 2
    kls = [_row_kl(0, [0, 1], "policy_to_ref"), _row_kl(1, [1, 2], "policy_to_ref")]
    assert float(out.loss) == pytest.approx(ce + 2.0 * sum(kls) / 2, rel=1e-6)


def test_negative_or_nan_lambda_is_rejected():
    with pytest.raises(ValueError, match="lambda_kl"):
        LossOptions(lambda_kl=-0.1)
    with pytest.raises(ValueError, match="lambda_kl"):
        LossOptions(lambda_kl=float("nan"))


class Counting:
    """A logits function that records what it was called with."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits
        self.calls: list[tuple[int, int]] = []

    def __call__(self, input_ids, attention_mask):
        self.calls.append(tuple(input_ids.shape))
        return self.logits[: input_ids.shape[0], : input_ids.shape[1]]


def _batch(harmful):
    return {"input_ids": INPUT_IDS, "attention_mask": MASK, "labels": LABELS, "harmful": torch.tensor(harmful)}


def test_no_harmful_rows_means_no_reference_forward():
    ref = Counting(REF_LOGITS)
    out = rbo_forward(lambda i, m: LOGITS, ref, _batch([False, False]), LossOptions(lambda_kl=1.0))
    assert ref.calls == []
    assert out.kl == 0.0 and out.harmful_rows == 0


def test_reference_sees_only_harmful_rows_trimmed():
    # Row 0 alone is harmful; its last column is padding, so the reference gets one row of length 3.
    seen = []

    def reference(input_ids, attention_mask):
        seen.append((input_ids.clone(), attention_mask.clone()))
        return REF_LOGITS[:1, :3]

    out = rbo_forward(lambda i, m: LOGITS, reference, _batch([True, False]), LossOptions(lambda_kl=1.0))
    assert len(seen) == 1
    assert seen[0][0].tolist() == [[0, 1, 2]] and seen[0][1].tolist() == [[1, 1, 1]]
    full = rbo_loss(LOGITS, LABELS, MASK, torch.tensor([True, False]), REF_LOGITS[:1], LossOptions(lambda_kl=1.0))
    assert float(out.loss) == pytest.approx(float(full.loss), rel=1e-6)


def test_lambda_zero_is_exactly_sft():
    logits = LOGITS.clone().requires_grad_(True)
    ref = Counting(REF_LOGITS)
    out = rbo_forward(lambda i, m: logits, ref, _batch([True, True]), LossOptions(lambda_kl=0.0))
    out.loss.backward()
    grad_rbo = logits.grad.clone()
    assert ref.calls == []
    # SFT written independently: mean over rows of each row's mean answer-token NLL.
    logits.grad = None
    logp = torch.log_softmax(logits, dim=-1)
    sft = (-(logp[0, 0, 1] + logp[0, 1, 2]) / 2 - (logp[1, 1, 2] + logp[1, 2, 0]) / 2) / 2
    sft.backward()
    assert float(out.loss.detach()) == pytest.approx(float(sft.detach()), abs=1e-7)
    no_harm = rbo_forward(lambda i, m: LOGITS, None, _batch([False, False]), LossOptions(lambda_kl=0.0))
    assert torch.equal(out.loss.detach(), no_harm.loss)
    assert torch.allclose(grad_rbo, logits.grad, atol=1e-7)


def test_kl_is_zero_when_model_is_reference():
    from sarft_ray.models import build_tiny_model, build_tiny_tokenizer

    model = build_tiny_model(build_tiny_tokenizer())
    ids = torch.randint(0, 250, (3, 7))
    mask = torch.ones_like(ids)
    mask[2, 5:] = 0
    labels = ids.clone()
    labels[:, :3] = IGN
    labels[mask == 0] = IGN
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels, "harmful": torch.tensor([True, False, True])}

    def logits(i, m):
        return model(input_ids=i, attention_mask=m).logits

    with torch.no_grad():
        out = rbo_forward(logits, logits, batch, LossOptions(lambda_kl=5.0))
    assert out.harmful_rows == 2
    assert abs(out.kl) < 1e-6
    assert float(out.loss) == pytest.approx(out.ce, abs=1e-5)


@pytest.mark.parametrize("direction", ["ref_to_policy", "policy_to_ref"])
def test_kl_gradient_matches_the_plain_formula(direction):
    gen = torch.Generator().manual_seed(0)
    policy = (torch.randn(3, 5, 11, generator=gen) * 3).requires_grad_(True)
    ref = torch.randn(3, 5, 11, generator=gen) * 3
    positions = torch.rand(3, 5, generator=gen) > 0.3
    fast = kl_per_row(policy, reference_targets(ref, positions), direction).sum()
    (fast_grad,) = torch.autograd.grad(fast, policy)
    plain = (token_kl(policy, ref, direction) * positions).sum(1) / positions.sum(1).clamp(min=1)
    (plain_grad,) = torch.autograd.grad(plain.sum(), policy)
    assert float(fast) == pytest.approx(float(plain.sum()), rel=1e-5)
    assert torch.allclose(fast_grad, plain_grad, atol=1e-6)


@pytest.mark.parametrize("direction", ["ref_to_policy", "policy_to_ref"])
def test_kl_of_identical_large_logits_is_zero(direction):
    # real models' logits reach +-40 over vocabularies of 50k: rounding must not leave a visible KL
    logits = torch.randn(2, 7, 49152, generator=torch.Generator().manual_seed(0)) * 12
    positions = torch.ones(2, 7, dtype=torch.bool)
    kl = kl_per_row(logits, reference_targets(logits, positions), direction)
    assert kl.abs().max() < 1e-6
