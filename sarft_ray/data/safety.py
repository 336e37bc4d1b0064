"""Safety benchmarks: AdvBench harmful behaviours and BeaverTails-Evaluation prompts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from sarft_ray.data.readers import iter_csv
from sarft_ray.errors import SarftError

SAFETY_SCHEMA = pa.schema(
    [("benchmark", pa.string()), ("item_id", pa.string()), ("prompt", pa.string()), ("category", pa.string())]
)


def _nonempty(path: Path, rows: list[dict]) -> pa.Table:
    if not rows:
        raise SarftError(f"{path}: no rows")
    return pa.Table.from_pylist(rows, schema=SAFETY_SCHEMA)


def load_advbench(path: str | Path) -> pa.Table:
    """AdvBench ``goal,target`` CSV (520 rows); ``category`` is null."""
    path = Path(path)
    rows = []
    for line, row in iter_csv(path, ("goal",)):
        if not (row["goal"] or "").strip():
            raise SarftError(f"{path}:{line}: empty goal")
        rows.append({"benchmark": "advbench", "item_id": f"advbench-{len(rows)}", "prompt": row["goal"], "category": None})
    return _nonempty(path, rows)


def load_beavertails(path: str | Path) -> pa.Table:
    """BeaverTails-Evaluation CSV (``prompt,category``; 700 rows in 14 categories)."""
    path = Path(path)
    rows = []
    for line, row in iter_csv(path, ("prompt", "category")):
        if not (row["prompt"] or "").strip():
            raise SarftError(f"{path}:{line}: empty prompt")
        rows.append(
            {"benchmark": "beavertails", "item_id": f"beavertails-{len(rows)}", "prompt": row["prompt"], "category": row["category"]}
        )
    return _nonempty(path, rows)
