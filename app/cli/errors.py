"""The one place that turns Fawn errors into a clean one-line message and exit code 2.

Set `FAWN_DEBUG=1` to re-raise instead, with the full traceback.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from serving.errors import FawnError

EXIT_USAGE = 2
_stderr = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print `message` as an error and return the Exit for a command to raise (exit code 2)."""
    _stderr.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def run_cli(app: typer.Typer) -> None:
    """Run `app`; a FawnError becomes `Error: <message>` on stderr and exit code 2."""
    try:
        app()
    except FawnError as exc:
        if os.environ.get("FAWN_DEBUG"):
            raise
        fail(escape(str(exc)))  # plain text: "[mcp.servers.NAME]" is not rich markup
        sys.exit(EXIT_USAGE)
