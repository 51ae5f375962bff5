"""Calling a configured MCP server's tools through the official `mcp` SDK.

Each operation opens its own connection (a stdio server is started for it and stopped after),
under the server's `timeout_s` for connecting and calling together: a crashed or hung server
cannot leave a broken session behind for the next step. Every failure, whatever the SDK or the
transport raised, becomes an `McpToolError` saying which server and tool failed and why, so a
step reports it and goes on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, TextContent

from agents.errors import SearchError
from agents.events import capped
from agents.tools.mcp_config import McpServerConfig

# The HTTP transport refuses one event larger than this many times the output cap (in bytes,
# JSON-escaped text can be larger than its characters), so an oversized answer fails fast.
SSE_EVENT_FACTOR = 8
ERROR_DETAIL_CHARS = 300
CONNECTION_CLOSED = "Connection closed"  # the SDK's message when the server goes away
# A tool's arguments, or how to make them from its input schema.
Arguments = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


class McpToolError(SearchError):
    """An MCP server could not be reached, or one of its tools failed or was refused."""


@dataclass(frozen=True)
class ToolInfo:
    """A tool a server lists: its name, description and JSON schema, and whether Fawn may call
    it (the server's allow-list)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    allowed: bool


@dataclass(frozen=True)
class ToolOutput:
    """What a tool returned: its text (cut at the server's cap), its structured content (None
    when cut, since a cut document no longer parses), and its size before cutting."""

    text: str
    structured: Any
    chars: int
    capped: bool


class McpServer:
    """One configured MCP server, by name."""

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config

    async def list_tools(self) -> list[ToolInfo]:
        """The tools the server lists, each marked with whether the allow-list lets Fawn call it."""
        async with self._session("tools/list") as client:
            listed = await client.list_tools()
        return [
            ToolInfo(
                name=tool.name,
                description=tool.description or "",
                input_schema=dict(tool.input_schema or {}),
                allowed=self.config.allows(tool.name),
            )
            for tool in listed.tools
        ]

    async def call(self, tool: str, arguments: Arguments) -> ToolOutput:
        """Call `tool`; its output is cut at the server's `max_output_chars`.

        `arguments` may be a function of the tool's input schema, which is then listed in the
        same connection (one start of a stdio server, not two).
        """
        if not self.config.allows(tool):
            raise McpToolError(
                f"MCP tool {self.name}/{tool} is not in the server's `tools` allow-list."
            )
        async with self._session(tool) as client:
            if callable(arguments):
                listed = await client.list_tools()
                schemas = {t.name: dict(t.input_schema or {}) for t in listed.tools}
                if tool not in schemas:
                    raise McpToolError(
                        f"MCP server {self.name!r} lists no tool {tool!r}; see `fawn mcp list`."
                    )
                arguments = arguments(schemas[tool])
            result = await client.call_tool(tool, arguments)
        return self._output(tool, result)

    def _output(self, tool: str, result: CallToolResult) -> ToolOutput:
        text = "\n".join(_content_text(block) for block in result.content)
        if result.is_error:
            detail = capped(text, ERROR_DETAIL_CHARS) or "no message"
            raise McpToolError(f"MCP tool {self.name}/{tool} failed: {detail}")
        structured = result.structured_content
        if not text and structured is not None:
            text = json.dumps(structured, ensure_ascii=False)
        limit = self.config.max_output_chars
        if len(text) <= limit:
            return ToolOutput(text=text, structured=structured, chars=len(text), capped=False)
        return ToolOutput(text=text[:limit], structured=None, chars=len(text), capped=True)

    @asynccontextmanager
    async def _session(self, action: str) -> AsyncIterator[Client]:
        """A connected client, with every failure inside translated to McpToolError."""
        try:
            with anyio.fail_after(self.config.timeout_s):
                async with AsyncExitStack() as stack:
                    client = await stack.enter_async_context(Client(self._transport(stack)))
                    yield client
        except McpToolError:
            raise
        # The SDK and its transports raise many types (OSError, MCPError, httpx errors, pydantic
        # errors, exception groups from their task groups); all mean this server failed.
        except Exception as exc:
            inner = _innermost(exc)
            if isinstance(inner, McpToolError):  # ours, wrapped by the SDK's task group
                raise inner from None
            raise McpToolError(self._explain(action, inner)) from exc

    def _explain(self, action: str, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return (
                f"MCP server {self.name!r} did not answer {action} within "
                f"{self.config.timeout_s:g} s (raise its `timeout_s` if it is just slow)."
            )
        if isinstance(exc, FileNotFoundError) and self.config.command is not None:
            return (
                f"MCP server {self.name!r} cannot start: {self.config.command!r} is not "
                "installed or not on PATH."
            )
        if isinstance(exc, MCPError) and str(exc) == CONNECTION_CLOSED:
            return (
                f"MCP server {self.name!r} closed the connection during {action}: it exited or "
                "crashed (run its command by hand to see why)."
            )
        message = capped(str(exc) or type(exc).__name__, ERROR_DETAIL_CHARS)
        return f"MCP server {self.name!r} failed during {action}: {message}"

    def _transport(self, stack: AsyncExitStack) -> Any:
        config = self.config
        if config.command is not None:
            env = {key: value.get_secret_value() for key, value in config.env.items()}
            return stdio_client(
                StdioServerParameters(command=config.command, args=config.args, env=env)
            )
        headers = {key: value.get_secret_value() for key, value in config.headers.items()}
        http = create_mcp_http_client(headers=headers)
        stack.push_async_callback(http.aclose)
        return streamable_http_client(
            str(config.url),
            http_client=http,
            max_sse_event_size=config.max_output_chars * SSE_EVENT_FACTOR,
        )


def _content_text(block: Any) -> str:
    if isinstance(block, TextContent):
        return block.text
    return f"[{getattr(block, 'type', 'content')} omitted]"


def _innermost(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (the SDK's task groups wrap what failed)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
