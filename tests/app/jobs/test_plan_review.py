"""Durable plan review: a job's attempt ends at its review, and any runner resumes it later.

The model is scripted; the job store, the SQLite checkpoints and the research graph are real.
A "process" here is a runner with its own store connection and checkpointer, started after the
first one has shut down, as `fawn api` or `fawn jobs review` would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.graph import sqlite_checkpointer
from agents.state import PlanReview, Step, StepType
from app.jobs.errors import JobConflict, JobNotFound
from app.jobs.models import Job, JobOptions, JobStatus
from app.jobs.review import REVIEW_EVENT, record_review
from app.jobs.runner import LocalJobRunner
from app.jobs.service import JobService
from app.jobs.settings import JobSettings
from app.jobs.store import SqliteJobStore
from app.jobs.worker import Worker
from tests.agents.conftest import Script, scripted_runtime
from tests.agents.test_graph_routing import QUESTION, default_script

WAIT_S = 60.0
REVIEWED = JobOptions(auto_accept_plan=False).model_dump(mode="json")
AUTO = JobOptions(auto_accept_plan=True).model_dump(mode="json")


@dataclass
class Process:
    """What one Fawn process holds: a store connection, a runner, and its model's script."""

    store: SqliteJobStore
    runner: LocalJobRunner
    script: Script

    async def stop(self) -> None:
        """Shut down as `fawn api` does on exit: running jobs stop unmarked."""
        await self.runner.shutdown()
        self.store.close()


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Process]]:
    """Starts "processes" on one data dir; each is stopped at the end if the test did not."""
    started: list[Process] = []

    def start_process(concurrency: int = 4, delay_s: float = 0.0) -> Process:
        script = default_script()
        script.delays.update({"plan": delay_s, "notes": delay_s, "answer": delay_s})
        store = SqliteJobStore(tmp_path / "jobs.sqlite3")
        runner = LocalJobRunner(
            store,
            scripted_runtime(script),
            lambda: sqlite_checkpointer(tmp_path / "checkpoints.sqlite3"),
            settings=JobSettings(concurrency=concurrency),
        )
        started.append(Process(store, runner, script))
        return started[-1]

    yield start_process
    for process in started:
        await process.runner.shutdown()


async def until(process: Process, job_id: str, *statuses: JobStatus) -> Job:
    """The job once it reaches one of `statuses` (its task here ended), or fail."""

    async def poll() -> Job:
        while True:
            job = process.store.get(job_id)
            if job is not None and job.status in statuses:
                await process.runner.wait(job_id)
                return job
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(poll(), WAIT_S)


def submit(process: Process, options: dict[str, object]) -> Job:
    job = process.store.create(QUESTION, options)
    process.runner.submit(job)
    return job


async def test_eight_jobs_awaiting_review_hold_no_slot_from_four_auto_accepted_ones(
    start: Callable[..., Process],
) -> None:
    process = start(concurrency=4, delay_s=0.05)
    waiting = [submit(process, REVIEWED) for _ in range(8)]
    for job in waiting:
        await until(process, job.id, JobStatus.AWAITING_PLAN_REVIEW)
    auto = [submit(process, AUTO) for _ in range(4)]

    done = await asyncio.gather(*(until(process, job.id, JobStatus.DONE) for job in auto))
    assert all("## Answer" in (job.report or "") for job in done)
    for job in waiting:
        assert not process.runner.is_running(job.id), "a job awaiting review holds no task"
        stored = process.store.get(job.id)
        assert stored is not None and stored.status is JobStatus.AWAITING_PLAN_REVIEW
        assert stored.plan is not None and len(stored.plan["steps"]) == 2


async def test_a_review_through_a_new_process_resumes_the_job_from_its_checkpoint(
    start: Callable[..., Process],
) -> None:
    first = start()
    job = submit(first, REVIEWED)
    await until(first, job.id, JobStatus.AWAITING_PLAN_REVIEW)
    await first.stop()

    second = start()
    edit = PlanReview(
        action="edit",
        steps=[
            Step(
                title="Arthur's Magazine",
                description="When was Arthur's Magazine started?",
                step_type=StepType.RESEARCH,
                need_search=True,
            )
        ],
    )
    reviewed = record_review(second.store, job.id, edit)
    assert reviewed.status is JobStatus.RESEARCHING, "reported at once, before the run goes on"
    second.runner.submit(reviewed)
    done = await until(second, job.id, JobStatus.DONE, JobStatus.FAILED)

    assert done.status is JobStatus.DONE, done.error
    assert done.plan is not None and [s["title"] for s in done.plan["steps"]] == [
        "Arthur's Magazine"
    ]
    assert second.script.of("plan") == [], "the plan made before the restart is reused"
    assert len(second.script.of("notes")) == 1, "only the edited step is researched"
    assert done.attempts == 1, "a review continues the attempt that stopped for it"
    statuses = [
        e.data.get("status") if e.type == "status" else e.type
        for e in second.store.events(job.id)
        if e.type in ("status", REVIEW_EVENT)
    ]
    review_at = statuses.index(REVIEW_EVENT)
    assert statuses[review_at - 1] == JobStatus.AWAITING_PLAN_REVIEW
    assert statuses[review_at + 1] == JobStatus.RESEARCHING, "the page hears of the review"
    assert statuses[-1] == JobStatus.DONE


async def test_jobs_awaiting_review_survive_a_restart_and_a_worker_takes_them_once_reviewed(
    start: Callable[..., Process],
) -> None:
    first = start()
    jobs = [submit(first, REVIEWED) for _ in range(3)]
    for job in jobs:
        await until(first, job.id, JobStatus.AWAITING_PLAN_REVIEW)
    await first.stop()

    second = start()
    working = asyncio.create_task(Worker(second.runner).run())
    await asyncio.sleep(2 * second.runner.settings.poll_s)
    assert second.script.calls == [], "nothing runs until a review comes"
    for job in jobs:
        record_review(second.store, job.id, PlanReview())
    for job in jobs:
        done = await until(second, job.id, JobStatus.DONE, JobStatus.FAILED)
        assert done.status is JobStatus.DONE, done.error
        assert done.plan is not None and len(done.plan["steps"]) == 2
    assert second.script.of("plan") == []
    working.cancel()


async def test_a_job_cancelled_at_its_review_and_retried_awaits_the_review_again(
    start: Callable[..., Process],
) -> None:
    process = start()
    job = submit(process, REVIEWED)
    await until(process, job.id, JobStatus.AWAITING_PLAN_REVIEW)
    cancelled = await JobService(process.store, process.runner).cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.error == "Cancelled."

    process.runner.submit(process.store.update(job.id, status=JobStatus.QUEUED, error=None))
    again = await until(process, job.id, JobStatus.AWAITING_PLAN_REVIEW)
    assert len(process.script.of("plan")) == 1, "the stored plan is offered again, not remade"
    assert again.plan is not None


async def test_a_review_is_refused_for_a_job_not_awaiting_one_or_gone(
    start: Callable[..., Process],
) -> None:
    process = start()
    queued = process.store.create(QUESTION, REVIEWED)
    with pytest.raises(JobConflict, match="is queued, not awaiting plan review"):
        record_review(process.store, queued.id, PlanReview())
    process.store.delete(queued.id)
    with pytest.raises(JobNotFound):
        record_review(process.store, queued.id, PlanReview())

    job = submit(process, REVIEWED)
    await until(process, job.id, JobStatus.AWAITING_PLAN_REVIEW)
    record_review(process.store, job.id, PlanReview())
    with pytest.raises(JobConflict, match="is researching"):
        record_review(process.store, job.id, PlanReview())
