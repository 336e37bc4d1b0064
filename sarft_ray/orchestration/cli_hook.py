"""The ``sarft-ray run`` and ``sarft-ray sweep`` commands; ``register(app)`` adds them to the CLI's typer app.

Imports stay inside the commands so that ``sarft-ray --help`` does not load Ray or torch.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sarft_ray.cli_options import ConfigArg, SetOption, load, restrict_roles


def run(
    config: ConfigArg,
    force: Annotated[bool, typer.Option("--force", help="redo every stage even when stored results match")] = False,
    roles: Annotated[
        list[str] | None, typer.Option("--role", metavar="NAME", help="run only this role (a name from roles.names); repeatable", show_default=False)
    ] = None,
    overrides: SetOption = None,
) -> None:
    """Score, train and evaluate every role of the config; print the per-role table."""
    from sarft_ray.orchestration import run_pipeline

    result = run_pipeline(restrict_roles(load(config, overrides), roles), force=force)
    typer.echo("\n".join(result.lines()))


def sweep(
    config: ConfigArg,
    restart: Annotated[bool, typer.Option("--restart", help="start afresh instead of resuming a stored sweep")] = False,
    overrides: SetOption = None,
) -> None:
    """Ray Tune sweep over the config's sweep section; print the best trial per role."""
    from sarft_ray.orchestration import run_sweep

    result = run_sweep(load(config, overrides), resume=not restart)
    typer.echo("\n".join(result.lines()))
    if result.errored:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``sweep`` to ``app``."""
    app.command(name="run")(run)
    app.command(name="sweep")(sweep)
