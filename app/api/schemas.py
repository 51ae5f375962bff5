"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents import state
from app.jobs.models import Job, JobOptions, JobStatus

# Past any real list, and inside the 64-bit integers SQLite and Postgres take for an OFFSET.
MAX_OFFSET = 1_000_000_000


class ResearchRequest(BaseModel):
    """A research question with its options."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1,
        max_length=4000,
        pattern=r"\S",
        description="The research question (not only whitespace).",
    )
    options: JobOptions = Field(default_factory=JobOptions)


class JobLinks(BaseModel):
    """Where to follow a job."""

    self: str
    events: str
    report: str


class JobView(BaseModel):
    """A job as the API shows it (without its report body)."""

    id: str
    question: str
    status: JobStatus
    options: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    plan: dict[str, Any] | None
    sources: list[dict[str, Any]]
    error: str | None
    attempts: int
    links: JobLinks

    @classmethod
    def of(cls, job: Job) -> JobView:
        """The view of a stored job."""
        base = f"/api/research/{job.id}"
        return cls(
            **job.model_dump(exclude={"report", "review"}),
            links=JobLinks(self=base, events=f"{base}/events", report=f"{base}/report"),
        )


class JobList(BaseModel):
    """One page of jobs."""

    jobs: list[JobView]
    total: int
    offset: int
    limit: int


class PlanStep(BaseModel):
    """A plan step as a reviewer edits it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=2000)
    step_type: Literal["research", "analysis", "processing"] = "research"
    need_search: bool = True


class PlanReview(BaseModel):
    """Accept the proposed plan, or replace its steps."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "edit"]
    steps: list[PlanStep] | None = Field(default=None, min_length=1, max_length=10)

    def verdict(self) -> state.PlanReview:
        """The answer the research run resumes with (steps are ignored when accepting)."""
        if self.action == "accept" or not self.steps:
            return state.PlanReview()
        steps = [state.Step.model_validate(step.model_dump()) for step in self.steps]
        return state.PlanReview(action="edit", steps=steps)


class ReportView(BaseModel):
    """A finished report with its metadata (for `Accept: application/json`)."""

    id: str
    question: str
    status: JobStatus
    report: str
    sources: list[dict[str, Any]]
    finished_at: datetime | None


class Problem(BaseModel):
    """An error answer: what went wrong and, for validation errors, which fields."""

    detail: str
    errors: list[dict[str, Any]] | None = None
