"""The `fawn` command: thin typer commands over library functions, one sub-app per file."""

from __future__ import annotations

import typer

from app.cli import (
    api,
    batch,
    chat,
    corpus,
    doctor,
    eval,
    gateway,
    jobs,
    mcp,
    podcast,
    research,
    sandbox,
    serve,
    worker,
)
from app.cli.errors import run_cli

app = typer.Typer(
    name="fawn",
    help="Fawn: self-hosted deep research on one modest GPU, or offline on a CPU.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(serve.app, name="serve")
app.add_typer(corpus.app, name="corpus")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(eval.app, name="eval")
app.add_typer(jobs.app, name="jobs")
app.add_typer(mcp.app, name="mcp")
app.command("doctor")(doctor.doctor)
app.command("research")(research.research)
app.command("chat")(chat.chat)
app.command("api")(api.api)
app.command("worker")(worker.worker)
app.command("gateway")(gateway.gateway)
app.command("batch")(batch.batch)
app.command("podcast")(podcast.podcast)


def main() -> None:
    """Console-script entry point: runs the CLI and turns Fawn errors into clean exits."""
    run_cli(app)
