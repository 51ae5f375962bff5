"""`fawn mcp serve`, driven by the official MCP SDK's own client, on the real embedded engine.

Research asked for over MCP is an ordinary job: it is in the data dir's job store afterwards,
where the web UI's history and `fawn jobs` read it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from agents.tools.corpus import LocalCorpus
from agents.tools.ingest import load_documents
from agents.tools.search import corpus_path
from app.jobs.models import JobStatus
from app.jobs.store import open_job_store
from app.settings import load_settings
from serving.endpoint import Endpoint
from tests.conftest import MODELS_DIR, free_port
from tests.processes import wait_for

FAWN = Path(sys.executable).with_name("fawn")
QUESTION = "Were Scott Derrickson and Ed Wood of the same nationality?"
OPTIONS = {
    "provider": "local",
    "max_step_num": 1,
    "enable_coder": False,
    "enable_background_investigation": False,
}


def fawn_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """What `fawn mcp serve` is started with: this test's data dir, and the test engine."""
    return {"FAWN_DATA_DIR": str(data_dir), "FAWN_MODELS_DIR": str(MODELS_DIR), **extra}


@pytest.mark.engine
async def test_research_search_and_reports_through_the_sdk_client(
    engine: Endpoint, isolated_env: Path, hotpotqa_path: Path
) -> None:
    LocalCorpus(corpus_path(isolated_env)).add(load_documents(hotpotqa_path))
    server = StdioServerParameters(
        command=str(FAWN),
        args=["mcp", "serve"],
        env=fawn_env(isolated_env, FAWN_LLM_BASE_URL=engine.base_url),
    )
    progress: list[str] = []

    async def on_progress(_done: float, _total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with Client(server) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"research", "search_corpus", "get_report"} <= tools

        found = await client.call_tool("search_corpus", {"query": "Scott Derrickson director"})
        assert not found.is_error
        assert found.structured_content["result"][0]["title"] == "Scott Derrickson"

        asked = await client.call_tool(
            "research", {"question": QUESTION, "options": OPTIONS}, progress_callback=on_progress
        )
        assert not asked.is_error, asked.content
        outcome = asked.structured_content
        assert outcome["status"] == "done" and outcome["report"].startswith(f"# {QUESTION}")
        assert progress[0] == f"Job {outcome['job_id']} queued"
        assert any(message.startswith("Step 1:") for message in progress)

        again = await client.call_tool("get_report", {"job_id": outcome["job_id"]})
        assert again.structured_content["report"] == outcome["report"]

    store = open_job_store(load_settings())
    try:
        job = store.get(outcome["job_id"])
    finally:
        store.close()
    assert job is not None and job.status is JobStatus.DONE and job.question == QUESTION


@pytest.fixture
def http_server(engine: Endpoint, isolated_env: Path) -> Iterator[str]:
    """`fawn mcp serve --http` on loopback with an API key; its /mcp URL."""
    port = free_port()
    env = {
        **os.environ,
        **fawn_env(isolated_env, FAWN_LLM_BASE_URL=engine.base_url, FAWN_API_KEY="sesame"),
    }
    process = subprocess.Popen([str(FAWN), "mcp", "serve", "--http", "--port", str(port)], env=env)
    try:
        wait_for(lambda: _accepts(port), 60, "fawn mcp serve --http to listen")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.engine
async def test_streamable_http_needs_the_api_key(http_server: str) -> None:
    refused = httpx.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401
    http = create_mcp_http_client(headers={"Authorization": "Bearer sesame"})
    async with http, Client(streamable_http_client(http_server, http_client=http)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"research", "search_corpus", "get_report"} <= tools


def test_serving_http_off_loopback_without_a_key_is_refused(isolated_env: Path) -> None:
    result = subprocess.run(
        [str(FAWN), "mcp", "serve", "--http", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **fawn_env(isolated_env)},
    )
    assert result.returncode == 2 and "needs an API key" in result.stderr
