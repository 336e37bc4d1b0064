"""Evaluate one model (optionally with an adapter) as a Ray job.

    ray job submit --address http://HOST:8265 --working-dir . -- \\
        python jobs/eval.py configs/demo.yaml --model smollm2-135m-instruct [--adapter DIR]

Prints the markdown table; the JSON and markdown tables, generations and
verdicts are stored under ``<output_root>/<experiment>/eval/<model-hash>/``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sarft_ray.config import load_config
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.runner import evaluate_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--model", help="model reference (default: the config's model.ref)")
    parser.add_argument("--adapter", help="PEFT adapter directory to apply to the model")
    parser.add_argument("--role", action="append", dest="roles", help="role(s) to evaluate (default: the config's)")
    parser.add_argument("--force", action="store_true", help="regenerate answers even if stored")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
        result = evaluate_model(cfg, model=args.model, adapter=args.adapter, roles=args.roles, force=args.force)
    except SarftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.markdown)
    print(f"stored in {result.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
