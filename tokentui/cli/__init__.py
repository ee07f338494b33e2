"""The typer CLI: no subcommand opens the app; subcommands do the same work one-shot."""

from __future__ import annotations

from typing import Annotated

import typer

from tokentui.cli import analysis, diff, inside, sessions, tokens
from tokentui.cli.options import SharedOptions, shared_options

app = typer.Typer(
    name="tokentui",
    help="Watch a language model think, one token at a time.\n\n"
         "With no subcommand, opens the terminal app. Subcommands print tables for people "
         "or JSON for pipes.",
    no_args_is_help=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

for module in (tokens, analysis, inside, sessions, diff):
    module.register(app)


@app.callback(invoke_without_command=True)
@shared_options("model", "prompt", "sampling", "constraint")
def main_callback(
    ctx: typer.Context,
    prompt: Annotated[str | None, typer.Option(
        "--prompt", "-p", help="Pre-fill the prompt and start ready to step.")] = None,
    session_file: Annotated[str | None, typer.Option(
        "--session", help="Open a saved session file.")] = None,
    *,
    opts: SharedOptions,
) -> None:
    """Open the terminal app (the default when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from tokentui.cli.runtime import run_config
    from tokentui.tui.app import run_app

    run_app(run_config(opts, prompt or ""), session_file=session_file)


def main() -> None:
    app()
