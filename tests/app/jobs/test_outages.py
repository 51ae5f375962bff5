"""An engine or a database that stops answering mid-job: the job waits, then finishes.

A real `fawn worker` reaches the real engine (or the real PostgreSQL) through a TCP relay that
the test cuts for some seconds: connections are reset and new ones refused, as when the server
dies, and it answers again when the relay is restored.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.jobs.models import JobOptions, JobStatus
from serving.endpoint import Endpoint
from tests.app.api.conftest import build_corpus
from tests.app.jobs.fleet import Fleet
from tests.processes import wait_for
from tests.relay import TcpRelay

pytestmark = pytest.mark.engine
QUESTION = "Were Scott Derrickson and Ed Wood of the same nationality?"
OPTIONS = JobOptions(auto_accept_plan=True, max_step_num=1, enable_coder=False)
OUTAGE_S = 8.0
JOB_TIMEOUT_S = 900.0


def test_a_job_waits_out_an_engine_that_stops_answering_and_finishes(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    root = urlsplit(engine.root_url)
    with TcpRelay(root.hostname or "127.0.0.1", root.port or 80) as relay:
        fleet = Fleet(tmp_path, f"http://127.0.0.1:{relay.port}/v1", outage_backoff_max_s=2.0)
        try:
            fleet.worker(concurrency=1)
            job = fleet.store.create(QUESTION, OPTIONS.model_dump(mode="json"))
            wait_for(lambda: fleet.events(job.id, "plan"), JOB_TIMEOUT_S, "the plan")
            relay.cut()
            wait_for(
                lambda: any(e.data.get("waiting") for e in fleet.events(job.id, "status")),
                120,
                "the job to say it waits for the engine",
            )
            time.sleep(OUTAGE_S)
            assert not fleet.job(job.id).status.is_final, "still waiting, not failed"
            relay.restore()
            (done,) = fleet.wait_until([job.id], lambda j: j.status.is_final, JOB_TIMEOUT_S)
        finally:
            fleet.close()
    assert done.status is JobStatus.DONE, done.error
    assert "## Answer" in (done.report or "")


def test_a_job_waits_out_a_database_that_stops_answering_and_is_never_done_without_its_report(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path, postgres_database: str
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    database = urlsplit(postgres_database)
    with TcpRelay(database.hostname or "127.0.0.1", database.port or 5432) as relay:
        relayed = postgres_database.replace(f":{database.port}/", f":{relay.port}/")
        fleet = Fleet(
            tmp_path,
            engine.base_url,
            database_url=relayed,
            store_url=postgres_database,
            outage_backoff_max_s=2.0,
        )
        try:
            fleet.worker(concurrency=1)
            job = fleet.store.create(QUESTION, OPTIONS.model_dump(mode="json"))
            wait_for(lambda: fleet.events(job.id, "plan"), JOB_TIMEOUT_S, "the plan")
            relay.cut()
            time.sleep(OUTAGE_S)
            during = fleet.job(job.id)
            assert not during.status.is_final and during.report is None
            relay.restore()
            (done,) = fleet.wait_until([job.id], lambda j: j.status.is_final, JOB_TIMEOUT_S)
        finally:
            fleet.close()
    assert done.status is JobStatus.DONE, done.error
    assert "## Answer" in (done.report or "")
    assert done.sources, "the sources of the run are with the report"
