"""What every ``jobs/*.py`` script is: the ``sarft-ray`` command of its name, with exactly its arguments.

``python jobs/train.py CONFIG --role R`` runs ``sarft-ray train CONFIG --role R``:
each script hands its arguments to :func:`sarft_ray.cli.main`, so there is one
argument parser and ``--help`` shows the command's own. A usage error names
the script (``error: train.py: ...``) and a ``SarftError`` ends in one line
``error: ...``, both with exit code 2, as in the CLI. Two conveniences for
job command lines, neither of which parses anything:

- the CLI's global flags (``--debug``, ``--verbose``/``-v``, ``--version``)
  may come anywhere, not only first;
- ``--config C`` (the scripts' older form, still in cluster manifests) stands
  for the positional ``C``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

GLOBAL_FLAGS = ("--debug", "--verbose", "-v", "--version")


def config_option_as_argument(argv: Sequence[str]) -> list[str]:
    """``[--config, C, ...]`` or ``[--config=C, ...]`` -> ``[C, ...]``; anything else unchanged."""
    out: list[str] = []
    config: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--config":
            config.append(next(items, ""))
        elif item.startswith("--config="):
            config.append(item.removeprefix("--config="))
        else:
            out.append(item)
    return [*config, *out]


def command_argv(command: str, argv: Sequence[str]) -> list[str]:
    """The CLI's argument list for ``command`` given a job's arguments (global flags moved in front)."""
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:split] if a in GLOBAL_FLAGS]
    rest = [a for a in argv[:split] if a not in GLOBAL_FLAGS] + argv[split:]
    return [*flags, command, *config_option_as_argument(rest)]


def run_command(command: str, argv: Sequence[str] | None = None) -> int:
    """Run ``sarft-ray <command> <argv>`` (default: this script's arguments) and return its exit code."""
    from sarft_ray.cli import main

    argv = sys.argv[1:] if argv is None else argv
    try:
        main(command_argv(command, argv), prog=f"{command}.py")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
