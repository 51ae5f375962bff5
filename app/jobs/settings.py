"""How jobs run: how many at once per process, their leases, how long an outage is waited out.

Read once with the rest of the configuration (`Settings.jobs`, `[jobs]` in the config file,
`FAWN_JOBS_LEASE_S=...` in the environment).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

DEFAULT_CONCURRENT_JOBS = 4


class JobSettings(BaseModel):
    """Running jobs in one process, and sharing them with other processes through the store."""

    concurrency: int = Field(
        default=DEFAULT_CONCURRENT_JOBS, gt=0, description="Jobs a worker runs at once."
    )
    lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A claimed job is the worker's for this long unless renewed; a worker that "
        "died gives its jobs up to another after it.",
    )
    heartbeat_s: float = Field(
        default=1.0,
        gt=0,
        description="How often a worker renews its leases and looks for cancelled jobs (a cancel "
        "reaches a job within about this).",
    )
    poll_s: float = Field(
        default=1.0, gt=0, description="How often an idle worker looks for queued jobs."
    )
    outage_limit_s: float = Field(
        default=600.0,
        ge=0,
        description="How long a job waits for an engine or database that does not answer before "
        "it fails (retryable).",
    )
    outage_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between two tries while one is down."
    )

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> JobSettings:
        if self.heartbeat_s * 3 > self.lease_s:
            raise ValueError(
                f"jobs.heartbeat_s ({self.heartbeat_s}) must be at most a third of jobs.lease_s "
                f"({self.lease_s}), or a busy worker loses its jobs between two renewals."
            )
        return self
