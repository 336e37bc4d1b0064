"""Checks and transforms for reference files: rows, columns and sha256 against the lock entry.

A fetched file is checked in the order that says most about what went wrong:
it must parse in its format, then hold the expected columns and number of
rows (a cut-off download shows as missing rows), then match the sha256 byte
for byte (a corrupted or different upstream file). Each failure is one
SarftError line naming the file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sarft_ray.data.manifest import DataFile
from sarft_ray.errors import SarftError
from sarft_ray.hashing import file_digest


def _csv_shape(path: Path) -> tuple[int, tuple[str, ...]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return 0, ()
        return sum(1 for _ in reader), tuple(header)


def _common_keys(records) -> tuple[str, ...] | None:
    keys: set[str] | None = None
    for record in records:
        if not isinstance(record, dict):
            return None
        keys = set(record) if keys is None else keys & set(record)
    return tuple(sorted(keys or ()))


def _jsonl_shape(path: Path) -> tuple[int, tuple[str, ...] | None]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SarftError(f"{path}:{number}: not valid JSON ({exc.msg}); the download may be cut off") from None
    return len(records), _common_keys(records)


def _json_shape(path: Path, rows_in: str | None) -> tuple[int, tuple[str, ...] | None]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if rows_in is not None:
        data = data.get(rows_in) if isinstance(data, dict) else None
    if not isinstance(data, dict | list):
        raise SarftError(f"{path}: expected a JSON object{f' under {rows_in!r}' if rows_in else ''}")
    values = list(data.values()) if isinstance(data, dict) else data
    return len(values), _common_keys(values)


def file_shape(path: Path, fmt: str, rows_in: str | None = None) -> tuple[int, tuple[str, ...] | None]:
    """``(rows, columns)`` of a csv (header order), jsonl or json file (keys every row has, sorted)."""
    try:
        if fmt == "csv":
            return _csv_shape(path)
        if fmt == "jsonl":
            return _jsonl_shape(path)
        return _json_shape(path, rows_in)
    except UnicodeDecodeError:
        raise SarftError(f"{path}: not UTF-8 text; the download is damaged") from None
    except (json.JSONDecodeError, csv.Error) as exc:
        raise SarftError(f"{path}: not valid {fmt} ({exc}); the download may be cut off") from None


def check_file(entry: DataFile, path: Path, shown: str | None = None) -> None:
    """Fail with one line unless ``path`` holds exactly what ``entry`` locks: columns, rows, sha256."""
    shown = shown or str(path)
    rows, columns = file_shape(path, entry.format, entry.rows_in)
    if entry.columns is not None:
        expected = entry.columns if entry.format == "csv" else tuple(sorted(entry.columns))
        if columns != expected:
            raise SarftError(f"{shown}: columns {list(columns or ())} differ from the lock's {list(expected)}")
    if rows != entry.rows:
        raise SarftError(f"{shown}: {rows} rows, the lock expects {entry.rows} (a cut-off download or another revision)")
    digest = file_digest(path)
    if digest != entry.sha256:
        raise SarftError(
            f"{shown}: sha256 {digest[:16]}... differs from the lock's {entry.sha256[:16]}... "
            "(a corrupted download or another upstream revision)"
        )


def check_upstream(entry: DataFile, path: Path) -> None:
    """Fail with one line when the lock knows the upstream bytes' sha256 and the download differs."""
    expected = entry.source.sha256
    if expected is not None and file_digest(path) != expected:
        raise SarftError(
            f"{entry.source.ref}: downloaded bytes' sha256 differs from the lock's {expected[:16]}... "
            "(a corrupted download or a changed upstream file)"
        )


def _crlf(source: Path, target: Path) -> None:
    # the reference copy has Windows line endings; the upstream file has Unix ones (see the lock's note)
    data = source.read_bytes().replace(b"\r\n", b"\n")
    target.write_bytes(data.replace(b"\n", b"\r\n"))


def _parquet_to_csv(source: Path, target: Path) -> None:
    # pandas' DataFrame.to_csv layout: an unnamed row-number column, minimal quoting, LF line endings
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(source)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise SarftError(f"{source}: not a readable parquet file ({exc})") from None
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", *table.column_names])
    for number, row in enumerate(table.to_pylist()):
        writer.writerow([number, *row.values()])
    target.write_text(out.getvalue(), encoding="utf-8", newline="")


def apply_transform(name: str | None, source: Path, target: Path) -> None:
    """Write the stored form of the upstream file ``source`` to ``target`` (a plain copy without a transform)."""
    if name is None:
        target.write_bytes(source.read_bytes())
    elif name == "crlf":
        _crlf(source, target)
    elif name == "parquet_to_csv":
        _parquet_to_csv(source, target)
    else:
        raise SarftError(f"unknown transform {name!r}")
