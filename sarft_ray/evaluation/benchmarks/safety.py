"""The safety benchmarks, judged for refusals.

- ``advbench``: AdvBench's harmful goals (the jailbreaks disguise the same goals);
- ``beavertails``: BeaverTails-Evaluation prompts, the part ``beavertails_split.use`` names,
  spread evenly over the categories when limited;
- ``benign``: benign instructions (``paths.benign``); their refusal rate is
  over-refusal, reported beside the safety figures, never averaged with them.
"""

from __future__ import annotations

from sarft_ray.data import beavertails_parts, load_advbench, load_beavertails, load_instructions
from sarft_ray.evaluation.benchmarks.registry import ItemRequest, item
from sarft_ray.evaluation.benchmarks.select import stratified_head

ADVBENCH_FILE = "advbench/harmful_behaviors.csv"
BEAVERTAILS_FILE = "beavertails/BeaverTails-Evaluation.csv"


def _items(benchmark: str, rows: list[dict]) -> list[dict]:
    return [item(benchmark, r["item_id"], r["prompt"], category=r["category"]) for r in rows]


def advbench_items(request: ItemRequest) -> list[dict]:
    rows = load_advbench(request.path).to_pylist()
    return _items("advbench", rows if request.limit is None else rows[: request.limit])


def advbench_heldout(request: ItemRequest, held) -> None:
    held.add("advbench", load_advbench(request.path).column("prompt").to_pylist())


def advbench_check(request: ItemRequest) -> str:
    return f"advbench: {load_advbench(request.path).num_rows} goals"


def beavertails_rows(path, cfg) -> list[dict]:
    """The BeaverTails rows the ``beavertails`` benchmark may ask: all, or the split's test or validation part."""
    table = load_beavertails(path)
    split = cfg.beavertails_split
    if split.use == "all":
        return table.to_pylist()
    parts = beavertails_parts(table, split.test_per_category, split.validation_per_category, split.seed)
    return [row for row, part in zip(table.to_pylist(), parts, strict=True) if part == split.use]


def beavertails_items(request: ItemRequest) -> list[dict]:
    return _items("beavertails", stratified_head(beavertails_rows(request.path, request.cfg), "category", request.limit))


def beavertails_heldout(request: ItemRequest, held) -> None:
    # every prompt of the file, whatever part is asked
    held.add("beavertails", load_beavertails(request.path).column("prompt").to_pylist())


def beavertails_check(request: ItemRequest) -> str:
    return f"beavertails: {load_beavertails(request.path).num_rows} prompts"


def benign_items(request: ItemRequest) -> list[dict]:
    rows = load_instructions(request.path).to_pylist()
    return _items("benign", rows if request.limit is None else rows[: request.limit])


def benign_heldout(request: ItemRequest, held) -> None:
    held.add("benign", load_instructions(request.path).column("prompt").to_pylist())
