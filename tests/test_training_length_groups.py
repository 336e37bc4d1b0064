"""Length-grouped micro-batches: a step holds the same rows, only their split into micro-batches follows length."""

from __future__ import annotations

import pytest

from sarft_ray.training.data import StepPlan

LENGTHS = (5, 90, 12, 44, 7, 61, 33, 80, 20, 3, 70, 15)


def plan(lengths=()):
    return StepPlan(num_rows=12, micro_batch_size=2, grad_accum_steps=2, world_size=2, seed=1, epochs=2, lengths=lengths)


def padded_tokens(p: StepPlan) -> int:
    """Tokens a step's micro-batches hold once right-padded, summed over the run."""
    total = 0
    for step in range(p.total_steps):
        for rank in range(p.world_size):
            for rows in p.micro_batches(step, rank):
                total += len(rows) * max(LENGTHS[i] for i in rows)
    return total


def test_same_rows_per_step_sorted_into_micro_batches():
    plain, grouped = plan(), plan(LENGTHS)
    for step in range(plain.total_steps):
        a = [i for rank in range(2) for mb in plain.micro_batches(step, rank) for i in mb]
        b = [i for rank in range(2) for mb in grouped.micro_batches(step, rank) for i in mb]
        assert sorted(a) == sorted(b)  # the step's gradient is the mean over the same rows
        # micro-batch k of rank r is chunk k * world + r of the step's rows, longest first
        chunks = [grouped.micro_batches(step, r)[k] for k in range(2) for r in range(2)]
        flat = [LENGTHS[i] for mb in chunks for i in mb]
        assert flat == sorted(flat, reverse=True)
        assert all(len(mb) == 2 for mb in chunks)
    assert padded_tokens(grouped) < padded_tokens(plain)


def test_grouping_is_deterministic_and_checks_its_input():
    assert plan(LENGTHS).micro_batches(3, 1) == plan(LENGTHS).micro_batches(3, 1)
    with pytest.raises(ValueError, match="lengths"):
        plan(LENGTHS[:5])
