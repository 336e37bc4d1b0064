"""Options every ``sarft-ray`` command that reads a config shares: the config argument and ``--set``.

Kept apart from ``cli.py`` so the command modules of the stages (``training/cli_hook.py``,
``orchestration/cli_hook.py``) declare them the same way without importing the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigArg = Annotated[Path, typer.Argument(help="experiment YAML file (or a packaged config's name)", show_default=False)]

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY.PATH=VALUE",
        help="change one config field before it is checked, value as YAML (--set training.lambda_kl=3); repeatable",
        show_default=False,
    ),
]


def load(config: Path, overrides: list[str] | None = None):
    """The validated experiment config of ``config`` with the ``--set`` overrides applied."""
    from sarft_ray.config import load_config

    return load_config(config, overrides or [])


def restrict_roles(cfg, roles: list[str] | None):
    """``cfg`` with only ``roles`` (``--role``, matched against ``roles.names`` with a did-you-mean); all when empty."""
    if not roles:
        return cfg
    from sarft_ray.data.roles import match_role

    source = f"{cfg.source or 'config'}: roles.names"
    picked: list[str] = []
    for name in roles:
        role = match_role(name, cfg.roles.names, source)
        if role not in picked:
            picked.append(role)
    return cfg.with_updates(roles=cfg.roles.model_copy(update={"names": picked}))
