"""An API app on the real embedded engine, with a real SQLite job store and a HotpotQA corpus."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agents.tools.corpus import LocalCorpus
from agents.tools.ingest import load_documents
from agents.tools.search import corpus_path
from app.api.app import create_app
from app.settings import Settings
from serving.endpoint import Endpoint
from serving.settings import LLMSettings

# Small runs keep the real engine's time per job to about a minute on two cores.
FAST_OPTIONS = {"max_step_num": 1, "max_plan_iterations": 1, "enable_coder": False}
JOB_TIMEOUT_S = 420


def api_settings(engine: Endpoint, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for an API on `engine` whose data (jobs, corpus) live in `data_dir`."""
    return Settings(data_dir=data_dir, llm=LLMSettings(base_url=engine.base_url), **overrides)


def build_corpus(data_dir: Path, hotpotqa: Path) -> None:
    """The HotpotQA paragraphs as the local corpus under `data_dir`."""
    LocalCorpus(corpus_path(data_dir)).add(load_documents(hotpotqa))


@pytest.fixture(scope="module")
def api_data_dir(tmp_path_factory: pytest.TempPathFactory, hotpotqa_path: Path) -> Path:
    data_dir = tmp_path_factory.mktemp("api-data")
    build_corpus(data_dir, hotpotqa_path)
    return data_dir


@pytest.fixture(scope="module")
def client(engine: Endpoint, api_data_dir: Path) -> Iterator[TestClient]:
    """One app for the module: jobs are slow on a CPU, so tests share it."""
    with TestClient(create_app(api_settings(engine, api_data_dir))) as test_client:
        yield test_client


def wait_for_status(client: TestClient, job_id: str, *statuses: str) -> dict[str, Any]:
    """Poll the job until it reaches one of `statuses` (or fail with its last state)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/api/research/{job_id}").json()
        if job["status"] in statuses:
            return job
        if job["status"] in {"failed", "cancelled"} - set(statuses):
            pytest.fail(f"job ended {job['status']}: {job.get('error')}")
        time.sleep(0.5)
    pytest.fail(f"job still {job.get('status')} after {JOB_TIMEOUT_S} s")


def read_sse(client: TestClient, job_id: str, last_event_id: int | None = None) -> list[dict]:
    """Every event of the job's SSE stream (which ends when the job ends)."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events, current = [], {}
    with client.stream("GET", f"/api/research/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "event" in current:
                    events.append(current)
                current = {}
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                current["data"] = json.loads(value)
            elif field in ("id", "event"):
                current[field] = value
    return events
