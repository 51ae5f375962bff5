"""Pages for research jobs: ask, follow a job live, review its plan, cancel, retry, history.

Every action is a plain form post answered with a redirect, so the pages work without
JavaScript; the actions go through the job service, as the REST API's do, so both paths share
one set of checks. The live timeline is drawn by static/job.js from the job's SSE stream.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from agents.config import ReportStyle
from app.api.lookup import find_job, job_service, job_store
from app.api.schemas import MAX_OFFSET
from app.jobs.errors import InvalidOptions
from app.jobs.models import Job, JobStatus
from app.web import forms
from app.web.html import HtmlRoute, page
from app.web.podcast import podcast_view
from app.web.render import render_report
from serving.pressure import Overloaded

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
RECENT_JOBS = 8
HISTORY_PAGE = 20
STATUS_LABELS = {
    JobStatus.QUEUED: "Queued",
    JobStatus.PLANNING: "Planning",
    JobStatus.AWAITING_PLAN_REVIEW: "Waiting for your plan review",
    JobStatus.RESEARCHING: "Researching",
    JobStatus.REPORTING: "Writing the report",
    JobStatus.DONE: "Done",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}
LOCALES = ("en-US", "en-GB", "de-DE", "es-ES", "fr-FR", "it-IT", "ja-JP", "pt-BR", "zh-CN")


def _ask_page(
    request: Request,
    form: forms.AskForm,
    *,
    error: str | None = None,
    retry_after_s: int | None = None,
    status_code: int = 200,
) -> Response:
    recent = job_store(request).list(limit=RECENT_JOBS).jobs
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return page(
        request,
        "home.html",
        {
            "form": form,
            "error": error,
            "retry_after_s": retry_after_s,
            "recent": recent,
            "styles": list(ReportStyle),
            "locales": LOCALES,
            "labels": STATUS_LABELS,
            "mcp_providers": request.app.state.settings.mcp.provider_names(),
        },
        status_code=status_code,
        headers=headers,
    )


@router.get("/", name="home")
async def home(request: Request) -> Response:
    """Ask a question; the recent jobs below."""
    return _ask_page(request, forms.AskForm.blank())


@router.post("/jobs", name="submit_job")
async def submit_job(request: Request) -> Response:
    """Start a job from the ask form and go to its page; a refusal keeps what was typed."""
    form = forms.ask_form(await request.form())
    try:
        body = forms.research_request(form)
        job = await job_service(request).submit(body.question, body.options)
    except (forms.FormError, InvalidOptions) as exc:
        return _ask_page(request, form, error=str(exc), status_code=422)
    except Overloaded as exc:
        return _ask_page(
            request, form, error=str(exc), retry_after_s=exc.retry_after_s, status_code=503
        )
    return _back_to_job(request, job.id)


def _job_context(job: Job) -> dict[str, Any]:
    report = job.report if job.status is JobStatus.DONE else None
    return {
        "job": job,
        "labels": STATUS_LABELS,
        "report_html": render_report(report) if report else None,
        "step_types": ("research", "analysis", "processing"),
    }


@router.get("/jobs/{job_id}", name="job_page")
async def job_page(job_id: str, request: Request) -> Response:
    """One job: its status, plan, sources, report and podcast, followed live."""
    job = await asyncio.to_thread(find_job, request, job_id)
    view = await asyncio.to_thread(podcast_view, request, job)
    return page(request, "job.html", {**_job_context(job), "podcast": view})


@router.get("/jobs/{job_id}/plan-review", name="plan_review_form")
async def plan_review_form(job_id: str, request: Request) -> Response:
    """The plan review form alone (for the live page); empty when no review is pending."""
    job = await asyncio.to_thread(find_job, request, job_id)
    if job.status is not JobStatus.AWAITING_PLAN_REVIEW or job.plan is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return page(request, "plan_review.html", _job_context(job))


@router.post("/jobs/{job_id}/plan", name="submit_plan_review")
async def review_plan(job_id: str, request: Request) -> Response:
    """Accept the plan, or run the edited steps."""
    job = await asyncio.to_thread(find_job, request, job_id)
    try:
        review = forms.plan_review(await request.form())
        await job_service(request).review(job_id, review.verdict())
    except forms.FormError as exc:
        context = {**_job_context(job), "review_error": str(exc)}
        return page(request, "job.html", context, status_code=422)
    return _back_to_job(request, job_id)


@router.post("/jobs/{job_id}/cancel", name="cancel_job")
async def cancel_job(job_id: str, request: Request) -> Response:
    """Cancel a job that has not finished."""
    await job_service(request).cancel(job_id)
    return _back_to_job(request, job_id)


@router.post("/jobs/{job_id}/retry", name="retry_job")
async def retry_job(job_id: str, request: Request) -> Response:
    """Queue a failed or cancelled job again."""
    await job_service(request).retry(job_id)
    return _back_to_job(request, job_id)


@router.post("/jobs/{job_id}/delete", name="delete_job")
async def delete_job(job_id: str, request: Request) -> Response:
    """Delete a job, then go back to where the form said (the history by default)."""
    await job_service(request).delete(job_id)
    target = str((await request.form()).get("next", ""))
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = str(request.url_for("history"))
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


def _back_to_job(request: Request, job_id: str) -> Response:
    return RedirectResponse(request.url_for("job_page", job_id=job_id), status.HTTP_303_SEE_OTHER)


@router.get("/history", name="history")
async def history(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    status_: Annotated[str, Query(alias="status")] = "",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """Every job, newest first, filtered by text and status."""
    wanted = JobStatus(status_) if status_ in set(JobStatus) else None
    found = await asyncio.to_thread(
        job_store(request).list, status=wanted, text=q or None, offset=offset, limit=HISTORY_PAGE
    )
    return page(
        request,
        "history.html",
        {
            "page": found,
            "q": q,
            "status": wanted.value if wanted else "",
            "labels": STATUS_LABELS,
            "previous": max(offset - HISTORY_PAGE, 0) if offset > 0 else None,
            "next": offset + HISTORY_PAGE if offset + HISTORY_PAGE < found.total else None,
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        },
    )
