"""What a research job is: its status, options, events and artifacts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from agents.config import ResearchOptions


class JobStatus(StrEnum):
    """Where a job is in its life; the last three are final."""

    QUEUED = "queued"
    PLANNING = "planning"
    AWAITING_PLAN_REVIEW = "awaiting_plan_review"
    RESEARCHING = "researching"
    REPORTING = "reporting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True once the job will not change again (unless retried)."""
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class JobOptions(ResearchOptions):
    """A job's options: the research run's, plus what happens after the report."""

    podcast: bool = Field(default=False, description="Make a two-host audio summary afterwards.")


class Job(BaseModel):
    """A research question, its options, and everything the run produced so far."""

    id: str
    question: str
    options: dict[str, Any] = Field(default_factory=dict)
    status: JobStatus = JobStatus.QUEUED
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    plan: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = Field(default_factory=list)
    report: str | None = None
    error: str | None = None
    attempts: int = 0
    review: dict[str, Any] | None = Field(
        default=None, description="The verdict on the plan awaiting review, until it is used."
    )


class JobEvent(BaseModel):
    """One entry of a job's event log; `seq` orders them and is the SSE event id."""

    job_id: str
    seq: int
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class Artifact(BaseModel):
    """A file a job produced (a figure, the podcast audio), stored with the job."""

    job_id: str
    name: str
    media_type: str
    size: int
    created_at: datetime


class JobPage(BaseModel):
    """One page of a job listing."""

    jobs: list[Job]
    total: int
    offset: int
    limit: int
