"""``--set key.path=value``: command-line changes to an experiment config, applied before it is validated.

Each override names a field by its dotted path (``training.lambda_kl``; a list
item by its index, ``arms.1.lambda_kl``) and gives the value as YAML
(``3``, ``true``, ``null``, ``[a, b]``, ``{name: x}``). Overrides are applied to
the parsed YAML tree in order, so the config is validated once, with them, and
a misspelled field fails exactly like one in the file: one line naming it.

A relative path given to a path field (``output_root``, ``roles.prompts.path``)
is taken from the current directory, as on any command line, not from the
config file's directory (a packaged config's directory is inside the package).
"""

from __future__ import annotations

import copy
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarft_ray.errors import SarftError


@dataclass(frozen=True)
class Override:
    """One ``--set``: the dotted path split into keys (list indices as ``int``) and the value."""

    text: str  # as given, for error messages
    keys: tuple[str | int, ...]
    value: Any

    @property
    def dotted(self) -> str:
        out = ""
        for key in self.keys:
            out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
        return out


def parse_override(text: str) -> Override:
    """``"training.lambda_kl=3"`` -> ``Override(keys=("training", "lambda_kl"), value=3)``; bad syntax is one line."""
    from sarft_ray.data.readers import load_yaml

    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise SarftError(f"--set {text}: expected KEY.PATH=VALUE, e.g. --set training.lambda_kl=3")
    parts = path.split(".")
    if any(not part.strip() for part in parts):
        raise SarftError(f"--set {text}: '{path}' has an empty field name")
    try:
        value = load_yaml(raw, Path("--set")) if raw.strip() else ""
    except SarftError as exc:
        raise SarftError(f"--set {text}: {re.sub(r'^--set(:[0-9]+)?: ', '', str(exc))}") from None
    except Exception as exc:  # noqa: BLE001 - yaml's errors: malformed flow values such as '[1, 2'
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SarftError(f"--set {text}: malformed YAML value ({problem})") from None
    keys = tuple(int(p) if p.strip().isdigit() else p.strip() for p in parts)
    return Override(text, keys, value)


def apply_overrides(tree: dict, overrides: Sequence[Override], source: str, cwd: Path | None = None) -> dict:
    """A copy of ``tree`` with every override applied in order (later ones win); sections are created as needed.

    A key the config does not know is written all the same: validation then
    names it (``training.lamda_kl: unknown key``), as it would in the file.
    """
    tree = copy.deepcopy(tree)
    cwd = Path.cwd() if cwd is None else cwd
    for override in overrides:
        node: Any = tree
        for depth, key in enumerate(override.keys):
            last = depth == len(override.keys) - 1
            where = Override(override.text, override.keys[: depth + 1], None).dotted
            if isinstance(node, list):
                if not isinstance(key, int):
                    raise SarftError(f"{source}: --set {override.text}: {where}: the field above is a list; name an item by its index")
                if key >= len(node):
                    raise SarftError(f"{source}: --set {override.text}: {where}: no such item (the list has {len(node)})")
            elif isinstance(node, dict):
                key = str(key)
            else:
                above = Override(override.text, override.keys[:depth], None).dotted
                raise SarftError(f"{source}: --set {override.text}: {above} is a value ({node!r}), not a section")
            if last:
                node[key] = _from_cwd(override, cwd)
            else:
                child = node[key] if isinstance(node, list) else node.get(key)
                if child is None:  # a section left out of (or null in) the file
                    child = node[key] = {}
                node = child
    return tree


def _from_cwd(override: Override, cwd: Path) -> Any:
    """A relative path for a path field, made absolute against ``cwd``; any other value as given."""
    value = override.value
    if not isinstance(value, str) or not value or "://" in value or Path(value).expanduser().is_absolute():
        return value
    if _is_path_field(override.keys):
        return str(cwd / value)
    return value


def _is_path_field(keys: Sequence[str | int]) -> bool:
    """Whether the config field at ``keys`` is a path resolved against the config's directory (``ConfigPath``)."""
    from sarft_ray.config import ExperimentConfig

    annotation: Any = ExperimentConfig
    metadata: list = []
    for key in keys:
        if isinstance(key, int):
            annotation = _list_item(annotation)
            metadata = []
        else:
            model = _model_class(annotation)
            field = model.model_fields.get(key) if model is not None else None
            if field is None:
                return False
            annotation, metadata = field.annotation, list(field.metadata)
        if annotation is None:
            return False
    return _resolves_path(annotation, metadata)


def _unwrap(annotation: Any) -> list[Any]:
    """The types an annotation stands for: the members of a union, the base of ``Annotated``."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_class(annotation: Any):
    from pydantic import BaseModel

    return next((t for t in _unwrap(annotation) if isinstance(t, type) and issubclass(t, BaseModel)), None)


def _list_item(annotation: Any) -> Any:
    for candidate in _unwrap(annotation):
        if typing.get_origin(candidate) is list and typing.get_args(candidate):
            return typing.get_args(candidate)[0]
    return None


def _resolves_path(annotation: Any, metadata: list) -> bool:
    from sarft_ray.config_base import _resolve_path

    found = list(metadata)
    stack = [annotation]
    while stack:
        item = stack.pop()
        if typing.get_origin(item) is typing.Annotated:
            found += list(getattr(item, "__metadata__", ()))
        stack += list(typing.get_args(item))
    return any(getattr(m, "func", None) is _resolve_path for m in found)
