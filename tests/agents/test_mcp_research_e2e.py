"""Research with an MCP server's search tool, end to end on the real embedded engine.

The knowledge base (tests/agents/mcp_kb.py) is a real MCP server written with the SDK, reached
over stdio and over Streamable HTTP; its fact is in no corpus, so a report that states it got it
from the server. Misbehaving servers (hung, crashed, oversized, not installed) each leave a clear
event and the run still ends with a report.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.citations import cited_ids
from agents.config import ResearchOptions
from agents.events import ResearchEvent, ToolCall
from agents.research import ResearchResult, run_research
from agents.runtime import connect_runtime
from agents.tools.mcp_config import McpServerConfig, McpSettings
from serving.budget import Budget
from serving.endpoint import Endpoint
from serving.settings import LLMSettings
from tests.agents.mcp_kb import FACT_URL, KEEPER_LOG
from tests.conftest import free_port
from tests.processes import wait_for

pytestmark = pytest.mark.engine
KB = Path(__file__).with_name("mcp_kb.py")
QUESTION = "Who designed the Quillfeather Lighthouse on Marrowby Isle?"
OPTIONS = ResearchOptions(
    provider="mcp:kb",
    auto_accept_plan=True,
    max_step_num=1,
    enable_coder=False,
    enable_background_investigation=False,
)


def stdio_kb(behaviour: str = "kb", **fields: object) -> McpServerConfig:
    fields = {"search_tool": "search", "timeout_s": 20.0, **fields}
    return McpServerConfig(command=sys.executable, args=[str(KB), behaviour], **fields)


async def research_with(
    engine: Endpoint, data_dir: Path, config: McpServerConfig
) -> tuple[ResearchResult, list[ResearchEvent]]:
    mcp = McpSettings(servers={"kb": config})
    runtime = connect_runtime(engine, LLMSettings(), Budget(8), data_dir=data_dir, mcp=mcp)
    events: list[ResearchEvent] = []
    try:
        result = await run_research(QUESTION, OPTIONS, runtime, on_event=events.append)
    finally:
        await runtime.aclose()
    return result, events


def assert_fact_cited_from_the_server(result: ResearchResult, events: list[ResearchEvent]) -> None:
    body, _sources = result.report.split("\n## Sources\n")
    assert "Odessa Vantreel" in result.report, "the report misses the server's fact"
    cited = {s.url for s in result.sources if s.id in set(cited_ids(body))}
    assert FACT_URL in cited, f"the server's source is not cited: {cited}"
    assert all(s.provider == "mcp:kb" for s in result.sources)
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls and calls[0].server == "kb" and calls[0].tool == "search"
    assert calls[0].arguments["query"] and calls[0].error is None


@pytest.fixture
def http_kb() -> Iterator[str]:
    """The knowledge base served over Streamable HTTP; its endpoint URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(KB), "kb", "--http", str(port)])
    try:
        wait_for(lambda: _accepts(port), 30, "the HTTP MCP server to listen")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_research_over_stdio_cites_the_servers_fact(engine: Endpoint, tmp_path: Path) -> None:
    result, events = await research_with(engine, tmp_path, stdio_kb())
    assert_fact_cited_from_the_server(result, events)


async def test_research_over_streamable_http_cites_the_servers_fact(
    engine: Endpoint, tmp_path: Path, http_kb: str
) -> None:
    config = McpServerConfig(url=http_kb, search_tool="search", headers={"X-Test": "yes"})
    result, events = await research_with(engine, tmp_path, config)
    assert_fact_cited_from_the_server(result, events)


@pytest.mark.parametrize(
    ("config", "clear_event"),
    [
        (stdio_kb("hang", timeout_s=3.0), "did not answer search within 3 s"),
        (stdio_kb("crash"), "closed the connection during search"),
        (McpServerConfig(command="fawn-no-such-server", search_tool="search"), "not installed"),
    ],
    ids=["hangs", "crashes", "not-installed"],
)
async def test_a_failing_server_is_a_clear_event_and_the_run_finishes(
    engine: Endpoint, tmp_path: Path, config: McpServerConfig, clear_event: str
) -> None:
    result, events = await research_with(engine, tmp_path, config)
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls and all(clear_event in (call.error or "") for call in calls)
    errors = [e.message for e in events if e.kind == "error"]
    assert any(clear_event in message for message in errors)
    assert not any(e.fatal for e in events if e.kind == "error")
    assert result.report and events[-1].kind == "done"


async def test_ten_megabytes_are_capped_with_a_clear_event(
    engine: Endpoint, tmp_path: Path
) -> None:
    result, events = await research_with(engine, tmp_path, stdio_kb("huge", timeout_s=60.0))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls and "over the cap and cut to 200,000" in calls[0].summary
    assert all(len(source.passage) <= 200_000 for source in result.sources)
    assert result.report and events[-1].kind == "done"


async def test_a_research_step_calls_its_named_tool_with_model_filled_arguments(
    engine: Endpoint, tmp_path: Path
) -> None:
    config = stdio_kb(step_tools={"research": ["keeper_log"]})
    result, events = await research_with(engine, tmp_path, config)
    calls = [e for e in events if isinstance(e, ToolCall) and e.tool == "keeper_log"]
    assert len(calls) == 1, "the research step did not call its named tool"
    if calls[0].error is None:  # the model's arguments fit the schema: the log is a source
        assert set(calls[0].arguments) == {"lighthouse", "year"}
        assert any(KEEPER_LOG in source.passage for source in result.sources)
    else:  # they did not: the tool was not called, and the step said why
        assert "did not fit its schema" in calls[0].error
    assert result.report and events[-1].kind == "done"
