"""How Fawn reaches the MCP servers a user configured, by name, as research tools.

    [mcp.servers.wiki]
    command = "npx"                     # stdio: a program Fawn starts ...
    args = ["-y", "@acme/wiki-mcp"]
    env = { WIKI_TOKEN = "..." }        # ... with this environment and nothing of Fawn's
    tools = ["search", "page"]          # the allow-list: no other tool is ever called
    search_tool = "search"              # `--provider mcp:wiki` searches with it
    timeout_s = 20
    max_output_chars = 200000

    [mcp.servers.tickets]
    url = "https://tickets.example/mcp" # Streamable HTTP
    headers = { Authorization = "Bearer ..." }
    search_tool = "find_tickets"

A stdio server gets only the SDK's minimal environment (PATH, HOME, USER, ...) plus its `env`:
none of Fawn's own settings or keys. `env` and `headers` values are secrets, never printed.
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from agents.config import MCP_SERVER_NAME
from agents.errors import SearchError

MCP_PROVIDER_PREFIX = "mcp:"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_OUTPUT_CHARS = 200_000


class McpServerConfig(BaseModel):
    """One MCP server: how to reach it (a command, or a URL) and what Fawn may call on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: str | None = Field(default=None, description="stdio: the program to start.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    env: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="stdio: its environment, over a minimal PATH/HOME/USER; nothing of Fawn's.",
    )
    url: str | None = Field(
        default=None, pattern=r"^https?://", description="Streamable HTTP: the endpoint URL."
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Streamable HTTP: headers sent with every request."
    )
    tools: list[str] | None = Field(
        default=None, description="The tools Fawn may call; unset allows every tool listed."
    )
    search_tool: str | None = Field(
        default=None, description="The tool that searches, used by `--provider mcp:NAME`."
    )
    step_tools: dict[Literal["research"], list[str]] = Field(
        default_factory=dict,
        description='Tools every step of a type calls, e.g. { research = ["find_tickets"] }; '
        "their arguments are the step's query, or the model's under the tool's schema.",
    )
    query_argument: str | None = Field(
        default=None,
        description="The search tool's argument that takes the query; unset: found in its "
        "input schema (`query`, `q`, ... or its one required string).",
    )
    timeout_s: float = Field(
        default=DEFAULT_TIMEOUT_S, gt=0, le=600, description="Connect and call, together."
    )
    max_output_chars: int = Field(
        default=DEFAULT_MAX_OUTPUT_CHARS,
        ge=1000,
        description="A tool's output past this many characters is cut here.",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs either `command` (stdio) or `url` (HTTP)")
        named = [self.search_tool, *(t for tools in self.step_tools.values() for t in tools)]
        refused = [tool for tool in named if tool and not self.allows(tool)]
        if refused:
            raise ValueError(f"{', '.join(refused)}: not in the `tools` allow-list")
        return self

    @property
    def transport(self) -> str:
        """`stdio` or `http`, as shown to users."""
        return "stdio" if self.command else "http"

    @property
    def target(self) -> str:
        """Where the server is, without secrets: its command line or URL."""
        return " ".join([self.command, *self.args]) if self.command else str(self.url)

    def allows(self, tool: str) -> bool:
        """Whether Fawn may call `tool` on this server."""
        return self.tools is None or tool in self.tools


class McpSettings(BaseModel):
    """Every configured MCP server, by name (`[mcp.servers.NAME]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: dict[str, McpServerConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> Self:
        for name in self.servers:
            if not re.fullmatch(MCP_SERVER_NAME, name):
                raise ValueError(
                    f"MCP server name {name!r}: use letters, digits, '_', '-' or '.' (up to 64)"
                )
        return self

    def check_provider(self, provider: str) -> None:
        """Refuse an `mcp:NAME` provider whose server is not configured or cannot search."""
        if not provider.startswith(MCP_PROVIDER_PREFIX):
            return
        name = provider.removeprefix(MCP_PROVIDER_PREFIX)
        server = self.servers.get(name)
        if server is None or not server.search_tool:
            known = ", ".join(self.provider_names()) or "none is configured"
            raise SearchError(
                f"{provider} cannot search: configure [mcp.servers.{name}] with a `search_tool` "
                f"in the config file (MCP search providers: {known})."
            )

    def provider_names(self) -> list[str]:
        """The `mcp:NAME` search providers: servers with a search tool."""
        return [
            f"{MCP_PROVIDER_PREFIX}{name}"
            for name, server in self.servers.items()
            if server.search_tool
        ]
