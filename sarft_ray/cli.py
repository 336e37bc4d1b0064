"""The ``sarft-ray`` command line: parse arguments, call a stage, print a short result.

Bad input ends with one line ``error: ...`` on stderr and exit code 2; pass
``--debug`` (before the command) to see the traceback instead. Every command
that reads a config takes ``--set KEY.PATH=VALUE`` (``cli_options.py``).
Progress bars show on a terminal; ``--verbose`` adds log lines and Ray's own
output (``progress.py``). The ``jobs/*.py`` scripts call :func:`main` with
their command and arguments (``job_entry.py``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from sarft_ray.cli_options import ConfigArg, SetOption, load
from sarft_ray.errors import SarftError
from sarft_ray.secrets import install_log_redaction, redact_text

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
models_app = typer.Typer(no_args_is_help=True, help="Fetch and inspect models.")
app.add_typer(models_app, name="models")
data_app = typer.Typer(no_args_is_help=True, help="Fetch, list and check the reference data (sarft_ray/data/sources.lock.json).")
app.add_typer(data_app, name="data")

_state: dict = {"debug": False, "prog": None}


def version_line() -> str:
    """``sarft-ray <version>`` of the installed distribution."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"sarft-ray {version('sarft-ray')}"
    except PackageNotFoundError:  # a source tree used without installing it
        return "sarft-ray (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _global(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log lines, progress bars in logs, Ray's own output")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Safety-aware role-play fine-tuning (SaRFT) on Ray."""
    from sarft_ray import progress

    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    progress.configure(verbose=verbose or debug)
    install_log_redaction()  # no URL credentials or registered keys in any log line


@app.command()
def validate(config: ConfigArg, overrides: SetOption = None) -> None:
    """Check a config and the files it points to without running anything."""
    from sarft_ray.validate import check_inputs

    cfg = load(config, overrides)
    for line in check_inputs(cfg):
        typer.echo(line)
    typer.echo(f"{config}: OK")


@app.command()
def score(
    config: ConfigArg,
    force: Annotated[bool, typer.Option("--force", help="recompute even when stored scores match")] = False,
    overrides: SetOption = None,
) -> None:
    """RDS: score every role's corpus and store each role's harmful flags, summary and chart."""
    from sarft_ray.scoring import score_roles

    result = score_roles(load(config, overrides), force=force)
    typer.echo("\n".join(result.lines()))


@app.command(name="eval")
def eval_(
    config: ConfigArg,
    model: Annotated[str | None, typer.Option("--model", help="model id or path (default: the config's model.ref)")] = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", help="PEFT adapter directory to apply")] = None,
    role: Annotated[list[str] | None, typer.Option("--role", help="role(s) whose RoleBench questions are asked")] = None,
    force: Annotated[bool, typer.Option("--force", help="generate again even when stored answers match")] = False,
    overrides: SetOption = None,
) -> None:
    """Evaluate a model (and optional adapter): RoleBench ROUGE-L, refusal rates, jailbreaks."""
    from sarft_ray.evaluation.runner import evaluate_model
    from sarft_ray.validate import check_model_ref

    cfg = load(config, overrides)
    if model is not None:
        check_model_ref(model, "--model")  # a wrong --model fails now, not once Ray and the generators are up
    result = evaluate_model(cfg, model=model, adapter=adapter, roles=role, force=force)
    typer.echo(result.markdown)
    typer.echo(f"stored in {result.directory}")


@app.command()
def align(
    config: ConfigArg,
    force: Annotated[bool, typer.Option("--force", help="align again even when a stored aligned model matches")] = False,
    no_ray: Annotated[bool, typer.Option("--no-ray", help="distil and train in this process")] = False,
    overrides: SetOption = None,
) -> None:
    """Safety-align model.ref (the config's alignment section); later stages start from the aligned model."""
    from sarft_ray.alignment.stage import align_model

    result = align_model(load(config, overrides), force=force, use_ray=not no_ray)
    typer.echo("\n".join(result.lines()))


@models_app.command("pull")
def models_pull(
    ref: Annotated[str, typer.Argument(help="alias, .gguf file or hub id")],
    revision: Annotated[str | None, typer.Option("--revision", help="hub branch, tag or commit (default: main)")] = None,
) -> None:
    """Fetch a model into the local cache now: a hub model's weights, config and tokenizer as one snapshot
    (later runs and their Ray actors load it from there); a GGUF file or alias dequantized once."""
    from sarft_ray.models import ModelConfig, load_tokenizer
    from sarft_ray.models.loading import model_location

    cfg = ModelConfig(ref=ref, revision=revision)
    location = model_location(cfg, refresh=True)
    load_tokenizer(cfg)
    typer.echo(f"{ref}: ready at {location}")


@data_app.command("pull")
def data_pull(
    names: Annotated[list[str] | None, typer.Argument(help="lock entries to fetch (default: all)", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="download again and replace files already present")] = False,
) -> None:
    """Fetch the reference data at its pinned revisions into the data directory, checking rows, columns and sha256."""
    from sarft_ray.data.pull import pull

    typer.echo("\n".join(pull(names=names, force=force)))


@data_app.command("list")
def data_list() -> None:
    """Show each reference file: where it goes, where it comes from, its licence."""
    from sarft_ray.data.pull import describe
    from sarft_ray.paths import data_dir

    typer.echo(f"data directory: {data_dir()}")
    typer.echo("\n".join(describe()))


@data_app.command("verify")
def data_verify() -> None:
    """Check the files in the data directory against the lock file (rows, columns, sha256)."""
    from sarft_ray.data.pull import verify

    lines, failures = verify()
    typer.echo("\n".join(lines))
    if failures:
        raise SarftError(f"reference data differs from the lock file: {', '.join(failures)} (sarft-ray data pull --force fetches them again)")


def _register_stage_commands() -> None:
    from sarft_ray.orchestration import cli_hook as orchestration_commands
    from sarft_ray.training import cli_hook as training_commands

    training_commands.register(app)
    orchestration_commands.register(app)


_register_stage_commands()


def _click_error_types() -> tuple[type[Exception], ...]:
    """The exception classes of the click that typer really raises usage errors from.

    typer >= 0.20 vendors click as ``typer._click``; its exceptions derive from
    ``typer.TyperException``, not from the ``click`` package that other
    libraries install beside it. Older typer raises ``click.ClickException``.
    """
    types: list[type[Exception]] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    try:
        import click

        types.append(click.ClickException)
    except ImportError:  # typer that vendors click does not need the package
        pass
    return tuple(types)


def _usage_line(exc: Exception) -> str:
    """A click usage error as one line naming the command (a job: its script) and what was wrong with its arguments."""
    ctx = getattr(exc, "ctx", None)
    command = _state["prog"] or (ctx.command_path if ctx is not None else "sarft-ray")
    message = " ".join(exc.format_message().split())
    return f"error: {command}: {message} (see '{command} --help')"


def _asks_for_help(exc: Exception) -> bool:
    # a group called without a command shows its help (click's NoArgsIsHelpError), as `no_args_is_help` promises
    return any(cls.__name__ == "NoArgsIsHelpError" for cls in type(exc).__mro__)


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Console-script entry point: exit 0 on success, 2 on bad input or usage, 130 when interrupted.

    ``prog`` names a job script (``run.py``) in usage errors instead of ``sarft-ray <command>``.
    """
    _state["prog"] = prog
    click_errors = _click_error_types()
    try:
        # standalone_mode=False: exceptions reach this function, so SarftError and usage errors share one format
        returned = app(args=argv, prog_name="sarft-ray", standalone_mode=False)
    except SarftError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {redact_text(str(exc))}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_errors as exc:
        if _asks_for_help(exc):
            exc.show()
        else:
            typer.echo(_usage_line(exc), err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    # without standalone mode, a command's `raise typer.Exit(n)` (and --help's exit 0) comes back as the return value
    if isinstance(returned, int) and not isinstance(returned, bool):
        sys.exit(returned)


if __name__ == "__main__":
    main()
