"""``sarft-ray eval`` as a Ray job: evaluate one model (optionally with an adapter).

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/eval.py configs/demo.yaml --model smollm2-135m-instruct [--adapter DIR]

Prints the markdown table; the JSON and markdown tables, generations and
verdicts are stored under ``<output_root>/<experiment>/eval/<model-hash>/``.
Takes exactly the arguments of ``sarft-ray eval`` (``--help`` lists them).
"""

from __future__ import annotations

import sys

from sarft_ray.job_entry import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("eval", argv)


if __name__ == "__main__":
    sys.exit(main())
