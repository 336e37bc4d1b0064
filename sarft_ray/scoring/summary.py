"""Per-role summary of the scores: counts, harmful fraction, mean scores; JSON and a bar chart."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from sarft_ray.atomic import write_atomic, write_text


@dataclass(frozen=True)
class RoleStats:
    """What one role's scores add up to."""

    role: str
    slug: str
    samples: int
    harmful: int
    harmful_fraction: float
    mean_logp_role: float
    mean_logp_unsafe: float
    mean_logp_none: float | None
    mean_s_role: float | None
    mean_s_unsafe: float | None
    mean_answer_tokens: float
    truncated: int


class RoleAccumulator:
    """Running sums over a role's score batches; also checks each row index arrives exactly once.

    Count, sum and sum of squares of ``row_index`` must equal those of
    0..n-1: a duplicated or missing row changes at least one of them in any
    realistic failure, at O(1) memory.
    """

    _MEANS = ("logp_role", "logp_unsafe", "logp_none", "s_role", "s_unsafe", "n_answer_tokens")

    def __init__(self, role: str, slug: str):
        self.role, self.slug = role, slug
        self.samples = self.harmful = self.truncated = 0
        self.index_sum = self.index_sq = 0
        self.sums = dict.fromkeys(self._MEANS, 0.0)
        self.has_none = False

    def update(self, table: pa.Table) -> None:
        self.samples += table.num_rows
        self.harmful += int(pc.sum(table["is_harmful"].cast(pa.int64())).as_py() or 0)
        self.truncated += int(pc.sum(table["truncated"].cast(pa.int64())).as_py() or 0)
        index = table["row_index"].cast(pa.int64())
        self.index_sum += int(pc.sum(index).as_py() or 0)
        self.index_sq += int(pc.sum(pc.multiply(index, index)).as_py() or 0)
        self.has_none = self.has_none or table["logp_none"].null_count < table.num_rows
        for name in self._MEANS:
            self.sums[name] += float(pc.sum(table[name].cast(pa.float64())).as_py() or 0.0)

    def exactly_once(self, expected: int) -> bool:
        n = expected
        return self.samples == n and self.index_sum == n * (n - 1) // 2 and self.index_sq == (n - 1) * n * (2 * n - 1) // 6

    def stats(self) -> RoleStats:
        n = max(self.samples, 1)

        def mean(name: str) -> float | None:
            if name in ("logp_none", "s_role", "s_unsafe") and not self.has_none:
                return None
            return self.sums[name] / n

        return RoleStats(
            role=self.role,
            slug=self.slug,
            samples=self.samples,
            harmful=self.harmful,
            harmful_fraction=self.harmful / n,
            mean_logp_role=mean("logp_role"),
            mean_logp_unsafe=mean("logp_unsafe"),
            mean_logp_none=mean("logp_none"),
            mean_s_role=mean("s_role"),
            mean_s_unsafe=mean("s_unsafe"),
            mean_answer_tokens=mean("n_answer_tokens"),
            truncated=self.truncated,
        )


def write_summary(path: Path, stats: dict[str, RoleStats], meta: dict) -> None:
    """``{"meta": ..., "roles": {role: stats}}`` as JSON."""
    body = {"meta": meta, "roles": {role: asdict(s) for role, s in stats.items()}}
    write_text(path, json.dumps(body, indent=2, allow_nan=False) + "\n")  # NaN is refused: a JSON reader would choke


def read_summary(path: Path) -> tuple[dict[str, RoleStats], dict]:
    """Inverse of ``write_summary``."""
    body = json.loads(Path(path).read_text())
    return {role: RoleStats(**s) for role, s in body["roles"].items()}, body["meta"]


def plot_harmful_fraction(stats: dict[str, RoleStats], path: Path, title: str = "RDS: harmful fraction per role") -> None:
    """Horizontal bar chart of each role's harmful fraction, largest on top (PNG, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ordered = sorted(stats.values(), key=lambda s: s.harmful_fraction)
    fig = Figure(figsize=(7, 1.2 + 0.45 * len(ordered)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh([s.role for s in ordered], [100 * s.harmful_fraction for s in ordered], color="#b2443a")
    for y, s in enumerate(ordered):
        ax.text(100 * s.harmful_fraction + 0.5, y, f"{100 * s.harmful_fraction:.1f}% of {s.samples}", va="center", fontsize=8)
    upper = max((100 * s.harmful_fraction for s in ordered), default=0.0)
    ax.set_xlim(0, min(100.0, max(10.0, math.ceil(upper * 1.25 + 5))))
    ax.set_xlabel("harmful samples (%): log p(y | unsafe prompt, x) > log p(y | role prompt, x)")
    ax.set_title(title)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
