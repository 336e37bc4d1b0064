"""Stream the configured roles' corpus rows into one parquet file per role (pure pyarrow, no Ray).

The corpus files are read row by row. At most ``chunk_rows`` rows are held in
memory over all roles together: when they reach it, the fullest role's rows
are appended to that role's Arrow IPC stream file. Each role's stream is then
rewritten as parquet in row groups of ``chunk_rows`` rows, one group in memory
at a time. Memory stays bounded whatever the corpus size and the number of
roles, even when the roles' rows are interleaved; Ray Data then reads the
parquet files lazily. One file per role, in the configured role order, means
consecutive rows (and so most batches) belong to one role.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sarft_ray.data.config import CorpusConfig
from sarft_ray.data.corpus import corpus_rows, fail_without_rows
from sarft_ray.data.heldout import HeldOutQuestions
from sarft_ray.data.roles import role_slug
from sarft_ray.errors import SarftError
from sarft_ray.scoring.schema import STAGED_SCHEMA


@dataclass(frozen=True)
class StagedCorpus:
    """Per-role staged files, row counts and held-out rows removed, in the configured role order."""

    files: dict[str, Path]
    counts: dict[str, int]
    heldout_removed: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class _RoleBuffer:
    """One role's rows: buffered, appended to an Arrow IPC stream file (``spill``), then written as parquet.

    Many parquet writers open at once, each receiving small row groups (many
    roles whose rows alternate), keep memory per row group written; IPC stream
    writers do not, and the parquet file is then written one row group at a time.
    """

    def __init__(self, path: Path):
        self.path = path
        self.spill = path.with_suffix(".arrows")
        self.rows: list[dict] = []
        self.sink: pa.NativeFile | None = None
        self.writer: pa.ipc.RecordBatchStreamWriter | None = None

    def flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            self.sink = pa.OSFile(str(self.spill), "wb")
            self.writer = pa.ipc.new_stream(self.sink, STAGED_SCHEMA)
        self.writer.write_table(pa.Table.from_pylist(self.rows, schema=STAGED_SCHEMA))
        self.rows = []

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
            self.writer = None

    def write_parquet(self, chunk_rows: int) -> None:
        """The spilled rows as ``path`` in row groups of ``chunk_rows`` rows (one in memory at a time)."""
        with pa.OSFile(str(self.spill), "rb") as source, pq.ParquetWriter(self.path, STAGED_SCHEMA) as out:
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in pa.ipc.open_stream(source):
                pending.append(batch)
                rows += batch.num_rows
                if rows >= chunk_rows:
                    out.write_table(pa.Table.from_batches(pending, STAGED_SCHEMA), row_group_size=chunk_rows)
                    pending, rows = [], 0
            if pending:
                out.write_table(pa.Table.from_batches(pending, STAGED_SCHEMA), row_group_size=chunk_rows)
        self.spill.unlink()


def stage_corpus(
    cfg: CorpusConfig,
    roles: list[str],
    splits: list[str],
    directory: Path,
    chunk_rows: int = 2048,
    source_label: str = "roles.corpus",
    heldout: HeldOutQuestions | None = None,
) -> StagedCorpus:
    """Write every row of ``roles`` in ``splits`` to ``directory/<slug>.parquet``.

    Rows come from ``corpus_rows``, as ``load_corpus`` sees them: training rows
    whose question is in ``heldout`` are removed (counted per role), then
    ``max_samples_per_role`` takes its seeded sample. A role left with no
    rows, or a row whose answer is empty or only whitespace, is an error.
    """
    directory.mkdir(parents=True, exist_ok=True)
    buffers = {role: _RoleBuffer(directory / f"{role_slug(role)}.parquet") for role in roles}
    counts = dict.fromkeys(roles, 0)
    seen_splits: dict[str, set[str]] = {role: set() for role in roles}
    removed = dict.fromkeys(roles, 0)
    buffered = 0  # rows held over all roles: per-role limits alone would hold chunk_rows rows per role
    try:
        for row in corpus_rows(cfg, roles, heldout, removed):
            role, split = row["role"], row["split"]
            seen_splits[role].add(split)
            if split not in splits:
                continue
            if not row["output"].strip():
                # Nothing to score; dropping the row would change the role's training set silently.
                raise SarftError(f"{source_label}: role '{role}', sample '{row['sample_id']}': empty answer; fix or remove the row")
            buffer = buffers[role]
            buffer.rows.append({**row, "row_index": counts[role]})
            counts[role] += 1
            buffered += 1
            if buffered >= chunk_rows:
                fullest = max(buffers.values(), key=lambda b: len(b.rows))
                buffered -= len(fullest.rows)
                fullest.flush()
    finally:
        for buffer in buffers.values():
            buffer.close()
    for role in roles:
        if counts[role] == 0:
            fail_without_rows(cfg, role, source_label, splits, bool(seen_splits[role]), removed[role])
    for buffer in buffers.values():
        buffer.write_parquet(chunk_rows)
    return StagedCorpus({role: buffers[role].path for role in roles}, counts, removed)
