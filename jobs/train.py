"""Fine-tune one role (RBO) as a Ray job.

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/train.py configs/demo.yaml --role "John Doe" [--selection rds] [--lambda 0.5]

Needs the role's stored scores (``sarft-ray score`` / ``jobs/score.py``). The
adapter or model, its resolved config and ``summary.json`` are stored under
``<output_root>/<experiment>/train/<role-slug>/<run-hash>/``.
"""

from __future__ import annotations

import sys

from sarft_ray.config import load_config
from sarft_ray.job_entry import job_parser, run_job
from sarft_ray.training.entry import summary_lines, train_role


def train(args) -> int:
    cfg = load_config(args.config)
    summary = train_role(cfg, args.role, selection=args.selection, lambda_kl=args.lambda_kl, force=args.force)
    print("\n".join(summary_lines(summary)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--role", required=True, help="role to fine-tune (a name from roles.names)")
    parser.add_argument("--selection", help="a registered selection strategy (default: training.selection)")
    parser.add_argument("--lambda", dest="lambda_kl", type=float, help="KL weight (default: training.lambda_kl)")
    parser.add_argument("--force", action="store_true", help="train again even if this run finished before")
    return run_job(parser, train, argv)


if __name__ == "__main__":
    sys.exit(main())
