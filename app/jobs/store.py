"""The job store: jobs, their event logs and artifacts, in SQLite (the default) or Postgres.

`JobStore` is the interface the runner, the API and the CLI use; `open_job_store(settings)` is
the one place that picks the backend, and `checkpointer_factory(settings)` the matching place for
LangGraph's checkpoints:

    FAWN_DATABASE_URL unset          SqliteJobStore (sqlite_store.py): <data dir>/jobs.sqlite3,
                                     checkpoints in <data dir>/checkpoints.sqlite3
    FAWN_DATABASE_URL=postgresql://  PostgresJobStore (postgres_store.py, psycopg 3, pooled),
                                     checkpoints in the same database (AsyncPostgresSaver)

Both stores version their schema: numbered migrations (`MIGRATIONS` in sqlite_store.py and
postgres_store.py) are applied in order when a store opens, under a lock, so a database from an
older release upgrades in place and two processes opening a fresh one migrate it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from app.jobs.models import Artifact, Job, JobEvent, JobPage, JobStatus
from app.jobs.sqlite_store import SqliteJobStore
from serving.errors import ConfigError

if TYPE_CHECKING:
    from app.jobs.runner import CheckpointerFactory
    from app.settings import Settings

__all__ = ["JobStore", "SqliteJobStore", "checkpointer_factory", "open_job_store"]
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class JobStore(Protocol):
    """Everything the runner and the API need from a job store."""

    where: str  # the database, for messages: a path, or a URL without its password

    def create(self, question: str, options: dict[str, Any]) -> Job: ...
    def get(self, job_id: str) -> Job | None: ...
    def list(
        self,
        *,
        status: JobStatus | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> JobPage: ...
    def update(self, job_id: str, **fields: Any) -> Job: ...
    def update_if(self, job_id: str, expected: JobStatus, /, **fields: Any) -> Job | None: ...
    def delete(self, job_id: str) -> bool: ...
    def unfinished(self) -> list[Job]: ...
    # Leases: a job runs in one process at a time, the one holding its unexpired lease.
    def claim_next(
        self, owner: str, lease_s: float, limit: int, *, stale: Sequence[str] = ()
    ) -> list[Job]: ...
    def claim(
        self, job_id: str, owner: str, lease_s: float, *, stale: Sequence[str] = ()
    ) -> Job | None: ...
    def lease_holders(self) -> set[str]: ...
    def renew(self, owner: str, job_ids: Sequence[str], lease_s: float) -> dict[str, JobStatus]: ...
    def release(self, job_id: str, owner: str) -> None: ...
    def append_event(self, job_id: str, type: str, data: dict[str, Any]) -> JobEvent: ...
    def events(self, job_id: str, after_seq: int = 0) -> list[JobEvent]: ...
    def put_artifact(self, job_id: str, name: str, media_type: str, data: bytes) -> Artifact: ...
    def get_artifact(self, job_id: str, name: str) -> tuple[Artifact, bytes] | None: ...
    def artifacts(self, job_id: str) -> list[Artifact]: ...
    def schema_version(self) -> int: ...
    def close(self) -> None: ...


def open_job_store(settings: Settings) -> JobStore:
    """The job store the settings select, opened and migrated; close it when done."""
    url = _database_url(settings)
    if url is None:
        return SqliteJobStore(settings.job_store_path)
    from app.jobs.postgres_store import PostgresJobStore  # psycopg only where it is used

    return PostgresJobStore(url)


def checkpointer_factory(settings: Settings) -> CheckpointerFactory:
    """What the job runner opens a LangGraph checkpointer with, beside the job store.

    Each call of the factory returns an async context manager that yields a saver for one run.
    """
    url = _database_url(settings)
    if url is None:
        from agents.graph import sqlite_checkpointer  # the graph's modules, only when a run needs

        path = settings.checkpoints_path
        return lambda: sqlite_checkpointer(path)
    from app.jobs.postgres_store import PostgresCheckpointers

    return PostgresCheckpointers(url)


def _database_url(settings: Settings) -> str | None:
    url = settings.database_url
    if not url:
        return None
    if not url.startswith(POSTGRES_SCHEMES):
        scheme = url.split(":", 1)[0] if ":" in url else url[:20]
        raise ConfigError(
            f"FAWN_DATABASE_URL must be a postgresql:// URL, not {scheme!r}: e.g. "
            "postgresql://fawn:secret@db.example:5432/fawn. Unset it to keep jobs in SQLite in "
            "the data dir."
        )
    return url
