"""Errors of a job's life; the API answers them with 404 and 409, the pages and CLI say the same.

    FawnError (serving/errors.py)
    ├── JobNotFound       no job with this id: never made, or deleted
    ├── JobConflict       the job's status does not allow this (a review it is not awaiting,
    │                     a retry of a job that did not fail, a report not written yet)
    ├── InvalidOptions    the options name what this deployment lacks (an MCP server)
    └── StoreUnavailable  the job database cannot be reached now (a running job waits for it)

All are FawnErrors, so a CLI command shows their message as a clean error.
"""

from __future__ import annotations

from serving.errors import FawnError


class JobNotFound(FawnError):
    """No job has this id (it was never made, or it was deleted)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No research job {job_id!r}: check the id (the job list shows them).")
        self.job_id = job_id


class JobConflict(FawnError):
    """The job is in a status that does not allow what was asked; the message says which."""


class InvalidOptions(FawnError):
    """A job's options name something this deployment does not have; HTTP 422."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class StoreUnavailable(FawnError):
    """The job database (or the checkpoints beside it) cannot be reached right now.

    A transient outage: a running job waits for the database and resumes from its checkpoint.
    """
