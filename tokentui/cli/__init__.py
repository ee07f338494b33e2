"""The typer CLI: no subcommand opens the app; subcommands do the same work one-shot."""

from __future__ import annotations

from typing import Annotated

import typer

from tokentui.cli import analysis, diff, inside, score, sessions, tokens
from tokentui.cli.help import use_plain_help
from tokentui.cli.options import SharedOptions, fail, shared_options
from tokentui.engine.errors import TokentuiError

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


def main() -> None:
    app()
