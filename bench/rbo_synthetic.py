"""``bench/rbo_step.py --mode synthetic``: the RBO step on a random-weight Llama, with torch, transformers and peft only.

The model has Llama-3.2-1B's shape (``--size 1b``: hidden 2048, 16 layers, 32
heads, 8 key/value heads, intermediate 8192, vocabulary 128256, tied output
layer; about 1.24B parameters) or a tiny one (``--size tiny``, for CPU and
CI). Rows are random token ids shaped like RoleBench training rows without a
system prompt (prompt 20-60 tokens, answer 40-90), right-padded; the release
step's scoring prompts put a 200-token role prompt (240 for the unsafe one)
in front, like the SaRFT profiles.

Every variant of ``rbo_step.VARIANTS`` runs on the same model and batch, one
after the other in this process; each gets a fresh AdamW, and on CUDA the
peak memory is counted from its first step (the model's weights included).

Reported per variant: median wall time of a step, trained tokens per second
(non-padding tokens of the micro-batch; the same numerator for every
variant), peak memory, and MFU. Model FLOPs, attention scores left out:

- N = parameters that multiply activations: every parameter, the input
  embedding table left out unless it is also the output layer (tied);
- training: 6 N per non-padding token for full fine-tuning (forward 2N,
  gradients of activations 2N and of weights 2N); 4 N for LoRA (the frozen
  weights get no weight gradient; the adapters' own work is negligible);
- every forward without gradients a variant runs: 2 N per non-padding token
  (RBO: the reference on the harmful rows; release: two scoring passes with
  the system prompts and the reference on every row);
- MFU = those FLOPs / step time / the device's peak dense bf16 FLOP/s
  (``--peak-tflops``, or looked up from the device name; none on CPU).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from rbo_step import parse_variant, variant_step

# Peak dense bf16 tensor throughput (TFLOP/s, no sparsity) by device name.
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 125.0, "L4": 121.0}

SHAPES = {
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
}
DEFAULT_VOCAB = {"1b": 128256, "tiny": 4096}


def build_model(size: str, vocab: int, dtype: torch.dtype, device: str, attn: str, checkpointing: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=4096, tie_word_embeddings=True, rope_theta=500000.0,
                         pad_token_id=0, **SHAPES[size])
    config._attn_implementation = attn
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.config.use_cache = False
    if checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def make_trainable(model, train_mode: str):
    """The paper's LoRA (r=32, alpha=64, dropout 0.05 on q_proj/v_proj), or every weight."""
    if train_mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    else:
        model.requires_grad_(True)
    return model.train()


def flop_params(model) -> int:
    """N: parameters that multiply activations (the input embedding lookup is not a matmul unless tied)."""
    total = sum(p.numel() for p in model.parameters())
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    return total if embed is head else total - embed.numel()


def synthetic_batch(rows: int, vocab: int, fraction: float, device: str, seed: int = 0, prefix: list[int] | None = None):
    """Right-padded random rows (prompt 20-60, answer 40-90 tokens), ``fraction`` of them harmful."""
    gen = torch.Generator().manual_seed(seed)
    low = min(1000, vocab // 2)
    seqs, labels = [], []
    for _ in range(rows):
        prompt = int(torch.randint(20, 61, (1,), generator=gen))
        answer = int(torch.randint(40, 91, (1,), generator=gen))
        ids = (prefix or []) + torch.randint(low, vocab, (prompt + answer,), generator=gen).tolist()
        seqs.append(ids)
        labels.append([-100] * (len(ids) - answer) + ids[-answer:])
    length = max(len(s) for s in seqs)
    input_ids = torch.zeros(rows, length, dtype=torch.long)
    label_ids = torch.full((rows, length), -100, dtype=torch.long)
    mask = torch.zeros(rows, length, dtype=torch.long)
    for i, (ids, lab) in enumerate(zip(seqs, labels, strict=True)):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        label_ids[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    harmful = torch.zeros(rows, dtype=torch.bool)
    harmful[torch.randperm(rows, generator=gen)[: round(fraction * rows)]] = True
    batch = {"input_ids": input_ids, "attention_mask": mask, "labels": label_ids, "harmful": harmful}
    return {k: v.to(device) for k, v in batch.items()}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_cell(model, train_mode, batch_rows, variant, args, vocab, n_params, peak_flops, release_model) -> dict:
    """One variant at one micro-batch size: warm-up steps, then the measured ones."""
    kind, fraction = parse_variant(variant)
    plain = synthetic_batch(batch_rows, vocab, fraction, args.device, seed=batch_rows)
    release = None
    if kind == "release":
        gen = torch.Generator().manual_seed(7)
        role = torch.randint(min(1000, vocab // 2), vocab, (200,), generator=gen).tolist()
        unsafe = role + torch.randint(min(1000, vocab // 2), vocab, (40,), generator=gen).tolist()
        release = (release_model, synthetic_batch(batch_rows, vocab, 0.0, args.device, batch_rows, role),
                   synthetic_batch(batch_rows, vocab, 0.0, args.device, batch_rows, unsafe))
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    step, keep = variant_step(variant, model, train_mode, args.lambda_kl, plain, release, args.packing)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times, flagged = [], []
    try:
        for i in range(args.warmup + args.steps):
            _sync(args.device)
            tic = time.perf_counter()
            loss, harmful_rows = step()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(args.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - tic)
                flagged.append(harmful_rows)
    finally:
        del optimizer, keep, step
        model.zero_grad(set_to_none=True)
    mask = plain["attention_mask"]
    tokens = int(mask.sum())
    forward_tokens = 0  # tokens of the forwards without gradients
    if kind in ("rbo", "unfused") and fraction > 0:
        forward_tokens = int(mask[plain["harmful"]].sum())
    elif kind == "release":
        forward_tokens = tokens + int(release[1]["attention_mask"].sum()) + int(release[2]["attention_mask"].sum())
    step_s = statistics.median(times)
    flops = (6 if train_mode == "full" else 4) * n_params * tokens + 2 * n_params * forward_tokens
    result = {
        "mode": train_mode, "batch": batch_rows, "variant": variant, "tokens": tokens, "max_len": int(mask.shape[1]),
        "harmful_rows": flagged, "step_s": step_s, "step_times_s": times, "tokens_per_s": tokens / step_s,
        "model_tflop_per_step": flops / 1e12,
        "mfu": flops / step_s / peak_flops if peak_flops else None,
        "loss": float(loss.detach()),
    }
    if args.device.startswith("cuda"):
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def markdown(results: list[dict], meta: dict) -> str:
    """The results as a table, plus the previous loss's step time and peak relative to the chunked one."""
    params = meta.get("parameters", 0)
    size = f"{params / 1e9:.2f}B" if params >= 1e8 else f"{params / 1e6:.2f}M"
    lines = [f"RBO step, synthetic {meta['size']} Llama ({size} parameters), {meta['dtype']}, "
             f"{meta['device_name']}, attention {meta['attn']}, gradient checkpointing {meta['gradient_checkpointing']}, "
             f"packing {meta.get('packing', False)}; "
             f"median of {meta['steps']} steps after {meta['warmup']} warm-up steps", "",
             "| mode | batch | variant | step (s) | x SFT time | tokens/s | peak (MiB) | x SFT peak | MFU |",
             "|---|---|---|---|---|---|---|---|---|"]
    done = {(r["mode"], r["batch"], r["variant"]): r for r in results if "error" not in r}
    for r in results:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['batch']} | {r['variant']} | {r['error']} | | | | | |")
            continue
        sft = done.get((r["mode"], r["batch"], "sft"), {})
        cells = [
            r["mode"], r["batch"], r["variant"], f"{r['step_s']:.3f}", _ratio(r["step_s"], sft.get("step_s")),
            f"{r['tokens_per_s']:.0f}", f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-",
            _ratio(r.get("peak_mib"), sft.get("peak_mib")), f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    for (mode, batch, variant), r in done.items():
        kind, fraction = parse_variant(variant)
        old = done.get((mode, batch, "unfused-sft" if fraction == 0 else f"unfused@{fraction}"))
        if kind == "rbo" and old:
            peak = f", peak {_ratio(old['peak_mib'], r['peak_mib'])}x" if "peak_mib" in r and "peak_mib" in old else ""
            lines.append(f"- {mode}, batch {batch}, {variant}: previous loss / chunked loss: step time "
                         f"{_ratio(old['step_s'], r['step_s'])}x{peak}")
    return "\n".join(lines) + "\n"


def run_synthetic(args) -> int:
    dtype = getattr(torch, args.dtype)
    if args.device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    vocab = args.vocab or DEFAULT_VOCAB[args.size]
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in device_name), None)
    peak_flops = peak * 1e12 if peak and args.device.startswith("cuda") else None
    variants = args.variants.split(",")
    for v in variants:
        parse_variant(v)  # fail before any model is built
    results: list[dict] = []
    meta = {"size": args.size, "vocab": vocab, "dtype": args.dtype, "device": args.device, "device_name": device_name,
            "attn": args.attn, "gradient_checkpointing": args.gradient_checkpointing, "packing": args.packing, "steps": args.steps,
            "warmup": args.warmup, "lambda_kl": args.lambda_kl, "peak_tflops": peak,
            "torch": torch.__version__, "python": platform.python_version()}
    try:
        import peft
        import transformers

        meta |= {"transformers": transformers.__version__, "peft": peft.__version__}
    except ImportError:
        pass

    def write():
        if args.json:
            Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
        if args.markdown:
            Path(args.markdown).write_text(markdown(results, meta))

    for train_mode in args.modes.split(","):
        torch.manual_seed(0)
        base = build_model(args.size, vocab, dtype, args.device, args.attn, args.gradient_checkpointing)
        meta["parameters"] = sum(p.numel() for p in base.parameters())
        n_params = flop_params(base)
        release_model = None
        if "release" in variants:  # the release keeps a second copy of the weights, even for LoRA
            release_model = build_model(args.size, vocab, dtype, args.device, args.attn, False).eval().requires_grad_(False)
        model = make_trainable(base, train_mode)
        for rows in [int(b) for b in args.batches.split(",")]:
            for variant in variants:
                try:
                    result = run_cell(model, train_mode, rows, variant, args, vocab, n_params, peak_flops, release_model)
                except torch.OutOfMemoryError:
                    result = {"mode": train_mode, "batch": rows, "variant": variant, "error": "out of memory"}
                    torch.cuda.empty_cache()
                results.append(result)
                write()
                if "error" in result:
                    print(f"{train_mode:5s} batch {rows:3d} {variant:12s} {result['error']}", flush=True)
                else:
                    peak_text = f"peak {result['peak_mib']:8.0f} MiB" if "peak_mib" in result else ""
                    mfu = f"MFU {100 * result['mfu']:.1f}%" if result["mfu"] is not None else ""
                    print(f"{train_mode:5s} batch {rows:3d} {variant:12s} {result['step_s']:8.3f} s/step "
                          f"{result['tokens_per_s']:9.0f} tokens/s {peak_text} {mfu}", flush=True)
        del model, base, release_model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    meta["vocab"] = vocab
    write()
    print()
    print(markdown(results, meta))
    return 0
