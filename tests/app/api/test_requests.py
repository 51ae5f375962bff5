"""Bad requests get a clear 4xx naming the field; keys are required off loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api.app import create_app
from serving.endpoint import Endpoint
from serving.errors import ConfigError
from tests.app.api.conftest import api_settings

pytestmark = pytest.mark.engine


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "x" * 5000}, "question"),
        ({"question": "q", "options": {"report_style": "poem"}}, "options.report_style"),
        ({"question": "q", "options": {"max_step_num": 0}}, "options.max_step_num"),
        ({"question": "q", "options": {"locale": "not a locale"}}, "options.locale"),
        ({"question": "q", "options": {"provider": "bing"}}, "options.provider"),
        # Well formed, but no MCP server of that name is configured here.
        ({"question": "q", "options": {"provider": "mcp:wiki"}}, "options.provider"),
        ({"question": "q", "unexpected": 1}, "unexpected"),
        ({}, "question"),
    ],
)
def test_invalid_submission_is_422_naming_the_field(
    client: TestClient, body: dict, field: str
) -> None:
    response = client.post("/api/research", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:")


def test_unknown_job_is_404(client: TestClient) -> None:
    for path in ("", "/report", "/events"):
        assert client.get(f"/api/research/nope{path}").status_code == 404


def test_plan_review_of_a_job_not_awaiting_review_is_409(client: TestClient) -> None:
    job = client.post(
        "/api/research", json={"question": "q", "options": {"auto_accept_plan": False}}
    ).json()
    client.post(f"/api/research/{job['id']}/cancel")
    response = client.post(f"/api/research/{job['id']}/plan", json={"action": "accept"})
    assert response.status_code == 409


def test_health_reports_every_component(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert set(health) >= {"status", "app", "engine", "search", "sandbox", "pressure"}
    assert health["engine"]["ok"] is True


def test_metrics_expose_the_budget(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert "fawn_llm" in text


def test_api_key_is_required_when_configured(engine: Endpoint, tmp_path: Path) -> None:
    settings = api_settings(engine, tmp_path, api_key=SecretStr("s3cret"))
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/research").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/api/research", headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert client.get("/api/research", headers=right).status_code == 200


def test_non_loopback_bind_without_a_key_is_refused(engine: Endpoint, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FAWN_API_KEY"):
        create_app(api_settings(engine, tmp_path, host="0.0.0.0"))
