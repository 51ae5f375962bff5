"""Jobs shared by real processes: `fawn api --no-worker` and `fawn worker`s on one store.

Real processes, the real engine, a real PostgreSQL (and SQLite where the test is about one
machine). Each job runs in exactly one worker; a worker killed with SIGKILL loses no job and no
finished step; a review sent to any API process resumes the job on a worker; a cancel reaches
the worker running the job within about two seconds; every process stopped while jobs await
review loses none of them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jobs.models import Job, JobStatus
from serving.endpoint import Endpoint
from serving.metrics import read_metrics
from tests.app.api.conftest import build_corpus
from tests.app.jobs.fleet import FAWN, Fleet
from tests.conftest import throwaway_database
from tests.processes import wait_for

pytestmark = pytest.mark.engine
AUTO = {"auto_accept_plan": True, "max_step_num": 1, "enable_coder": False}
REVIEWED = {**AUTO, "auto_accept_plan": False}


def questions(hotpotqa_path: Path, count: int) -> list[str]:
    """Distinct real questions (so that no two jobs share a prompt prefix by accident)."""
    records = json.loads(hotpotqa_path.read_text())
    return [record["question"] for record in records[:count]]


def post(api: str, question: str, options: dict[str, Any]) -> str:
    response = httpx.post(
        f"{api}/api/research", json={"question": question, "options": options}, timeout=30
    )
    response.raise_for_status()
    return response.json()["id"]


def finished(job: Job) -> bool:
    return job.status.is_final


def steps_started(fleet: Fleet, job_id: str) -> list[tuple[int, int]]:
    return [(e.data["iteration"], e.data["index"]) for e in fleet.events(job_id, "step_started")]


def checkpointed_sources(fleet: Fleet, job_id: str) -> set[str]:
    """The URLs of the sources found before the job's last finished step: checkpointed work."""
    events = fleet.store.events(job_id)
    last_done = max((e.seq for e in events if e.type == "step_done"), default=0)
    return {
        e.data["source"]["url"] for e in events if e.type == "source_added" and e.seq < last_done
    }


@pytest.fixture(scope="module")
def shared_database(postgres_url: str) -> Iterator[str]:
    """One database for the module's fleet."""
    with throwaway_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_fleet(
    engine: Endpoint,
    shared_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    hotpotqa_path: Path,
) -> Iterator[tuple[Fleet, str]]:
    """An API process without a worker and two workers of two jobs each, on Postgres."""
    data_dir = tmp_path_factory.mktemp("fleet")
    build_corpus(data_dir, hotpotqa_path)
    fleet = Fleet(data_dir, engine.base_url, database_url=shared_database)
    try:
        api = fleet.api(worker=False)
        fleet.worker(concurrency=2)
        fleet.worker(concurrency=2)
        yield fleet, api
    finally:
        fleet.close()


def test_two_workers_and_an_api_process_on_postgres_run_twelve_jobs_each_exactly_once(
    engine: Endpoint, postgres_fleet: tuple[Fleet, str], hotpotqa_path: Path
) -> None:
    fleet, api = postgres_fleet
    requests_before = read_metrics(engine.root_url).requests_succeeded_total
    ids = [post(api, question, AUTO) for question in questions(hotpotqa_path, 12)]
    jobs = fleet.wait_until(ids, finished)

    assert [job.status for job in jobs] == [JobStatus.DONE] * 12, [j.error for j in jobs]
    assert all(job.attempts == 1 for job in jobs)
    workers = set()
    for job in jobs:
        attempts = fleet.events(job.id, "attempt")
        assert len(attempts) == 1, "claimed once"
        workers.add(attempts[0].data["worker"])
        started = steps_started(fleet, job.id)
        assert started and len(started) == len(set(started)), "no step ran twice"
    assert len(workers) == 2, "both workers took jobs"
    # Every call the engine answered belongs to exactly one job's count: nothing ran twice.
    calls = sum(fleet.events(job.id, "done")[0].data["llm_calls"] for job in jobs)
    assert read_metrics(engine.root_url).requests_succeeded_total - requests_before == calls


def test_a_cancel_sent_to_the_api_stops_the_job_on_its_worker_within_two_seconds(
    postgres_fleet: tuple[Fleet, str], hotpotqa_path: Path
) -> None:
    fleet, api = postgres_fleet
    job_id = post(api, questions(hotpotqa_path, 1)[0], {**AUTO, "max_step_num": 2})
    fleet.wait_until([job_id], lambda job: bool(fleet.events(job.id, "step_started")))

    response = httpx.post(f"{api}/api/research/{job_id}/cancel", timeout=30)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    time.sleep(2.0)
    settled = len(fleet.events(job_id))
    time.sleep(3.0)
    assert len(fleet.events(job_id)) == settled, "the worker's run stopped within 2 s"
    assert fleet.job(job_id).status is JobStatus.CANCELLED


def test_a_review_sent_to_the_api_resumes_the_job_on_a_worker_and_a_second_review_is_refused(
    postgres_fleet: tuple[Fleet, str], hotpotqa_path: Path
) -> None:
    fleet, api = postgres_fleet
    job_id = post(api, questions(hotpotqa_path, 2)[1], REVIEWED)
    fleet.wait_until([job_id], lambda job: job.status is JobStatus.AWAITING_PLAN_REVIEW)
    planned_by = fleet.events(job_id, "attempt")[0].data["worker"]

    def review(_: int) -> int:
        url = f"{api}/api/research/{job_id}/plan"
        return httpx.post(url, json={"action": "accept"}, timeout=30).status_code

    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(review, range(2)))
    assert codes == [200, 409], "two reviews at once: exactly one wins"

    (done,) = fleet.wait_until([job_id], finished)
    assert done.status is JobStatus.DONE, done.error
    assert done.attempts == 1, "the review continued the attempt that stopped for it"
    assert len(fleet.events(job_id, "plan_review")) == 1
    assert planned_by.count(":") == 2  # a worker's name: host:pid:random


def test_jobs_awaiting_review_survive_every_process_stopping_and_are_reviewed_after(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    fleet = Fleet(tmp_path, engine.base_url)  # SQLite: the processes of one machine
    try:
        api = fleet.api(worker=False)
        fleet.worker(concurrency=3)
        ids = [post(api, question, REVIEWED) for question in questions(hotpotqa_path, 3)]
        fleet.wait_until(ids, lambda job: job.status is JobStatus.AWAITING_PLAN_REVIEW)
        fleet.stop_all()

        api = fleet.api(worker=False)
        fleet.worker(concurrency=3)
        for job_id in ids:
            url = f"{api}/api/research/{job_id}/plan"
            assert httpx.post(url, json={"action": "accept"}, timeout=30).status_code == 200
        jobs = fleet.wait_until(ids, finished)
    finally:
        fleet.close()
    assert [job.status for job in jobs] == [JobStatus.DONE] * 3, [j.error for j in jobs]
    assert all(job.attempts == 1 and job.report for job in jobs)


def test_workers_killed_five_times_lose_no_job_source_or_finished_step(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    fleet = Fleet(tmp_path, engine.base_url)  # SQLite: the processes of one machine
    options = {**AUTO, "max_step_num": 2}

    def steps_done(ids: list[str]) -> int:
        return sum(len(fleet.events(job_id, "step_done")) for job_id in ids)

    try:
        api = fleet.api(worker=False)
        workers = [fleet.worker(concurrency=2), fleet.worker(concurrency=2)]
        ids = [post(api, question, options) for question in questions(hotpotqa_path, 4)]
        sources_seen: dict[str, set[str]] = {job_id: set() for job_id in ids}
        for kill in range(5):
            # Kill a worker right after a step finishes somewhere: mid-job, with some of the
            # job's work checkpointed and some not.
            seen = steps_done(ids)
            wait_for(
                lambda seen=seen: (
                    steps_done(ids) > seen
                    or all(fleet.job(job_id).status.is_final for job_id in ids)
                ),
                900,
                "a step to finish",
            )
            victim = workers[kill % 2]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            for job_id in ids:
                sources_seen[job_id] |= checkpointed_sources(fleet, job_id)
            workers[kill % 2] = fleet.worker(concurrency=2)
        jobs = fleet.wait_until(ids, finished)
        events = {job_id: fleet.store.events(job_id) for job_id in ids}
    finally:
        fleet.close()

    assert [job.status for job in jobs] == [JobStatus.DONE] * 4, [j.error for j in jobs]
    for job in jobs:
        # A step is done for good once the graph has moved past it (a later step started, or the
        # report began): its checkpoint is written by then. A kill between its step_done event
        # and that point may run it again, by design.
        ended: set[tuple[Any, Any]] = set()
        done: set[tuple[Any, Any]] = set()
        for event in events[job.id]:
            step = (event.data.get("iteration"), event.data.get("index"))
            if event.type == "attempt":
                ended = set()
            moved_on = event.type == "step_started" or event.data.get("phase") == "reporting"
            if event.type == "step_started":
                assert step not in done, f"step {step} of {job.id} ran again after it was done"
            if moved_on:
                done |= ended
            if event.type == "step_done":
                ended.add(step)
        assert sources_seen[job.id] <= {s["url"] for s in job.sources}, "no source was lost"
        assert "## Answer" in (job.report or "")


def test_a_batch_and_a_worker_on_one_data_dir_run_each_job_once(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    fleet = Fleet(tmp_path, engine.base_url)  # SQLite: the processes of one machine
    batch_file, out = tmp_path / "questions.txt", tmp_path / "reports"
    batch_file.write_text("\n".join(questions(hotpotqa_path, 4)) + "\n")
    try:
        fleet.worker(concurrency=2)
        # The batch runs 2 at once; the jobs waiting for its slots are the worker's to take.
        batch = subprocess.run(
            [str(FAWN), "batch", str(batch_file), "--out", str(out), "--concurrency", "2",
             "--max-steps", "1"],
            env=fleet.env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert batch.returncode == 0, batch.stderr
        jobs = fleet.store.list().jobs
        attempts = {job.id: fleet.events(job.id, "attempt") for job in jobs}
    finally:
        fleet.close()
    assert len(jobs) == 4 and all(job.status is JobStatus.DONE for job in jobs)
    assert all(job.attempts == 1 and len(attempts[job.id]) == 1 for job in jobs)
    assert len({a[0].data["worker"] for a in attempts.values()}) == 2, "both took jobs"
    assert len(list(out.glob("*.md"))) == 4, "the batch wrote every report"


def test_an_api_process_streams_the_events_of_a_job_a_worker_runs(
    postgres_fleet: tuple[Fleet, str], hotpotqa_path: Path
) -> None:
    fleet, api = postgres_fleet
    job_id = post(api, questions(hotpotqa_path, 3)[2], AUTO)
    seen: list[tuple[int, str]] = []
    with httpx.stream("GET", f"{api}/api/research/{job_id}/events", timeout=600) as stream:
        event_id, event_type = 0, ""
        for line in stream.iter_lines():
            if line.startswith("id:"):
                event_id = int(line.removeprefix("id:").strip())
            elif line.startswith("event:"):
                event_type = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                seen.append((event_id, event_type))
    stored = [(e.seq, e.type) for e in fleet.store.events(job_id)]
    assert seen == stored, "every event, live from the worker through the database, in order"
    assert seen[-1][1] == "done" and fleet.job(job_id).status is JobStatus.DONE
