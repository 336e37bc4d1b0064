"""Where Ray Train checkpoints live: the run's directory, or ``ray.storage_path``.

On one machine the run directory is enough. On a multi-node cluster every
training worker writes its checkpoint shards to storage that every node
reaches, so ``ray.storage_path`` names shared storage: a path on a shared
filesystem or a URI (``s3://``, ``gs://``, ``abfs://``, ``file://``), read
through ``pyarrow.fs`` as Ray itself reads it. A run keeps its place under it
by the run directory's path below the output root
(``<storage_path>/<experiment>/train/<hash>/ray``), so a re-run finds its
checkpoints there and resumes. Artefacts (adapters, tables) are always
installed in the run directory on the driver, and a sweep's Tune state stays
under the experiment directory (its trials save no Tune checkpoints; each
trial's training does, here). A URI's query (``?endpoint_override=...``)
stays at the end of every location made from it.
"""

from __future__ import annotations

from pathlib import Path

from sarft_ray.errors import SarftError


def is_uri(location: str) -> bool:
    return "://" in location


# URI schemes pyarrow.fs opens (as Ray Train does); checked by name only: opening an s3:// or gs:// URI asks the
# network (the bucket's region), and the driver that validates a config may not reach what the workers reach.
SCHEMES = ("file", "s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")


def check_storage_path(value: str) -> str:
    """An absolute path, or a URI of a scheme pyarrow opens (a pydantic validator: the error names the field)."""
    if not is_uri(value):
        if not Path(value).is_absolute():
            raise ValueError(f"'{value}' must be an absolute path or a URI ({', '.join(s + '://' for s in SCHEMES)})")
        return value
    scheme, rest = value.split("?", 1)[0].split("://", 1)
    if scheme.lower() not in SCHEMES:
        raise ValueError(f"'{value}': unknown storage scheme '{scheme}://' (known: {', '.join(SCHEMES)})")
    if scheme.lower() == "file" and not rest.startswith("/"):
        raise ValueError(f"'{value}': a file:// URI names an absolute path (file:///shared/runs)")
    if not rest.strip("/"):
        raise ValueError(f"'{value}': the URI names no bucket or path")
    return value


def run_storage(storage_path: str | None, run_dir: Path, output_root: Path) -> str:
    """Where the run in ``run_dir`` keeps its Ray state: ``run_dir`` itself, or its place under ``storage_path``."""
    if storage_path is None:
        return str(Path(run_dir).resolve())
    try:
        relative = Path(run_dir).resolve().relative_to(Path(output_root).resolve())
    except ValueError:
        raise SarftError(f"{run_dir}: not under output_root {output_root}; cannot place it under ray.storage_path") from None
    return join(storage_path, relative.as_posix())


def open_location(location: str):
    """``(pyarrow filesystem, path)`` of a local path or URI."""
    import pyarrow.fs

    if not is_uri(location):
        return pyarrow.fs.LocalFileSystem(), str(Path(location).resolve())
    return pyarrow.fs.FileSystem.from_uri(location)


def list_dirs(location: str, prefix: str = "") -> list[str]:
    """Names of the directories directly under ``location`` that start with ``prefix`` (none if it is absent)."""
    import pyarrow.fs

    fs, path = open_location(location)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return []
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in infos if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith(prefix))


def read_text(location: str) -> str | None:
    """A small file's text, or None when it does not exist."""
    import pyarrow.fs

    fs, path = open_location(location)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")


def remove_dir(location: str) -> None:
    """Delete a directory and everything in it; nothing happens when it does not exist."""
    import pyarrow.fs

    fs, path = open_location(location)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.Directory:
        fs.delete_dir(path)


def join(location: str, *parts: str) -> str:
    """``location`` with ``parts`` appended to its path (before a URI's query, if any)."""
    base, query = location.split("?", 1) if is_uri(location) and "?" in location else (location, None)
    joined = "/".join([base.rstrip("/"), *parts])
    return joined if query is None else f"{joined}?{query}"
