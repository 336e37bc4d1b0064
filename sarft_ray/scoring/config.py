"""The ``scoring`` section of an experiment config (RDS)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sarft_ray.config_base import StrictModel, pool_bounds
from sarft_ray.devices import device_kind


# Fields that change only how fast scores are made (the scores hash leaves them out too): not in the results key.
# GPU shares stay in: a GPU scores in another precision.
OPERATIONAL_FIELDS = (
    "prefix_reuse", "batch_size", "rows_per_call", "num_actors", "min_actors", "actor_num_cpus", "torch_threads",
)


class ScoringConfig(StrictModel):
    """How answers are scored under the role and unsafe prompts, and how the job is spread over Ray."""

    aggregate: Literal["mean", "sum"] = Field(default="mean", description="log-prob over answer tokens")
    reference_pass: bool = Field(default=False, description="also score with no system prompt, to report s_role/s_unsafe")
    prefix_reuse: bool = Field(default=True, description="compute each role's system-prompt KV cache once")
    batch_size: int = Field(default=8, ge=1, description="sequences per forward pass")
    rows_per_call: int = Field(
        default=32, ge=1, description="rows an actor receives at once; sorted by length, then split into batches"
    )
    max_source_tokens: int = Field(default=512, ge=1)
    max_target_tokens: int = Field(default=128, ge=1)
    splits: list[Literal["train", "validation", "test"]] = Field(
        default_factory=lambda: ["train"], min_length=1, description="corpus splits to score (training reads 'train')"
    )
    selection_seed: int = Field(default=0, description="seed of the 'random' selection ablation")
    num_actors: int = Field(default=1, ge=1, description="scoring actors (with min_actors: the most)")
    min_actors: int | None = Field(
        default=None, ge=1, description="an autoscaling pool: start with this many, grow to num_actors; null: fixed"
    )
    actor_num_cpus: float = Field(default=0.5, gt=0)
    num_gpus_per_actor: float = Field(default=0.0, ge=0)
    torch_threads: int | None = Field(
        default=None, ge=1, description="intra-op threads per scoring actor; null: max(1, round(actor_num_cpus))"
    )

    _pool_bounds = model_validator(mode="after")(pool_bounds)

    @property
    def device(self) -> str:
        """The device kind the scoring actors run on: a GPU share means CUDA."""
        return device_kind(self.num_gpus_per_actor)
