"""The web UI: server-rendered pages over the REST API, live parts in small vanilla JS.

`router` holds every page; `static_files()` serves the CSS and JS under `/static` (mount it with
the name "static", which the templates use to link them).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from app.web import corpus, jobs, reports
from app.web.html import STATIC_DIR

router = APIRouter(include_in_schema=False)
router.include_router(jobs.router)
router.include_router(reports.router)
router.include_router(corpus.router)


def static_files() -> StaticFiles:
    """The UI's stylesheets and scripts."""
    return StaticFiles(directory=STATIC_DIR)


__all__ = ["router", "static_files"]
