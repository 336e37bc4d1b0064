"""Which training rows carry the safety (KL) term: the registry of selection strategies.

A strategy is a function ``strategy(scores, seed) -> flags``. ``scores`` is
one role's train-split rows of the stored score table, in corpus order (a
pyarrow Table with every ``SCORES_SCHEMA`` column: ``role``, ``sample_id``,
``input``, ``output``, ``logp_*``, ``s_role``, ``s_unsafe``, ``is_harmful``
(the RDS flag), ``n_answer_tokens``, ...); ``seed`` is
``scoring.selection_seed``. It returns one bool per row. Every strategy keeps
every training row: only the ``is_harmful`` flag training reads differs.

Built in (:mod:`sarft_ray.scoring.selection_builtins`), listed in docs/method.md:

- ``rds``: the harmful rows (log p under the unsafe prompt beats the role prompt);
- ``flip``: the complement of ``rds``;
- ``random``: as many rows as ``rds`` selects, drawn uniformly with a seed;
- ``all``: every row;  ``none``: no row (plain SFT).

Extending: write the function and add one line,
``register_selection(name, strategy, description)``, before the config is
validated; ``training.selection``, ``arms[i].selection``,
``sweep.space.selection`` and ``sarft-ray train --selection`` accept the name
from then on.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from sarft_ray.errors import SarftError
from sarft_ray.scoring import selection_builtins as builtin

Strategy = Callable[..., "np.ndarray | Iterable[bool]"]  # (scores: pa.Table, seed: int) -> one flag per row


@dataclass(frozen=True)
class Selection:
    name: str
    strategy: Strategy
    description: str  # one line for docs and --help


_REGISTRY: dict[str, Selection] = {}


def register_selection(name: str, strategy: Strategy, description: str) -> None:
    """Make ``name`` usable as a selection; a name can be registered once."""
    if name in _REGISTRY:
        raise ValueError(f"selection {name!r} is already registered")
    _REGISTRY[name] = Selection(name, strategy, description)


def registered_selections() -> list[str]:
    """Every registered name, built-ins first, in registration order."""
    return list(_REGISTRY)


def unknown_selection(name: str) -> str:
    """What is wrong with an unregistered name: a close registered name if any, and the registered ones."""
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown selection '{name}'{hint} (registered: {', '.join(_REGISTRY)})"


def check_selection_name(name: str) -> str:
    """``name`` if registered, else ValueError (a pydantic validator: the error names the config field)."""
    if name not in _REGISTRY:
        raise ValueError(unknown_selection(name))
    return name


def get_selection(name: str) -> Selection:
    if name not in _REGISTRY:
        raise SarftError(f"training.selection: {unknown_selection(name)}")
    return _REGISTRY[name]


def selections_markdown(names: Iterable[str] = ()) -> str:
    """The strategies as the markdown list in docs/method.md (default: every registered one)."""
    chosen = [_REGISTRY[n] for n in names] or list(_REGISTRY.values())
    return ";\n".join(f"- `{s.name}`: {s.description}" for s in chosen) + "."


def apply_selection(name: str, scores, seed: int = 0) -> np.ndarray:
    """The flags strategy ``name`` gives one role's train-split score rows; checks it gave one per row."""
    flags = np.asarray(get_selection(name).strategy(scores, seed))
    if flags.shape != (scores.num_rows,) or (flags.size and flags.dtype != np.bool_):
        shape = f"{flags.dtype} flags of shape {flags.shape}"
        raise ValueError(f"selection '{name}' returned {shape} for {scores.num_rows} rows; it must give one bool per row")
    return flags.astype(bool)


def select_training_rows(scores, selection: str, seed: int = 0):
    """One role's training set from its scores: train-split rows in corpus order, with ``is_harmful`` selected."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from sarft_ray.scoring.schema import TRAINING_SET_SCHEMA

    roles = scores["role"].unique().to_pylist()
    if len(roles) > 1:
        raise ValueError(f"select_training_rows takes one role's scores, got {len(roles)} roles")
    train = scores.filter(pc.equal(scores["split"], "train")).sort_by("row_index")
    mask = apply_selection(selection, train, seed)
    columns = [train[name] for name in TRAINING_SET_SCHEMA.names[:-1]] + [pa.array(mask, type=pa.bool_())]
    return pa.Table.from_arrays(columns, schema=TRAINING_SET_SCHEMA)


BUILTIN_SELECTIONS = ("rds", "flip", "random", "all", "none")

register_selection("rds", builtin.rds, "the harmful rows (SaRFT)")
register_selection("flip", builtin.flip, "the complement of `rds`")
register_selection("random", builtin.random_like_rds, "as many rows as `rds` flags, drawn with `scoring.selection_seed`")
register_selection("all", builtin.every_row, "every row")
register_selection("none", builtin.no_row, "no row — plain SFT")
