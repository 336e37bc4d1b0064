"""Evaluate one model (optionally with an adapter) as a Ray job.

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/eval.py configs/demo.yaml --model smollm2-135m-instruct [--adapter DIR]

Prints the markdown table; the JSON and markdown tables, generations and
verdicts are stored under ``<output_root>/<experiment>/eval/<model-hash>/``.
"""

from __future__ import annotations

import sys

from sarft_ray.config import load_config
from sarft_ray.evaluation.runner import evaluate_model
from sarft_ray.job_entry import job_parser, run_job
from sarft_ray.validate import check_model_ref


def evaluate(args) -> int:
    cfg = load_config(args.config)
    if args.model is not None:
        check_model_ref(args.model, "--model")  # a wrong --model fails now, not once Ray and the generators are up
    result = evaluate_model(cfg, model=args.model, adapter=args.adapter, roles=args.roles, force=args.force)
    print(result.markdown)
    print(f"stored in {result.directory}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--model", help="model reference (default: the config's model.ref)")
    parser.add_argument("--adapter", help="PEFT adapter directory to apply to the model")
    parser.add_argument("--role", action="append", dest="roles", help="role(s) to evaluate (default: the config's)")
    parser.add_argument("--force", action="store_true", help="regenerate answers even if stored")
    return run_job(parser, evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
