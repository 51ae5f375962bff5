"""Finding a request's job: the app's job store, and a job by id or HTTP 404 (API and pages)."""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from app.jobs.models import Job
from app.jobs.store import JobStore


def job_store(request: Request) -> JobStore:
    """The app's job store (opened in its lifespan)."""
    return request.app.state.store


def find_job(request: Request, job_id: str) -> Job:
    """The job with this id; HTTP 404 if there is none."""
    job = job_store(request).get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No research job {job_id!r}.")
    return job
