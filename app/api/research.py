"""Research job routes: submit, list, follow live, review the plan, read the report, cancel.

Each route hands its request to the job service (app/jobs/service.py), which the pages and the
CLI use too; its JobNotFound and JobConflict errors are the routes' 404 and 409.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.lookup import find_job, job_service, job_store
from app.api.schemas import (
    MAX_OFFSET,
    JobList,
    JobView,
    PlanReview,
    Problem,
    ReportView,
    ResearchRequest,
)
from app.jobs.models import JobStatus

router = APIRouter(prefix="/api/research", tags=["research"])
EVENT_POLL_S = 0.25
_NOT_FOUND = {404: {"model": Problem, "description": "No job with this id."}}
_CONFLICT = {409: {"model": Problem, "description": "The job is not in a state that allows this."}}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobView,
    responses={503: {"model": Problem, "description": "Overloaded; retry after Retry-After."}},
)
async def submit_research(body: ResearchRequest, request: Request, response: Response) -> JobView:
    """Queue a research question; follow it through the returned links."""
    job = await job_service(request).submit(body.question, body.options)
    response.headers["Location"] = f"/api/research/{job.id}"
    return JobView.of(job)


@router.get("", response_model=JobList)
async def list_research_jobs(
    request: Request,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the question.")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobList:
    """Jobs, newest first, filtered by status and text."""
    page = await asyncio.to_thread(
        job_store(request).list, status=status_, text=q, offset=offset, limit=limit
    )
    return JobList(
        jobs=[JobView.of(j) for j in page.jobs],
        total=page.total,
        offset=page.offset,
        limit=page.limit,
    )


@router.get("/{job_id}", response_model=JobView, responses=_NOT_FOUND)
async def get_research_job(job_id: str, request: Request) -> JobView:
    """One job: status, plan, sources, timestamps."""
    return JobView.of(find_job(request, job_id))


@router.get(
    "/{job_id}/report",
    responses={
        200: {
            "content": {
                "text/markdown": {},
                "application/json": {"schema": ReportView.model_json_schema()},
            },
            "description": "The Markdown report (JSON with metadata for Accept: application/json).",
        },
        **_NOT_FOUND,
        **_CONFLICT,
    },
)
async def get_report(
    job_id: str, request: Request, accept: Annotated[str, Header()] = "text/markdown"
) -> Response:
    """The finished report as Markdown, or as JSON with metadata."""
    job = find_job(request, job_id)
    if job.status is not JobStatus.DONE or job.report is None:
        cause = f": {job.error}" if job.error else ""
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"The report is not ready; the job is {job.status}{cause}.",
        )
    if "application/json" in accept:
        view = ReportView(
            id=job.id,
            question=job.question,
            status=job.status,
            report=job.report,
            sources=job.sources,
            finished_at=job.finished_at,
        )
        return Response(view.model_dump_json(), media_type="application/json")
    return PlainTextResponse(job.report, media_type="text/markdown; charset=utf-8")


@router.get("/{job_id}/events", responses=_NOT_FOUND)
async def stream_job_events(
    job_id: str,
    request: Request,
    last_event_id: Annotated[
        int, Header(alias="Last-Event-ID", ge=0, description="Replay after this event (0: all).")
    ] = 0,
) -> EventSourceResponse:
    """Server-Sent Events of the job, replayed after Last-Event-ID, ending when the job ends."""
    find_job(request, job_id)
    return EventSourceResponse(_follow(request, job_id, last_event_id), ping=15)


async def _follow(request: Request, job_id: str, after: int) -> AsyncIterator[ServerSentEvent]:
    store = job_store(request)
    while True:
        for event in await asyncio.to_thread(store.events, job_id, after):
            after = event.seq
            yield ServerSentEvent(id=str(event.seq), event=event.type, data=json.dumps(event.data))
            if event.type == "done":
                return
        job = await asyncio.to_thread(store.get, job_id)
        if job is None or await request.is_disconnected():
            return
        if job.status.is_final and not await asyncio.to_thread(store.events, job_id, after):
            return
        await asyncio.sleep(EVENT_POLL_S)


@router.post("/{job_id}/plan", response_model=JobView, responses={**_NOT_FOUND, **_CONFLICT})
async def review_plan(job_id: str, body: PlanReview, request: Request) -> JobView:
    """Accept the proposed plan, or replace its steps, while the job awaits review.

    The job resumes from its checkpoint here, whichever process ran it up to the review.
    """
    jobs = job_service(request)
    jobs.get(job_id)  # an unknown job is a 404 whatever the body says
    if body.action == "edit" and not body.steps:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="steps: required when action is 'edit'."
        )
    return JobView.of(await jobs.review(job_id, body.verdict()))


@router.post("/{job_id}/cancel", response_model=JobView, responses={**_NOT_FOUND, **_CONFLICT})
async def cancel_research_job(job_id: str, request: Request) -> JobView:
    """Cancel a job that has not finished."""
    return JobView.of(await job_service(request).cancel(job_id))


@router.post("/{job_id}/retry", response_model=JobView, responses={**_NOT_FOUND, **_CONFLICT})
async def retry_research_job(job_id: str, request: Request) -> JobView:
    """Queue a failed or cancelled job again; it resumes from its last completed step."""
    return JobView.of(await job_service(request).retry(job_id))


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_research_job(job_id: str, request: Request) -> Response:
    """Delete a job, its events and artifacts (cancelling it first if it runs)."""
    await job_service(request).delete(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
