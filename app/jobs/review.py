"""Plan review verdicts, kept with the job so that any process can answer a review.

A job that reaches its plan review ends its attempt there: its run stays in the checkpoint, and
the job is stored as `awaiting_plan_review`. `record_review` (any process, any time later)
stores the verdict with the job and marks it `researching` in one conditional write, so of two
reviews sent at once exactly one wins; the runner that runs the job next finds the verdict with
`pending_review` and resumes the run with it. The verdict is also logged as a `plan_review`
event, for the timeline.
"""

from __future__ import annotations

from agents.state import PlanReview
from app.jobs.errors import JobConflict, JobNotFound
from app.jobs.models import Job, JobStatus
from app.jobs.store import JobStore

REVIEW_EVENT = "plan_review"


def record_review(store: JobStore, job_id: str, review: PlanReview) -> Job:
    """Store the verdict on the plan the job awaits review of, and mark it researching.

    Raises JobNotFound for an unknown (or deleted) job, JobConflict for one not awaiting review
    (a second review of the same plan included).
    """
    verdict = review.model_dump(mode="json")
    job = store.update_if(
        job_id, JobStatus.AWAITING_PLAN_REVIEW, status=JobStatus.RESEARCHING, review=verdict
    )
    if job is None:
        current = store.get(job_id)
        if current is None:
            raise JobNotFound(job_id)
        raise JobConflict(f"Job {job_id} is {current.status}, not awaiting plan review.")
    store.append_event(job_id, REVIEW_EVENT, verdict)
    store.append_event(job_id, "status", {"status": JobStatus.RESEARCHING})
    return job


def pending_review(job: Job) -> PlanReview | None:
    """The verdict given since the job last stopped for review; None if it is still awaited."""
    return None if job.review is None else PlanReview.model_validate(job.review)
