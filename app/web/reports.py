"""The report view and its downloads: Markdown, self-contained HTML, and PDF (with Chromium).

Reports render on the server, so a finished report reads without JavaScript. The HTML download
carries its own CSS inline and a Content-Security-Policy that allows nothing else, so the file
stays inert wherever it is opened; the PDF is that file printed by headless Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from functools import cache

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse

from app.api.lookup import find_job
from app.jobs.models import Job, JobStatus
from app.web.html import STATIC_DIR, HtmlRoute, page, templates
from app.web.pdf import find_chromium, print_pdf
from app.web.podcast import podcast_view
from app.web.render import render_report

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
REPORT_CSS = STATIC_DIR / "report.css"
_SLUG = re.compile(r"[^a-z0-9]+")


def _finished(request: Request, job_id: str) -> Job:
    """The job with its report; 404 for an unknown job, 409 while the report is not ready."""
    job = find_job(request, job_id)
    if job.status is not JobStatus.DONE or job.report is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"The report is not ready: the job is {job.status}. Follow it on its page.",
        )
    return job


def download_name(job: Job, suffix: str) -> str:
    """A file name from the question, ASCII only (safe in a Content-Disposition header)."""
    slug = _SLUG.sub("-", job.question.lower()).strip("-")[:60].strip("-")
    return f"fawn-{slug or job.id[:8]}.{suffix}"


def _attachment(job: Job, suffix: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{download_name(job, suffix)}"'}


@cache
def _report_css() -> tuple[str, str]:
    """The report stylesheet and the CSP source that allows exactly it inline."""
    css = REPORT_CSS.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return css, f"'sha256-{digest}'"


def standalone_html(job: Job) -> tuple[str, str]:
    """The report as one self-contained HTML file, and the policy it declares for itself."""
    css, css_source = _report_css()
    policy = (
        f"default-src 'none'; img-src data:; style-src {css_source}; "
        "base-uri 'none'; form-action 'none'"
    )
    html = templates.get_template("report_standalone.html").render(
        job=job, report_html=render_report(job.report or ""), css=css, policy=policy
    )
    return html, policy


@router.get("/jobs/{job_id}/report", name="report_page")
async def report_page(job_id: str, request: Request) -> Response:
    """The finished report, rendered, with its downloads."""
    job = await asyncio.to_thread(_finished, request, job_id)
    return page(
        request,
        "report.html",
        {
            "job": job,
            "report_html": render_report(job.report or ""),
            "podcast": await asyncio.to_thread(podcast_view, request, job),
            "has_pdf": find_chromium() is not None,
        },
    )


@router.get("/jobs/{job_id}/report/body", name="report_body")
async def report_body(job_id: str, request: Request) -> Response:
    """The rendered report alone, for the live job page to show once the job is done."""
    job = await asyncio.to_thread(_finished, request, job_id)
    return HTMLResponse(render_report(job.report or ""))


@router.get("/jobs/{job_id}/report.md", name="report_markdown")
async def report_markdown(job_id: str, request: Request) -> Response:
    """Download the report as Markdown."""
    job = await asyncio.to_thread(_finished, request, job_id)
    return Response(
        job.report, media_type="text/markdown; charset=utf-8", headers=_attachment(job, "md")
    )


@router.get("/jobs/{job_id}/report.html", name="report_html")
async def report_html(job_id: str, request: Request) -> Response:
    """Download the report as one self-contained HTML file."""
    job = await asyncio.to_thread(_finished, request, job_id)
    html, policy = standalone_html(job)
    headers = {**_attachment(job, "html"), "Content-Security-Policy": policy}
    return HTMLResponse(html, headers=headers)


@router.get("/jobs/{job_id}/report.pdf", name="report_pdf")
async def report_pdf(job_id: str, request: Request) -> Response:
    """Download the report as PDF; 404 with the fix when no Chromium is installed."""
    job = await asyncio.to_thread(_finished, request, job_id)
    chromium = find_chromium()
    if chromium is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="PDF export needs Chromium: install it (apt install chromium), "
            "or download the HTML and print it from your browser.",
        )
    html, _ = standalone_html(job)
    pdf = await print_pdf(html, chromium)
    return Response(pdf, media_type="application/pdf", headers=_attachment(job, "pdf"))
