"""The reference-data lock file (``sarft_ray/data/sources.lock.json``), read into typed entries.

Each entry names a file under the data directory, where it comes from (a
dataset on the Hugging Face hub or a file in a GitHub repository, always at a
pinned revision), an optional transform from the upstream bytes to the stored
file, and what the stored file must hold: row count, columns and sha256.
The lock file ships inside the package, so an installed sarft-ray knows how
to fetch and check its data without the repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from sarft_ray.errors import SarftError

LOCK_NAME = "sources.lock.json"
FORMATS = ("csv", "jsonl", "json")
TRANSFORMS = ("crlf", "parquet_to_csv")
HUB_SCHEME = "hf://datasets/"


@dataclass(frozen=True)
class Source:
    """Where a file's upstream bytes live: ``kind`` is ``hub`` (a dataset repo) or ``github``."""

    kind: str
    repo: str
    revision: str
    path: str
    sha256: str | None = None  # of the upstream bytes, where known

    @property
    def ref(self) -> str:
        """A reference a person can follow: ``hf://datasets/OWNER/NAME@REV/PATH`` or the GitHub raw URL."""
        if self.kind == "hub":
            return f"{HUB_SCHEME}{self.repo}@{self.revision}/{self.path}"
        return f"https://raw.githubusercontent.com/{self.repo}/{self.revision}/{self.path}"

    @property
    def host(self) -> str:
        return "the Hugging Face hub" if self.kind == "hub" else "raw.githubusercontent.com"


@dataclass(frozen=True)
class DataFile:
    """One reference file: its place under the data directory, its source and what it must hold."""

    name: str
    path: str
    format: str
    rows: int
    sha256: str
    source: Source
    columns: tuple[str, ...] | None = None
    rows_in: str | None = None  # json only: the key whose entries are the rows (None: the top level)
    transform: str | None = None
    licence: str = ""
    checked: str = ""


def _source(raw: dict, where: str) -> Source:
    kinds = [k for k in ("hub", "github") if k in raw]
    if len(kinds) != 1:
        raise SarftError(f"{where}.source: give exactly one of 'hub' or 'github'")
    kind = kinds[0]
    try:
        return Source(kind, raw[kind], raw["revision"], raw["path"], raw.get("sha256"))
    except KeyError as exc:
        raise SarftError(f"{where}.source: missing {exc.args[0]!r}") from None


def parse_manifest(data: dict, lock_name: str = LOCK_NAME) -> tuple[DataFile, ...]:
    """Typed entries of a parsed lock file; a malformed entry is one error naming it."""
    if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("files"), list):
        raise SarftError(f"{lock_name}: expected {{'format': 1, 'files': [...]}}")
    entries = []
    for i, raw in enumerate(data["files"]):
        where = f"{lock_name}: files[{i}]"
        try:
            entry = DataFile(
                name=raw["name"],
                path=raw["path"],
                format=raw["format"],
                rows=int(raw["rows"]),
                sha256=raw["sha256"],
                source=_source(raw["source"], where),
                columns=tuple(raw["columns"]) if raw.get("columns") is not None else None,
                rows_in=raw.get("rows_in"),
                transform=raw.get("transform"),
                licence=raw.get("licence", ""),
                checked=raw.get("checked", ""),
            )
        except KeyError as exc:
            raise SarftError(f"{where}: missing {exc.args[0]!r}") from None
        if entry.format not in FORMATS:
            raise SarftError(f"{where}: format must be one of {', '.join(FORMATS)}")
        if entry.transform is not None and entry.transform not in TRANSFORMS:
            raise SarftError(f"{where}: transform must be one of {', '.join(TRANSFORMS)}")
        if entry.path.startswith("/") or ".." in entry.path.split("/"):
            raise SarftError(f"{where}: path must stay inside the data directory")
        entries.append(entry)
    return tuple(entries)


@lru_cache(maxsize=1)
def load_manifest() -> tuple[DataFile, ...]:
    """The shipped lock file's entries, in the order they are fetched."""
    text = resources.files("sarft_ray.data").joinpath(LOCK_NAME).read_text(encoding="utf-8")
    return parse_manifest(json.loads(text))


def entry_for_path(relative: str) -> DataFile | None:
    """The lock entry stored at ``relative`` (a path under the data directory), if any."""
    relative = relative.strip("/")
    return next((e for e in load_manifest() if e.path == relative), None)


def entry_for_source(kind: str, repo: str, revision: str, path: str) -> DataFile | None:
    """The lock entry whose upstream file this is (same repository, revision and path), if any."""
    for entry in load_manifest():
        s = entry.source
        if (s.kind, s.repo, s.revision, s.path) == (kind, repo, revision, path):
            return entry
    return None
