"""``sarft-ray sweep`` as a Ray job: a Ray Tune sweep over the config's ``sweep`` section.

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/sweep.py configs/sweep_lambda.yaml [--restart]

Submitting the same config again after the driver died resumes the sweep from
``<output_root>/<experiment>/sweeps/<name>`` without repeating finished trials;
``--restart`` discards that state and starts over (finished training runs are
still reused from their own store). Takes exactly the arguments of
``sarft-ray sweep`` (``--help`` lists them).
"""

from __future__ import annotations

import sys

from sarft_ray.job_entry import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("sweep", argv)


if __name__ == "__main__":
    sys.exit(main())
