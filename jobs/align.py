"""``sarft-ray align`` as a Ray job: ``ray job submit --working-dir . -- python jobs/align.py configs/repro_small.yaml``.

Builds the aligned starting model of the config's ``alignment`` section (distil
benign answers, full fine-tuning on Ray Train, held-out check) and prints the
check against its targets. A stored aligned model for the same inputs is reused.
Takes exactly the arguments of ``sarft-ray align`` (``--help`` lists them).
"""

from __future__ import annotations

import sys

from sarft_ray.job_entry import run_command


def main(argv: list[str] | None = None) -> int:
    return run_command("align", argv)


if __name__ == "__main__":
    sys.exit(main())
