"""The API against its own OpenAPI spec: generated requests to every operation of the real app.

Schemathesis reads `/openapi.json` from the app (real SQLite job store and corpus in a temporary
data dir, the real engine behind it) and sends each operation generated requests, valid and
invalid; no answer may be a 5xx, and every answer must match the spec. Research jobs it submits
are cancelled at once, so the engine is not swamped with generated questions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.api.app import create_app
from app.jobs.models import JobStatus
from app.settings import Settings
from serving.endpoint import Endpoint
from tests.app.api.conftest import api_settings, build_corpus

EXAMPLES_PER_OPERATION = 15
SUBMIT = ("POST", "/api/research")
UPLOAD = ("POST", "/api/corpus/documents")
BASE_URL = "http://testserver"
# Where the app is knowingly more lenient or stricter than its spec can say:
_LENIENT = {
    # An upload's name and bytes must be a supported file, which the spec cannot express: a
    # schema-valid upload named "file" is refused (415/422), as its documented answers say.
    UPLOAD: [positive_data_acceptance],
    # Options are coerced as pydantic does by default ("3" is 3, 0 is false), which the web
    # form, whose fields arrive as strings, relies on.
    SUBMIT: [negative_data_rejection],
}


@pytest.fixture(scope="module")
def contract_app(
    engine: Endpoint, tmp_path_factory: pytest.TempPathFactory, hotpotqa_path: Path
) -> FastAPI:
    data_dir = tmp_path_factory.mktemp("contract-data")
    build_corpus(data_dir, hotpotqa_path)
    return create_app(api_settings(engine, data_dir))


# The spec is read from an app that never starts (`from_asgi` would run its lifespan, which
# starts an engine); requests go to `contract_app`, the same routes with the engine behind them.
# (Schemathesis' fixture-based lazy schema would do this, but it fails on pytest 9.)
schema = schemathesis.openapi.from_dict(create_app(Settings(data_dir=Path("unused"))).openapi())


@pytest.mark.engine
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_its_spec_says(
    case: schemathesis.Case, contract_app: FastAPI
) -> None:
    response = case.call(app=contract_app, base_url=BASE_URL)
    if (case.method, case.path) == SUBMIT and response.status_code == 202:
        _cancel(contract_app, response.json()["id"])
    excluded = list(_LENIENT.get((case.method, case.path), []))
    if (case.method, case.path) == SUBMIT and _names_an_mcp_server(case):
        # An `mcp:NAME` provider must be a server this deployment configured (none here), which
        # the spec cannot say: such a request is refused with a 422 naming options.provider.
        excluded.append(positive_data_acceptance)
    case.validate_response(response, excluded_checks=excluded)


def _names_an_mcp_server(case: schemathesis.Case) -> bool:
    options = case.body.get("options") if isinstance(case.body, dict) else None
    provider = options.get("provider") if isinstance(options, dict) else None
    return isinstance(provider, str) and provider.startswith("mcp:")


def _cancel(app: FastAPI, job_id: str) -> None:
    cancel = schema["/api/research/{job_id}/cancel"]["POST"]
    answer = cancel.Case(path_parameters={"job_id": job_id}).call(app=app, base_url=BASE_URL)
    assert answer.status_code in (200, 409), answer.text


def test_operation_ids_and_route_names_are_unique(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))  # the spec needs no engine: no lifespan runs
    spec = app.openapi()
    operation_ids = [
        operation["operationId"] for path in spec["paths"].values() for operation in path.values()
    ]
    route_names = [route.name for route in app.routes]
    assert [name for name, n in Counter(operation_ids).items() if n > 1] == []
    assert [name for name, n in Counter(route_names).items() if n > 1] == []
    assert "delete_research_job" in route_names and "delete_document" in route_names


@pytest.fixture(scope="module")
def plain_client(
    engine: Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    app = create_app(api_settings(engine, tmp_path_factory.mktemp("plain-data")))
    with TestClient(app) as client:
        yield client


@pytest.mark.engine
def test_a_damaged_pdf_upload_is_refused_as_unreadable(plain_client: TestClient) -> None:
    response = plain_client.post(
        "/api/corpus/documents",
        files={"file": ("paper.pdf", b"%PDF-1.7 and nothing else", "application/pdf")},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("file: paper.pdf cannot be read as a .pdf file")


@pytest.mark.engine
def test_a_blank_question_is_refused_before_any_job(plain_client: TestClient) -> None:
    before = plain_client.get("/api/research").json()["total"]
    response = plain_client.post("/api/research", json={"question": " \t\n "})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("question: String should match pattern")
    assert plain_client.get("/api/research").json()["total"] == before


@pytest.mark.engine
def test_a_review_of_a_job_not_awaiting_one_is_409_and_of_a_deleted_one_404(
    plain_client: TestClient,
) -> None:
    store = plain_client.app.state.store
    job = store.create("Who wrote it?", {})  # queued, never run: no plan to review
    response = plain_client.post(f"/api/research/{job.id}/plan", json={"action": "accept"})
    assert response.status_code == 409
    assert response.json()["detail"] == f"Job {job.id} is queued, not awaiting plan review."

    store.update(job.id, status=JobStatus.AWAITING_PLAN_REVIEW)
    assert plain_client.delete(f"/api/research/{job.id}").status_code == 204
    response = plain_client.post(f"/api/research/{job.id}/plan", json={"action": "accept"})
    assert response.status_code == 404
    assert (
        plain_client.post("/api/research/nonesuch/plan", json={"action": "accept"}).status_code
        == 404
    )


def test_the_spec_documents_validation_errors_as_problems(tmp_path: Path) -> None:
    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    invalid = spec["paths"]["/api/research"]["post"]["responses"]["422"]
    assert invalid["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.mark.engine
def test_a_wrong_method_lists_every_method_of_the_path(plain_client: TestClient) -> None:
    response = plain_client.request("PUT", "/api/research/some-job")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
