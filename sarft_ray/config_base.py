"""Base class of every config section: strict, typed, immutable; paths resolved against the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo


class StrictModel(BaseModel):
    """Rejects unknown keys so a typo in YAML fails early with its dotted path."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return Path(value).resolve() if value.is_absolute() else value


def _data_reference(value, info: ValidationInfo):
    """``hf://datasets/...`` and ``sarft-data://...`` become the local file (downloaded into the cache if need be)."""
    from sarft_ray.data.pull import is_data_ref, resolve_data_ref
    from sarft_ray.errors import SarftError

    if not is_data_ref(value):
        return value
    if info.field_name == "output_root":
        raise ValueError("must be a local directory, not a data reference")
    try:
        return resolve_data_ref(value)
    except SarftError as exc:
        raise ValueError(str(exc)) from None


ConfigPath = Annotated[Path, BeforeValidator(_data_reference), AfterValidator(_resolve_path)]
"""A path field: relative values are resolved against the directory of the config file; data references
(``hf://datasets/OWNER/NAME[@REVISION]/PATH``, ``sarft-data://PATH``) are resolved to a cached or fetched file."""


def pool_bounds(section):
    """An after-validator of a section with ``num_actors`` and ``min_actors``: the smallest pool fits in the largest."""
    if section.min_actors is not None and section.min_actors > section.num_actors:
        raise ValueError(f"min_actors ({section.min_actors}) must not exceed num_actors ({section.num_actors})")
    return section


# Config fields added after stored results were named, with their defaults. A field at its default (or unset,
# None, in an arm's overrides) is left out of every hash that names results, so those results are found again.
ADDED_LATER: dict[str, object] = {
    "min_actors": None, "warmup_ratio": 0.0, "lr_scheduler_kwargs": {}, "cut_off": "drop", "packing": "auto",
    "spe_sources": ["role_specific"],
}


def without_added_defaults(tree):
    """``tree`` (dumped config data) without the ``ADDED_LATER`` fields that hold their default or None."""
    if isinstance(tree, dict):
        return {
            k: without_added_defaults(v) for k, v in tree.items()
            if not (k in ADDED_LATER and (v is None or v == ADDED_LATER[k]))
        }
    if isinstance(tree, list):
        return [without_added_defaults(v) for v in tree]
    return tree
