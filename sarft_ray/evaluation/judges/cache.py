"""Verdict cache: one sqlite file, keyed by (judge id, prompt, response).

sqlite commits are atomic, and several processes may share the file. Invalid
verdicts are not stored, so a re-run asks the judge again (a timeout or an
odd reply should not stick). What is stored passes through
:func:`sarft_ray.secrets.redact_text`: a judge that echoes a credential does
not get it written down.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sarft_ray.evaluation.judges.base import INVALID, Judge, JudgeItem, Verdict
from sarft_ray.hashing import json_digest
from sarft_ray.secrets import redact_text


def cache_key(judge_id: str, item: JudgeItem) -> str:
    """The stored verdict's key: a digest of the judge and the exchange it judged."""
    return json_digest([judge_id, item.prompt, item.response])


class VerdictCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS verdicts "
                "(key TEXT PRIMARY KEY, judge_id TEXT NOT NULL, label TEXT NOT NULL, raw TEXT NOT NULL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60)
        try:
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    def get(self, judge_id: str, items: list[JudgeItem]) -> dict[int, Verdict]:
        """Cached verdicts by item index."""
        keys = [cache_key(judge_id, item) for item in items]
        found: dict[str, Verdict] = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):  # stay under sqlite's variable limit
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, label, raw in db.execute(
                    f"SELECT key, label, raw FROM verdicts WHERE key IN ({marks})", chunk
                ):
                    found[key] = Verdict(label, raw)
        return {i: found[k] for i, k in enumerate(keys) if k in found}

    def put(self, judge_id: str, items: list[JudgeItem], verdicts: list[Verdict]) -> None:
        rows = [
            (cache_key(judge_id, item), redact_text(judge_id), v.label, redact_text(v.raw))
            for item, v in zip(items, verdicts, strict=True)
            if v.label != INVALID
        ]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)", rows)


def judge_cached(judge: Judge, items: list[JudgeItem], cache: VerdictCache | None) -> tuple[list[Verdict], int]:
    """Verdicts for ``items`` in order, asking the judge only for uncached ones.

    Returns the verdicts and how many came from the cache.
    """
    if cache is None:
        return judge.judge(items), 0
    hits = cache.get(judge.judge_id, items)
    missing = [i for i in range(len(items)) if i not in hits]
    fresh = judge.judge([items[i] for i in missing]) if missing else []
    if len(fresh) != len(missing):
        raise RuntimeError(f"judge {judge.judge_id} returned {len(fresh)} verdicts for {len(missing)} items")
    cache.put(judge.judge_id, [items[i] for i in missing], fresh)
    verdicts = dict(hits)
    verdicts.update(zip(missing, fresh))
    return [verdicts[i] for i in range(len(items))], len(hits)
