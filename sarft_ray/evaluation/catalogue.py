"""The evaluation's metrics: one entry per headline key, with its short name, plot label, direction and format.

Every place that shows or picks a metric reads it here: the evaluation table
(:mod:`sarft_ray.evaluation.report`), the run's comparison table, the sweep's
headline keys and objective, plot axes, and MLflow (whose metric names are
the keys themselves). Benchmarks' entries come from the benchmark registry
(:mod:`sarft_ray.evaluation.benchmarks`), so a registered benchmark is named
everywhere its figures appear.

Keys:

- ``<rolebench>_rouge_l_first`` / ``_rouge_l_max`` for each ``rolebench``
  benchmark (ROUGE-L F x100, against the first reference / the best one);
- ``<benchmark>_rr``: refusal rate in % of each ``safety`` benchmark
  (``benign``: over-refusal, lower is better) and of each ``jailbreak_<name>``;
- ``safety_avg`` (mean of the averaged safety rates: AdvBench and BeaverTails) and ``jailbreak_avg``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

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


def _specs(kind: str) -> list:
    from sarft_ray.evaluation.benchmarks import get_benchmark, registered_benchmarks

    return [get_benchmark(name) for name in registered_benchmarks(kind)]


def rolebench_benchmarks() -> list[str]:
    """The ROUGE-L-scored benchmarks, in registration order."""
    return [spec.name for spec in _specs("rolebench")]


def rate_benchmarks() -> list[str]:
    """The refusal-judged benchmarks (jailbreaks aside), in registration order."""
    return [spec.name for spec in _specs("safety")]


def averaged_benchmarks() -> list[str]:
    """The safety benchmarks whose rates ``safety_avg`` averages (lower-is-better rates never are)."""
    return [spec.name for spec in _specs("safety") if spec.averaged]


def _rate(key: str, short: str, label: str, higher_is_better: bool = True) -> Metric:
    return Metric(key, f"{short} RR" if key.endswith("_rr") else short, label, higher_is_better, digits=1)


def _entries() -> Iterator[Metric]:
    for spec in _specs("rolebench"):
        first, best = rouge_keys(spec.name)
        yield Metric(first, f"{spec.short} R-L", f"{spec.label} ROUGE-L (x100)")
        yield Metric(best, f"{spec.short} R-L max", f"{spec.label} ROUGE-L, max over refs (x100)")
    for spec in _specs("safety"):
        yield _rate(rate_key(spec.name), spec.short, spec.label, spec.higher_is_better)
    yield _rate(SAFETY_AVG, "Safety avg", "Safety avg refusal rate (%)")
    yield _rate(JAILBREAK_AVG, "Jailbreak avg", "Jailbreak avg refusal rate (%)")


class _Catalogue(Mapping):
    """Headline key -> Metric, read from the benchmark registry at each look-up (a later registration counts)."""

    def _entries(self) -> dict[str, Metric]:
        return {m.key: m for m in _entries()}

    def __getitem__(self, key: str) -> Metric:
        return self._entries()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())


CATALOGUE: Mapping[str, Metric] = _Catalogue()


def metric(key: str) -> Metric:
    """The catalogue entry of ``key``; a jailbreak's rate is made from its name, an unknown key names itself."""
    if key in CATALOGUE:
        return CATALOGUE[key]
    if key.startswith(JAILBREAK_PREFIX) and key.endswith("_rr"):
        name = key.removeprefix(JAILBREAK_PREFIX).removesuffix("_rr")
        return _rate(key, name, f"{name} jailbreak refusal rate (%)")
    return Metric(key, key, key)


def headline_keys(benchmarks: Iterable[str], jailbreaks: Iterable[str]) -> list[str]:
    """The headline keys an evaluation of ``benchmarks`` with ``jailbreaks`` reports, in the sweep tables' order:
    ROUGE-L, the refusal rates (AdvBench, BeaverTails, benign), each jailbreak's rate, then the two averages."""
    benchmarks = set(benchmarks)
    keys = [key for name in rolebench_benchmarks() if name in benchmarks for key in rouge_keys(name)]
    keys += [rate_key(name) for name in rate_benchmarks() if name in benchmarks]
    keys += [jailbreak_key(name) for name in jailbreaks]
    return keys + list(AVERAGES)
