"""Arrow schemas of the stored scores and of a role's training set."""

from __future__ import annotations

import pyarrow as pa

from sarft_ray.data.corpus import CORPUS_SCHEMA

CONDITIONS = ("role", "unsafe", "none")

SCORE_FIELDS = (
    [
        pa.field(f"logp_{c}{suffix}", pa.float64(), nullable=(c == "none"))
        for c in CONDITIONS
        for suffix in ("", "_mean", "_sum")
    ]
    + [
        pa.field("s_role", pa.float64()),
        pa.field("s_unsafe", pa.float64()),
        pa.field("is_harmful", pa.bool_(), nullable=False),
        pa.field("n_answer_tokens", pa.int32(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
    ]
)

STAGED_SCHEMA = CORPUS_SCHEMA.append(pa.field("row_index", pa.int64(), nullable=False))
"""Corpus rows as the scoring job reads them: ``row_index`` is the row's position within its role."""

SCORES_SCHEMA = pa.schema(list(STAGED_SCHEMA) + SCORE_FIELDS + [pa.field("scores_hash", pa.string(), nullable=False)])
"""One row per scored sample: the corpus columns, ``row_index``, the scores and the hash of the inputs."""

TRAINING_SET_SCHEMA = CORPUS_SCHEMA.append(pa.field("is_harmful", pa.bool_(), nullable=False))
"""What training consumes: the corpus columns plus the selected ``is_harmful`` flag."""


def scores_table(batch: pa.Table, columns: dict[str, list], scores_hash: str) -> pa.Table:
    """Join a staged batch with its score columns (same row order) into ``SCORES_SCHEMA``."""
    arrays = [batch.column(f.name).cast(f.type) for f in STAGED_SCHEMA]
    arrays += [pa.array(columns[f.name], type=f.type) for f in SCORE_FIELDS]
    arrays.append(pa.array([scores_hash] * batch.num_rows, type=pa.string()))
    return pa.Table.from_arrays(arrays, schema=SCORES_SCHEMA)
