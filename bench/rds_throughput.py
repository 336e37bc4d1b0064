"""RDS scoring throughput: naive per-sample scoring vs the batched core, without and with prefix reuse.

    (a) naive: the paper's description taken literally: one sample at a time,
        three forward passes (role prompt, unsafe prompt, no system prompt),
        full-vocabulary logits over the whole sequence;
    (b) batched: two conditioned passes (role, unsafe), right-padded batches,
        logits only where answer tokens are predicted;
    (c) batched with the role's system-prompt key/value cache computed once
        and shared by every batch; the output layer runs only at the positions
        that predict answer tokens, in chunks;
    (c0) (c) through the previous scorer (``bench/rds_previous.py``): logits for
        every row over the range of answer columns, a float32 log-softmax over
        the whole vocabulary; measured in the same run as (c).

Modes:
    smollm2    (default) SmolLM2-135M-Instruct on CPU, real RoleBench samples of
               four roles and their SaRFT prompts, the same samples for (a)-(c).
    synthetic  a Llama-shaped model with random weights (default: 1B-sized,
               Llama-3.2-1B shape) on any device and dtype, synthetic token ids
               with prompt/answer lengths like RoleBench's. Needs only torch and
               transformers (no tokenizer, Ray, pyarrow or pydantic), so it runs
               on a bare GPU machine.

On a machine shared with other work, wall-clock rates swing with the load;
with ``--threads 1`` the process's CPU time (also reported) measures the work
each scorer does and is far steadier.

Examples:
    python bench/rds_throughput.py --samples 200 --threads 1
    python bench/rds_throughput.py --mode synthetic --device cuda --dtype bfloat16 --samples 512 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/rds_previous.py, also when run through runpy

from rds_previous import previous_scorer, range_logits_sums  # noqa: E402

from sarft_ray.scoring.logprob import (  # noqa: E402
    batched_logprob_sums,
    compute_prefix,
    reference_logprob,
)

DEMO_ROLES = ["John Doe", "Tom Ripley", "John Keating", "Walt Kowalski"]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str):
    """Run ``fn``; return its result, wall-clock seconds and this process's CPU seconds."""
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start, time.process_time() - cpu_start


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ---------------------------------------------------------------- smollm2 mode


def smollm2_samples(n: int):
    from sarft_ray.data import (
        CorpusConfig,
        PromptsConfig,
        load_corpus,
        load_role_prompts,
    )
    from sarft_ray.paths import data_dir

    base = data_dir()
    corpus = CorpusConfig(
        paths=[
            {"path": base / "rolebench/role-generalization/role_specific/test.jsonl"},
            {"path": base / "rolebench/role-generalization/general/test.jsonl"},
        ]
    )
    table = load_corpus(corpus, DEMO_ROLES)
    prompts = load_role_prompts(PromptsConfig(path=base / "sarft_profiles/role_and_unsafe_prompts.json"), DEMO_ROLES)
    per_role = -(-n // len(DEMO_ROLES))
    samples = []
    for role in DEMO_ROLES:
        rows = [r for r in table.to_pylist() if r["role"] == role and r["split"] == "train"][:per_role]
        samples += rows
    return samples[:n], prompts


def run_smollm2(args) -> dict:
    from sarft_ray.models import encode_pair, load_model_and_tokenizer
    from sarft_ray.scoring.config import ScoringConfig
    from sarft_ray.scoring.core import PrefixCache, score_role_samples

    torch.set_num_threads(args.threads)
    samples, prompts = smollm2_samples(args.samples)
    model, tokenizer = load_model_and_tokenizer("smollm2-135m-instruct", args.device)
    by_role = {role: [s for s in samples if s["role"] == role] for role in DEMO_ROLES}
    by_role = {role: rows for role, rows in by_role.items() if rows}
    results: dict = {"samples": len(samples), "phases": {}}

    def naive(rows):
        out = []
        for s in rows:
            p = prompts[s["role"]]
            means = {}
            for name, system in (("role", p.role_prompt), ("unsafe", p.unsafe_prompt), ("none", None)):
                pair = encode_pair(tokenizer, s["input"], s["output"], system)
                means[name] = reference_logprob(model, pair.prompt_ids, pair.answer_ids) / len(pair.answer_ids)
            out.append(means)
        return out

    def batched(rows, reuse: bool):
        cfg = ScoringConfig(batch_size=args.batch_size, prefix_reuse=reuse)
        cache = PrefixCache(model, tokenizer) if reuse else None  # prefix work is part of the timed run
        cols = score_role_samples(
            model, tokenizer, prompts[rows[0]["role"]], [r["input"] for r in rows], [r["output"] for r in rows], cfg, prefixes=cache
        ).columns
        return [{"role": a, "unsafe": b} for a, b in zip(cols["logp_role"], cols["logp_unsafe"], strict=True)]

    def previous(rows):
        with previous_scorer():
            return batched(rows, True)

    lengths = [len(encode_pair(tokenizer, s["input"], s["output"], prompts[s["role"]].role_prompt).prompt_ids) for s in samples]
    answers = [len(encode_pair(tokenizer, s["input"], s["output"]).answer_ids) for s in samples]
    results["mean_prompt_tokens_role"] = sum(lengths) / len(lengths)
    results["mean_answer_tokens"] = sum(answers) / len(answers)
    phases = {
        "a_naive_3pass": naive,
        "b_batched_2pass": lambda rows: batched(rows, False),
        "c_batched_2pass_prefix": lambda rows: batched(rows, True),
        "c0_previous_2pass_prefix": lambda rows: previous(rows),
    }
    outputs = {name: [] for name in phases}
    seconds = dict.fromkeys(phases, 0.0)
    cpu_seconds = dict.fromkeys(phases, 0.0)
    # The phases take turns role by role, so a change in the machine's load hits all three alike.
    load_before = _load()
    with torch.no_grad():
        for role, rows in by_role.items():
            for name, fn in phases.items():
                out, took, cpu = _timed(lambda fn=fn, rows=rows: fn(rows), args.device)
                outputs[name] += out
                seconds[name] += took
                cpu_seconds[name] += cpu
                print(f"{role}: {name}: {len(rows)} samples in {took:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    n = len(samples)
    for name in phases:
        results["phases"][name] = {
            "seconds": round(seconds[name], 2),
            "samples_per_s": round(n / seconds[name], 3),
            "cpu_seconds": round(cpu_seconds[name], 2),
            "samples_per_cpu_s": round(n / cpu_seconds[name], 3),
        }
        print(
            f"{name}: {n} samples in {seconds[name]:.1f} s = {n / seconds[name]:.2f} samples/s wall; "
            f"{cpu_seconds[name]:.1f} s CPU = {n / cpu_seconds[name]:.2f} samples per CPU-second",
            flush=True,
        )
    results["loadavg_before"], results["loadavg_after"] = load_before, _load()
    a, c = outputs["a_naive_3pass"], outputs["c_batched_2pass_prefix"]
    results["max_abs_diff_mean_logp_a_vs_c"] = max(abs(x[k] - y[k]) for x, y in zip(a, c, strict=True) for k in ("role", "unsafe"))
    results["harmful_flags_agree"] = sum((x["unsafe"] > x["role"]) == (y["unsafe"] > y["role"]) for x, y in zip(a, c, strict=True))
    results["harmful_fraction"] = sum(y["unsafe"] > y["role"] for y in c) / len(c)
    c0 = outputs["c0_previous_2pass_prefix"]
    results["max_abs_diff_mean_logp_c0_vs_c"] = max(abs(x[k] - y[k]) for x, y in zip(c0, c, strict=True) for k in ("role", "unsafe"))
    results["harmful_flags_agree_c0_vs_c"] = sum((x["unsafe"] > x["role"]) == (y["unsafe"] > y["role"]) for x, y in zip(c0, c, strict=True))
    return results


# -------------------------------------------------------------- synthetic mode


def llama_config(size: str, vocab: int):
    from transformers import LlamaConfig

    shapes = {
        # Llama-3.2-1B's shape (about 1.24B parameters with its 128k vocabulary).
        "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8},
        "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2},
    }
    return LlamaConfig(vocab_size=vocab, max_position_embeddings=4096, tie_word_embeddings=True, rope_theta=500000.0, **shapes[size])


def synthetic_samples(n: int, vocab: int, seed: int = 0):
    """Token ids shaped like the demo's SmolLM2 prompts: ~200-token role prompt, +40 for the unsafe one."""
    gen = torch.Generator().manual_seed(seed)

    def ids(k):
        return torch.randint(min(1000, vocab // 2), vocab - 1, (k,), generator=gen).tolist()

    heads = {"role": ids(200), "unsafe": None, "none": ids(20)}
    heads["unsafe"] = heads["role"] + ids(40)
    samples = []
    for _ in range(n):
        question = ids(int(torch.randint(10, 60, (1,), generator=gen)))
        answer = ids(int(torch.randint(40, 110, (1,), generator=gen)))
        samples.append((question, answer))
    return heads, samples


def run_synthetic(args) -> dict:
    from transformers import LlamaForCausalLM

    dtype = getattr(torch, args.dtype)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = llama_config(args.size, args.vocab)
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    heads, samples = synthetic_samples(args.samples, args.vocab)
    naive_n = min(len(samples), args.naive_samples)
    results: dict = {"samples": len(samples), "naive_samples": naive_n, "parameters": params, "phases": {}}
    pad = 0

    def naive():
        out = []
        for question, answer in samples[:naive_n]:
            out.append({c: reference_logprob(model, heads[c] + question, answer) for c in ("role", "unsafe", "none")})
        return out

    def batched(reuse: bool, scorer=batched_logprob_sums):
        out = {c: [] for c in ("role", "unsafe")}
        for c in out:
            prefix = compute_prefix(model, heads[c]) if reuse else None
            for start in range(0, len(samples), args.batch_size):
                chunk = samples[start : start + args.batch_size]
                prompts = [q if reuse else heads[c] + q for q, _ in chunk]
                out[c] += scorer(model, prompts, [a for _, a in chunk], pad, prefix)
        return out

    with torch.no_grad():
        batched(True)  # warm-up: CUDA kernels, allocator
        _sync(args.device)
        outputs = {}
        for name, fn, n in (
            ("a_naive_3pass", naive, naive_n),
            ("b_batched_2pass", lambda: batched(False), len(samples)),
            ("c_batched_2pass_prefix", lambda: batched(True), len(samples)),
            ("c0_previous_2pass_prefix", lambda: batched(True, range_logits_sums), len(samples)),
        ):
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            outputs[name], seconds, _ = _timed(fn, args.device)
            conditions = 3 if name.startswith("a_") else 2
            tokens = sum(len(heads[c]) + len(q) + len(a) for q, a in samples[:n] for c in ("role", "unsafe", "none")[:conditions])
            results["phases"][name] = {
                "seconds": round(seconds, 3),
                "samples_per_s": round(n / seconds, 2),
                "tokens_per_s": round(tokens / seconds),
            }
            if args.device.startswith("cuda"):
                results["phases"][name]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            print(f"{name}: {n} samples in {seconds:.2f} s = {n / seconds:.1f} samples/s, {tokens / seconds:.0f} tokens/s", flush=True)
    b, c = outputs["b_batched_2pass"], outputs["c_batched_2pass_prefix"]
    a = outputs["a_naive_3pass"]
    results["max_abs_diff_sum_logp_b_vs_c"] = max(abs(x - y) for k in b for x, y in zip(b[k], c[k], strict=True))
    results["max_abs_diff_sum_logp_a_vs_c"] = max(abs(a[i][k] - c[k][i]) for i in range(naive_n) for k in ("role", "unsafe"))
    c0 = outputs["c0_previous_2pass_prefix"]
    results["max_abs_diff_sum_logp_c0_vs_c"] = max(abs(x - y) for k in c for x, y in zip(c[k], c0[k], strict=True))
    return results


# ------------------------------------------------------------------------ main


def ratios(results: dict, key: str = "samples_per_s") -> dict:
    rate = {k: v[key] for k, v in results["phases"].items()}
    return {
        "b_over_a": round(rate["b_batched_2pass"] / rate["a_naive_3pass"], 2),
        "c_over_a": round(rate["c_batched_2pass_prefix"] / rate["a_naive_3pass"], 2),
        "c_over_b": round(rate["c_batched_2pass_prefix"] / rate["b_batched_2pass"], 2),
        "c_over_c0": round(rate["c_batched_2pass_prefix"] / rate["c0_previous_2pass_prefix"], 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["smollm2", "synthetic"], default="smollm2")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on CPU")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="synthetic mode: float32 or bfloat16")
    parser.add_argument("--size", choices=["1b", "tiny"], default="1b", help="synthetic mode: model shape")
    parser.add_argument("--vocab", type=int, default=128256, help="synthetic mode: vocabulary size")
    parser.add_argument("--naive-samples", type=int, default=64, help="synthetic mode: samples for the slow naive phase")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    results = run_smollm2(args) if args.mode == "smollm2" else run_synthetic(args)
    results["ratios"] = ratios(results)
    if args.mode == "smollm2":
        results["ratios_cpu_time"] = ratios(results, "samples_per_cpu_s")
    results["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results["environment"] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
    }
    r = results["ratios"]
    print(f"ratios (wall clock): (b)/(a) = {r['b_over_a']}x   (c)/(a) = {r['c_over_a']}x   (c)/(b) = {r['c_over_b']}x")
    if "ratios_cpu_time" in results:
        r = results["ratios_cpu_time"]
        print(f"ratios (CPU time):   (b)/(a) = {r['b_over_a']}x   (c)/(a) = {r['c_over_a']}x   (c)/(b) = {r['c_over_b']}x")
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
