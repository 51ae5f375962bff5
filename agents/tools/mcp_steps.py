"""Named MCP tools that plan steps use, chosen by configuration and step type, never by a model.

    [mcp.servers.tickets]
    step_tools = { research = ["find_tickets"] }

Every research step then calls `find_tickets` (besides its search). Its arguments are made
without a model where the tool takes one query-like string (the step's question and terms go
there); otherwise the small model fills them in under the tool's own JSON schema, and arguments
that still do not validate are never sent: the step reports it and goes on. What the tool
returns becomes sources like a search's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict

from agents.events import ToolCall
from agents.llm import ModelCalls
from agents.prompts import render_messages
from agents.retrieval import Gathered, first_query
from agents.sources import new_source
from agents.state import StepTask
from agents.structured import generate_structured
from agents.tools.mcp_client import McpServer, McpToolError
from agents.tools.mcp_config import McpSettings
from agents.tools.mcp_search import call_for_hits, report_call, search_arguments
from serving.budget import CallClass

ARGUMENTS_MAX_TOKENS = 160
FIELD_CHARS = 160


class ToolArguments(BaseModel):
    """Whatever object the tool's schema allows (the engine enforces the schema itself)."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class StepTool:
    """A tool a step of some type calls, on the server that has it."""

    server: McpServer
    tool: str


def step_tools(mcp: McpSettings, step_type: str) -> list[StepTool]:
    """The tools configured for steps of `step_type`, in the order configured."""
    return [
        StepTool(McpServer(name, config), tool)
        for name, config in mcp.servers.items()
        for tool in config.step_tools.get(step_type, [])
    ]


async def use_step_tools(
    calls: ModelCalls, tools: Sequence[StepTool], task: StepTask, gathered: Gathered
) -> None:
    """Call each tool for `task`; its results join `gathered`, its failures its errors."""
    for step_tool in tools:
        try:
            await _use(calls, step_tool, task, gathered)
        except McpToolError as exc:
            gathered.errors.append(str(exc))


async def _use(calls: ModelCalls, step_tool: StepTool, task: StepTask, gathered: Gathered) -> None:
    server, tool = step_tool.server, step_tool.tool
    try:
        arguments = await fill_arguments(calls, await _schema(server, tool), tool, task)
    except McpToolError as exc:
        report_call(ToolCall(server=server.name, tool=tool, summary="not called", error=str(exc)))
        raise
    hits = await call_for_hits(server, tool, arguments)
    fresh = [new_source(h.url, h.title, h.passage, h.provider) for h in hits]
    fresh = [source for source in fresh if source.url not in gathered.urls]
    gathered.sources.extend(fresh[: task.options.max_search_results])


async def _schema(server: McpServer, tool: str) -> dict[str, Any]:
    for info in await server.list_tools():
        if info.name == tool:
            return info.input_schema
    raise McpToolError(f"MCP server {server.name!r} lists no tool {tool!r}; see `fawn mcp list`.")


async def fill_arguments(
    calls: ModelCalls, schema: dict[str, Any], tool: str, task: StepTask
) -> dict[str, Any]:
    """The tool's arguments for `task`: the step's query where the tool takes just that, else
    the model's, under the tool's schema; McpToolError if none validate."""
    query = first_query(task.question, task.step)
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    try:
        simple = search_arguments(schema, query, task.options.max_search_results)
    except McpToolError:
        simple = None
    if simple is not None and required <= set(simple):
        return simple
    fields = [(name, _describe(spec)) for name, spec in properties.items()]
    messages = render_messages(
        "tool_arguments",
        tool=tool,
        description=schema.get("description", ""),
        fields=fields,
        question=task.question,
        step=f"{task.step.title}. {task.step.description}",
    )
    filled = await generate_structured(
        calls, CallClass.RESEARCH, messages, ToolArguments,
        max_tokens=ARGUMENTS_MAX_TOKENS, fallback=lambda _reason: ToolArguments(),
        check=lambda value: _valid(value, schema), json_schema=schema,
    )  # fmt: skip
    if filled.fallback_reason:
        raise McpToolError(
            f"MCP tool {tool}: the model's arguments did not fit its schema "
            f"({filled.fallback_reason}), so it was not called."
        )
    return filled.value.model_dump()


def _valid(value: ToolArguments, schema: dict[str, Any]) -> ToolArguments:
    try:
        jsonschema.validate(value.model_dump(), schema)
    except jsonschema.ValidationError as exc:
        raise ValueError(exc.message) from exc
    return value


def _describe(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "value")
    text = spec.get("description") or spec.get("title") or ""
    return f"{kind}. {text}"[:FIELD_CHARS]
