"""The `mcp:NAME` provider against a real stdio MCP server (tests/agents/mcp_kb.py), no model."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.config import ResearchOptions
from agents.errors import SearchError
from agents.state import Step, StepTask, StepType
from agents.tools.mcp_client import McpServer, McpToolError
from agents.tools.mcp_config import McpServerConfig, McpSettings
from agents.tools.mcp_search import McpSearch, search_arguments
from agents.tools.mcp_steps import fill_arguments, step_tools
from agents.tools.search import make_provider
from tests.agents.mcp_kb import FACT, FACT_URL

KB = Path(__file__).with_name("mcp_kb.py")


def kb_config(behaviour: str = "kb", **fields: object) -> McpServerConfig:
    """The test knowledge base as a stdio server, behaving as asked."""
    fields = {"search_tool": "search", "timeout_s": 10.0, **fields}
    return McpServerConfig(command=sys.executable, args=[str(KB), behaviour], **fields)


def kb_search(behaviour: str = "kb", **fields: object) -> McpSearch:
    return McpSearch(McpServer("kb", kb_config(behaviour, **fields)))


async def test_search_results_become_hits_with_urls_or_mcp_references() -> None:
    hits = await kb_search().search("Quillfeather Lighthouse designer", 5)
    assert [hit.url for hit in hits] == [FACT_URL, "mcp://kb/search/marrowby"]
    assert hits[0].passage == FACT and hits[0].title == "Quillfeather Lighthouse"
    assert {hit.provider for hit in hits} == {"mcp:kb"}


async def test_the_result_count_goes_to_the_tools_limit_argument() -> None:
    assert len(await kb_search().search("lighthouse", 1)) == 1


async def test_a_hanging_server_times_out_with_a_clear_error() -> None:
    started = time.monotonic()
    with pytest.raises(McpToolError, match=r"did not answer search within 2 s"):
        await kb_search("hang", timeout_s=2.0).search("lighthouse", 3)
    assert time.monotonic() - started < 10, "the timeout was not honoured"


async def test_a_server_that_crashes_mid_call_is_a_clear_error() -> None:
    with pytest.raises(McpToolError, match=r"closed the connection during search"):
        await kb_search("crash").search("lighthouse", 3)


async def test_ten_megabytes_of_output_are_cut_at_the_cap() -> None:
    hits = await kb_search("huge", max_output_chars=50_000, timeout_s=60.0).search("lighthouse", 3)
    assert len(hits) == 1 and 0 < len(hits[0].passage) <= 50_000


async def test_a_server_that_is_not_installed_is_a_clear_error() -> None:
    config = McpServerConfig(command="fawn-no-such-mcp-server", search_tool="search")
    with pytest.raises(McpToolError, match=r"is not installed or not on PATH"):
        await McpSearch(McpServer("gone", config)).search("lighthouse", 3)


async def test_tools_off_the_allow_list_are_listed_as_refused_and_never_called() -> None:
    server = McpServer("kb", kb_config(tools=["search"]))
    allowed = {tool.name: tool.allowed for tool in await server.list_tools()}
    assert allowed == {
        "search": True,
        "keeper_log": False,
        "environment": False,
        "delete_everything": False,
    }
    with pytest.raises(McpToolError, match="allow-list"):
        await server.call("delete_everything", {})


def test_the_query_goes_to_the_argument_the_schema_names() -> None:
    schema = {"properties": {"terms": {"type": "string"}, "limit": {"type": "integer"}},
              "required": ["terms"]}  # fmt: skip
    assert search_arguments(schema, "q1", 4) == {"terms": "q1", "limit": 4}
    assert search_arguments(schema, "q1", 4, "other") == {"other": "q1", "limit": 4}
    ambiguous = {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    with pytest.raises(McpToolError, match="query_argument"):
        search_arguments(ambiguous, "q1", 4)


def test_a_server_needs_exactly_one_transport_and_its_search_tool_allowed() -> None:
    with pytest.raises(ValidationError, match="either `command`"):
        McpServerConfig(command="x", url="http://127.0.0.1:1/mcp")
    with pytest.raises(ValidationError, match="search: not in the `tools` allow-list"):
        McpServerConfig(command="x", tools=["other"], search_tool="search")
    with pytest.raises(ValidationError, match="MCP server name"):
        McpSettings(servers={"bad name": McpServerConfig(command="x")})


def test_provider_names_are_checked_and_unknown_servers_explained(tmp_path: Path) -> None:
    assert ResearchOptions(provider="mcp:kb").provider == "mcp:kb"
    with pytest.raises(ValidationError):
        ResearchOptions(provider="mcp:")
    with pytest.raises(SearchError, match=r"\[mcp.servers.wiki\]"):
        make_provider("mcp:wiki", data_dir=tmp_path, mcp=McpSettings())
    mcp = McpSettings(servers={"kb": kb_config()})
    assert make_provider("mcp:kb", data_dir=tmp_path, mcp=mcp).name == "mcp:kb"
    mcp.check_provider("mcp:kb")
    mcp.check_provider("local")
    with pytest.raises(SearchError, match=r"mcp:wiki cannot search.*providers: mcp:kb"):
        mcp.check_provider("mcp:wiki")


async def test_a_step_tool_that_takes_a_query_gets_the_steps_query_without_a_model() -> None:
    task = StepTask(
        question="Who designed the Quillfeather Lighthouse?",
        options=ResearchOptions(max_search_results=2),
        iteration=0,
        index=0,
        step=Step(title="Lighthouse designer", description="Find the designer.",
                  step_type=StepType.RESEARCH, need_search=True),
    )  # fmt: skip
    schema = {"properties": {"query": {"type": "string"}, "max_results": {"type": "integer"}},
              "required": ["query"]}  # fmt: skip
    arguments = await fill_arguments(None, schema, "search", task)  # type: ignore[arg-type]
    assert arguments["query"].startswith(task.question) and arguments["max_results"] == 2


def test_step_tools_are_routed_by_configuration_and_step_type() -> None:
    mcp = McpSettings(servers={"kb": kb_config(step_tools={"research": ["keeper_log"]})})
    assert [(t.server.name, t.tool) for t in step_tools(mcp, StepType.RESEARCH)] == [
        ("kb", "keeper_log")
    ]
    assert step_tools(mcp, StepType.PROCESSING) == []
    with pytest.raises(ValidationError, match="keeper_log: not in the `tools` allow-list"):
        kb_config(tools=["search"], step_tools={"research": ["keeper_log"]})


async def test_a_stdio_server_gets_its_configured_environment_and_none_of_fawns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAWN_API_KEY", "secret-of-the-app")
    server = McpServer("kb", kb_config(env={"KB_TOKEN": "for-the-server"}))
    output = await server.call("environment", {})
    names = set(output.structured["result"])
    assert "KB_TOKEN" in names and "PATH" in names
    assert not {name for name in names if name.startswith("FAWN_")}
