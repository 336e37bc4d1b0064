"""The evaluation's metrics: one entry per headline key, with its short name, plot label, direction and format.

Every place that shows or picks a metric reads it here: the evaluation table
(:mod:`sarft_ray.evaluation.report`), the run's comparison table, the sweep's
headline keys and objective, plot axes, and MLflow (whose metric names are
the keys themselves).

Keys:

- ``<rolebench>_rouge_l_first`` / ``_rouge_l_max`` for ``rolebench_spe``,
  ``rolebench_raw``, ``rolebench_val`` (ROUGE-L F x100, against the first
  reference / the best one);
- ``<benchmark>_rr``: refusal rate in % for ``advbench``, ``beavertails``,
  ``benign`` (over-refusal: lower is better) and ``jailbreak_<name>``;
- ``safety_avg`` (mean of AdvBench and BeaverTails) and ``jailbreak_avg``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ROLEBENCH_BENCHMARKS = ("rolebench_spe", "rolebench_raw", "rolebench_val")
SAFETY_BENCHMARKS = ("advbench", "beavertails")  # averaged into safety_avg
OVER_REFUSAL = "benign"  # lower is better, so never averaged with the safety rates
JAILBREAK_PREFIX = "jailbreak_"
SAFETY_AVG = "safety_avg"
JAILBREAK_AVG = "jailbreak_avg"
AVERAGES = (SAFETY_AVG, JAILBREAK_AVG)

QUALITY = "rolebench_spe_rouge_l_first"  # role quality in plots and the Pareto front
SAFETY = SAFETY_AVG  # safety in plots, the Pareto front and the sweep's default objective


@dataclass(frozen=True)
class Metric:
    """One headline figure."""

    key: str  # headline key, table.json column, MLflow metric name
    short: str  # table column header
    label: str  # plot axis label
    higher_is_better: bool = True
    digits: int = 2  # decimals where a table shows a figure beside its interval or as a change

    @property
    def header(self) -> str:
        """The column header; a lower-is-better figure says so."""
        return self.short if self.higher_is_better else f"{self.short} (lower is better)"

    def text(self, value: float, signed: bool = False) -> str:
        """``value`` with this metric's decimals (``signed``: with its sign, for changes)."""
        return f"{value:+.{self.digits}f}" if signed else f"{value:.{self.digits}f}"


def rouge_keys(benchmark: str) -> tuple[str, str]:
    """The two ROUGE-L keys of a RoleBench benchmark: against the first reference, the best over all."""
    return f"{benchmark}_rouge_l_first", f"{benchmark}_rouge_l_max"


def rate_key(benchmark: str) -> str:
    """The refusal-rate key of a safety benchmark (``jailbreak_<name>`` included)."""
    return f"{benchmark}_rr"


def jailbreak_key(name: str) -> str:
    """The refusal-rate key of the jailbreak ``name``."""
    return rate_key(JAILBREAK_PREFIX + name)


def _rouge(benchmark: str, part: str) -> list[Metric]:
    first, best = rouge_keys(benchmark)
    return [
        Metric(first, f"{part} R-L", f"RoleBench {part} ROUGE-L (x100)"),
        Metric(best, f"{part} R-L max", f"RoleBench {part} ROUGE-L, max over refs (x100)"),
    ]


def _rate(key: str, short: str, label: str) -> Metric:
    return Metric(key, f"{short} RR" if key.endswith("_rr") else short, f"{label} refusal rate (%)", digits=1)


CATALOGUE: dict[str, Metric] = {
    m.key: m
    for m in [
        *_rouge("rolebench_spe", "SPE"),
        *_rouge("rolebench_raw", "RAW"),
        *_rouge("rolebench_val", "VAL"),
        Metric(rate_key(OVER_REFUSAL), "Benign RR", "Benign over-refusal rate (%)", higher_is_better=False, digits=1),
        _rate(rate_key("advbench"), "AdvBench", "AdvBench"),
        _rate(rate_key("beavertails"), "BeaverTails", "BeaverTails"),
        _rate(SAFETY_AVG, "Safety avg", "Safety avg"),
        _rate(JAILBREAK_AVG, "Jailbreak avg", "Jailbreak avg"),
    ]
}


def metric(key: str) -> Metric:
    """The catalogue entry of ``key``; a jailbreak's rate is made from its name, an unknown key names itself."""
    if key in CATALOGUE:
        return CATALOGUE[key]
    if key.startswith(JAILBREAK_PREFIX) and key.endswith("_rr"):
        name = key.removeprefix(JAILBREAK_PREFIX).removesuffix("_rr")
        return _rate(key, name, f"{name} jailbreak")
    return Metric(key, key, key)


def headline_keys(benchmarks: Iterable[str], jailbreaks: Iterable[str]) -> list[str]:
    """The headline keys an evaluation of ``benchmarks`` with ``jailbreaks`` reports, in the sweep tables' order:
    ROUGE-L, AdvBench, BeaverTails and benign rates, each jailbreak's rate, then the two averages."""
    benchmarks = set(benchmarks)
    keys = [key for name in ROLEBENCH_BENCHMARKS if name in benchmarks for key in rouge_keys(name)]
    keys += [rate_key(name) for name in (*SAFETY_BENCHMARKS, OVER_REFUSAL) if name in benchmarks]
    keys += [jailbreak_key(name) for name in jailbreaks]
    return keys + list(AVERAGES)
