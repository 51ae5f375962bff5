"""The `mcp:NAME` search provider: a configured MCP server's search tool as a source of passages.

No model picks the tool or writes its arguments: the server's configured `search_tool` is called
with the query put in the argument its input schema names for it (`query_argument`, else `query`,
`q`, ..., else its one required string) and the result count in `max_results`, `limit`, ... when
the schema has one. Results become hits: a list of objects (structured content, or JSON text)
gives one hit each, with its title, its url (else a stable `mcp://server/tool/ID` reference) and
its passage; any other text is one passage. Each call is reported to the run's timeline as a
`ToolCall` event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from langgraph.config import get_stream_writer

from agents.events import ToolCall
from agents.tools.mcp_client import Arguments, McpServer, McpToolError, ToolOutput
from agents.tools.mcp_config import MCP_PROVIDER_PREFIX
from agents.tools.search import SearchHit

QUERY_ARGUMENTS = ("query", "q", "search", "search_query", "keywords", "question", "text")
LIMIT_ARGUMENTS = ("max_results", "limit", "k", "top_k", "num_results", "count", "n")
LIST_KEYS = ("result", "results", "hits", "documents", "items", "data")
TITLE_KEYS = ("title", "name", "heading")
URL_KEYS = ("url", "uri", "link", "href")
PASSAGE_KEYS = ("passage", "text", "content", "snippet", "body", "summary", "description")
ID_KEYS = ("id", "key", "slug")
PASSAGE_CHARS = 4000


class McpSearch:
    """Searches with one MCP server's `search_tool`."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.name = f"{MCP_PROVIDER_PREFIX}{server.name}"

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        """The tool's first `max_results` results for `query`, as hits."""
        server, tool = self.server, self.server.config.search_tool
        if tool is None:
            raise McpToolError(
                f"MCP server {server.name!r} has no `search_tool`: set one in "
                f"[mcp.servers.{server.name}] to search with it."
            )
        query_argument = server.config.query_argument
        hits = await call_for_hits(
            server,
            tool,
            lambda schema: search_arguments(schema, query, max_results, query_argument),
        )
        return hits[:max_results]


async def call_for_hits(server: McpServer, tool: str, arguments: Arguments) -> list[SearchHit]:
    """Call `tool` and read its output as hits, telling the run's timeline about the call and
    what came of it (its failure too, before raising it)."""
    sent: dict[str, Any] = {}

    def recorded(schema: dict[str, Any]) -> dict[str, Any]:
        sent.update(arguments(schema) if callable(arguments) else arguments)
        return sent

    try:
        output = await server.call(tool, recorded)
    except McpToolError as exc:
        report_call(ToolCall(server=server.name, tool=tool, arguments=sent, summary="failed",
                             error=str(exc)))  # fmt: skip
        raise
    hits = hits_from_output(output, server.name, tool, f"{MCP_PROVIDER_PREFIX}{server.name}")
    report_call(ToolCall(server=server.name, tool=tool, arguments=sent,
                         summary=describe_output(output, len(hits))))  # fmt: skip
    return hits


def search_arguments(
    schema: dict[str, Any], query: str, max_results: int, query_argument: str | None = None
) -> dict[str, Any]:
    """The search tool's arguments: the query, and the result count where the schema takes one."""
    properties: dict[str, Any] = schema.get("properties") or {}
    key = query_argument or _query_key(properties, schema.get("required") or [])
    if key is None:
        raise McpToolError(
            "Cannot tell which argument of the search tool takes the query: set "
            "`query_argument` in its [mcp.servers.NAME] section."
        )
    arguments: dict[str, Any] = {key: query}
    for name in LIMIT_ARGUMENTS:
        if (properties.get(name) or {}).get("type") == "integer":
            arguments[name] = max_results
            break
    return arguments


def _query_key(properties: dict[str, Any], required: Sequence[str]) -> str | None:
    for name in QUERY_ARGUMENTS:
        if name in properties:
            return name
    strings = [n for n, p in properties.items() if (p or {}).get("type") == "string"]
    required_strings = [n for n in strings if n in required]
    if len(required_strings) == 1:
        return required_strings[0]
    return strings[0] if len(strings) == 1 else None


def hits_from_output(output: ToolOutput, server: str, tool: str, provider: str) -> list[SearchHit]:
    """One hit per result object the tool returned; its whole text as one hit otherwise."""
    items = _items(output.structured)
    if items is None and not output.capped:
        try:
            items = _items(json.loads(output.text))
        except ValueError:
            items = None
    if items is None:
        items = [output.text] if output.text.strip() else []
    hits = []
    for rank, item in enumerate(items):
        hit = _hit(item, server, tool, provider, rank)
        if hit is not None:
            hits.append(hit)
    return hits


def _items(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in LIST_KEYS:
            if isinstance(value.get(key), list):
                return value[key]
        if any(key in value for key in PASSAGE_KEYS):
            return [value]
    return None


def _hit(item: Any, server: str, tool: str, provider: str, rank: int) -> SearchHit | None:
    fields = item if isinstance(item, dict) else {"text": str(item)}
    passage = _first(fields, PASSAGE_KEYS)
    if not passage:
        return None
    ref = _first(fields, ID_KEYS) or hashlib.sha256(passage.encode()).hexdigest()[:16]
    return SearchHit(
        title=_first(fields, TITLE_KEYS) or f"{server}: {tool}",
        url=_first(fields, URL_KEYS) or mcp_reference(server, tool, ref),
        passage=passage[:PASSAGE_CHARS],
        score=1.0 / (rank + 1),
        provider=provider,
    )


def _first(fields: dict[str, Any], keys: Sequence[str]) -> str:
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str | int | float) and str(value).strip():
            return str(value).strip()
    return ""


def mcp_reference(server: str, tool: str, ref: str) -> str:
    """The stable reference of a result that has no URL of its own."""
    return f"mcp://{server}/{tool}/{ref}"


def describe_output(output: ToolOutput, results: int) -> str:
    """A one-line summary of a tool's output for the timeline."""
    summary = f"{results} result{'s' if results != 1 else ''}"
    if output.capped:
        summary += (
            f"; its output of {output.chars:,} characters was over the cap and cut to "
            f"{len(output.text):,}"
        )
    return summary


def report_call(event: ToolCall) -> None:
    """Tell the run's stream about a tool call, when one is running (tests call tools bare)."""
    try:
        writer = get_stream_writer()
    except RuntimeError:
        return
    writer(event)
