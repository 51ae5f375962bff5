"""Jobs shared by several runners on one store: one run per job, cancels and lost leases.

Each "process" is a runner with its own store connection on one SQLite file, as `fawn api`,
`fawn batch` and `fawn worker` on one data dir are. The model is scripted; the store, the
checkpoints and the graph are real. (tests/app/jobs/test_workers.py does the same with real
processes, the real engine and Postgres.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.graph import sqlite_checkpointer
from app.jobs.lease import stale_here, worker_name
from app.jobs.models import Job, JobOptions, JobStatus
from app.jobs.runner import LocalJobRunner
from app.jobs.service import JobService
from app.jobs.settings import JobSettings
from app.jobs.store import SqliteJobStore
from app.jobs.worker import Worker
from tests.agents.conftest import Script, scripted_runtime
from tests.agents.test_graph_routing import QUESTION, default_script

AUTO = JobOptions(auto_accept_plan=True).model_dump(mode="json")
WAIT_S = 60.0
# Fast leases, so that a lost one is seen in a test's time.
FAST = JobSettings(lease_s=1.5, heartbeat_s=0.2, poll_s=0.1)


@dataclass
class Process:
    store: SqliteJobStore
    runner: LocalJobRunner
    script: Script


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Process]]:
    started: list[Process] = []

    def start_process(settings: JobSettings = FAST, **delays: float) -> Process:
        script = default_script()
        script.delays.update(delays)
        store = SqliteJobStore(tmp_path / "jobs.sqlite3")
        runner = LocalJobRunner(
            store,
            scripted_runtime(script),
            lambda: sqlite_checkpointer(tmp_path / "checkpoints.sqlite3"),
            settings=settings,
        )
        started.append(Process(store, runner, script))
        return started[-1]

    yield start_process
    for process in started:
        await process.runner.shutdown()
        process.store.close()


async def ended(process: Process, job_id: str) -> Job:
    await asyncio.wait_for(process.runner.wait(job_id), WAIT_S)
    job = process.store.get(job_id)
    assert job is not None
    return job


async def test_a_job_submitted_in_two_processes_runs_in_one(
    start: Callable[..., Process],
) -> None:
    first, second = start(plan=0.3), start(plan=0.3)
    job = first.store.create(QUESTION, AUTO)
    first.runner.submit(job)
    await asyncio.sleep(0.1)
    second.runner.submit(job)
    done = await ended(second, job.id)  # waits for the run in the first process
    assert done.status is JobStatus.DONE and done.attempts == 1
    assert len(first.script.of("plan")) == 1 and second.script.calls == []
    [logged] = [e for e in first.store.events(job.id) if e.type == "done"]
    assert logged.data["citations"] is not None, "the report's citation support is logged"


async def test_two_workers_share_the_queue_and_run_each_job_once(
    start: Callable[..., Process],
) -> None:
    workers = [start(FAST.model_copy(update={"concurrency": 2}), plan=0.2) for _ in range(2)]
    jobs = [workers[0].store.create(f"{QUESTION} ({n})", AUTO) for n in range(6)]
    running = [asyncio.create_task(Worker(w.runner).run()) for w in workers]
    try:
        finished = [await ended(workers[0], job.id) for job in jobs]
    finally:
        for task in running:
            task.cancel()
    assert all(job.status is JobStatus.DONE and job.attempts == 1 for job in finished)
    plans = [call for w in workers for call in w.script.of("plan")]
    assert len(plans) == 6, "one plan per job, whichever worker made it"
    assert all(w.script.of("plan") for w in workers), "both workers took jobs"


async def test_a_cancel_from_another_process_stops_the_run_within_two_seconds(
    start: Callable[..., Process],
) -> None:
    worker = start(JobSettings(), notes=WAIT_S)  # default heartbeat; a step that takes long
    job = worker.store.create(QUESTION, AUTO)
    worker.runner.submit(job)
    while not worker.script.of("notes"):
        await asyncio.sleep(0.02)

    api = SqliteJobStore(worker.store.path)  # an API process: no runner, only the store
    try:
        asked = time.monotonic()
        cancelled = await JobService(api).cancel(job.id)
        assert cancelled.status is JobStatus.CANCELLED
        await asyncio.wait_for(worker.runner.wait(job.id), 5)
        while worker.runner.is_running(job.id):
            await asyncio.sleep(0.02)
        assert time.monotonic() - asked < 2.5
    finally:
        api.close()
    stopped = await ended(worker, job.id)
    assert stopped.status is JobStatus.CANCELLED and stopped.error == "Cancelled."


async def test_a_run_whose_lease_was_taken_over_stops_without_marking_the_job(
    start: Callable[..., Process],
) -> None:
    slow = start(notes=WAIT_S)
    job = slow.store.create(QUESTION, AUTO)
    slow.runner.submit(job)
    while not slow.script.of("notes"):
        await asyncio.sleep(0.02)
    # As if its heartbeats had stopped reaching the store: the lease expires and another
    # process claims the job.
    slow.store.release(job.id, slow.runner.leases.owner)
    taker = start()
    assert taker.runner.leases.claim(job.id) is not None
    while slow.runner.is_running(job.id):
        await asyncio.sleep(0.02)
    lost = slow.store.get(job.id)
    assert lost is not None and not lost.status.is_final, "the new holder goes on with it"
    taker.runner.submit(lost)
    done = await ended(taker, job.id)
    assert done.status is JobStatus.DONE, done.error
    assert len(taker.script.of("plan")) == 0, "the plan came from the checkpoint"


def test_a_worker_name_of_this_host_is_stale_once_its_process_is_gone() -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    host = socket.gethostname()
    me = worker_name()
    holders = {
        me,
        f"{host}:{gone.stdout.strip()}:dead",  # exited
        f"{host}:{os.getpid()}:earlier",  # this pid under another name: a restarted container
        f"{host}:{os.getppid()}:alive",
        f"another-host:{gone.stdout.strip()}:elsewhere",  # cannot be checked from here
    }
    assert sorted(stale_here(holders, me)) == sorted(
        [f"{host}:{gone.stdout.strip()}:dead", f"{host}:{os.getpid()}:earlier"]
    )
