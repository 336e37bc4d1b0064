"""Step time and peak memory of one RBO training step, side by side with plain SFT, the previous loss and a release-style step.

    python bench/rbo_step.py                      # SmolLM2-135M-Instruct, LoRA and full, CPU
    python bench/rbo_step.py --modes lora --variants unfused@0.3,rbo@0.3 --steps 1
    python bench/rbo_step.py --mode synthetic --device cuda          # Llama-3.2-1B shape, bf16 (see rbo_synthetic.py)
    python bench/rbo_step.py --mode synthetic --device cpu --size tiny   # the same code in seconds, for CI

Variants:
- ``sft``: lambda = 0; no reference model at all.
- ``rbo@0.3`` / ``rbo@0.9``: this project's step at that harmful fraction: the
  reference forward only on the harmful rows (trimmed padding), LoRA's
  reference is the same network with the adapter off, full fine-tuning keeps
  one frozen copy; the output layer runs only at the positions that enter CE
  or KL, a chunk at a time (``sarft_ray/training/fused_loss.py``).
- ``unfused-sft`` / ``unfused@0.3`` / ``unfused@0.9``: the same step with the
  previous loss (``tests/unfused_loss.py``): full (rows x time x vocabulary)
  logits from the model, cross-entropy through a transposed fp32 copy. The
  before/after comparison of the chunked loss.
- ``release``: the authors' release step: both system prompts re-scored online
  every step (two reference forwards on every row, prompt included), a
  reference forward on every row, the KL over the full (rows x time x vocab)
  tensor, and a separate reference copy even for LoRA.

Mode ``smollm2`` (default): a step is forward + backward + AdamW update on one
micro-batch of real RoleBench rows (John Doe, no system prompt, as training
uses); each variant runs in a fresh process (so peak memory is its own).
Times are the median of the measured steps after warm-up, as process CPU time
(default; on a shared machine wall time mostly measures the neighbours; one
torch thread keeps CPU time free of spin-waiting) or wall time (``--clock
wall``, use it on a GPU or an idle machine). Memory is the process's peak
resident set (CPU) or peak allocated CUDA memory (GPU). DeepSpeed is not in
the loop: with one process it adds the same bookkeeping to every variant.

Mode ``synthetic``: ``rbo_synthetic.py`` (random weights, synthetic rows,
tokens/s and MFU; needs torch, transformers and peft only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("sft", "rbo@0.3", "rbo@0.9", "unfused-sft", "unfused@0.3", "unfused@0.9", "release")
ROLE = "John Doe"
ROOT = Path(__file__).resolve().parents[1]
# this directory (rbo_synthetic.py), the package from this checkout (no install needed) and, last, tests/ for
# the previous loss (unfused_loss.py)
for path in (str(ROOT / "bench"), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)
if str(ROOT / "tests") not in sys.path:
    sys.path.append(str(ROOT / "tests"))


def parse_variant(variant: str) -> tuple[str, float]:
    """(kind, harmful fraction): kind is 'rbo' (sft is rbo at 0), 'unfused' or 'release'."""
    if variant == "sft":
        return "rbo", 0.0
    if variant == "unfused-sft":
        return "unfused", 0.0
    if variant == "release":
        return "release", 0.0
    kind, _, fraction = variant.partition("@")
    try:
        value = float(fraction)
    except ValueError:
        value = -1.0
    if kind not in ("rbo", "unfused") or not 0 < value <= 1:
        raise SystemExit(f"unknown variant {variant!r}: use sft, unfused-sft, release, rbo@F or unfused@F with 0 < F <= 1")
    return kind, value


# ----------------------------------------------------------------------------- measuring


def peak_rss_mb() -> float:
    """Peak resident set of this process (VmHWM), in MiB."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024


def reset_peak_rss() -> bool:
    """Restart the VmHWM counter (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def load_rows(data_dir: Path, n: int) -> tuple[list[dict], str, str]:
    """The first ``n`` RoleBench answers of the role, and its role / unsafe system prompts."""
    from sarft_ray.data.config import PromptsConfig
    from sarft_ray.data.prompts import load_role_prompts

    rows = []
    with (data_dir / "rolebench/role-generalization/role_specific/test.jsonl").open() as handle:
        for line in handle:
            item = json.loads(line)
            if item["role"] == ROLE:
                rows.append({"input": item["question"], "output": item["generated"][0]})
            if len(rows) == n:
                break
    prompts = PromptsConfig(path=data_dir / "sarft_profiles/role_and_unsafe_prompts.json", unsafe_from_file=True)
    pair = load_role_prompts(prompts, [ROLE])[ROLE]
    return rows, pair.role_prompt, pair.unsafe_prompt


# ----------------------------------------------------------------------------- the release-style step


def batch_logps(logits, labels):
    """Mean log-prob of the label tokens per row (the release's get_batch_logps)."""
    import torch

    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    mask = labels != -100
    labels[~mask] = 0
    per_token = torch.gather(logits.log_softmax(-1), dim=2, index=labels.unsqueeze(2)).squeeze(2)
    return (per_token * mask).sum(-1) / (mask.sum(-1) + 1e-5)


def release_step_loss(model, reference, plain, role_batch, unsafe_batch, lambda_kl: float):
    """The release's compute_loss: online RDS flags, then CE + lambda * KL(p_ref||p_theta) on every row."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        unsafe = reference(input_ids=unsafe_batch["input_ids"], attention_mask=unsafe_batch["attention_mask"]).logits
        role = reference(input_ids=role_batch["input_ids"], attention_mask=role_batch["attention_mask"]).logits
        flags = (batch_logps(unsafe, unsafe_batch["labels"]) - batch_logps(role, role_batch["labels"]) > 0).float()
        del unsafe, role
    ids, mask, labels = plain["input_ids"], plain["attention_mask"], plain["labels"]
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    vocab = logits.shape[-1]
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1), reduction="none")
    ce = (ce.view(labels.shape[0], -1).sum(1) / (mask.sum(1) + 1e-5)).mean()
    with torch.no_grad():
        ref_logits = reference(input_ids=ids, attention_mask=mask).logits.float()
    log_probs = F.log_softmax(logits.reshape(-1, vocab), dim=-1)
    probs_ref = F.softmax(ref_logits.reshape(-1, vocab), dim=-1)
    kl = F.kl_div(log_probs, probs_ref, reduction="none").sum(-1).view(labels.shape[0], -1)
    kl = (kl * mask).sum(1) / (mask.sum(1) + 1e-5)
    return ce + lambda_kl * (kl * flags).mean(), int(flags.sum())


def variant_step(variant: str, model, train_mode: str, lambda_kl: float, plain: dict, release=None, packed: bool = False):
    """``(step, keep)``: ``step()`` runs the variant's forward and returns (loss, harmful rows); ``keep`` holds its reference.

    ``model`` is already trainable (LoRA-wrapped or not); ``release`` is
    (second reference model, role-prompt batch, unsafe-prompt batch), needed by
    the release variant only; ``packed``: the sft and rbo variants run their
    micro-batches packed (training.packing).
    """
    from sarft_ray.training.loss import LossOptions, rbo_forward
    from sarft_ray.training.reference import FrozenCopyReference, build_reference, eval_mode, policy_side

    kind, fraction = parse_variant(variant)
    if kind == "release":
        ref_model, role_batch, unsafe_batch = release
        return (lambda: release_step_loss(model, ref_model, plain, role_batch, unsafe_batch, lambda_kl)), None
    options = LossOptions(lambda_kl=lambda_kl if fraction > 0 else 0.0)
    if kind == "rbo":
        reference = build_reference(model, train_mode, packed) if fraction > 0 else None
        policy = policy_side(model, packed)

        def step():
            out = rbo_forward(policy, reference, plain, options)
            return out.loss, out.harmful_rows

        return step, reference

    from unfused_loss import unfused_forward

    def policy_logits(ids, mask):
        return model(input_ids=ids, attention_mask=mask, use_cache=False).logits

    reference = None
    if fraction > 0 and train_mode == "lora":
        def reference(ids, mask):
            with eval_mode(model), model.disable_adapter():
                return model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    elif fraction > 0:
        frozen = FrozenCopyReference(model).model

        def reference(ids, mask):
            return frozen(input_ids=ids, attention_mask=mask, use_cache=False).logits

    def step():
        out = unfused_forward(policy_logits, reference, plain, options)
        return out.loss, out.harmful_rows

    return step, reference


# ----------------------------------------------------------------------------- one variant


def run_variant(args) -> dict:
    import torch

    from sarft_ray.models import load_model_and_tokenizer
    from sarft_ray.models.config import ModelConfig
    from sarft_ray.training.config import TrainingConfig
    from sarft_ray.training.data import collate, encode_rows
    from sarft_ray.training.reference import FrozenCopyReference
    from sarft_ray.training.worker import prepare_trainable

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = load_model_and_tokenizer(ModelConfig(ref=args.model), device=device)
    cfg = TrainingConfig(mode=args.train_mode)  # paper LoRA: r=32, alpha=64, q_proj/v_proj
    rows, role_prompt, unsafe_prompt = load_rows(Path(args.data), args.batch)

    variant = args.variant
    _, fraction = parse_variant(variant)
    harmful = [False] * len(rows)
    for i in torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[: round(fraction * len(rows))]:
        harmful[int(i)] = True
    rows = [{**r, "is_harmful": h} for r, h in zip(rows, harmful)]

    def batch_for(system):
        examples = encode_rows(rows, tokenizer, system, cfg.max_source_tokens, cfg.max_target_tokens)
        return {k: v.to(device) for k, v in collate(examples, tokenizer.pad_token_id).items()}

    plain = batch_for(None)
    release = None
    if variant == "release":
        release = (FrozenCopyReference(model).model, batch_for(role_prompt), batch_for(unsafe_prompt))  # a second copy, even for LoRA
    model = prepare_trainable(model, cfg)
    step, _keep = variant_step(variant, model, args.train_mode, args.lambda_kl, plain, release, args.packing)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    setup_peak = peak_rss_mb()
    reset_ok = reset_peak_rss()
    times, cpu_times, harmful_rows = [], [], []
    for i in range(args.warmup + args.steps):
        tic, cpu_tic = time.perf_counter(), time.process_time()
        loss, flagged = step()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - tic)
            cpu_times.append(time.process_time() - cpu_tic)
            harmful_rows.append(flagged)
    result = {
        "mode": args.train_mode,
        "variant": variant,
        "device": device.type,
        "rows": len(rows),
        "tokens": int(plain["attention_mask"].sum()),
        "max_len": int(plain["input_ids"].shape[1]),
        "harmful_rows": harmful_rows,
        "step_s": statistics.median(times),
        "cpu_s": statistics.median(cpu_times),
        "step_times_s": times,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mb"] = max(setup_peak, peak_rss_mb()) if reset_ok else peak_rss_mb()
        result["setup_peak_mb"] = setup_peak
        result["step_peak_mb"] = peak_rss_mb() if reset_ok else None
    return result


# ----------------------------------------------------------------------------- the driver


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["smollm2", "synthetic"], default="smollm2",
                        help="smollm2: the real model on RoleBench rows; synthetic: random-weight Llama (torch/transformers/peft only)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data", default=None, help="reference data directory (default: SARFT_DATA_DIR or ../shared/data)")
    parser.add_argument("--modes", default="lora,full", help="training modes to measure")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch", type=int, default=10, help="smollm2: rows per step (10 makes 0.3 and 0.9 exact)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (default: 3; synthetic: 5 on CUDA, 1 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 1; synthetic: 2 on CUDA)")
    parser.add_argument("--lambda-kl", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (0: torch's default)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="smollm2: which step time the ratios use: process CPU time (robust on a shared machine) or wall time")
    parser.add_argument("--packing", action="store_true", help="sft and rbo variants run packed micro-batches (training.packing)")
    parser.add_argument("--json", help="also write the results here")
    synthetic = parser.add_argument_group("synthetic mode")
    synthetic.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    synthetic.add_argument("--size", choices=["1b", "tiny"], default="1b", help="Llama-3.2-1B's shape, or a tiny one")
    synthetic.add_argument("--vocab", type=int, default=None, help="vocabulary (default: 128256 for 1b, 4096 for tiny)")
    synthetic.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    synthetic.add_argument("--batches", default=None, help="micro-batch sizes (default: 16,64 for 1b; 4,8 for tiny)")
    synthetic.add_argument("--attn", default="sdpa", help="attention implementation (eager, sdpa, flash_attention_2)")
    synthetic.add_argument("--gradient-checkpointing", action="store_true")
    synthetic.add_argument("--peak-tflops", type=float, default=None, help="device peak dense bf16 TFLOP/s for MFU")
    synthetic.add_argument("--markdown", help="also write the table here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train-mode", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.mode == "synthetic":
        import torch

        from rbo_synthetic import run_synthetic

        args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        cuda = args.device.startswith("cuda")
        args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
        args.batches = args.batches or ("16,64" if args.size == "1b" else "4,8")
        args.steps = args.steps if args.steps is not None else (5 if cuda else 1)
        args.warmup = args.warmup if args.warmup is not None else (2 if cuda else 1)
        return run_synthetic(args)

    args.steps = 3 if args.steps is None else args.steps
    args.warmup = 1 if args.warmup is None else args.warmup
    if args.data is None:
        from sarft_ray.paths import data_dir

        args.data = str(data_dir())
    for variant in args.variants.split(","):
        parse_variant(variant)
    if args.worker:
        print("RESULT " + json.dumps(run_variant(args)), flush=True)
        return 0

    results = []
    for mode in args.modes.split(","):
        for variant in args.variants.split(","):
            cmd = [sys.executable, __file__, "--worker", "--train-mode", mode, "--variant", variant,
                   "--model", args.model, "--data", args.data, "--batch", str(args.batch), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--lambda-kl", str(args.lambda_kl), "--threads", str(args.threads)]
            cmd += ["--packing"] if args.packing else []
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{mode}/{variant} failed (exit {proc.returncode})")
            result = json.loads(line.removeprefix("RESULT "))
            results.append(result)
            print(f"{mode:5s} {variant:12s} wall {result['step_s']:7.2f} s  cpu {result['cpu_s']:7.2f} s  "
                  f"peak {result['peak_mb']:8.0f} MiB  harmful rows {result['harmful_rows']}", flush=True)

    key = "cpu_s" if args.clock == "cpu" else "step_s"
    print()
    print(f"step time = median {'process CPU' if key == 'cpu_s' else 'wall'} seconds per step")
    print("| mode | variant | step (s) | x SFT time | peak (MiB) | x SFT peak |")
    print("|---|---|---|---|---|---|")
    base = {r["mode"]: r for r in results if r["variant"] == "sft"}
    for r in results:
        sft = base.get(r["mode"])
        t = f"{r[key] / sft[key]:.2f}" if sft else "-"
        m = f"{r['peak_mb'] / sft['peak_mb']:.2f}" if sft else "-"
        print(f"| {r['mode']} | {r['variant']} | {r[key]:.2f} | {t} | {r['peak_mb']:.0f} | {m} |")
    for mode in args.modes.split(","):
        rel = next((r for r in results if r["mode"] == mode and r["variant"] == "release"), None)
        for frac in ("0.3", "0.9"):
            ours = next((r for r in results if r["mode"] == mode and r["variant"] == f"rbo@{frac}"), None)
            if rel and ours:
                print(f"{mode}: release / rbo@{frac}: time {rel[key] / ours[key]:.2f}x, "
                      f"peak {rel['peak_mb'] / ours['peak_mb']:.2f}x")
        for old, new in (("unfused-sft", "sft"), ("unfused@0.3", "rbo@0.3"), ("unfused@0.9", "rbo@0.9")):
            before = next((r for r in results if r["mode"] == mode and r["variant"] == old), None)
            after = next((r for r in results if r["mode"] == mode and r["variant"] == new), None)
            if before and after:
                print(f"{mode}: {old} / {new} (previous loss / chunked loss): time {before[key] / after[key]:.2f}x, "
                      f"peak {before['peak_mb'] / after['peak_mb']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
