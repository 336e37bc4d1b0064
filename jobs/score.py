"""``sarft-ray score`` as a Ray job: ``ray job submit --working-dir . -- python jobs/score.py configs/demo.yaml``.

Joins the cluster in RAY_ADDRESS (set by ``ray job submit``) or ``ray.address``;
run directly, it starts a local Ray instance. Inputs are checked first, and
stored scores for the same inputs are reused without starting Ray at all.
Takes exactly the arguments of ``sarft-ray score`` (``--help`` lists them).
"""

from __future__ import annotations

import sys

from sarft_ray.job_entry import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("score", argv)


if __name__ == "__main__":
    sys.exit(main())
