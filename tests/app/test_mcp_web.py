"""The web form offers configured MCP servers as providers; the job's timeline logs their calls."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agents.tools.mcp_config import McpServerConfig, McpSettings
from app.jobs.models import JobStatus
from app.settings import Settings
from serving.endpoint import Endpoint
from serving.settings import LLMSettings
from tests.agents.mcp_kb import FACT_URL
from tests.app.web.conftest import WebServer, serve

pytestmark = pytest.mark.engine
KB = Path(__file__).resolve().parents[1] / "agents" / "mcp_kb.py"
JOB_TIMEOUT_S = 300


@pytest.fixture
def kb_server(engine: Endpoint, tmp_path: Path) -> Iterator[WebServer]:
    """Fawn on the real engine, with the test knowledge base configured as MCP server `kb`."""
    kb = McpServerConfig(command=sys.executable, args=[str(KB)], search_tool="search")
    settings = Settings(
        data_dir=tmp_path / "data",
        llm=LLMSettings(base_url=engine.base_url),
        mcp=McpSettings(servers={"kb": kb}),
    )
    with serve(settings) as server:
        yield server


def test_a_job_asked_for_with_an_mcp_provider_logs_its_tool_calls(kb_server: WebServer) -> None:
    home = httpx.get(kb_server.url + "/")
    assert '<option value="mcp:kb"' in home.text
    form = {
        "question": "Who designed the Quillfeather Lighthouse on Marrowby Isle?",
        "provider": "mcp:kb",
        "max_step_num": "1",
        "report_style": "academic",
        "locale": "en-US",
        "auto_accept_plan": "on",
    }
    posted = httpx.post(kb_server.url + "/jobs", data=form)
    assert posted.status_code == 303, posted.text
    job_id = posted.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (job := kb_server.store.get(job_id)) or not job.status.is_final:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(1)
    assert job.status is JobStatus.DONE and job.options["provider"] == "mcp:kb"
    calls = [e.data for e in kb_server.store.events(job_id, 0) if e.type == "tool_call"]
    assert calls and calls[0]["server"] == "kb" and calls[0]["tool"] == "search"
    assert FACT_URL in {source["url"] for source in job.sources}
