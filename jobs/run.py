"""The whole pipeline for every role as a Ray job: score, train, evaluate, tabulate, track.

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/run.py --config configs/demo.yaml [--force]

Joins the cluster in RAY_ADDRESS (set by ``ray job submit``) or ``ray.address``;
run directly, it starts a local Ray instance. Finished stages are reused; the
per-role table, plots and report go to ``<output_root>/<experiment>/report/``,
runs and metrics to MLflow (``tracking.mlflow_uri``, MLFLOW_TRACKING_URI, or a
sqlite file in the experiment directory).
"""

from __future__ import annotations

import sys

from sarft_ray.config import load_config
from sarft_ray.job_entry import job_parser, run_job
from sarft_ray.orchestration import run_pipeline


def run(args) -> int:
    result = run_pipeline(load_config(args.config), force=args.force)
    print("\n".join(result.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="experiment YAML file")
    parser.add_argument("--force", action="store_true", help="redo every stage even when stored results match")
    return run_job(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
