"""HTML responses: the templates, the security headers every page carries, and error pages.

Web routes use `HtmlRoute`, which turns HTTP errors, validation errors and Fawn errors raised by
a page (or by the API functions it calls) into a readable HTML page instead of JSON (a redirect,
such as to the login page, stays a redirect), and adds the Content-Security-Policy to every
response it sends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from app.api.errors import fawn_error_status
from serving.errors import FawnError

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "web"
STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Links out of a report must not tell the cited site which job the reader was on; same-origin
    # requests keep their Origin, which the CSRF check of cookie-authenticated posts reads.
    "Referrer-Policy": "same-origin",
}
templates = Jinja2Templates(directory=TEMPLATES_DIR)


def page(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Template `name` rendered with `context`, as an HTML response."""
    return templates.TemplateResponse(
        request, name, dict(context or {}), status_code=status_code, headers=dict(headers or {})
    )


def error_page(
    request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A page that says what went wrong and how to go on."""
    return page(
        request,
        "error.html",
        {"status_code": status_code, "message": message},
        status_code=status_code,
        headers=headers,
    )


def _message(
    exc: HTTPException | RequestValidationError | FawnError,
) -> tuple[int, str, Mapping[str, str] | None]:
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), exc.headers
    if isinstance(exc, RequestValidationError):
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}"
            for e in exc.errors()
        )
        return 422, fields, None
    status_code, headers = fawn_error_status(exc)  # the API's own mapping: pages agree with it
    return status_code, str(exc), headers


class HtmlRoute(APIRoute):
    """A page route: errors become HTML pages, and every response gets the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except (HTTPException, RequestValidationError, FawnError) as exc:
                status_code, message, headers = _message(exc)
                if 300 <= status_code < 400 and headers and "Location" in headers:
                    response = RedirectResponse(headers["Location"], status_code)
                else:
                    response = error_page(request, status_code, message, headers)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route
