"""The run's comparison table: per role the starting model, every arm and each arm's change against
``compare_to``; then the same over all roles (the ``mean`` rows).

Pure functions over plain data (no Ray, MLflow or files): one ``Result`` per
(role, model) in, JSON-able rows out, plus their text form for markdown and HTML.

Refusal rates are over valid verdicts: invalid ones (the judge gave no usable
label) are left out of the rate, its n and its interval, as in every
evaluation table. Each rate comes with n (the valid verdicts) and a 95%
Wilson score interval. Safety avg and Jailbreak avg are the mean of their
benchmarks' rates, as in the evaluation headline; their n and interval pool
those benchmarks' verdicts. Mean rows pool the verdicts of every role (sum
of refusals over sum of n) and average the other figures; verdicts that
several roles share (a base-model benchmark asked without role prompts) count
once. Delta rows are arm minus ``compare_to`` on the same role, in points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sarft_ray.evaluation.catalogue import (
    AVERAGES,
    JAILBREAK_AVG,
    JAILBREAK_PREFIX,
    SAFETY_AVG,
    averaged_benchmarks,
    metric,
    rate_key,
    rouge_keys,
)
from sarft_ray.evaluation.metrics import mean, wilson_interval

BASE = "base"
MEAN = "mean"
TRAIN_COLUMNS = ("harmful_fraction", "train_rows", "last_loss")
QUALITY_COLUMNS = (*rouge_keys("rolebench_spe"), rouge_keys("rolebench_raw")[0])
SAFETY_BENCHMARKS = tuple(averaged_benchmarks())  # the rates beside their average (AdvBench, BeaverTails)
RATE_COLUMNS = (*(rate_key(name) for name in SAFETY_BENCHMARKS), *AVERAGES)
RATE_DETAILS = ("n", "refusals", "ci_low", "ci_high")  # rate column X also has X_n, X_refusals, X_ci_low, X_ci_high
COLUMNS = ("role", "model", *TRAIN_COLUMNS, *QUALITY_COLUMNS, *RATE_COLUMNS, "status")
DELTA = "Δ"

HEADERS = {
    "harmful_fraction": "harmful fraction",
    "train_rows": "train rows",
    "last_loss": "last loss",
    **{column: metric(column).header for column in QUALITY_COLUMNS + RATE_COLUMNS},
}
NOTE = (
    "ROUGE-L F x100. Refusal rates in % as rate [95% Wilson score CI] n=valid verdicts; invalid verdicts "
    "(no usable judge label) are left out of rate, n and CI. Safety avg and Jailbreak avg: mean of their "
    "benchmarks' rates, n and CI pooled over those benchmarks. Mean rows: refusal rates pooled over roles "
    "(sum of refusals / sum of n, verdicts shared by roles counted once) with the pooled Wilson CI; other "
    "figures averaged over roles. Δ rows: arm minus {compare_to} on the same roles, in points. Harmful "
    "fraction: share of the role's scored corpus flagged by RDS (0-1)."
)


@dataclass(frozen=True)
class Verdicts:
    """Refusals among the valid verdicts of one benchmark, and which evaluation they come from."""

    refusals: int
    n: int
    source: str  # equal sources are the same verdicts: pooled once

    @property
    def rate(self) -> float | None:
        return 100.0 * self.refusals / self.n if self.n else None


@dataclass(frozen=True)
class Result:
    """What one model scored on one role."""

    quality: Mapping[str, float | None]  # evaluation headline figures (ROUGE-L)
    verdicts: Mapping[str, Verdicts]  # safety benchmark -> counts
    train: Mapping[str, Any] = field(default_factory=dict)  # training summary of an arm (rows, last_loss)


# ---------------------------------------------------------------------------- figures


def rate_cell(column: str, parts: Sequence[Verdicts]) -> dict[str, Any]:
    """``column``: the mean of the parts' rates; ``column_n``/``_refusals``/``_ci_low``/``_ci_high`` pooled."""
    rates = [p.rate for p in parts]
    refusals, n = sum(p.refusals for p in parts), sum(p.n for p in parts)
    interval = wilson_interval(refusals, n)
    return {
        column: mean(rates) if parts and None not in rates else None,
        f"{column}_n": n,
        f"{column}_refusals": refusals,
        f"{column}_ci_low": 100.0 * interval[0] if interval else None,
        f"{column}_ci_high": 100.0 * interval[1] if interval else None,
    }


def rate_figures(verdicts: Mapping[str, Verdicts]) -> dict[str, Any]:
    """Every rate column the verdicts allow, each with its n, refusals and 95% CI."""
    jailbreaks = sorted(name for name in verdicts if name.startswith(JAILBREAK_PREFIX))
    groups = {rate_key(name): (name,) for name in SAFETY_BENCHMARKS}
    groups |= {SAFETY_AVG: SAFETY_BENCHMARKS, JAILBREAK_AVG: jailbreaks}
    out: dict[str, Any] = {}
    for column, names in groups.items():
        parts = [verdicts[name] for name in names if name in verdicts]
        if parts:
            out |= rate_cell(column, parts)
    return out


def pool(results: Sequence[Result]) -> dict[str, Verdicts]:
    """Verdict counts summed over results per benchmark, each source once."""
    sources: dict[str, dict[str, Verdicts]] = {}
    for result in results:
        for name, verdicts in result.verdicts.items():
            sources.setdefault(name, {}).setdefault(verdicts.source, verdicts)
    return {
        name: Verdicts(sum(v.refusals for v in by_source.values()), sum(v.n for v in by_source.values()), "pooled")
        for name, by_source in sources.items()
    }


# ---------------------------------------------------------------------------- rows


def result_row(role: str, model: str, arm: str | None, result: Result, harmful_fraction: float | None) -> dict:
    """One model on one role: training figures (arms), ROUGE-L, refusal rates with n and CI."""
    row: dict[str, Any] = {"role": role, "model": model, "kind": BASE if arm is None else "arm", "arm": arm}
    row |= {"harmful_fraction": harmful_fraction, "train_rows": result.train.get("rows"),
            "last_loss": result.train.get("last_loss")}
    row |= {c: result.quality.get(c) for c in QUALITY_COLUMNS if c in result.quality}
    return row | rate_figures(result.verdicts) | {"status": "ok"}


def failed_row(role: str, model: str, arm: str | None, error: str, harmful_fraction: float | None) -> dict:
    kind = BASE if arm is None else "arm"
    return {"role": role, "model": model, "kind": kind, "arm": arm, "harmful_fraction": harmful_fraction,
            "status": f"failed: {error}"}


def mean_row(
    model: str, arm: str | None, results: Sequence[Result], fractions: Sequence[float | None], roles: int
) -> dict[str, Any]:
    """Over roles: ROUGE-L and training figures averaged, refusal rates pooled."""
    row: dict[str, Any] = {"role": MEAN, "model": model, "kind": BASE if arm is None else "arm", "arm": arm}
    row["harmful_fraction"] = mean(f for f in fractions if f is not None)
    for key, column in (("rows", "train_rows"), ("last_loss", "last_loss")):
        row[column] = mean(r.train[key] for r in results if r.train.get(key) is not None)
    for column in QUALITY_COLUMNS:
        values = [r.quality[column] for r in results if r.quality.get(column) is not None]
        if values or any(column in r.quality for r in results):
            row[column] = mean(values)
    return row | rate_figures(pool(results)) | {"status": f"{len(results)} of {roles} roles"}


def delta_row(role: str, arm: str, compare_to: str, row: Mapping[str, Any], reference: Mapping[str, Any]) -> dict:
    """``row`` minus ``reference`` for every ROUGE-L and rate column both have."""
    out: dict[str, Any] = {"role": role, "model": f"{DELTA} {arm} - {compare_to}", "kind": "delta", "arm": arm}
    for column in QUALITY_COLUMNS + RATE_COLUMNS:
        a, b = row.get(column), reference.get(column)
        if column in row or column in reference:
            out[column] = a - b if a is not None and b is not None else None
    return out | {"status": row["status"] if role == MEAN else "ok"}


def comparison_rows(
    roles: Sequence[str],
    arms: Sequence[str],
    compare_to: str | None,
    base: Mapping[str, Result] | None,
    results: Mapping[tuple[str, str], Result],
    fractions: Mapping[str, float | None],
    errors: Mapping[tuple[str, str] | str, str] | None = None,
) -> list[dict[str, Any]]:
    """Per role: base, every arm, one delta row per arm other than ``compare_to``; then the mean rows.

    ``base`` maps role -> the starting model's result (None: it failed, see
    ``errors['base']``); ``results`` maps (role, arm) -> result, a missing
    pair failed (``errors[(role, arm)]``).
    """
    errors = errors or {}
    others = [a for a in arms if compare_to is not None and a != compare_to]
    rows: list[dict[str, Any]] = []
    for role in roles:
        fraction = fractions.get(role)
        if base is not None and role in base:
            rows.append(result_row(role, BASE, None, base[role], fraction))
        else:
            rows.append(failed_row(role, BASE, None, errors.get(BASE, "?"), fraction))
        by_arm = {
            arm: result_row(role, arm, arm, results[(role, arm)], fraction)
            if (role, arm) in results
            else failed_row(role, arm, arm, errors.get((role, arm), "?"), fraction)
            for arm in arms
        }
        rows.extend(by_arm.values())
        for arm in others:
            if (role, arm) in results and (role, compare_to) in results:
                rows.append(delta_row(role, arm, compare_to, by_arm[arm], by_arm[compare_to]))
    return rows + mean_rows(roles, arms, others, compare_to, base, results, fractions)


def mean_rows(roles, arms, others, compare_to, base, results, fractions) -> list[dict[str, Any]]:
    """The base model and each arm over the roles it finished; each delta over the roles both arms finished."""

    def over(model: str, arm: str | None, done: list[str], source) -> dict[str, Any]:
        return mean_row(model, arm, [source(r) for r in done], [fractions.get(r) for r in done], len(roles))

    rows = []
    done = [r for r in roles if base is not None and r in base]
    if done:
        rows.append(over(BASE, None, done, lambda r: base[r]))
    for arm in arms:
        done = [r for r in roles if (r, arm) in results]
        if done:
            rows.append(over(arm, arm, done, lambda r, arm=arm: results[(r, arm)]))
    for arm in others:
        both = [r for r in roles if (r, arm) in results and (r, compare_to) in results]
        if both:
            row = over(arm, arm, both, lambda r, arm=arm: results[(r, arm)])
            reference = over(compare_to, compare_to, both, lambda r: results[(r, compare_to)])
            rows.append(delta_row(MEAN, arm, compare_to, row, reference))
    return rows


# ---------------------------------------------------------------------------- text and metrics


def _cell(row: Mapping[str, Any], column: str) -> str:
    value, figure = row.get(column), metric(column)
    if row["kind"] == "delta" and column in QUALITY_COLUMNS + RATE_COLUMNS:
        if value is None:
            return "" if column not in row else "-"
        return figure.text(value, signed=True)
    if row["kind"] == "delta" and column in TRAIN_COLUMNS:
        return ""
    if column in RATE_COLUMNS and f"{column}_n" in row:
        if value is None:
            return f"- n={row[f'{column}_n']}"
        low, high = figure.text(row[f"{column}_ci_low"]), figure.text(row[f"{column}_ci_high"])
        return f"{figure.text(value)} [{low}, {high}] n={row[f'{column}_n']}"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2e}"
    return str(value)


def text_table(rows: Sequence[Mapping[str, Any]], status: bool = False) -> tuple[list[str], list[dict[str, str]]]:
    """Headers and text rows for markdown and HTML: columns no row fills are left out."""
    columns = [c for c in COLUMNS if c in ("role", "model") or any(r.get(c) is not None for r in rows)]
    if not status:
        columns = [c for c in columns if c != "status"]
    elif "status" not in columns:
        columns.append("status")
    headers = [HEADERS.get(c, c) for c in columns]
    return headers, [{h: _cell(r, c) for h, c in zip(headers, columns, strict=True)} for r in rows]


def comparison_metrics(
    rows: Sequence[Mapping[str, Any]], prefixes: Mapping[str, str] | None = None
) -> dict[str, float]:
    """The mean rows as flat metrics: ``base/<figure>``, ``arm/<arm>/<figure>``, ``delta/<arm>/<figure>``.

    ``prefixes`` replaces an arm's ``arm/<arm>/`` prefix; figures include each
    rate's ``_n``, ``_ci_low`` and ``_ci_high``.
    """
    prefixes = prefixes or {}
    out: dict[str, float] = {}
    for row in rows:
        if row["role"] != MEAN:
            continue
        if row["kind"] == BASE:
            prefix = "base/"
        elif row["kind"] == "delta":
            prefix = f"delta/{row['arm']}/"
        else:
            prefix = prefixes.get(row["arm"], f"arm/{row['arm']}/")
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[prefix + key] = float(value)
    return out
