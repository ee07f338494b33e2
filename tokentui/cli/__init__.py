"""The typer CLI: no subcommand opens the app; subcommands do the same work one-shot."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer._click import exceptions as click

from tokentui.cli import analysis, diff, inside, score, sessions, tokens
from tokentui.cli.help import use_plain_help
from tokentui.cli.options import SharedOptions, fail, shared_options
from tokentui.engine.errors import TokentuiError
from tokentui.visible import one_line

app = typer.Typer(
    name="tokentui",
    help="Watch a language model think, one token at a time.\n\n"
         "With no subcommand, opens the terminal app. Subcommands print tables for people "
         "or JSON for pipes.",
    no_args_is_help=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

for module in (tokens, analysis, inside, sessions, score, diff):
    module.register(app)


@app.callback(invoke_without_command=True)
@shared_options("model", "prompt", "sampling", "constraint")
def main_callback(
    ctx: typer.Context,
    prompt: Annotated[str | None, typer.Option(
        "--prompt", "-p", help="Pre-fill the prompt and start ready to step.")] = None,
    session_file: Annotated[str | None, typer.Option(
        "--session", help="Open a saved session file.")] = None,
    score_file: Annotated[str | None, typer.Option(
        "--score", help="Score a text file: its tokens given, coloured by rank, surprises listed.")] = None,
    *,
    opts: SharedOptions,
) -> None:
    """Open the terminal app (the default when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from tokentui.cli.runtime import run_config
    from tokentui.tui.app import run_app

    if score_file is not None:
        from tokentui.engine.analysis.score import read_text_file

        try:
            read_text_file(score_file)  # a bad file fails here, before the model loads
        except TokentuiError as exc:
            raise fail(str(exc)) from None
    run_app(run_config(opts, prompt or ""), session_file=session_file, score_file=score_file)


use_plain_help(app)


def _bad_argument(argv: list[str]) -> str | None:
    """The first argument that is not valid UTF-8 (Python keeps its bytes as lone surrogates)."""
    for i, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return f"argument {i} is not valid UTF-8 text: {one_line(arg)!s}"
    return None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: every failure is one ``error:`` line (exit 2), never a traceback or a panel."""
    args = sys.argv[1:] if argv is None else list(argv)
    bad = _bad_argument(args)
    if bad:
        typer.echo(f"error: {bad}", err=True)
        sys.exit(2)
    try:
        rc = app(args=args, standalone_mode=False, prog_name="tokentui")
    except click.UsageError as exc:  # also BadParameter, NoSuchOption, MissingParameter
        where = exc.ctx.command_path if exc.ctx is not None else "tokentui"
        typer.echo(f"error: {one_line(exc.format_message())} (see {where} --help)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        typer.echo(f"error: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except (click.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except TokentuiError as exc:  # raised outside a command's own handler (the app launcher)
        typer.echo(f"error: {one_line(exc)}", err=True)
        sys.exit(2)
    except RecursionError:
        typer.echo("error: the input is nested too deeply to read", err=True)
        sys.exit(2)
    except MemoryError:
        typer.echo("error: out of memory (the input is too large)", err=True)
        sys.exit(2)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
