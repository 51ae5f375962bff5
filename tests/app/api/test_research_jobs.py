"""Research jobs through the API on the real engine: submit → events → report, review, cancel."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.app.api.conftest import FAST_OPTIONS, read_sse, wait_for_status

pytestmark = pytest.mark.engine
QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"


@pytest.fixture(scope="module")
def finished_job(client: TestClient) -> dict:
    response = client.post(
        "/api/research",
        json={"question": QUESTION, "options": {**FAST_OPTIONS, "auto_accept_plan": True}},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/research/{job['id']}"
    assert job["status"] == "queued"
    return wait_for_status(client, job["id"], "done")


def test_submitted_job_streams_typed_events_until_done(
    client: TestClient, finished_job: dict
) -> None:
    events = read_sse(client, finished_job["id"])
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done"
    assert {"plan", "step_started", "step_done", "status"} <= set(kinds)
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))


def test_report_is_markdown_with_an_answer_and_registered_citations(
    client: TestClient, finished_job: dict
) -> None:
    response = client.get(f"/api/research/{finished_job['id']}/report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    report = response.text
    assert "## Answer" in report
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", report.split("## Sources")[0])}
    registered = {s["id"] for s in finished_job["sources"]}
    assert cited <= registered


def test_report_as_json_carries_metadata(client: TestClient, finished_job: dict) -> None:
    response = client.get(
        f"/api/research/{finished_job['id']}/report", headers={"Accept": "application/json"}
    )
    body = response.json()
    assert body["id"] == finished_job["id"] and body["status"] == "done"
    assert body["report"].startswith("#") or "## Answer" in body["report"]


def test_sse_replays_only_events_after_last_event_id(
    client: TestClient, finished_job: dict
) -> None:
    everything = read_sse(client, finished_job["id"])
    replay = read_sse(client, finished_job["id"], last_event_id=3)
    assert replay == everything[3:]


def test_plan_review_waits_then_runs_the_edited_steps(client: TestClient) -> None:
    job = client.post(
        "/api/research",
        json={"question": QUESTION, "options": {**FAST_OPTIONS, "auto_accept_plan": False}},
    ).json()
    waiting = wait_for_status(client, job["id"], "awaiting_plan_review")
    assert waiting["plan"]["steps"]
    assert client.get(f"/api/research/{job['id']}/report").status_code == 409

    edited = [{"title": "When was Arthur's Magazine started", "description": "Find the year."}]
    response = client.post(
        f"/api/research/{job['id']}/plan", json={"action": "edit", "steps": edited}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "researching"
    done = wait_for_status(client, job["id"], "done")
    assert [s["title"] for s in done["plan"]["steps"]] == [edited[0]["title"]]
    assert (
        client.post(f"/api/research/{job['id']}/plan", json={"action": "accept"}).status_code == 409
    )


def test_cancelled_job_ends_cancelled_and_can_be_retried(client: TestClient) -> None:
    job = client.post(
        "/api/research",
        json={"question": QUESTION, "options": {**FAST_OPTIONS, "auto_accept_plan": False}},
    ).json()
    response = client.post(f"/api/research/{job['id']}/cancel")
    assert response.status_code == 200
    cancelled = wait_for_status(client, job["id"], "cancelled")
    assert cancelled["finished_at"] is not None
    assert client.post(f"/api/research/{job['id']}/cancel").status_code == 409
    assert client.post(f"/api/research/{job['id']}/retry").status_code == 200
    client.post(f"/api/research/{job['id']}/cancel")
    assert client.delete(f"/api/research/{job['id']}").status_code == 204
    assert client.get(f"/api/research/{job['id']}").status_code == 404


def test_listing_filters_by_status(client: TestClient, finished_job: dict) -> None:
    listed = client.get("/api/research", params={"status": "done"}).json()
    assert finished_job["id"] in [j["id"] for j in listed["jobs"]]
    assert all(j["status"] == "done" for j in listed["jobs"])
