"""Which rows a limited benchmark asks: the first N per group, or N spread evenly over groups."""

from __future__ import annotations


def first_per_group(rows: list[dict], key: str, limit: int | None) -> list[dict]:
    """The first ``limit`` rows of each group, in input order."""
    if limit is None:
        return rows
    seen: dict[str, int] = {}
    kept = []
    for row in rows:
        count = seen.get(row[key], 0)
        if count < limit:
            kept.append(row)
        seen[row[key]] = count + 1
    return kept


def stratified_head(rows: list[dict], key: str, limit: int | None) -> list[dict]:
    """``limit`` rows spread as evenly as possible over the groups of ``key``, in input order.

    Rows are taken round-robin: every group's first row, then every group's
    second, and so on (groups in order of first appearance).
    """
    if limit is None or limit >= len(rows):
        return rows
    group_order: dict[str, int] = {}
    rank: list[tuple[int, int, int]] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        group_order.setdefault(row[key], len(group_order))
        rank.append((seen.get(row[key], 0), group_order[row[key]], index))
        seen[row[key]] = seen.get(row[key], 0) + 1
    chosen = sorted(index for _, _, index in sorted(rank)[:limit])
    return [rows[i] for i in chosen]
