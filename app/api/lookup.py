"""Finding a request's jobs and corpus: the app's job service and store, a job by id (404 if
none), and the corpus of its data dir (the API and the pages)."""

from __future__ import annotations

from fastapi import Request

from app.corpus import Corpus
from app.jobs.models import Job
from app.jobs.service import JobService
from app.jobs.store import JobStore


def job_service(request: Request) -> JobService:
    """The app's job service (opened in its lifespan): every change to a job goes through it."""
    return request.app.state.jobs


def job_store(request: Request) -> JobStore:
    """The app's job store, for reading jobs, their events and artifacts."""
    return request.app.state.store


def find_job(request: Request, job_id: str) -> Job:
    """The job with this id; JobNotFound (HTTP 404) if there is none."""
    return job_service(request).get(job_id)


def corpus(request: Request) -> Corpus:
    """The corpus of the app's data dir."""
    return Corpus(request.app.state.settings.data_dir)
