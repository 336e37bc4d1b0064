"""Role corpora as Arrow tables with one row per (question, answer) sample.

Columns (the corpus contract): ``role`` (canonical name), ``sample_id`` (unique
within a role, stable across runs), ``input``, ``output``, ``references``
(all reference answers), ``split`` (``train``/``validation``/``test``), ``source``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import NoReturn

import pyarrow as pa

from sarft_ray.data.config import CorpusConfig
from sarft_ray.data.formats import read_corpus_file
from sarft_ray.data.heldout import HeldOutQuestions
from sarft_ray.data.roles import match_role, role_key
from sarft_ray.errors import SarftError
from sarft_ray.hashing import hash_int, hash_unit

CORPUS_SCHEMA = pa.schema(
    [
        ("role", pa.string()),
        ("sample_id", pa.string()),
        ("input", pa.string()),
        ("output", pa.string()),
        ("references", pa.list_(pa.string())),
        ("split", pa.string()),
        ("source", pa.string()),
    ]
)


def assign_split(role: str, sample_id: str, test_fraction: float, seed: int, validation_fraction: float = 0.0) -> str:
    """Deterministic split from a hash, so adding rows never moves existing ones.

    ``test`` below ``test_fraction``, ``validation`` in the next
    ``validation_fraction``, else ``train``: adding a validation split takes
    rows from training only, never from the test split.
    """
    point = hash_unit(f"{seed}|{role_key(role)}|{sample_id}")
    if point < test_fraction:
        return "test"
    return "validation" if point < test_fraction + validation_fraction else "train"


def iter_corpus_rows(cfg: CorpusConfig, roles: Iterable[str]) -> Iterator[dict]:
    """Stream validated corpus rows for ``roles`` (canonical names), in file order."""
    wanted = {role_key(r): r for r in roles}
    seen: dict[str, set[str]] = {r: set() for r in wanted.values()}
    for spec in cfg.paths:
        for where, row in read_corpus_file(cfg.format, spec):
            role = wanted.get(role_key(row["role"]))
            if role is None:
                continue
            if row["sample_id"] in seen[role]:
                raise SarftError(f"{where}: duplicate sample id '{row['sample_id']}' for role '{role}'")
            seen[role].add(row["sample_id"])
            row["role"] = role
            row["split"] = assign_split(role, row["sample_id"], cfg.test_fraction, cfg.split_seed, cfg.validation_fraction)
            yield row


def corpus_roles(cfg: CorpusConfig) -> list[str]:
    """Every role name that occurs in the corpus files (for validation and hints)."""
    names: dict[str, str] = {}
    for spec in cfg.paths:
        for _, row in read_corpus_file(cfg.format, spec):
            names.setdefault(role_key(row["role"]), row["role"])
    return list(names.values())


def drop_heldout(rows: Iterable[dict], heldout: HeldOutQuestions | None, removed: dict[str, int]) -> Iterator[dict]:
    """Rows of the ``train`` split whose question evaluation asks are dropped; ``removed`` counts them per role.

    Test-split rows stay: they are the held-out RAW items themselves.
    """
    for row in rows:
        if heldout is not None and row["split"] == "train" and heldout.contains(row["role"], row["input"]):
            removed[row["role"]] = removed.get(row["role"], 0) + 1
            continue
        yield row


def _sample_rank(seed: int, row: dict) -> int:
    return hash_int(f"{seed}|{role_key(row['role'])}|{row['split']}|{row['sample_id']}")


def sample_rows(rows: Iterable[dict], limit: int | None, seed: int) -> Iterator[dict]:
    """At most ``limit`` rows per (role, split), a seeded sample across all files, in corpus order.

    Each row's rank is a hash of (seed, role, split, sample id) and the
    ``limit`` lowest ranks are kept, so the sample does not depend on file
    order and memory holds at most ``limit`` rows per (role, split).
    """
    if limit is None:
        yield from rows
        return
    heaps: dict[tuple[str, str], list[tuple[int, int, dict]]] = {}
    for index, row in enumerate(rows):
        heap = heaps.setdefault((row["role"], row["split"]), [])
        entry = (-_sample_rank(seed, row), index, row)  # a max-heap of ranks: the worst kept row on top
        if len(heap) < limit:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)
    kept = sorted((index, row) for heap in heaps.values() for _, index, row in heap)
    for _, row in kept:
        yield row


def corpus_rows(
    cfg: CorpusConfig, roles: Iterable[str], heldout: HeldOutQuestions | None = None, removed: dict[str, int] | None = None
) -> Iterator[dict]:
    """The corpus as the stages see it: held-out questions removed, then ``max_samples_per_role`` sampled."""
    removed = {} if removed is None else removed
    return sample_rows(drop_heldout(iter_corpus_rows(cfg, roles), heldout, removed), cfg.max_samples_per_role, cfg.sample_seed)


def load_corpus(
    cfg: CorpusConfig,
    roles: Iterable[str],
    source_label: str = "roles.corpus",
    heldout: HeldOutQuestions | None = None,
    removed: dict[str, int] | None = None,
) -> pa.Table:
    """All rows of ``roles`` (see ``corpus_rows``); ``removed`` receives the held-out counts per role.

    Fails when a requested role has no rows at all, naming the files searched.
    """
    roles = list(roles)
    rows = list(corpus_rows(cfg, roles, heldout, removed))
    present = {row["role"] for row in rows}
    for role in roles:
        if role not in present:
            fail_without_rows(cfg, role, source_label)
    return pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA)


def fail_without_rows(
    cfg: CorpusConfig,
    role: str,
    source_label: str,
    splits: Sequence[str] | None = None,
    other_splits: bool = False,
    heldout_removed: int = 0,
) -> NoReturn:
    """The error for a role the corpus gave no rows: what ``load_corpus`` and scoring's staging both raise.

    A role the files hold in ``other_splits`` than the wanted ``splits``, or
    whose rows evaluation held out, gets which splits were searched; any other
    role a "did you mean" hint when the files hold a similar name.
    """
    files = ", ".join(str(p.path) for p in cfg.paths)
    if splits is not None and (other_splits or heldout_removed):
        raise SarftError(
            f"{source_label}: role '{role}' has no rows in split(s) {', '.join(splits)} (scoring.splits) in {files}"
            + (f" once {heldout_removed} evaluation question(s) are held out" if heldout_removed else "")
        )
    known = corpus_roles(cfg)
    if known and role_key(role) not in {role_key(k) for k in known}:
        match_role(role, known, source_label)  # raises with a "did you mean" hint
    raise SarftError(f"{source_label}: empty corpus for role '{role}' in {files}")
