"""The ``sarft-ray train`` command; ``register(app)`` adds it to the CLI's typer app.

Imports stay inside the command so that ``sarft-ray --help`` does not load torch.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sarft_ray.cli_options import ConfigArg, SetOption, load
from sarft_ray.scoring.selection import registered_selections, unknown_selection


def _selection(name: str) -> str:
    # read at parse time, so a strategy registered after this module was imported is accepted too
    if name not in registered_selections():
        raise typer.BadParameter(unknown_selection(name))
    return name


def train(
    config: ConfigArg,
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
    overrides: SetOption = None,
) -> None:
    """RBO: fine-tune one role from its stored scores (CE on every row + lambda * KL on harmful rows)."""
    from sarft_ray.progress import follow_training
    from sarft_ray.training.entry import summary_lines, train_role

    cfg = load(config, overrides)
    with follow_training(role) as on_step:  # a progress bar of the training steps on a terminal
        summary = train_role(
            cfg, role, selection=selection, lambda_kl=lambda_kl, use_ray=not no_ray, force=force, on_step=on_step
        )
    typer.echo("\n".join(summary_lines(summary)))


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app``."""
    app.command(name="train")(train)
