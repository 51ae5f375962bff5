"""Plan review verdicts, kept in the job's event log so that any process can answer a review.

A job that reaches its plan review ends its attempt there: its run stays in the checkpoint, and
the job is stored as `awaiting_plan_review`. `record_review` (any process, any time later) logs
the verdict as a `plan_review` event and marks the job `researching`; the runner that runs the
job next finds the verdict with `pending_review` and resumes the run with it.
"""

from __future__ import annotations

from agents.state import PlanReview
from app.jobs.errors import JobConflict, JobNotFound
from app.jobs.models import Job, JobStatus
from app.jobs.store import JobStore

REVIEW_EVENT = "plan_review"


def record_review(store: JobStore, job_id: str, review: PlanReview) -> Job:
    """Log the verdict on the plan the job awaits review of and mark it researching.

    Raises JobNotFound for an unknown (or deleted) job, JobConflict for one not awaiting review.
    """
    job = store.get(job_id)
    if job is None:
        raise JobNotFound(job_id)
    if job.status is not JobStatus.AWAITING_PLAN_REVIEW:
        raise JobConflict(f"Job {job_id} is {job.status}, not awaiting plan review.")
    # The verdict first: a crash between the two writes leaves the job awaiting a review it
    # already has (a second review replaces it), never researching without one.
    store.append_event(job_id, REVIEW_EVENT, review.model_dump(mode="json"))
    job = store.update(job_id, status=JobStatus.RESEARCHING)
    store.append_event(job_id, "status", {"status": JobStatus.RESEARCHING})
    return job


def pending_review(store: JobStore, job_id: str) -> PlanReview | None:
    """The verdict given since the job last stopped for review; None if it is still awaited."""
    for event in reversed(store.events(job_id)):
        if event.type == REVIEW_EVENT:
            return PlanReview.model_validate(event.data)
        if event.type == "status" and event.data.get("status") == JobStatus.AWAITING_PLAN_REVIEW:
            return None
    return None
