"""The web UI: server-rendered pages over the REST API, live parts in small vanilla JS.

`router` holds every page (with the login page and the offline API reference at /docs);
`static_files()` serves the CSS and JS under `/static`, Swagger UI's files included (mount it
with the name "static", which the templates use to link them).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from app.web import corpus, docs, jobs, login, podcast, reports
from app.web.html import STATIC_DIR

router = APIRouter(include_in_schema=False)
router.include_router(jobs.router)
router.include_router(reports.router)
router.include_router(podcast.router)
router.include_router(corpus.router)
router.include_router(login.router)
router.include_router(docs.router)


def static_files() -> StaticFiles:
    """The UI's stylesheets and scripts, and Swagger UI's (from the fastapi-offline package)."""
    return StaticFiles(directory=STATIC_DIR, packages=[docs.SWAGGER_PACKAGE])


__all__ = ["router", "static_files"]
