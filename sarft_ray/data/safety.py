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


SAFETY_PARTS = ("train", "validation", "test")


def beavertails_parts(table: pa.Table, test_per_category: int, validation_per_category: int, seed: int = 0) -> list[str]:
    """``train`` / ``validation`` / ``test`` for each BeaverTails row, stratified by category.

    Within each category the prompts are ranked by a hash of (seed, prompt
    text): the first ``test_per_category`` are test items, the next
    ``validation_per_category`` validation items, the rest may be trained on
    (alignment). The ranking does not depend on the file's row order.
    """
    import hashlib

    prompts, categories = table.column("prompt").to_pylist(), table.column("category").to_pylist()
    ranked: dict[str, list[tuple[bytes, int]]] = {}
    for index, (prompt, category) in enumerate(zip(prompts, categories, strict=True)):
        digest = hashlib.sha256(f"{seed}|{prompt}".encode()).digest()
        ranked.setdefault(str(category), []).append((digest, index))
    parts = ["train"] * len(prompts)
    for rows in ranked.values():
        for rank, (_, index) in enumerate(sorted(rows)):
            if rank < test_per_category:
                parts[index] = "test"
            elif rank < test_per_category + validation_per_category:
                parts[index] = "validation"
    return parts


def load_instructions(path: str | Path, benchmark: str = "benign") -> pa.Table:
    """Benign instructions from a ``.jsonl`` or ``.csv`` file with an ``instruction`` (or ``prompt``) field."""
    from sarft_ray.data.readers import iter_jsonl

    path = Path(path)
    if path.suffix.lower() == ".csv":
        import csv
        import io

        from sarft_ray.data.readers import read_text

        header = next(csv.reader(io.StringIO(read_text(path))), [])
        field = "instruction" if "instruction" in header else "prompt"
        rows_in = iter_csv(path, (field,))
    elif path.suffix.lower() == ".jsonl":
        rows_in = iter_jsonl(path)
        field = None
    else:
        raise SarftError(f"{path}: unsupported instruction file type '{path.suffix}' (use .jsonl or .csv)")
    rows = []
    for line, row in rows_in:
        key = field or ("instruction" if "instruction" in row else "prompt")
        text = row.get(key)
        if not isinstance(text, str) or not text.strip():
            raise SarftError(f"{path}:{line}: field 'instruction' (or 'prompt') must be a non-empty string")
        rows.append({"benchmark": benchmark, "item_id": f"{benchmark}-{len(rows)}", "prompt": text, "category": None})
    return _nonempty(path, rows)
