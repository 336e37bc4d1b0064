"""RDS scoring as a Ray job: ``ray job submit --working-dir . -- python jobs/score.py --config configs/demo.yaml``.

Joins the cluster in RAY_ADDRESS (set by ``ray job submit``) or ``ray.address``;
run directly, it starts a local Ray instance. Inputs are checked first, and
stored scores for the same inputs are reused without starting Ray at all.
"""

from __future__ import annotations

import sys

from sarft_ray.config import load_config
from sarft_ray.job_entry import job_parser, run_job
from sarft_ray.scoring import score_roles


def score(args) -> int:
    result = score_roles(load_config(args.config), force=args.force)
    print("\n".join(result.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("Score role corpora (RDS) and store per-role harmful flags.")
    parser.add_argument("--config", required=True, help="experiment YAML file")
    parser.add_argument("--force", action="store_true", help="recompute even when stored scores match")
    return run_job(parser, score, argv)


if __name__ == "__main__":
    sys.exit(main())
