"""Fetch the reference data into the data directory, checked against the lock file; resolve data references.

``pull`` downloads each locked file at its pinned revision (hub files into the
hub cache, GitHub files into sarft-ray's cache), writes its stored form into a
staging directory in the cache, checks columns, rows and sha256 there, and
only then renames it into the data directory: a failed or interrupted fetch
leaves no partial file behind, and files already in place are never touched.

``resolve_data_ref`` is the one place a config's data reference becomes a
local file: ``hf://datasets/OWNER/NAME[@REVISION]/PATH`` is downloaded into the
hub cache, ``sarft-data://PATH`` names a locked reference file under the data
directory (fetched when missing).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from sarft_ray.atomic import write_atomic
from sarft_ray.data.checks import apply_transform, check_file, check_upstream
from sarft_ray.data.hub import (
    HubRef,
    Unreachable,
    download_github_file,
    download_hub_file,
    evict,
    github_cache_path,
    hub_snapshot_path,
    parse_hub_ref,
)
from sarft_ray.data.manifest import HUB_SCHEME, DataFile, entry_for_path, entry_for_source, load_manifest
from sarft_ray.errors import SarftError
from sarft_ray.paths import cache_dir, data_dir

DATA_SCHEME = "sarft-data://"


def _announce(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cached_upstream(entry: DataFile) -> Path:
    """Where the cache keeps ``entry``'s upstream file once downloaded."""
    src = entry.source
    if src.kind == "hub":
        return hub_snapshot_path(HubRef(src.repo, src.path, src.revision))
    return github_cache_path(src.repo, src.revision, src.path)


def download(entry: DataFile) -> Path:
    """The upstream file of ``entry`` in the local cache (downloaded when missing), its known sha256 checked."""
    src = entry.source
    if src.kind == "hub":
        path = download_hub_file(HubRef(src.repo, src.path, src.revision))
    else:
        path = download_github_file(src.repo, src.revision, src.path)
    check_upstream(entry, path)
    return path


def install(entry: DataFile, root: Path, *, refetch: bool = False) -> Path:
    """Download, transform and check ``entry``, then rename it into ``root``; nothing is left behind on failure.

    A download that fails its check is dropped from the cache too, so the
    next attempt fetches it afresh instead of failing on the same bytes.
    """
    if refetch:
        evict(cached_upstream(entry))
    upstream = _checked(entry, lambda: download(entry))
    staging_root = cache_dir() / "staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    target = root / entry.path
    with tempfile.TemporaryDirectory(prefix="pull-", dir=staging_root) as staging:
        staged = Path(staging) / Path(entry.path).name
        _checked(entry, lambda: apply_transform(entry.transform, upstream, staged))
        _checked(entry, lambda: check_file(entry, staged, shown=f"{entry.path} (from {entry.source.ref})"))
        try:
            write_atomic(target, lambda tmp: shutil.copyfile(staged, tmp))
        except OSError as exc:
            raise SarftError(f"{target}: cannot write into the data directory ({exc.strerror or exc})") from None
    return target


def _checked(entry: DataFile, step: Callable[[], object]):
    """Run a step on the downloaded bytes; when they fail it, drop them from the cache before re-raising."""
    try:
        return step()
    except Unreachable:
        raise
    except SarftError:
        evict(cached_upstream(entry))
        raise


def missing(root: Path, entries: Iterable[DataFile] | None = None) -> list[DataFile]:
    """The locked files that are not (yet) under ``root``."""
    return [e for e in (load_manifest() if entries is None else entries) if not (root / e.path).is_file()]


def _unreachable_line(exc: Unreachable, root: Path, absent: list[DataFile]) -> str:
    wanted = ", ".join(f"{e.path} ({e.source.ref})" for e in absent)
    return f"{exc}; reference data missing from {root}: put {wanted} there, or set SARFT_DATA_DIR to a directory holding them"


def pull(
    root: Path | None = None,
    names: Iterable[str] | None = None,
    *,
    force: bool = False,
    announce: Callable[[str], None] = _announce,
) -> list[str]:
    """Fetch the locked files (all, or those ``names``) that ``root`` lacks (every one with ``force``).

    Returns one line per file. Announces in one line what it is about to
    fetch; an unreachable host ends in one line that lists what to put where.
    """
    root = Path(root) if root is not None else data_dir()
    entries = list(load_manifest())
    if names:
        known = {e.name for e in entries}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SarftError(f"unknown reference file {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        entries = [e for e in entries if e.name in set(names)]
    todo = entries if force else missing(root, entries)
    lines = [f"{e.name}: {root / e.path} (present)" for e in entries if e not in todo]
    if not todo:
        return lines
    hosts = sorted({e.source.host for e in todo})
    announce(f"fetching {len(todo)} reference file(s) from {' and '.join(hosts)} into {root}: {', '.join(e.path for e in todo)}")
    for entry in todo:
        try:
            target = install(entry, root, refetch=force)
        except Unreachable as exc:
            raise SarftError(_unreachable_line(exc, root, missing(root, todo) if not force else todo)) from None
        lines.append(f"{entry.name}: {target} ({entry.rows} rows, sha256 ok)")
    return lines


def reference_file(relative: str) -> Path:
    """``<data dir>/<relative>``; a locked reference file that is missing there is fetched first (with any others missing)."""
    root = data_dir()
    path = root / relative
    if not path.exists() and entry_for_path(relative) is not None:
        pull(root)
    return path


def verify(root: Path | None = None) -> tuple[list[str], list[str]]:
    """Check every present locked file under ``root``: ``(lines, failures)``; missing files are listed, not failures."""
    root = Path(root) if root is not None else data_dir()
    lines, failures = [], []
    for entry in load_manifest():
        path = root / entry.path
        if not path.is_file():
            lines.append(f"{entry.name}: {path} missing (sarft-ray data pull fetches it)")
            continue
        try:
            check_file(entry, path)
        except SarftError as exc:
            failures.append(entry.name)
            lines.append(f"{entry.name}: FAILED {exc}")
        else:
            lines.append(f"{entry.name}: {path} ok ({entry.rows} rows)")
    return lines, failures


def describe() -> list[str]:
    """One line per locked file: where it goes, where it comes from, its licence."""
    return [f"{e.name}: {e.path} <- {e.source.ref} [{e.licence}]" for e in load_manifest()]


def resolve_data_ref(text: str) -> Path:
    """The local file a config's data reference names (downloaded or fetched when needed).

    ``sarft-data://PATH`` is a locked reference file under the data directory;
    ``hf://datasets/OWNER/NAME[@REVISION]/PATH`` a hub dataset file, cached,
    and checked against the lock when it is one of the locked upstream files.
    """
    if text.startswith(DATA_SCHEME):
        relative = text[len(DATA_SCHEME) :].strip("/")
        if entry_for_path(relative) is None:
            known = ", ".join(e.path for e in load_manifest())
            raise SarftError(f"{text}: not a reference data file; known: {known}")
        return reference_file(relative)
    if text.startswith(HUB_SCHEME):
        ref = parse_hub_ref(text)
        path = download_hub_file(ref)
        entry = entry_for_source("hub", ref.repo, ref.revision, ref.path)
        if entry is not None and entry.transform is None:
            _checked(entry, lambda: check_file(entry, path, shown=text))
        return path
    raise SarftError(f"{text}: not a data reference ({DATA_SCHEME}PATH or {HUB_SCHEME}OWNER/NAME[@REVISION]/PATH)")


def is_data_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith((DATA_SCHEME, HUB_SCHEME))
