"""A Ray Tune sweep (the config's ``sweep`` section) as a Ray job.

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/sweep.py --config configs/sweep_lambda.yaml [--restart]

Submitting the same config again after the driver died resumes the sweep from
``<output_root>/<experiment>/sweeps/<name>`` without repeating finished trials;
``--restart`` discards that state and starts over (finished training runs are
still reused from their own store).
"""

from __future__ import annotations

import argparse
import logging
import sys

from sarft_ray.config import load_config
from sarft_ray.errors import SarftError
from sarft_ray.orchestration import run_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="experiment YAML file with a sweep section")
    parser.add_argument("--restart", action="store_true", help="start the sweep afresh instead of resuming it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = run_sweep(load_config(args.config), resume=not args.restart)
    except SarftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(result.lines()))
    return 0 if not result.errored else 1


if __name__ == "__main__":
    sys.exit(main())
