"""Line- and row-level file readers that report bad input as ``file:line``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from sarft_ray.errors import SarftError


def _require_file(path: Path) -> None:
    if not path.exists():
        raise SarftError(f"{path}: file does not exist")
    if path.is_dir():
        raise SarftError(f"{path}: is a directory, not a file")


def read_text(path: Path) -> str:
    """Read a UTF-8 file; a bad byte is reported with its line number."""
    _require_file(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SarftError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SarftError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line, streaming the file."""
    _require_file(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise SarftError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SarftError(f"{path}:{number}: not valid UTF-8") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SarftError(f"{path}:{number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise SarftError(f"{path}:{number}: JSON nested too deeply") from None
            if not isinstance(obj, dict):
                raise SarftError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj


def iter_csv(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, row)`` from a CSV with a header that holds ``required``."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise SarftError(f"{path}: missing column(s) {', '.join(missing)} (header: {reader.fieldnames})")
    for row in reader:
        yield reader.line_num, row


def iter_records(path: Path, suffixes: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` for each record of a ``.jsonl``, ``.json`` (an array), ``.csv`` or ``.parquet`` file.

    ``suffixes`` are the file types the caller reads; ``where`` is ``file:line``
    (jsonl, csv) or ``file: record N`` / ``file: row N`` (json, parquet).
    """
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise SarftError(f"{path}: unsupported file type '{suffix}' (use {', '.join(suffixes)})")
    if suffix == ".jsonl":
        yield from ((f"{path}:{number}", obj) for number, obj in iter_jsonl(path))
    elif suffix == ".csv":
        yield from ((f"{path}:{line}", row) for line, row in iter_csv(path, ()))
    elif suffix == ".json":
        records = read_json_or_yaml(path)  # duplicate keys in a record are refused too
        if not isinstance(records, list):
            raise SarftError(f"{path}: expected a JSON array of records, got {type(records).__name__}")
        for number, obj in enumerate(records, start=1):
            if not isinstance(obj, dict):
                raise SarftError(f"{path}: record {number}: expected a JSON object, got {type(obj).__name__}")
            yield f"{path}: record {number}", obj
    else:
        yield from _iter_parquet(path)


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _require_file(path)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise SarftError(f"{path}: not a readable parquet file ({exc})") from None
    number = 0
    for batch in parquet.iter_batches():
        for obj in batch.to_pylist():
            yield f"{path}: row {number}", obj
            number += 1


def read_json_or_yaml(path: Path) -> object:
    """Parse a ``.json`` / ``.yaml`` / ``.yml`` file with a located error.

    Duplicate keys are errors (YAML and JSON would silently keep the last one),
    and YAML aliases may not refer to themselves or expand to more than
    ``MAX_YAML_VALUES`` values (a few hundred bytes of nested aliases can
    otherwise stand for billions of values).
    """
    import yaml

    text = read_text(path)
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise SarftError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
        except _DuplicateKey as exc:
            raise SarftError(f"{path}: duplicate key '{exc.args[0]}' in a JSON object") from None
        except RecursionError:
            raise SarftError(f"{path}: JSON nested too deeply") from None
    try:
        return load_yaml(text, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SarftError(f"{path}{line}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise SarftError(f"{path}: YAML nested too deeply") from None


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


MAX_YAML_VALUES = 1_000_000
"""Values a YAML document may expand to through aliases; configs and prompt files hold thousands at most."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


def load_yaml(text: str, path: Path) -> object:
    """``yaml.safe_load`` that first checks the node graph: duplicate keys, recursive aliases, alias bombs."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_graph(node, path)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node) -> list:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _child_lines(node) -> list[tuple[object, int]]:
    """``(child, line)`` pairs; the line is where the child is used (a mapping value: its key's line)."""
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        return [(part, key.start_mark.line + 1) for key, value in node.value for part in (key, value)]
    return [(child, line) for child in _children(node)]


def _check_yaml_graph(root, path: Path) -> None:
    """Count the values the document expands to (an alias counts its target again) without expanding it.

    Each distinct node is visited once (sizes are memoised), so the check is
    linear in the text even when the expansion is exponential.
    """
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered and not finished: the ancestors of the node being visited
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            open_nodes.discard(id(node))
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_YAML_VALUES:
                raise SarftError(
                    f"{path}:{node.start_mark.line + 1}: YAML aliases expand to more than {MAX_YAML_VALUES:,} values "
                    "(an alias bomb?); refusing to load it"
                )
            sizes[id(node)] = size
            continue
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node, path)
        open_nodes.add(id(node))
        stack.append((node, True))
        for child, line in _child_lines(node):
            if id(child) in open_nodes:
                raise SarftError(f"{path}:{line}: YAML alias refers to a node that contains it (a recursive structure)")
            if id(child) not in sizes:
                stack.append((child, False))


def _check_duplicate_keys(node, path: Path) -> None:
    import yaml

    first_line: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue  # `<<: *base` merges may be overridden by explicit keys, as YAML intends
        line = key.start_mark.line + 1
        if (key.tag, key.value) in first_line:
            raise SarftError(
                f"{path}:{line}: duplicate key '{key.value}' (first given on line {first_line[key.tag, key.value]})"
            )
        first_line[key.tag, key.value] = line
