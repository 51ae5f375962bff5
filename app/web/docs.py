"""The API reference (Swagger UI) served from this app alone: no CDN, nothing remote.

The Swagger UI files come from the `fastapi-offline` package and are served under `/static`
(see `static_files()`); the page starts them from static/docs.js, so the pages' strict
Content-Security-Policy holds here too. The app must be created with `docs_url=None` and
`redoc_url=None`, or FastAPI's own CDN-loading /docs answers first.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.web.html import HtmlRoute, error_page, page

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
SWAGGER_PACKAGE = ("fastapi_offline", "static")


@router.get("/docs", name="api_docs")
async def api_docs(request: Request) -> Response:
    """Interactive API reference for the REST API."""
    openapi_url = request.app.openapi_url
    if openapi_url is None:
        return error_page(request, status.HTTP_404_NOT_FOUND, "This server has no API schema.")
    root = request.scope.get("root_path", "")
    return page(request, "docs.html", {"openapi_url": f"{root}{openapi_url}"})
