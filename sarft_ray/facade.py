"""How every package's ``__init__`` re-exports its public API: lazily.

Each package ``__init__`` holds its docstring (what the package holds and how
to extend it) and one call, ``__getattr__, __all__ = lazy_exports(__name__,
{module: "names it defines"})``.
A name is imported from its module on first use, so importing a package (to
read a config, to run ``sarft-ray --help``) costs only what is used, and torch,
Ray and MLflow load where a stage needs them. A registry package
(``evaluation.benchmarks``, ``evaluation.jailbreaks``, ``evaluation.judges``)
also holds the registration lines of its built-ins, which import what they register.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, by_module: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, public names)`` for ``package``'s ``__init__``; ``by_module`` maps each module inside
    the package to the names it defines, separated by spaces. A name is read from its module on first
    use and kept in the package, so later look-ups are plain attribute reads."""
    home = {name: module for module, names in by_module.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__, sorted(home)
