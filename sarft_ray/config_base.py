"""Base class of every config section: strict, typed, immutable; paths resolved against the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class StrictModel(BaseModel):
    """Rejects unknown keys so a typo in YAML fails early with its dotted path."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return Path(value).resolve() if value.is_absolute() else value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path field: relative values are resolved against the directory of the config file."""
