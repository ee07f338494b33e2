"""Subcommands of this group are registered here."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this group's subcommands to the app."""
