"""The ``sarft-ray train`` command; ``register(app)`` adds it to the CLI's typer app.

Imports stay inside the command so that ``sarft-ray --help`` does not load torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sarft_ray.scoring.selection import registered_selections, unknown_selection


def _selection(name: str) -> str:
    # read at parse time, so a strategy registered after this module was imported is accepted too
    if name not in registered_selections():
        raise typer.BadParameter(unknown_selection(name))
    return name


def train(
    config: Annotated[Path, typer.Argument(help="experiment YAML file", show_default=False)],
    role: Annotated[str, typer.Option("--role", help="role to fine-tune (a name from roles.names)", show_default=False)],
    selection: Annotated[
        str | None,
        typer.Option(
            "--selection",
            parser=_selection,
            metavar="NAME",
            help=f"rows that carry the KL term: {', '.join(registered_selections())} (default: training.selection)",
        ),
    ] = None,
    lambda_kl: Annotated[float | None, typer.Option("--lambda", help="KL weight (default: training.lambda_kl)")] = None,
    no_ray: Annotated[bool, typer.Option("--no-ray", help="train in this process, without Ray (one worker)")] = False,
    force: Annotated[bool, typer.Option("--force", help="train again even if this run finished before")] = False,
) -> None:
    """RBO: fine-tune one role from its stored scores (CE on every row + lambda * KL on harmful rows)."""
    from sarft_ray.config import load_config
    from sarft_ray.training.entry import summary_lines, train_role

    summary = train_role(load_config(config), role, selection=selection, lambda_kl=lambda_kl, use_ray=not no_ray, force=force)
    typer.echo("\n".join(summary_lines(summary)))


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app``."""
    app.command(name="train")(train)
