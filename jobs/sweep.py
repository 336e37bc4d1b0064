"""A Ray Tune sweep (the config's ``sweep`` section) as a Ray job.

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/sweep.py --config configs/sweep_lambda.yaml [--restart]

Submitting the same config again after the driver died resumes the sweep from
``<output_root>/<experiment>/sweeps/<name>`` without repeating finished trials;
``--restart`` discards that state and starts over (finished training runs are
still reused from their own store).
"""

from __future__ import annotations

import sys

from sarft_ray.config import load_config
from sarft_ray.job_entry import job_parser, run_job
from sarft_ray.orchestration import run_sweep


def sweep(args) -> int:
    result = run_sweep(load_config(args.config), resume=not args.restart)
    print("\n".join(result.lines()))
    return 0 if not result.errored else 1


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="experiment YAML file with a sweep section")
    parser.add_argument("--restart", action="store_true", help="start the sweep afresh instead of resuming it")
    return run_job(parser, sweep, argv)


if __name__ == "__main__":
    sys.exit(main())
