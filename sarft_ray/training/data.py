"""Training rows: checking the scored training set, tokenising, batching, and the step plan.

The step plan is a pure function of (seed, epoch, step, rank): a resumed run
replays exactly the batches it would have seen, without saving loader state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa
import torch

from sarft_ray.errors import SarftError
from sarft_ray.training.loss import IGNORE_INDEX

REQUIRED_COLUMNS = ("input", "output", "is_harmful")


def check_training_table(table: pa.Table, source: str) -> None:
    """Fail with one line when the training set lacks a column or has a bad value."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise SarftError(f"{source}: training set has no column {', '.join(repr(c) for c in missing)}")
    if table.num_rows == 0:
        raise SarftError(f"{source}: training set has no rows")
    harmful = table.column("is_harmful")
    if not pa.types.is_boolean(harmful.type):
        raise SarftError(f"{source}: column 'is_harmful' must be boolean, got {harmful.type}")
    for name in REQUIRED_COLUMNS:
        column = table.column(name)
        if column.null_count:
            first = next(i for i, v in enumerate(column.to_pylist()) if v is None)
            raise SarftError(f"{source}: row {first}: column '{name}' is null")
    for name in ("input", "output"):
        if not (pa.types.is_string(table.column(name).type) or pa.types.is_large_string(table.column(name).type)):
            raise SarftError(f"{source}: column '{name}' must be text, got {table.column(name).type}")


def table_rows(table: pa.Table) -> list[dict]:
    """The three columns training needs, as plain rows (small: one role's corpus)."""
    return table.select(list(REQUIRED_COLUMNS)).to_pylist()


@dataclass(frozen=True)
class Example:
    """One tokenised training row."""

    input_ids: list[int]
    labels: list[int]
    harmful: bool


def encode_rows(
    rows: list[dict],
    tokenizer,
    system_prompt: str | None,
    max_source_tokens: int,
    max_target_tokens: int,
) -> list[Example]:
    """Chat-format each (input, output) pair; only answer tokens carry labels."""
    from sarft_ray.models import encode_pair

    examples = []
    for row in rows:
        pair = encode_pair(
            tokenizer,
            row["input"],
            row["output"],
            system=system_prompt,
            max_source_tokens=max_source_tokens,
            max_target_tokens=max_target_tokens,
        )
        ids = pair.prompt_ids + pair.answer_ids
        labels = [IGNORE_INDEX] * len(pair.prompt_ids) + pair.answer_ids
        examples.append(Example(ids, labels, bool(row["is_harmful"])))
    return examples


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch (the reference forward trims trailing padding)."""
    length = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    harmful = torch.tensor([e.harmful for e in examples], dtype=torch.bool)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "harmful": harmful}


@dataclass(frozen=True)
class StepPlan:
    """Which rows each worker's micro-batches hold at each optimizer step.

    An epoch is a seeded permutation of the rows cut into global batches of
    ``micro_batch_size * grad_accum_steps * world_size`` rows. The last batch
    of an epoch is filled up from the start of the same permutation, so every
    row is seen each epoch and every worker runs the same number of
    micro-batches (DeepSpeed needs that); ``repeated_rows`` counts the fill.

    With ``lengths`` (tokens per row) the rows of each global batch are
    ordered longest first before being cut into micro-batches, so rows of
    similar length share a micro-batch and little compute goes to padding.
    A step still holds the same rows, and every micro-batch has the same
    number of rows, so the step's gradient (the mean over its rows) is
    unchanged; the longest micro-batch comes first, so a step that does not
    fit in memory fails at once.
    """

    num_rows: int
    micro_batch_size: int
    grad_accum_steps: int
    world_size: int
    seed: int
    epochs: int
    max_steps: int | None = None
    lengths: tuple[int, ...] = ()

    def __post_init__(self):
        if self.lengths and len(self.lengths) != self.num_rows:
            raise ValueError(f"lengths has {len(self.lengths)} entries for {self.num_rows} rows")

    @property
    def global_batch(self) -> int:
        return self.micro_batch_size * self.grad_accum_steps * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_rows / self.global_batch)

    @property
    def total_steps(self) -> int:
        return self.max_steps if self.max_steps is not None else self.steps_per_epoch * self.epochs

    @property
    def repeated_rows(self) -> int:
        """Rows drawn twice per epoch to complete the last global batch."""
        return self.steps_per_epoch * self.global_batch - self.num_rows

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def _order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.num_rows, generator=generator).tolist()
        # cycle the permutation to fill the last batch (the corpus may be smaller than one batch)
        need = self.steps_per_epoch * self.global_batch
        return [order[i % self.num_rows] for i in range(need)]

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """Row indices of ``rank``'s ``grad_accum_steps`` micro-batches at 0-based ``step``."""
        epoch, within = divmod(step, self.steps_per_epoch)
        start = within * self.global_batch
        order = self._order(epoch)[start : start + self.global_batch]
        if self.lengths:
            order = sorted(order, key=lambda i: -self.lengths[i])  # stable: ties keep the seeded order
        out = []
        for k in range(self.grad_accum_steps):
            chunk = (k * self.world_size + rank) * self.micro_batch_size
            out.append(order[chunk : chunk + self.micro_batch_size])
        return out
