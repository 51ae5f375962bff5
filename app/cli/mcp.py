"""`fawn mcp list | serve`: the MCP servers Fawn uses as tools, and Fawn as an MCP server."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agents.tools.mcp_probe import ServerProbe, probe_servers
from app.settings import load_settings

app = typer.Typer(
    help="MCP: the servers research can use as tools, and Fawn served to other agents.",
    no_args_is_help=True,
)
console = Console(highlight=False)


@app.command("list")
def list_servers() -> None:
    """The configured MCP servers, whether each answers, and its tools; exits 1 if one does not.

    Servers are configured in the config file as [mcp.servers.NAME]. Example: fawn mcp list
    """
    settings = load_settings()
    if not settings.mcp.servers:
        console.print(
            "No MCP servers are configured: add [mcp.servers.NAME] to the config file "
            "(see README, MCP)."
        )
        return
    with console.status("Asking the MCP servers ..."):
        probes = asyncio.run(probe_servers(settings.mcp))
    console.print(probe_table(probes))
    if not all(probe.answers for probe in probes):
        raise typer.Exit(1)


def probe_table(probes: list[ServerProbe]) -> Table:
    """Each server as a row: name, transport and target, whether it answers, its tools."""
    table = Table(title="MCP servers", show_lines=True)
    for column in ("server", "reached by", "answers", "tools"):
        table.add_column(column, overflow="fold")
    for probe in probes:
        config = probe.config
        reached = f"{config.transport}: {escape(config.target)}"
        if not probe.answers:
            table.add_row(probe.name, reached, f"[red]no: {escape(probe.error or '')}[/]", "")
            continue
        missing = ", ".join(probe.problems)
        answers = "[green]yes[/]" + (
            f"\n[yellow]not listed: {escape(missing)}[/]" if missing else ""
        )
        table.add_row(probe.name, reached, answers, _tools(probe))
    return table


def _tools(probe: ServerProbe) -> str:
    lines = []
    for tool in probe.tools:
        mark = " [cyan](search)[/]" if tool.name == probe.config.search_tool else ""
        refused = "" if tool.allowed else " [dim](not allowed)[/]"
        lines.append(f"{escape(tool.name)}{mark}{refused}")
    return "\n".join(lines) or "[dim]none[/]"


@app.command()
def serve(
    http: Annotated[
        bool, typer.Option("--http", help="Serve Streamable HTTP instead of stdio.")
    ] = False,
    host: Annotated[
        str | None, typer.Option(help="HTTP address; off loopback needs FAWN_API_KEY.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8080).")] = None,
) -> None:
    """Serve Fawn to MCP clients: `research`, `search_corpus` and `get_report` tools.

    stdio by default (for desktop assistants and IDE agents that start it); `--http` serves
    Streamable HTTP at /mcp, behind FAWN_API_KEY like `fawn api`.
    Example: fawn mcp serve --http --port 8765
    """
    from app.mcp.serve import serve_http, serve_stdio

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    if http:
        serve_http(settings)
    else:
        serve_stdio(settings)
