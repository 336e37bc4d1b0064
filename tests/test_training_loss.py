"""The RBO loss: values worked out by hand, and the chunked main path against the full-logits reference.

``unfused_loss`` (beside this file) is the loss as it was computed before the
output layer was chunked: full (B, T, V) logits, cross-entropy through a
transposed layout. The main path must give the same value and gradients
(float64, 1e-6) for every loss option, any share of harmful rows and lambda 0,
through each of its three output-layer paths (fused linear, checkpointed
module, logits handed over), and never form a tensor larger than one chunk
of logits.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from unfused_loss import rbo_loss as unfused_rbo_loss
from unfused_loss import unfused_forward

from sarft_ray.training.fused_loss import Hidden, OutputLayer, head_loss
from sarft_ray.training.loss import IGNORE_INDEX, LossOptions, rbo_forward, rbo_loss

IGN = IGNORE_INDEX
OPTION_GRID = [
    LossOptions(lambda_kl=0.8, kl_direction=d, kl_span=s, ce_norm=n)
    for d, s, n in itertools.product(["ref_to_policy", "policy_to_ref"], ["all", "answer"], ["answer", "sequence"])
]
OPTIONS = OPTION_GRID + [LossOptions.release(0.8), LossOptions(lambda_kl=0.0), LossOptions.release(0.0)]


def option_id(o: LossOptions) -> str:
    return f"lam{o.lambda_kl}-{o.kl_direction}-{o.kl_span}-{o.ce_norm}"


def softmax(xs):
    exps = [math.exp(x) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


# ------------------------------------------------------------------ by hand (logits handed over)

# Two rows, four positions, vocabulary of three. Row 0: prompt [0], answer [1, 2], then padding.
# Row 1: prompt [0, 1], answer [2, 0, ...] cut at length 4 (no padding).
LOGITS = torch.tensor(
    [
        [[0.0, 1.0, 0.0], [0.5, 0.0, 2.0], [1.0, 1.0, 1.0], [3.0, 0.0, 0.0]],
        [[0.2, 0.1, 0.0], [0.0, 0.0, 1.5], [2.0, -1.0, 0.0], [0.0, 0.3, 0.0]],
    ],
    dtype=torch.float64,
)
INPUT_IDS = torch.tensor([[0, 1, 2, 0], [0, 1, 2, 0]])
LABELS = torch.tensor([[IGN, 1, 2, IGN], [IGN, IGN, 2, 0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
REF_LOGITS = torch.tensor(
    [
        [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [9.0, 9.0, 9.0]],
        [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 2.0], [1.0, 2.0, 3.0]],
    ],
    dtype=torch.float64,
)


def as_logits(x: torch.Tensor) -> Hidden:
    return Hidden(x, OutputLayer(None))


def nll(row, pos, token):
    return -math.log(softmax(LOGITS[row, pos].tolist())[token])


# Row 0: position 0 predicts 1, position 1 predicts 2.  Row 1: position 1 predicts 2, position 2 predicts 0.
CE_SUM = [nll(0, 0, 1) + nll(0, 1, 2), nll(1, 1, 2) + nll(1, 2, 0)]


def _row_kl(row, positions, direction):
    values = []
    for pos in positions:
        p = softmax(LOGITS[row, pos].tolist())
        q = softmax(REF_LOGITS[row, pos].tolist())
        values.append(kl(q, p) if direction == "ref_to_policy" else kl(p, q))
    return sum(values) / len(values)


def test_ce_per_answer_token_and_per_sequence_token():
    no = torch.tensor([False, False])
    out = rbo_loss(as_logits(LOGITS), LABELS, MASK, no, None, LossOptions(ce_norm="answer"))
    assert out.ce == pytest.approx((CE_SUM[0] / 2 + CE_SUM[1] / 2) / 2, rel=1e-12)
    out = rbo_loss(as_logits(LOGITS), LABELS, MASK, no, None, LossOptions(ce_norm="sequence"))
    assert out.ce == pytest.approx((CE_SUM[0] / 3 + CE_SUM[1] / 4) / 2, rel=1e-12)  # the release: / non-padding tokens


@pytest.mark.parametrize("direction", ["ref_to_policy", "policy_to_ref"])
def test_kl_spans_by_hand(direction):
    both = torch.tensor([True, True])
    out = rbo_loss(as_logits(LOGITS), LABELS, MASK, both, as_logits(REF_LOGITS), LossOptions(1.0, direction, "all"))
    # "all": every non-padding position, including the last one (the release's choice)
    assert out.kl == pytest.approx((_row_kl(0, [0, 1, 2], direction) + _row_kl(1, [0, 1, 2, 3], direction)) / 2, rel=1e-12)
    out = rbo_loss(as_logits(LOGITS), LABELS, MASK, both, as_logits(REF_LOGITS), LossOptions(1.0, direction, "answer"))
    assert out.kl == pytest.approx((_row_kl(0, [0, 1], direction) + _row_kl(1, [1, 2], direction)) / 2, rel=1e-12)
    assert kl([0.2, 0.8], [0.5, 0.5]) != pytest.approx(kl([0.5, 0.5], [0.2, 0.8]))  # the directions differ


def test_release_form_by_hand():
    # Row 1 harmful only: the KL term is KL_1 summed over harmful rows divided by the batch size (2).
    out = rbo_loss(as_logits(LOGITS), LABELS, MASK, torch.tensor([False, True]), as_logits(REF_LOGITS[1:]), LossOptions.release(0.7))
    ce = (CE_SUM[0] / 3 + CE_SUM[1] / 4) / 2
    kl1 = _row_kl(1, [0, 1, 2, 3], "ref_to_policy")
    assert float(out.loss) == pytest.approx(ce + 0.7 * kl1 / 2, rel=1e-12)
    assert (out.ce, out.kl) == (pytest.approx(ce, rel=1e-12), pytest.approx(kl1, rel=1e-12))
    assert (out.harmful_rows, out.rows) == (1, 2)


def test_default_form_by_hand():
    opts = LossOptions(lambda_kl=2.0, kl_direction="policy_to_ref", kl_span="answer", ce_norm="answer")
    out = rbo_loss(as_logits(LOGITS), LABELS, MASK, torch.tensor([True, True]), as_logits(REF_LOGITS), opts)
    ce = (CE_SUM[0] / 2 + CE_SUM[1] / 2) / 2
    kls = [_row_kl(0, [0, 1], "policy_to_ref"), _row_kl(1, [1, 2], "policy_to_ref")]
    assert float(out.loss) == pytest.approx(ce + 2.0 * sum(kls) / 2, rel=1e-12)


def test_bad_options_are_rejected():
    for bad in ({"lambda_kl": -0.1}, {"lambda_kl": float("nan")}):
        with pytest.raises(ValueError, match="lambda_kl"):
            LossOptions(**bad)
    for name in ("kl_direction", "kl_span", "ce_norm"):
        with pytest.raises(ValueError, match=name):
            LossOptions(**{name: "nope"})


# ------------------------------------------------------------------ chunked path == full-logits reference


def random_case(harmful: list[bool], seed: int = 0, hidden: int = 5, vocab: int = 11, bias: bool = True):
    """A float64 batch of right-padded rows with prompt, answer and padding, and two random linear heads."""
    gen = torch.Generator().manual_seed(seed)
    batch, length = len(harmful), 8
    lengths = [8, 5, 7, 3, 6, 8][:batch]
    prompts = [3, 2, 4, 1, 6, 2][:batch]
    mask = torch.zeros(batch, length, dtype=torch.long)
    labels = torch.full((batch, length), IGN)
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    for b in range(batch):
        mask[b, : lengths[b]] = 1
        labels[b, prompts[b] : lengths[b]] = ids[b, prompts[b] : lengths[b]]
    states = torch.randn(batch, length, hidden, generator=gen, dtype=torch.float64) * 2
    head = torch.nn.Linear(hidden, vocab, bias=bias, dtype=torch.float64)
    ref_head = torch.nn.Linear(hidden, vocab, bias=bias, dtype=torch.float64)
    for layer in (head, ref_head):
        with torch.no_grad():
            layer.weight.copy_(torch.randn(vocab, hidden, generator=gen, dtype=torch.float64))
            if bias:
                layer.bias.copy_(torch.randn(vocab, generator=gen, dtype=torch.float64))
    ref_states = torch.randn(batch, length, hidden, generator=gen, dtype=torch.float64) * 2
    return dict(states=states, head=head, ref_head=ref_head, ref_states=ref_states, ids=ids, mask=mask, labels=labels,
                harmful=torch.tensor(harmful))


def reference_value_and_grads(case, options):
    """The old main path on full logits; gradients w.r.t. the states and the head's parameters."""
    states = case["states"].clone().requires_grad_(True)
    head = case["head"]
    harmful = case["harmful"]
    idx = harmful.nonzero(as_tuple=True)[0]
    length = int(case["mask"][idx].sum(1).max()) if len(idx) else 0
    ref_logits = case["ref_head"](case["ref_states"][idx, :length]).detach() if len(idx) else None
    out = unfused_rbo_loss(head(states), case["labels"], case["mask"], harmful, ref_logits, options)
    params = [states] + list(head.parameters())
    grads = torch.autograd.grad(out.loss, params, allow_unused=True)
    return out, grads


def main_value_and_grads(case, options, path: str, chunk: int | None):
    states = case["states"].clone().requires_grad_(True)
    head, ref_head = case["head"], case["ref_head"]
    if path == "fused":
        layer, ref_layer = OutputLayer.of(head), OutputLayer.of(ref_head)
        policy = Hidden(states, layer)
    elif path == "checkpointed":  # any non-Linear output module
        layer, ref_layer = OutputLayer.of(torch.nn.Sequential(head)), OutputLayer.of(torch.nn.Sequential(ref_head))
        assert layer.weight is None
        policy = Hidden(states, layer)
    else:  # logits handed over
        policy, ref_layer = Hidden(head(states), OutputLayer(None)), None
    harmful = case["harmful"]
    idx = harmful.nonzero(as_tuple=True)[0]
    length = int(case["mask"][idx].sum(1).max()) if len(idx) else 0
    ref_states = case["ref_states"][idx, :length]
    reference = Hidden(ref_head(ref_states).detach(), OutputLayer(None)) if ref_layer is None else Hidden(ref_states, ref_layer)
    out = rbo_loss(policy, case["labels"], case["mask"], harmful, reference if len(idx) else None, options, chunk)
    params = [states] + list(head.parameters())
    grads = torch.autograd.grad(out.loss, params, allow_unused=True)
    return out, grads


def assert_same(out, grads, ref_out, ref_grads, tol=1e-6):
    assert float(out.loss) == pytest.approx(float(ref_out.loss), abs=tol, rel=tol)
    assert out.ce == pytest.approx(ref_out.ce, abs=tol, rel=tol)
    assert out.kl == pytest.approx(ref_out.kl, abs=tol, rel=tol)
    assert (out.harmful_rows, out.rows) == (ref_out.harmful_rows, ref_out.rows)
    for got, want in zip(grads, ref_grads, strict=True):
        want = torch.zeros_like(got) if want is None else want
        got = torch.zeros_like(want) if got is None else got
        assert torch.allclose(got, want, atol=tol, rtol=tol), float((got - want).abs().max())


HARMFUL = {"none": [False] * 5, "some": [True, False, False, True, False], "all": [True] * 5}


@pytest.mark.parametrize("path", ["fused", "checkpointed", "logits"])
@pytest.mark.parametrize("harmful", list(HARMFUL))
@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_chunked_loss_matches_full_logits(options, harmful, path):
    case = random_case(HARMFUL[harmful], seed=len(harmful))
    ref_out, ref_grads = reference_value_and_grads(case, options)
    for chunk in (3, None):  # several chunks (crossing the KL / CE-only boundary) and one
        out, grads = main_value_and_grads(case, options, path, chunk)
        assert_same(out, grads, ref_out, ref_grads)
    if harmful != "none" and options.lambda_kl > 0:
        assert out.kl > 0.01  # the comparison covers a real KL term


def test_fused_path_without_bias_and_with_a_frozen_head():
    case = random_case(HARMFUL["some"], seed=3, bias=False)
    options = LossOptions(0.5, "policy_to_ref", "all", "answer")
    ref_out, ref_grads = reference_value_and_grads(case, options)
    out, grads = main_value_and_grads(case, options, "fused", 4)
    assert_same(out, grads, ref_out, ref_grads)
    case["head"].requires_grad_(False)  # LoRA: the output layer does not train
    states = case["states"].clone().requires_grad_(True)
    out = rbo_loss(Hidden(states, OutputLayer.of(case["head"])), case["labels"], case["mask"], case["harmful"],
                   None, LossOptions(), 2)
    (grad,) = torch.autograd.grad(out.loss, [states])
    assert grad.abs().sum() > 0


def test_no_position_selected_gives_zero_with_a_graph():
    states = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    head = torch.nn.Linear(4, 6, dtype=torch.float64)
    labels = torch.full((2, 3), IGN)
    out = rbo_loss(Hidden(states, OutputLayer.of(head)), labels, torch.ones(2, 3), torch.tensor([False, False]), None, LossOptions())
    out.loss.backward()
    assert float(out.loss) == 0.0 and out.ce == 0.0 and float(states.grad.abs().sum()) == 0.0


def test_gradient_scale_reaches_the_fused_path():
    # DeepSpeed divides the loss by the accumulation steps before backward: the saved gradients must be scaled
    case = random_case(HARMFUL["some"], seed=5)
    layer = OutputLayer.of(case["head"])
    states = case["states"][:, :, :].reshape(-1, 5)[:10].clone().requires_grad_(True)
    targets, scale = torch.arange(10) % 11, torch.full((10,), 0.1, dtype=torch.float64)
    loss, _, _ = head_loss(states, layer, targets, scale, chunk=3)
    (g1,) = torch.autograd.grad(loss, states)
    loss, _, _ = head_loss(states, layer, targets, scale, chunk=3)
    (g2,) = torch.autograd.grad(loss * 0.25, states)
    assert torch.allclose(g2, g1 * 0.25, atol=1e-12)


class LargestLogits(TorchDispatchMode):
    """Records the largest tensor any op produces whose last dimension is the vocabulary (views of weights aside)."""

    def __init__(self, vocab: int, weights: list[torch.Tensor]):
        super().__init__()
        self.vocab, self.largest = vocab, 0
        self.weights = {w.untyped_storage().data_ptr() for w in weights}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if (
                isinstance(t, torch.Tensor)
                and t.dim() >= 1
                and t.shape[-1] == self.vocab
                and t.untyped_storage().data_ptr() not in self.weights
            ):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_no_tensor_holds_more_than_one_chunk_of_logits(mode):
    model, reference, batch = tiny_setup(mode, [True, False, True, True], torch.float32)
    vocab = model.get_output_embeddings().out_features
    from sarft_ray.training.reference import policy_side

    chunk = 4
    watch = LargestLogits(vocab, list(model.parameters()) + list(reference.model.parameters()))
    with watch:
        out = rbo_forward(policy_side(model), reference, batch, LossOptions.release(0.5), chunk=chunk)
        out.loss.backward()
    assert out.kl > 0
    assert 0 < watch.largest <= chunk * vocab  # forward and backward: one chunk at most, never rows x time x vocab
    assert int(batch["attention_mask"].sum()) > 3 * chunk


# ------------------------------------------------------------------ the tiny model, LoRA and full


def tiny_setup(mode: str, harmful: list[bool], dtype=torch.float64, seed: int = 0):
    from sarft_ray.models import build_tiny_model, build_tiny_tokenizer
    from sarft_ray.training.config import TrainingConfig
    from sarft_ray.training.reference import build_reference
    from sarft_ray.training.worker import prepare_trainable

    model = build_tiny_model(build_tiny_tokenizer()).to(dtype)
    model = prepare_trainable(model, TrainingConfig(mode=mode, lora_r=4, lora_alpha=8, lora_dropout=0.0))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # move the adapter off zero: policy and reference differ
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    reference = build_reference(model, mode)
    if mode == "full":
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.05)
    rows = len(harmful)
    ids = torch.randint(0, 250, (rows, 11), generator=gen)
    mask = torch.ones_like(ids)
    for b, length in enumerate([11, 7, 9, 5, 10, 6][:rows]):
        mask[b, length:] = 0
    labels = ids.clone()
    labels[:, :4] = IGN
    labels[mask == 0] = IGN
    return model, reference, {"input_ids": ids, "attention_mask": mask, "labels": labels, "harmful": torch.tensor(harmful)}


def full_logits_sides(model, reference, mode):
    from sarft_ray.training.reference import eval_mode

    def policy(i, m):
        return model(input_ids=i, attention_mask=m).logits

    def ref(i, m):
        if mode == "lora":
            with eval_mode(model), model.disable_adapter():
                return model(input_ids=i, attention_mask=m).logits
        return reference.model(input_ids=i, attention_mask=m).logits

    return policy, ref


@pytest.mark.parametrize("mode", ["lora", "full"])
@pytest.mark.parametrize("harmful", ["none", "some", "all"])
def test_tiny_model_matches_full_logits_for_every_option(mode, harmful):
    from sarft_ray.training.reference import policy_side

    model, reference, batch = tiny_setup(mode, HARMFUL[harmful][:4])
    params = [p for p in model.parameters() if p.requires_grad]
    policy, ref = full_logits_sides(model, reference, mode)
    # without harmful rows only the CE options matter
    grid = OPTIONS if harmful != "none" else [LossOptions(0.8, ce_norm="answer"), LossOptions.release(0.8)]
    for options in grid:
        want = unfused_forward(policy, ref, batch, options)
        want_grads = torch.autograd.grad(want.loss, params)
        got = rbo_forward(policy_side(model), reference, batch, options, chunk=5)
        got_grads = torch.autograd.grad(got.loss, params)
        assert_same(got, got_grads, want, want_grads)
        if harmful != "none" and options.lambda_kl > 0:
            assert got.kl > 1e-4


def test_lambda_zero_is_exactly_sft_and_runs_no_reference():
    model, reference, batch = tiny_setup("lora", [True, True, False])
    from sarft_ray.training.reference import policy_side

    calls = []

    def counting(i, m):
        calls.append(i.shape)
        return reference(i, m)

    out = rbo_forward(policy_side(model), counting, batch, LossOptions(lambda_kl=0.0))
    assert calls == [] and out.kl == 0.0
    # SFT written independently: mean over rows of each row's mean answer-token NLL.
    logp = torch.log_softmax(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, -1)
    targets = batch["labels"][:, 1:]
    rows = []
    for b in range(3):
        answer = targets[b] != IGN
        rows.append(-logp[b, :-1][answer].gather(1, targets[b][answer][:, None]).mean())
    assert float(out.loss) == pytest.approx(float(torch.stack(rows).mean()), abs=1e-10)


def test_no_harmful_rows_means_no_reference_forward():
    model, reference, batch = tiny_setup("lora", [False, False])
    from sarft_ray.training.reference import policy_side

    calls = []
    out = rbo_forward(policy_side(model), lambda i, m: calls.append(1), batch, LossOptions(lambda_kl=1.0))
    assert calls == [] and out.kl == 0.0 and out.harmful_rows == 0


def test_reference_sees_only_harmful_rows_trimmed():
    seen = []

    def reference(input_ids, attention_mask):
        seen.append((input_ids.clone(), attention_mask.clone()))
        return as_logits(REF_LOGITS[:1, :3])

    batch = {"input_ids": INPUT_IDS, "attention_mask": MASK, "labels": LABELS, "harmful": torch.tensor([True, False])}
    out = rbo_forward(lambda i, m: as_logits(LOGITS), reference, batch, LossOptions(lambda_kl=1.0))
    # Row 0 alone is harmful; its last column is padding, so the reference gets one row of length 3.
    assert len(seen) == 1
    assert seen[0][0].tolist() == [[0, 1, 2]] and seen[0][1].tolist() == [[1, 1, 1]]
    full = rbo_loss(as_logits(LOGITS), LABELS, MASK, torch.tensor([True, False]), as_logits(REF_LOGITS[:1]), LossOptions(lambda_kl=1.0))
    assert float(out.loss) == pytest.approx(float(full.loss), rel=1e-12)


def test_reference_is_needed_for_harmful_rows():
    batch = {"input_ids": INPUT_IDS, "attention_mask": MASK, "labels": LABELS, "harmful": torch.tensor([True, False])}
    with pytest.raises(ValueError, match="reference"):
        rbo_forward(lambda i, m: as_logits(LOGITS), None, batch, LossOptions(lambda_kl=1.0))


def test_kl_is_zero_when_model_is_reference():
    from sarft_ray.models import build_tiny_model, build_tiny_tokenizer
    from sarft_ray.training.reference import policy_side

    model = build_tiny_model(build_tiny_tokenizer())
    _, _, batch = tiny_setup("full", [True, False, True])
    side = policy_side(model)
    with torch.no_grad():
        out = rbo_forward(side, side, batch, LossOptions(lambda_kl=5.0), chunk=4)
    assert out.harmful_rows == 2
    assert abs(out.kl) < 1e-6
    assert float(out.loss) == pytest.approx(out.ce, abs=1e-5)


@pytest.mark.parametrize("direction", ["ref_to_policy", "policy_to_ref"])
def test_kl_of_identical_large_logits_is_zero(direction):
    # real models' logits reach +-40 over vocabularies of 50k: rounding must not leave a visible KL
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(2, 7, 16, generator=gen)
    head = torch.nn.Linear(16, 49152, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(49152, 16, generator=gen) * 3)
    labels = torch.randint(0, 49152, (2, 7))
    side = Hidden(states, OutputLayer.of(head))
    out = rbo_loss(side, labels, torch.ones(2, 7), torch.tensor([True, True]), side, LossOptions(1.0, direction), chunk=5)
    assert abs(out.kl) < 1e-6
