"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class SarftError(Exception):
    """A problem with the user's input (a file, a config field, a model path).

    The message is a single line that names the file, line or field at fault;
    the CLI prints it as ``error: <message>`` and exits with code 2.
    """


def where(path: object, line: int | None = None, field: str | None = None) -> str:
    """Format a location prefix such as ``data.jsonl:12`` or ``cfg.yaml: train.lr``."""
    text = str(path)
    if line is not None:
        text += f":{line}"
    if field:
        text += f": {field}"
    return text
