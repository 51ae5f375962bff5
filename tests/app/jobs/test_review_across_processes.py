"""A plan review outlives the process that asked for it: real `fawn api` and `fawn jobs review`.

One real job on the real engine plans in one API process and is parked at its review; that
process is killed, a second one starts without taking the job up, and a `fawn jobs review`
process, started after both, accepts the plan and researches the job to its report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.jobs.models import JobStatus
from app.jobs.review import REVIEW_EVENT
from app.jobs.store import SqliteJobStore
from serving.endpoint import Endpoint
from tests.app.api.conftest import build_corpus
from tests.app.jobs.test_crash_resume import FAWN, post_job, start_api, wait_for
from tests.conftest import free_port

pytestmark = pytest.mark.engine
OPTIONS = {"auto_accept_plan": False, "max_step_num": 1, "enable_coder": False}
# Time a restarted API would take to show that it took the job up again (it starts its runner
# before it answers health checks).
RESTART_GRACE_S = 2.0


def test_a_job_parked_at_its_review_is_reviewed_by_a_new_process_after_a_restart(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    port = free_port()
    api = start_api(tmp_path, engine, port)
    try:
        job_id = post_job(port, OPTIONS)["id"]
        parked = wait_for(
            lambda: (j := store.get(job_id)) and j.status is JobStatus.AWAITING_PLAN_REVIEW and j
        )
    finally:
        api.send_signal(signal.SIGKILL)
        api.wait()
    assert parked.plan is not None and parked.plan["steps"]
    events_parked = len(store.events(job_id))

    api = start_api(tmp_path, engine, port)
    try:
        time.sleep(RESTART_GRACE_S)
        waiting = httpx.get(f"http://127.0.0.1:{port}/api/research/{job_id}", timeout=30).json()
        assert waiting["status"] == "awaiting_plan_review" and waiting["attempts"] == 1
        assert len(store.events(job_id)) == events_parked, "a restart does not take it up"
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=60)

    out = tmp_path / "report.md"
    reviewed = subprocess.run(
        [str(FAWN), "jobs", "review", job_id, "--accept", "--out", str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
        env={
            **os.environ,
            "COLUMNS": "200",
            "FAWN_DATA_DIR": str(tmp_path),
            "FAWN_LLM_BASE_URL": engine.base_url,
        },
    )
    assert reviewed.returncode == 0, reviewed.stderr
    done = store.get(job_id)
    assert done is not None and done.status is JobStatus.DONE, done and done.error
    assert done.attempts == 1, "the review continued the attempt that stopped for it"
    assert done.report is not None and "## Answer" in done.report
    assert out.read_text() == done.report
    assert done.plan == parked.plan, "the reviewed plan is the one researched"
    after = store.events(job_id)[events_parked:]
    assert after[0].type == REVIEW_EVENT
    assert after[1].type == "status" and after[1].data["status"] == JobStatus.RESEARCHING
    assert not [e for e in after if e.type == "plan"], "no new plan was made"
    assert any(e.type == "step_done" for e in after)
