"""The ``roles`` section of an experiment config: which roles, their corpora and prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from sarft_ray.config_base import ConfigPath, StrictModel


def _registered_format(name: str) -> str:
    from sarft_ray.data.formats import check_format_name

    return check_format_name(name)


CorpusFormatName = Annotated[str, AfterValidator(_registered_format)]
"""A name from the corpus format registry (:mod:`sarft_ray.data.formats`), checked when the config is read."""


class CorpusFile(StrictModel):
    """A corpus file; ``role`` names the role of every row when the file has no ``role`` column."""

    path: ConfigPath
    role: str | None = None


class CorpusConfig(StrictModel):
    """Where role corpora come from and how they are split."""

    format: CorpusFormatName = Field(
        default="rolebench", description="a registered corpus format: rolebench, table, alpaca, sharegpt (data/formats.py)"
    )
    paths: list[CorpusFile] = Field(min_length=1)
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    validation_fraction: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="rows kept out of training for choosing settings (rolebench_val)"
    )
    split_seed: int = 0
    max_samples_per_role: int | None = Field(
        default=None, ge=1, description="a seeded sample of at most N rows per role and split, drawn across all files"
    )
    sample_seed: int = Field(default=0, description="seed of the max_samples_per_role sample")

    @model_validator(mode="after")
    def _room_for_training(self):
        if self.test_fraction + self.validation_fraction >= 1.0:
            raise ValueError("test_fraction + validation_fraction must leave rows to train on (sum below 1)")
        return self

    @field_validator("paths", mode="before")
    @classmethod
    def _plain_paths(cls, value):
        if isinstance(value, list):
            return [{"path": item} if isinstance(item, str | Path) else item for item in value]
        return value


class PromptsConfig(StrictModel):
    """Role system prompts and how the unsafe variant is built."""

    format: Literal["sarft_profiles", "mapping"] = "sarft_profiles"
    path: ConfigPath
    unsafe_instruction: str | None = Field(
        default=None, description="appended to the role prompt; null uses the built-in default text"
    )
    unsafe_from_file: bool = Field(
        default=False, description="use the release's unsafe prompts (key 'safe') instead of role prompt + instruction"
    )


class RolesConfig(StrictModel):
    """The roles to fine-tune, by their RoleBench names (other spellings are matched)."""

    names: list[str] = Field(min_length=1)
    corpus: CorpusConfig
    prompts: PromptsConfig
