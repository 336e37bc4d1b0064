"""``sarft-ray train`` as a Ray job: fine-tune one role (RBO).

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/train.py configs/demo.yaml --role "John Doe" [--selection rds] [--lambda 0.5]

Needs the role's stored scores (``sarft-ray score`` / ``jobs/score.py``). The
adapter or model, its resolved config and ``summary.json`` are stored under
``<output_root>/<experiment>/train/<role-slug>/<run-hash>/``. Takes exactly
the arguments of ``sarft-ray train`` (``--help`` lists them).
"""

from __future__ import annotations

import sys

from sarft_ray.job_entry import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("train", argv)


if __name__ == "__main__":
    sys.exit(main())
