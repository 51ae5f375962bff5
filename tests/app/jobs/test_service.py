"""The job service: one admission, the status rules of every action, and a job run here.

The model is scripted; the store, the checkpoints, the graph and the pressure monitor are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agents.graph import sqlite_checkpointer
from agents.state import Plan, PlanReview
from app.jobs.errors import JobConflict, JobNotFound
from app.jobs.models import JobEvent, JobOptions, JobStatus
from app.jobs.runner import LocalJobRunner
from app.jobs.service import JobService
from app.jobs.settings import JobSettings
from app.jobs.store import SqliteJobStore
from serving.observability import gate_metrics
from serving.pressure import Overloaded, PressureMonitor, PressureSettings, SettableSource
from tests.agents.conftest import scripted_runtime
from tests.agents.test_graph_routing import QUESTION, default_script

REVIEWED = JobOptions(auto_accept_plan=False)
AUTO = JobOptions(auto_accept_plan=True)
WAIT_S = 60.0


class Bench:
    """A service over a real store and runner, with a settable memory pressure."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = default_script()
        self.store = SqliteJobStore(tmp_path / "jobs.sqlite3")
        self.runner = LocalJobRunner(
            self.store,
            scripted_runtime(self.script),
            lambda: sqlite_checkpointer(tmp_path / "checkpoints.sqlite3"),
        )
        self.source = SettableSource()
        self.pressure = PressureMonitor(
            [self.source],
            PressureSettings(clear_after_s=0),
            metrics=gate_metrics(CollectorRegistry()),
        )
        self.jobs = JobService(self.store, self.runner, pressure=self.pressure)

    def press(self, kv_usage: float) -> None:
        self.source.set(kv_usage=kv_usage)
        self.pressure.sample_once()


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    made = Bench(tmp_path)
    yield made
    await made.jobs.shutdown()
    made.store.close()


async def ended(bench: Bench, job_id: str) -> JobStatus:
    await asyncio.wait_for(bench.jobs.wait(job_id), WAIT_S)
    return bench.jobs.get(job_id).status


async def test_a_new_job_under_memory_pressure_is_refused_before_it_is_stored(
    bench: Bench,
) -> None:
    bench.press(0.99)
    with pytest.raises(Overloaded, match="memory pressure"):
        await bench.jobs.submit(QUESTION, AUTO)
    assert bench.store.list().total == 0

    bench.press(0.1)
    job = await bench.jobs.submit(QUESTION, AUTO)
    assert await ended(bench, job.id) is JobStatus.DONE


async def test_retry_is_admitted_like_a_new_job_and_only_for_failed_or_cancelled_ones(
    bench: Bench,
) -> None:
    queued = bench.store.create(QUESTION, AUTO.model_dump(mode="json"))
    with pytest.raises(JobConflict, match="Only failed or cancelled jobs retry"):
        await bench.jobs.retry(queued.id)
    cancelled = await bench.jobs.cancel(queued.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.error == "Cancelled before it ran."
    with pytest.raises(JobConflict, match="is already cancelled"):
        await bench.jobs.cancel(queued.id)

    bench.press(0.99)
    with pytest.raises(Overloaded):
        await bench.jobs.retry(queued.id)
    assert bench.jobs.get(queued.id).status is JobStatus.CANCELLED, (
        "a refused retry changes nothing"
    )
    bench.press(0.1)
    retried = await bench.jobs.retry(queued.id)
    assert retried.status is JobStatus.QUEUED and retried.error is None
    assert await ended(bench, queued.id) is JobStatus.DONE


async def test_a_review_is_never_refused_for_memory_pressure(bench: Bench) -> None:
    job = await bench.jobs.submit(QUESTION, REVIEWED)
    assert await ended(bench, job.id) is JobStatus.AWAITING_PLAN_REVIEW
    bench.press(0.99)  # the job was admitted already: its review resumes it
    reviewed = await bench.jobs.review(job.id, PlanReview())
    assert reviewed.status is JobStatus.RESEARCHING
    assert await ended(bench, job.id) is JobStatus.DONE


async def test_cancel_and_delete_of_a_job_awaiting_review(bench: Bench) -> None:
    job = await bench.jobs.submit(QUESTION, REVIEWED)
    await ended(bench, job.id)
    cancelled = await bench.jobs.cancel(job.id, reason="Cancelled from the command line.")
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error == "Cancelled from the command line."
    with pytest.raises(JobConflict, match="not awaiting plan review"):
        await bench.jobs.review(job.id, PlanReview())

    await bench.jobs.delete(job.id)
    with pytest.raises(JobNotFound):
        bench.jobs.get(job.id)
    with pytest.raises(JobNotFound):
        await bench.jobs.delete(job.id)
    with pytest.raises(JobNotFound):
        await bench.jobs.review(job.id, PlanReview())


async def test_a_job_run_here_hands_on_each_event_once_and_asks_for_its_review(
    bench: Bench,
) -> None:
    seen: list[JobEvent] = []
    asked: list[Plan] = []

    async def accept(plan: Plan) -> PlanReview:
        asked.append(plan)
        return PlanReview()

    job = bench.store.create(QUESTION, REVIEWED.model_dump(mode="json"))
    done = await asyncio.wait_for(
        bench.jobs.run_here(job.id, on_event=seen.append, review=accept), WAIT_S
    )
    assert done.status is JobStatus.DONE
    assert len(asked) == 1 and len(asked[0].steps) == 2
    assert [e.seq for e in seen] == [e.seq for e in bench.store.events(job.id)]
    statuses = [e.data.get("status") for e in seen if e.type == "status" and "status" in e.data]
    assert statuses.index(JobStatus.AWAITING_PLAN_REVIEW) < statuses.index(JobStatus.RESEARCHING)


async def test_a_job_run_here_without_a_reviewer_is_left_awaiting_review(bench: Bench) -> None:
    job = bench.store.create(QUESTION, REVIEWED.model_dump(mode="json"))
    left = await asyncio.wait_for(bench.jobs.run_here(job.id, on_event=lambda _e: None), WAIT_S)
    assert left.status is JobStatus.AWAITING_PLAN_REVIEW
    assert not bench.runner.is_running(job.id)


async def test_a_service_without_a_runner_leaves_a_new_job_queued(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    try:
        job = await JobService(store).submit(QUESTION, AUTO)
        assert store.get(job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    finally:
        store.close()


async def test_a_job_waiting_for_a_slot_is_cancelled_before_it_runs(tmp_path: Path) -> None:
    script = default_script()
    script.delays["plan"] = WAIT_S  # the first job holds the only slot
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    runner = LocalJobRunner(
        store,
        scripted_runtime(script),
        lambda: sqlite_checkpointer(tmp_path / "checkpoints.sqlite3"),
        settings=JobSettings(concurrency=1),
    )
    jobs = JobService(store, runner)
    try:
        await jobs.submit(QUESTION, AUTO)
        waiting = await jobs.submit(QUESTION, AUTO)
        while not script.of("plan"):
            await asyncio.sleep(0.01)
        assert runner.is_running(waiting.id)
        cancelled = await jobs.cancel(waiting.id)
        assert cancelled.status is JobStatus.CANCELLED
        assert cancelled.error == "Cancelled before it ran."
        assert not runner.is_running(waiting.id)
        assert len(script.of("plan")) == 1, "only the first job planned"
    finally:
        await jobs.shutdown()
        store.close()
