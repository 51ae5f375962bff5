"""Errors mapped to HTTP once, here: validation → 422 naming the fields, Fawn errors → 4xx/5xx.

The OpenAPI spec documents what these handlers send: every 422 is a `Problem`, not FastAPI's
default validation body; a body that cannot be parsed is a 400; and a 405 lists in `Allow` every
method the path supports.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from agents.errors import SandboxError, SearchError
from app.api.schemas import Problem
from app.corpus import DocumentNotFound, UnreadableUpload, UnsupportedUpload, UploadTooLarge
from app.jobs.errors import InvalidOptions, JobConflict, JobNotFound
from serving.errors import BudgetTimeout, ConfigError, EngineError, FawnError

_STATUS_BY_ERROR: tuple[tuple[type[FawnError], int], ...] = (
    (JobNotFound, 404),
    (JobConflict, 409),
    (InvalidOptions, 422),
    (DocumentNotFound, 404),
    (UnsupportedUpload, 415),
    (UploadTooLarge, 413),
    (UnreadableUpload, 422),
    (ConfigError, 400),
    (SearchError, 502),
    (SandboxError, 503),
    (EngineError, 503),
    (BudgetTimeout, 503),
)
_UNPARSABLE_RESPONSE = {
    "description": "The body could not be read (not UTF-8, or a broken multipart form).",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_VALIDATION_RESPONSE = {
    "description": "Invalid request: `detail` names each wrong field and what is wrong with it.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
# FastAPI's own validation body, which these handlers never send.
_UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
    fields = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in errors
    )
    return JSONResponse(status_code=422, content={"detail": fields, "errors": errors})


def fawn_error_status(exc: FawnError) -> tuple[int, dict[str, str]]:
    """The HTTP status and headers of a Fawn error: one mapping for the API and the pages."""
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        return 503, {"Retry-After": str(int(retry_after))}
    return next((code for kind, code in _STATUS_BY_ERROR if isinstance(exc, kind)), 500), {}


def _fawn_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FawnError)
    status, headers = fawn_error_status(exc)
    return JSONResponse(status_code=status, content={"detail": str(exc)}, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        # Starlette names only the first route of the path; the path may have several.
        headers = {**(exc.headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        exc = HTTPException(exc.status_code, exc.detail, headers)
    return await http_exception_handler(request, exc)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


def _document_problems(app: FastAPI) -> None:
    """Make the spec's 422 answers the `Problem` that `_validation_error` sends; add the 400."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = _VALIDATION_RESPONSE
                if "requestBody" in operation:  # FastAPI answers 400 to a body it cannot parse
                    responses.setdefault("400", _UNPARSABLE_RESPONSE)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault(
            "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        for name in _UNUSED_SCHEMAS:
            schemas.pop(name, None)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`, and document their answers in its OpenAPI spec."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(FawnError, _fawn_error)
    app.add_exception_handler(HTTPException, _http_error)
    _document_problems(app)
