"""The API against its own OpenAPI spec: generated requests to every operation of the real app.

Schemathesis reads `/openapi.json` from the app (real SQLite job store and corpus in a temporary
data dir, the real engine behind it) and sends each operation generated requests, valid and
invalid; no answer may be a 5xx, and every answer must match the spec. Research jobs it submits
are cancelled at once, so the engine is not swamped with generated questions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from app.api.app import create_app
from app.settings import Settings
from serving.endpoint import Endpoint
from tests.app.api.conftest import api_settings, build_corpus

EXAMPLES_PER_OPERATION = 15
SUBMIT = ("POST", "/api/research")


@pytest.fixture(scope="module")
def contract_app(
    engine: Endpoint, tmp_path_factory: pytest.TempPathFactory, hotpotqa_path: Path
) -> FastAPI:
    data_dir = tmp_path_factory.mktemp("contract-data")
    build_corpus(data_dir, hotpotqa_path)
    return create_app(api_settings(engine, data_dir))


@pytest.fixture
def api_schema(contract_app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", contract_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.engine
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_its_spec_says(case: schemathesis.Case) -> None:
    response = case.call()
    if (case.method, case.path) == SUBMIT and response.status_code == 202:
        _cancel(case, response.json()["id"])
    case.validate_response(response)


def _cancel(case: schemathesis.Case, job_id: str) -> None:
    cancel = case.operation.schema["/api/research/{job_id}/cancel"]["POST"]
    answer = cancel.Case(path_parameters={"job_id": job_id}).call()
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
