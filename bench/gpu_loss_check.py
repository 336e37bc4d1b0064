"""On the device: the chunked RBO loss against the previous full-logits loss (value and gradients), LoRA and full.

    python bench/gpu_loss_check.py --device cuda

A tiny random Llama in float64 (the tests' comparison, on the device's
kernels) and the Llama-3.2-1B shape in bfloat16 (the production dtype; the
two losses then differ by bf16 rounding only: reported, not judged). Needs
torch, transformers and peft only; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
sys.path.append(str(ROOT / "tests"))

from rbo_step import variant_step  # noqa: E402
from rbo_synthetic import build_model, make_trainable, synthetic_batch  # noqa: E402


def compare(size: str, vocab: int, dtype, device: str, train_mode: str, rows: int) -> dict:
    from sarft_ray.training import fused_loss

    # the tiny model's whole batch would fit one chunk: 64 positions per chunk make several
    fused_loss.CHUNK_ELEMENTS = 64 * vocab if size == "tiny" else 2**25
    torch.manual_seed(0)
    model = make_trainable(build_model(size, vocab, dtype, device, "sdpa", False), train_mode)
    model.eval()  # no dropout: both losses see the same network
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    plain = synthetic_batch(rows, vocab, 0.5, device, seed=1)
    params = [p for p in model.parameters() if p.requires_grad]
    out = {}
    for variant in ("rbo@0.5", "unfused@0.5"):
        step, keep = variant_step(variant, model, train_mode, 0.5, plain)
        loss, _ = step()
        grads = torch.autograd.grad(loss, params)
        out[variant] = (float(loss.detach()), [g.double() for g in grads])
        del keep
    (a, ga), (b, gb) = out["rbo@0.5"], out["unfused@0.5"]
    scale = max(float(g.abs().max()) for g in gb) or 1.0
    return {"size": size, "dtype": str(dtype).removeprefix("torch."), "mode": train_mode, "loss_chunked": a, "loss_previous": b,
            "loss_abs_diff": abs(a - b), "grad_max_abs_diff": max(float((x - y).abs().max()) for x, y in zip(ga, gb, strict=True)),
            "grad_max_abs": scale}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--skip-1b", action="store_true")
    args = parser.parse_args()
    results = []
    for mode in ("lora", "full"):
        results.append(compare("tiny", 4096, torch.float64, args.device, mode, 8))
        if not args.skip_1b:
            results.append(compare("1b", 128256, torch.bfloat16, args.device, mode, 8))
    ok = all(r["loss_abs_diff"] < 1e-6 and r["grad_max_abs_diff"] < 1e-6 for r in results if r["dtype"] == "float64")
    print(json.dumps({"float64_agrees": ok, "results": results}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
