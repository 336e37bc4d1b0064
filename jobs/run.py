"""``sarft-ray run`` as a Ray job: score, train, evaluate, tabulate and track every role.

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/run.py configs/demo.yaml [--force] [--role NAME] [--set KEY.PATH=VALUE]

Joins the cluster in RAY_ADDRESS (set by ``ray job submit``) or ``ray.address``;
run directly, it starts a local Ray instance. Finished stages are reused; the
per-role table, plots and report go to ``<output_root>/<experiment>/report/``,
runs and metrics to MLflow (``tracking.mlflow_uri``, MLFLOW_TRACKING_URI, or a
sqlite file in the experiment directory). Takes exactly the arguments of
``sarft-ray run`` (``--help`` lists them).
"""

from __future__ import annotations

import sys

from sarft_ray.job_entry import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("run", argv)


if __name__ == "__main__":
    sys.exit(main())
