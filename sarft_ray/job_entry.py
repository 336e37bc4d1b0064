"""What every ``jobs/*.py`` script shares: argument errors and bad input end like the ``sarft-ray`` CLI's.

The scripts are thin entry points for ``ray job submit`` (or plain ``python``).
A usage error (unknown option, missing or bad value) and a ``SarftError`` both
end in one line ``error: ...`` on stderr and exit code 2; ``--debug`` shows
the traceback of a ``SarftError`` instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from sarft_ray.errors import SarftError
from sarft_ray.secrets import install_log_redaction, redact_text


class JobArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line usage error (argparse itself prints the usage block first)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())} (see '{self.prog} --help')\n")


def job_parser(description: str) -> JobArgumentParser:
    """A parser with the ``--debug`` flag every job takes."""
    parser = JobArgumentParser(description=description)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an input error")
    return parser


def run_job(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int | None], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run ``body(args)`` and return the process exit code (``body``'s, 0 if it returns None)."""
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # no URL credentials or registered keys in any log line
    try:
        code = body(args)
    except SarftError as exc:
        if debug:
            raise
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    return code or 0
