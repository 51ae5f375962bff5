"""`fawn doctor`: check the set-up and say how to fix what is wrong."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from app.diagnostics import Check, Status, has_failures, run_checks
from app.settings import load_settings

console = Console()

_STYLES = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


def doctor() -> None:
    """Check the engine, GPU, sandbox, speech, web search and MCP servers, with the fix for each
    failure.

    Exits 1 when a check fails; warnings alone exit 0. Example: fawn doctor
    """
    settings = load_settings()
    with console.status("Checking ..."):
        report = run_checks(settings)
    console.print(render_report(report))
    if has_failures(report):
        failed = sum(check.status is Status.FAIL for check in report)
        console.print(f"[bold red]{failed} check(s) failed.[/] Apply the fixes above and rerun.")
        raise typer.Exit(1)
    console.print("[green]Fawn is ready.[/]")


def render_report(report: list[Check]) -> Table:
    """The report as a table: check, status, what was found, and the fix where one is needed."""
    table = Table(title="fawn doctor", show_lines=True)
    table.add_column("Check", style="bold", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Detail", overflow="fold")
    table.add_column("Fix", overflow="fold")
    for check in report:
        style = _STYLES[check.status]
        table.add_row(check.name, f"[{style}]{check.status}[/]", check.detail, check.fix)
    return table
