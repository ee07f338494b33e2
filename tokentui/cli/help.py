"""Plain-text help, grouped into the same panels as the options (Model, Prompt, Sampling, ...).

Typer renders help through rich's markdown and table machinery, which costs more to import
than the rest of the CLI together. This formatter writes the same content with the vendored
click's own ``HelpFormatter``, so ``tokentui --help`` starts about as fast as Python imports
typer. Commands and the group use it through :func:`use_plain_help`.
"""

from __future__ import annotations

from typing import Any

import typer
from typer import core

OTHER_PANEL = "Options"
COMMANDS_PANEL = "Commands"


METAVARS = {"<str>": "TEXT", "<list[str]>": "TEXT", "<float>": "FLOAT", "<int>": "INTEGER",
            "<path>": "PATH", "<bool>": "BOOLEAN"}
"""The vendored click's type names, as typer's own help spells them."""


def _metavar(text: str) -> str:
    for raw, name in METAVARS.items():
        text = text.replace(raw, name).replace(raw[:-1] + " range>", name)
    return text


def _argument_name(param: Any) -> str:
    name = (param.name or "").upper()
    return name if param.required else f"[{name}]"


def _usage_pieces(command: Any, ctx: Any) -> list[str]:
    params = command.get_params(ctx)
    pieces = ["[OPTIONS]"] if any(not isinstance(p, core.TyperArgument) for p in params) else []
    pieces += [_argument_name(p) + ("..." if p.nargs == -1 else "")
               for p in params if isinstance(p, core.TyperArgument)]
    return pieces


def _panel(param: Any) -> str:
    return getattr(param, "rich_help_panel", None) or OTHER_PANEL


def _write_params(ctx: Any, formatter: Any, params: list[Any]) -> None:
    arguments = [p for p in params if isinstance(p, core.TyperArgument)]
    if arguments:
        rows = [(_argument_name(p), (getattr(p, "help", None) or "").strip()) for p in arguments]
        with formatter.section("Arguments"):
            formatter.write_dl(rows)
    panels: dict[str, list[tuple[str, str]]] = {}
    for param in params:
        if isinstance(param, core.TyperArgument):
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            panels.setdefault(_panel(param), []).append((_metavar(record[0]), record[1]))
    order = [OTHER_PANEL] + [p for p in panels if p != OTHER_PANEL]
    for name in order:
        if name in panels:
            with formatter.section(name):
                formatter.write_dl(panels[name])


class PlainHelpCommand(core.TyperCommand):
    """A subcommand whose help is plain text in panels (no rich import)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        _write_params(ctx, formatter, self.get_params(ctx))
        self.format_epilog(ctx, formatter)


class PlainHelpGroup(core.TyperGroup):
    """The top-level command: plain help with its options in panels and the subcommands listed."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        _write_params(ctx, formatter, self.get_params(ctx))
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=300)))
        if rows:
            with formatter.section(COMMANDS_PANEL):
                formatter.write_dl(rows)
        self.format_epilog(ctx, formatter)


def use_plain_help(app: typer.Typer) -> None:
    """Every command registered on ``app`` (and the app itself) renders plain help."""
    app.info.cls = PlainHelpGroup
    for info in app.registered_commands:
        if info.cls in (None, core.TyperCommand):
            info.cls = PlainHelpCommand
