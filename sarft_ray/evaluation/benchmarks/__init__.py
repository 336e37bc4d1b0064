"""The benchmarks an evaluation asks, a registry: RoleBench SPE/RAW/VAL (role quality), AdvBench,
BeaverTails and benign instructions (refusal rates); jailbreaks disguise AdvBench's goals.

Extending: write the item builder (``items(request) -> rows``, see
:mod:`sarft_ray.evaluation.benchmarks.registry`) in one module and add one
line, ``register_benchmark(BenchmarkSpec(...))``, below or before the config
is validated; ``evaluation.benchmarks``, ``evaluation.limits``,
``evaluation.paths``, the held-out questions, ``validate`` and the metric
catalogue take it from there.
"""

from __future__ import annotations

from sarft_ray.evaluation.benchmarks import rolebench, safety
from sarft_ray.evaluation.benchmarks.registry import BenchmarkSpec, register_benchmark
from sarft_ray.facade import lazy_exports

_PUBLIC = {
    "items": (
        "ITEM_SCHEMA benchmark_paths build_items check_lines heldout_questions "
        "jailbreak_items jailbreaks_by_benchmark"
    ),
    "registry": (
        "ItemRequest check_benchmark_name get_benchmark is_safety item "
        "registered_benchmarks unknown_benchmark"
    ),
    "select": "first_per_group stratified_head",
}
__getattr__, _LAZY = lazy_exports(__name__, _PUBLIC)
__all__ = sorted({*_LAZY, "BenchmarkSpec", "register_benchmark"})

register_benchmark(BenchmarkSpec(
    "rolebench_spe", "rolebench", rolebench.spe_items, "SPE", "RoleBench SPE", "first N questions per role",
    default_file=rolebench.SPE_FILE, file_help="held-out role-specific questions (RoleBench instruction generalization)",
    heldout=rolebench.spe_heldout, check=rolebench.spe_check,
))
register_benchmark(BenchmarkSpec(
    "rolebench_raw", "rolebench", rolebench.raw_items, "RAW", "RoleBench RAW", "first N instructions per role",
))
register_benchmark(BenchmarkSpec(
    "rolebench_val", "rolebench", rolebench.val_items, "VAL", "RoleBench VAL", "first N validation questions per role",
))
register_benchmark(BenchmarkSpec(
    "rolebench_val_spe", "rolebench", rolebench.val_spe_items, "VAL-SPE", "RoleBench VAL role-specific",
    "first N role-specific validation questions per role",
))
register_benchmark(BenchmarkSpec(
    "rolebench_val_raw", "rolebench", rolebench.val_raw_items, "VAL-RAW", "RoleBench VAL general",
    "first N general validation instructions per role",
))
register_benchmark(BenchmarkSpec(
    "advbench", "safety", safety.advbench_items, "AdvBench", "AdvBench refusal rate (%)",
    "first N goals (jailbreaks use the same goals)", default_file=safety.ADVBENCH_FILE,
    heldout=safety.advbench_heldout, check=safety.advbench_check, averaged=True,
))
register_benchmark(BenchmarkSpec(
    "beavertails", "safety", safety.beavertails_items, "BeaverTails", "BeaverTails refusal rate (%)",
    "N prompts spread evenly over the categories", default_file=safety.BEAVERTAILS_FILE,
    heldout=safety.beavertails_heldout, check=safety.beavertails_check, averaged=True,
))
register_benchmark(BenchmarkSpec(
    "benign", "safety", safety.benign_items, "Benign", "Benign over-refusal rate (%)", "first N benign instructions",
    file_help="benign instructions (jsonl/csv with an 'instruction' or 'prompt' field) for the over-refusal rate",
    heldout=safety.benign_heldout, higher_is_better=False,
))
