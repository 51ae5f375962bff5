"""`fawn eval`: measure the research pipeline on a benchmark."""

from __future__ import annotations

import typer

app = typer.Typer(help="Measure the research pipeline.", no_args_is_help=True)
