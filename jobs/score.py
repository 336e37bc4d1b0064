"""RDS scoring as a Ray job: ``ray job submit --working-dir . -- python jobs/score.py --config configs/demo.yaml``.

Joins the cluster in RAY_ADDRESS (set by ``ray job submit``) or ``ray.address``;
run directly, it starts a local Ray instance. Inputs are checked first, and
stored scores for the same inputs are reused without starting Ray at all.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sarft_ray.config import load_config
from sarft_ray.errors import SarftError
from sarft_ray.scoring import score_roles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score role corpora (RDS) and store per-role harmful flags.")
    parser.add_argument("--config", required=True, help="experiment YAML file")
    parser.add_argument("--force", action="store_true", help="recompute even when stored scores match")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
        result = score_roles(cfg, force=args.force)
    except SarftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(result.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
