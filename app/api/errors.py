"""Errors mapped to HTTP once, here: validation → 422 naming the fields, Fawn errors → 4xx/5xx."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agents.errors import SandboxError, SearchError
from serving.errors import BudgetTimeout, ConfigError, EngineError, FawnError

_STATUS_BY_ERROR: tuple[tuple[type[FawnError], int], ...] = (
    (ConfigError, 400),
    (SearchError, 502),
    (SandboxError, 503),
    (EngineError, 503),
    (BudgetTimeout, 503),
)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
    fields = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in errors
    )
    return JSONResponse(status_code=422, content={"detail": fields, "errors": errors})


def _fawn_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FawnError)
    status = next((code for kind, code in _STATUS_BY_ERROR if isinstance(exc, kind)), 500)
    headers = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        status = 503
        headers["Retry-After"] = str(int(retry_after))
    return JSONResponse(status_code=status, content={"detail": str(exc)}, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(FawnError, _fawn_error)
