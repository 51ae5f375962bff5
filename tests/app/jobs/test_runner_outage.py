"""An engine that stops answering does not fail a job at once: the run waits and resumes.

The model is scripted to fail the way the real client does when the engine is down
(EngineUnreachable); the store, the checkpoints and the graph are real. The same with a real
engine behind a relay that is cut is in tests/app/jobs/test_workers.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agents.graph import sqlite_checkpointer
from app.jobs.models import Job, JobOptions, JobStatus
from app.jobs.runner import LocalJobRunner
from app.jobs.service import JobService
from app.jobs.settings import JobSettings
from app.jobs.store import SqliteJobStore
from serving.errors import EngineUnreachable
from tests.agents.conftest import Script, scripted_runtime
from tests.agents.test_graph_routing import QUESTION, default_script

AUTO = JobOptions(auto_accept_plan=True)
WAIT_S = 60.0
DOWN = "Cannot reach the LLM engine at http://127.0.0.1:9/v1 (connection refused)."


class Engine:
    """Answers as the script says while up; raises what the client raises while down."""

    def __init__(self, script: Script) -> None:
        self.up = True
        self.refused = 0
        for role, reply in list(script.replies.items()):
            script.replies[role] = self._gated(reply)

    def _gated(self, reply: Any) -> Callable[[Any], Any]:
        def answer(messages: Any) -> Any:
            if not self.up:
                self.refused += 1
                raise EngineUnreachable(DOWN)
            return reply(messages) if callable(reply) else reply

        return answer


@pytest.fixture
async def bench(
    tmp_path: Path,
) -> AsyncIterator[Callable[[JobSettings], tuple[JobService, Engine]]]:
    services: list[JobService] = []

    def make(settings: JobSettings) -> tuple[JobService, Engine]:
        script = default_script()
        engine = Engine(script)
        store = SqliteJobStore(tmp_path / "jobs.sqlite3")
        runner = LocalJobRunner(
            store,
            scripted_runtime(script),
            lambda: sqlite_checkpointer(tmp_path / "checkpoints.sqlite3"),
            settings=settings,
        )
        services.append(JobService(store, runner))
        return services[-1], engine

    yield make
    for service in services:
        await service.shutdown()
        service.store.close()


async def until_status(jobs: JobService, job_id: str) -> Job:
    await asyncio.wait_for(jobs.wait(job_id), WAIT_S)
    return jobs.get(job_id)


async def test_a_job_waits_for_an_engine_that_comes_back_and_finishes(bench: Any) -> None:
    jobs, engine = bench(JobSettings(outage_limit_s=30, outage_backoff_max_s=0.5))
    engine.up = False
    job = await jobs.submit(QUESTION, AUTO)
    while engine.refused < 3:  # it has tried again, and again
        await asyncio.sleep(0.05)
    assert jobs.get(job.id).status is JobStatus.PLANNING, "not failed while waiting"
    engine.up = True

    done = await until_status(jobs, job.id)
    assert done.status is JobStatus.DONE, done.error
    events = jobs.store.events(job.id)
    waits = [e.data["message"] for e in events if e.type == "status" and e.data.get("waiting")]
    assert waits and all("The engine does not answer" in w for w in waits)
    assert not [e for e in events if e.type == "error"], "no error is shown for a wait"


async def test_an_outage_past_the_limit_fails_the_job_with_its_cause_and_retry_resumes_it(
    bench: Any,
) -> None:
    jobs, engine = bench(JobSettings(outage_limit_s=1.5, outage_backoff_max_s=0.5))
    job = await jobs.submit(QUESTION, AUTO)
    while not jobs.store.events(job.id, 0) or jobs.get(job.id).status is JobStatus.QUEUED:
        await asyncio.sleep(0.01)
    engine.up = False

    failed = await until_status(jobs, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and DOWN in failed.error and "retry the job" in failed.error

    engine.up = True
    await jobs.retry(job.id)
    done = await until_status(jobs, job.id)
    assert done.status is JobStatus.DONE, done.error
