"""The text side of reading a config: ``${VAR}`` expansion, and validation errors as one line.

``expand_env`` substitutes environment variables in every string of a YAML
tree; ``format_validation_error`` turns pydantic's errors into one line that
names the file and each bad field's dotted path, never printing a value that
came from the environment.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from pydantic import ValidationError

from sarft_ray.errors import SarftError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, where: str = "", used: dict[str, str] | None = None) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree.

    As in a shell, ``${VAR:-default}`` uses the default when VAR is unset or
    empty. A ``${VAR}`` that is unset is an error naming VAR (never its value,
    nor any other variable's). ``used`` collects ``name -> value`` of every
    variable substituted, so error messages can hide those values.
    """
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}" if where else str(k), used) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]", used) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        current = os.environ.get(name)
        if current is not None and (current != "" or default is None):
            if used is not None:
                used[name] = current
            return current
        if default is not None:
            return default
        raise SarftError(f"{where}: environment variable {name} is not set and has no default")

    return _VAR.sub(substitute, value)


def _hide_env_values(text: str, used: dict[str, str]) -> str:
    """Replace each substituted variable's value in ``text`` by ``${NAME}`` (longest values first)."""
    for name, value in sorted(used.items(), key=lambda item: -len(item[1])):
        if value:
            text = text.replace(value, "${" + name + "}")
    return text


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_validation_error(source: str, exc: ValidationError, env_used: dict[str, str] | None = None) -> str:
    """One line naming the file, each bad field's dotted path, what was expected and what was given.

    Values that came from environment variables (``env_used``) are shown as
    ``${NAME}``: a mistyped field must not print a token kept in the environment.
    """
    problems = []
    for err in exc.errors():
        loc = _dotted(tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))))
        msg = err["msg"].removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        if not loc:  # a check across sections names its fields itself
            problems.append(msg)
        elif err["type"] == "extra_forbidden":
            problems.append(f"{loc}: unknown key")
        elif err["type"] == "missing":
            problems.append(f"{loc}: required field is missing")
        else:
            given = err.get("input")
            shown = json.dumps(given, default=str) if not isinstance(given, dict) else "{...}"
            problems.append(f"{loc}: {msg}, got {shown[:80]}")
    return f"{source}: " + _hide_env_values("; ".join(problems), env_used or {})
