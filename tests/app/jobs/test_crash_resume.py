"""Kill the process running a job mid-way; a restarted one finishes it without redoing steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from app.jobs.models import JobStatus
from app.jobs.store import SqliteJobStore
from serving.endpoint import Endpoint
from tests.app.api.conftest import build_corpus
from tests.conftest import free_port

pytestmark = pytest.mark.engine
FAWN = Path(sys.executable).with_name("fawn")
T = TypeVar("T")
QUESTION = "Were Scott Derrickson and Ed Wood of the same nationality?"


def start_api(data_dir: Path, engine: Endpoint, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FAWN_DATA_DIR": str(data_dir),
        "FAWN_LLM_BASE_URL": engine.base_url,
    }
    process = subprocess.Popen(
        [str(FAWN), "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError("the API did not start")


def post_job(port: int, options: dict[str, Any]) -> dict[str, Any]:
    """Submit QUESTION with `options` to the API on `port`; the job as the API shows it."""
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/research",
        json={"question": QUESTION, "options": options},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def wait_for(predicate: Callable[[], T], timeout_s: float = 600, interval_s: float = 0.5) -> T:
    """The first truthy value of `predicate`, polled until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError("timed out")


def test_killed_runner_resumes_job_with_earlier_sources_and_no_repeated_steps(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    port = free_port()
    api = start_api(tmp_path, engine, port)
    try:
        job = post_job(port, {"auto_accept_plan": True, "max_step_num": 2, "enable_coder": False})
        # Crash as soon as one step is done: its work is checkpointed, the rest is not.
        wait_for(lambda: any(e.type == "step_done" for e in store.events(job["id"])))
    finally:
        api.send_signal(signal.SIGKILL)
        api.wait()

    before = store.events(job["id"])
    crashed = store.get(job["id"])
    assert crashed is not None and not crashed.status.is_final
    sources_before = {e.data["source"]["url"] for e in before if e.type == "source_added"}
    steps_done_before = {
        (e.data["iteration"], e.data["index"]) for e in before if e.type == "step_done"
    }

    api = start_api(tmp_path, engine, port)
    try:
        finished = wait_for(
            lambda: (j := store.get(job["id"])) and j.status.is_final and j,
        )
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=60)

    assert finished.status is JobStatus.DONE, finished.error
    assert finished.attempts == 2
    assert "## Answer" in (finished.report or "")
    assert sources_before <= {s["url"] for s in finished.sources}
    after = store.events(job["id"])[len(before) :]
    restarted = {(e.data["iteration"], e.data["index"]) for e in after if e.type == "step_started"}
    assert not restarted & steps_done_before, json.dumps([e.data for e in after])
