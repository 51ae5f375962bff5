"""Fawn's tools for MCP clients: `research`, `search_corpus` and `get_report`.

`research` submits an ordinary job through the job service (the same store, history and LLM
budget as the web UI and the CLI), tells the client its id at once in a progress notification,
sends one notification per step of the job's event log, and returns the Markdown report. MCP
clients have no plan-review screen, so the plan is accepted as made unless the options say
otherwise (the job then waits for review in the web UI or `fawn jobs review`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from agents.tools.corpus import LocalCorpus
from agents.tools.search import SearchHit, corpus_path
from app.jobs.models import Job, JobEvent, JobOptions, JobStatus
from app.jobs.service import JobService
from app.mcp.progress import describe_event
from app.settings import Settings

SERVER_NAME = "fawn"
INSTRUCTIONS = (
    "Fawn researches a question in its sources (a local corpus, the web, or configured MCP "
    "servers) and writes a Markdown report whose citations point to real sources. `research` "
    "runs a job to its report (minutes on a small model); `get_report` reads a job's report "
    "later; `search_corpus` searches the local corpus directly."
)


class ResearchOutcome(BaseModel):
    """A research job as an MCP client sees it: its id, status, report or error."""

    job_id: str
    status: JobStatus
    report: str | None = Field(default=None, description="The Markdown report, once done.")
    error: str | None = None

    @classmethod
    def of(cls, job: Job) -> ResearchOutcome:
        """The outcome of a stored job."""
        return cls(job_id=job.id, status=job.status, report=job.report, error=job.error)


def build_server(settings: Settings, jobs: JobService) -> MCPServer:
    """The MCP server over a job service connected to the engine."""
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS)

    @server.tool()
    async def research(
        ctx: Context, question: str, options: JobOptions | None = None, wait: bool = True
    ) -> ResearchOutcome:
        """Research a question as a Fawn job: the job id, then the cited Markdown report when it
        is done (wait=false returns at once; read it later with get_report)."""
        job = await jobs.submit(question, mcp_job_options(settings, options))
        await ctx.report_progress(0, None, f"Job {job.id} queued")
        if wait:
            job = await follow(jobs, job, ctx)
        return ResearchOutcome.of(job)

    @server.tool()
    async def get_report(job_id: str) -> ResearchOutcome:
        """A research job's status, and its Markdown report once done."""
        return ResearchOutcome.of(await asyncio.to_thread(jobs.get, job_id))

    @server.tool()
    async def search_corpus(query: str, max_results: int = 5) -> list[SearchHit]:
        """Search Fawn's local corpus (bm25 over its passages), best first."""
        corpus = LocalCorpus(corpus_path(settings.data_dir))
        return await asyncio.to_thread(corpus.search, query, max(1, min(max_results, 50)))

    return server


def mcp_job_options(settings: Settings, options: JobOptions | None) -> JobOptions:
    """A client's options, with the plan accepted as made unless it asked for review, and an
    `mcp:NAME` provider checked against the configured servers."""
    options = options or JobOptions()
    if "auto_accept_plan" not in options.model_fields_set:
        options = options.model_copy(update={"auto_accept_plan": True})
    settings.mcp.check_provider(options.provider)
    return options


async def follow(jobs: JobService, job: Job, ctx: Context) -> Job:
    """Run the job here to its end (or its plan review), one progress notification per event."""
    sent: list[asyncio.Task[None]] = []
    count = 0

    def notify(event: JobEvent) -> None:
        nonlocal count
        message = describe_event(event)
        if message is not None:
            count += 1
            # run_here hands events to a plain callback; notifications are sent in order.
            sent.append(_start(ctx.report_progress(count, None, message)))

    done = await jobs.run_here(job.id, on_event=notify)
    await asyncio.gather(*sent, return_exceptions=True)
    return done


def _start(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coroutine)
