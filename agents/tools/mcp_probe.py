"""Whether each configured MCP server answers, and which tools it lists (`fawn mcp list`, doctor).

Every server is asked at once, each under its own timeout, so one hung server costs its timeout
and no more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agents.tools.mcp_client import McpServer, McpToolError, ToolInfo
from agents.tools.mcp_config import McpServerConfig, McpSettings


@dataclass(frozen=True)
class ServerProbe:
    """One server: how it is reached, and its tools, or why it did not answer."""

    name: str
    config: McpServerConfig
    tools: list[ToolInfo] = field(default_factory=list)
    error: str | None = None

    @property
    def answers(self) -> bool:
        """Whether the server answered its tools/list."""
        return self.error is None

    @property
    def problems(self) -> list[str]:
        """Configured tools the server does not list (a search tool among them is fatal)."""
        listed = {tool.name for tool in self.tools}
        wanted = [*(self.config.tools or []), *filter(None, [self.config.search_tool])]
        return sorted({name for name in wanted if name not in listed}) if self.answers else []


async def probe_server(name: str, config: McpServerConfig) -> ServerProbe:
    """Ask one server for its tools."""
    try:
        tools = await McpServer(name, config).list_tools()
    except McpToolError as exc:
        return ServerProbe(name, config, error=str(exc))
    return ServerProbe(name, config, tools=tools)


async def probe_servers(mcp: McpSettings) -> list[ServerProbe]:
    """Every configured server, asked at once, in the order configured."""
    return list(await asyncio.gather(*(probe_server(name, c) for name, c in mcp.servers.items())))
