"""Safety alignment as a Ray job: ``ray job submit --working-dir . -- python jobs/align.py --config configs/repro_small.yaml``.

Builds the aligned starting model of the config's ``alignment`` section (distil
benign answers, full fine-tuning on Ray Train, held-out check) and prints the
check against its targets. A stored aligned model for the same inputs is reused.
"""

from __future__ import annotations

import sys

from sarft_ray.alignment.stage import align_model
from sarft_ray.config import load_config
from sarft_ray.job_entry import job_parser, run_job


def align(args) -> int:
    result = align_model(load_config(args.config), force=args.force)
    print("\n".join(result.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("Safety-align the config's model.ref before role fine-tuning.")
    parser.add_argument("--config", required=True, help="experiment YAML file with an alignment section")
    parser.add_argument("--force", action="store_true", help="align again even when a stored aligned model matches")
    return run_job(parser, align, argv)


if __name__ == "__main__":
    sys.exit(main())
