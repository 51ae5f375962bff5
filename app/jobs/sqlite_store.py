"""The SQLite job store: jobs, their event logs and artifacts in one file (WAL), the default.

One connection guarded by a lock keeps a process's writes ordered; `BEGIN IMMEDIATE` and a busy
timeout order them with other processes on the same file (`fawn api` and `fawn batch` on one
data dir). Methods are synchronous and short; async callers may run them in a thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from app.jobs.errors import StoreUnavailable
from app.jobs.models import Artifact, Job, JobEvent, JobPage, JobStatus
from app.jobs.rows import (
    CLAIMABLE_STATUSES,
    FINAL_STATUSES,
    JSON_FIELDS,
    artifact_from_row,
    event_from_row,
    job_filter,
    job_from_row,
    now,
    pending_migrations,
    update_values,
)

logger = logging.getLogger(__name__)
# How long a write waits for another process's (a migration included) before giving up.
BUSY_TIMEOUT_MS = 5000
WAL_RETRY_S = 0.05

# The schema, one step a version: MIGRATIONS[0] is version 1. Never edit a released step; append
# one (and its Postgres twin in postgres_store.py). A step is a script of `;`-ended statements.
MIGRATIONS: tuple[str, ...] = (
    # 1: the schema of the first release, which had no version table. IF NOT EXISTS lets a file
    # from that release take it as its version 1 without losing a job.
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        question TEXT NOT NULL,
        options TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        plan TEXT,
        sources TEXT NOT NULL DEFAULT '[]',
        report TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
    CREATE TABLE IF NOT EXISTS events (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE IF NOT EXISTS artifacts (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        data BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (job_id, name)
    );
    """,
    # 2: leases. A worker claims a job by writing its name and an expiry it keeps renewing; a
    # job whose lease expired (its worker died) can be claimed by another. And the plan review's
    # verdict, written with the status change it causes so that two reviews cannot both win.
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT;
    ALTER TABLE jobs ADD COLUMN review TEXT;
    CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_owner);
    """,
)
_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
)
"""


class SqliteJobStore:
    """Jobs in one SQLite file in WAL mode, safe to share between threads and processes.

    Opening it applies the pending schema migrations; `migrated` lists the versions this open
    applied (empty when the file was current).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.where = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # Before anything else, so that opening while another process migrates waits for it.
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _use_wal(self._db)
        self._db.execute("PRAGMA foreign_keys=ON")
        self.migrated = self._migrate()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def schema_version(self) -> int:
        """The highest migration applied to this file."""
        with self._lock:
            return _current_version(self._db)

    def create(self, question: str, options: dict[str, Any]) -> Job:
        """Queue a new job."""
        stamp = now().isoformat()
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO jobs (id, question, options, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    uuid.uuid4().hex,
                    question,
                    json.dumps(options),
                    JobStatus.QUEUED.value,
                    stamp,
                    stamp,
                ),
            ).fetchone()
        return job_from_row(row)

    def get(self, job_id: str) -> Job | None:
        """The job, or None for an unknown id."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return job_from_row(row) if row else None

    def list(
        self,
        *,
        status: JobStatus | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> JobPage:
        """Newest first, optionally filtered by status and by text in the question."""
        clause, params = job_filter(status, text, param="?")
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs {clause}", params).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return JobPage(
            jobs=[job_from_row(r) for r in rows], total=total, offset=offset, limit=limit
        )

    def update(self, job_id: str, **fields: Any) -> Job:
        """Change some of a job's fields; a final status also stamps finished_at."""
        values = {key: _column(key, value) for key, value in update_values(fields).items()}
        assignments = ", ".join(f"{key} = ?" for key in values)
        with self._transaction() as db:
            row = db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? RETURNING *",
                [*values.values(), job_id],
            ).fetchone()
        if row is None:
            raise KeyError(job_id)
        return job_from_row(row)

    def update_if(self, job_id: str, expected: JobStatus, /, **fields: Any) -> Job | None:
        """`update`, only while the job is in `expected` status; None (nothing changed) otherwise.

        Two processes answering the same review race here: one wins, the other gets None.
        """
        values = {key: _column(key, value) for key, value in update_values(fields).items()}
        assignments = ", ".join(f"{key} = ?" for key in values)
        with self._transaction() as db:
            row = db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND status = ? RETURNING *",
                [*values.values(), job_id, JobStatus(expected).value],
            ).fetchone()
        return job_from_row(row) if row else None

    def claim_next(
        self, owner: str, lease_s: float, limit: int, *, stale: Sequence[str] = ()
    ) -> list[Job]:
        """Lease up to `limit` runnable jobs nobody holds, oldest first.

        A lease is free once expired, or at once if its owner is among `stale` (a process known
        to be gone). The write lock (BEGIN IMMEDIATE) makes the pick and the lease one step for
        every process on the file, so a job goes to one claimant only.
        """
        stamp = now()
        marks = ", ".join("?" for _ in CLAIMABLE_STATUSES)
        free, free_params = _free_lease(stamp, stale)
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id IN ("
                f" SELECT id FROM jobs WHERE status IN ({marks}) AND {free}"
                " ORDER BY created_at, id LIMIT ?) RETURNING *",
                [owner, _expiry(stamp, lease_s), *CLAIMABLE_STATUSES, *free_params, limit],
            ).fetchall()
        return sorted((job_from_row(r) for r in rows), key=lambda job: (job.created_at, job.id))

    def claim(
        self, job_id: str, owner: str, lease_s: float, *, stale: Sequence[str] = ()
    ) -> Job | None:
        """Lease this job (whatever its status) unless another live owner holds it; None then."""
        stamp = now()
        free, free_params = _free_lease(stamp, [*stale, owner])
        with self._transaction() as db:
            row = db.execute(
                f"UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id = ? AND {free}"
                " RETURNING *",
                [owner, _expiry(stamp, lease_s), job_id, *free_params],
            ).fetchone()
        return job_from_row(row) if row else None

    def lease_holders(self) -> set[str]:
        """The owners of unexpired leases."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT lease_owner FROM jobs WHERE lease_owner IS NOT NULL"
                " AND lease_expires_at >= ?",
                (_expiry(now(), 0),),
            ).fetchall()
        return {row[0] for row in rows}

    def renew(self, owner: str, job_ids: Sequence[str], lease_s: float) -> dict[str, JobStatus]:
        """Extend `owner`'s leases on these jobs; returns the status of each one still held.

        A job missing from the answer was lost: deleted, or taken over after the lease expired.
        """
        if not job_ids:
            return {}
        marks = ", ".join("?" for _ in job_ids)
        with self._transaction() as db:
            rows = db.execute(
                f"UPDATE jobs SET lease_expires_at = ? WHERE lease_owner = ? AND id IN ({marks})"
                " RETURNING id, status",
                [_expiry(now(), lease_s), owner, *job_ids],
            ).fetchall()
        return {row["id"]: JobStatus(row["status"]) for row in rows}

    def release(self, job_id: str, owner: str) -> None:
        """Give the job's lease up, if `owner` holds it, so that any worker may claim it now."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND lease_owner = ?",
                (job_id, owner),
            )

    def delete(self, job_id: str) -> bool:
        """Delete a job with its events and artifacts; False if it did not exist."""
        with self._transaction() as db:
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def unfinished(self) -> list[Job]:
        """Jobs that are not final, oldest first: what a restarted runner picks up."""
        marks = ", ".join("?" for _ in FINAL_STATUSES)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE status NOT IN ({marks}) ORDER BY created_at, id",
                FINAL_STATUSES,
            ).fetchall()
        return [job_from_row(r) for r in rows]

    def append_event(self, job_id: str, type: str, data: dict[str, Any]) -> JobEvent:
        """Append to the job's event log; seq numbers start at 1 and never repeat.

        Raises KeyError for an unknown job.
        """
        with self._transaction() as db:
            self._require(db, job_id)
            row = db.execute(
                "INSERT INTO events (job_id, seq, type, data, created_at)"
                " SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM events WHERE job_id = ?"
                " RETURNING *",
                (job_id, type, json.dumps(data), now().isoformat(), job_id),
            ).fetchone()
        return event_from_row(row)

    def events(self, job_id: str, after_seq: int = 0) -> list[JobEvent]:
        """The job's events after `after_seq` (an SSE client's Last-Event-ID), in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq",
                (job_id, after_seq),
            ).fetchall()
        return [event_from_row(r) for r in rows]

    def put_artifact(self, job_id: str, name: str, media_type: str, data: bytes) -> Artifact:
        """Store (or replace) a named file produced by the job; KeyError for an unknown job."""
        with self._transaction() as db:
            self._require(db, job_id)
            row = db.execute(
                "INSERT OR REPLACE INTO artifacts (job_id, name, media_type, data, created_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " RETURNING job_id, name, media_type, LENGTH(data) AS size, created_at",
                (job_id, name, media_type, data, now().isoformat()),
            ).fetchone()
        return artifact_from_row(row)

    def get_artifact(self, job_id: str, name: str) -> tuple[Artifact, bytes] | None:
        """The artifact and its bytes, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT *, LENGTH(data) AS size FROM artifacts WHERE job_id = ? AND name = ?",
                (job_id, name),
            ).fetchone()
        return (artifact_from_row(row), bytes(row["data"])) if row else None

    def artifacts(self, job_id: str) -> list[Artifact]:
        """The job's artifacts, without their bytes."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, name, media_type, LENGTH(data) AS size, created_at"
                " FROM artifacts WHERE job_id = ? ORDER BY name",
                (job_id,),
            ).fetchall()
        return [artifact_from_row(r) for r in rows]

    @staticmethod
    def _require(db: sqlite3.Connection, job_id: str) -> None:
        # A clear KeyError rather than the foreign key's IntegrityError, as on Postgres.
        if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
            raise KeyError(job_id)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so two writers never deadlock upgrading a read.
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # still locked after the busy timeout
                raise StoreUnavailable(f"The job store {self.path} is busy: {exc}.") from exc
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> list[int]:
        """Apply the pending migrations in one transaction; returns the versions applied."""
        with self._transaction() as db:
            db.execute(_VERSION_TABLE)
            steps = pending_migrations(MIGRATIONS, _current_version(db), str(self.path))
            for version, script in steps:
                for statement in _statements(script):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, now().isoformat()),
                )
        applied = [version for version, _ in steps]
        if applied:
            logger.info("job store %s migrated to schema version %d", self.path, applied[-1])
        return applied


def _use_wal(db: sqlite3.Connection) -> None:
    """Put the file in WAL mode (a no-op once it is), retrying while another process opens it.

    Switching a new file needs an exclusive lock, and SQLite does not wait for that one (to
    avoid a deadlock between two readers), so two processes opening a new data dir at once
    would otherwise see "database is locked".
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(WAL_RETRY_S)


def _current_version(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script, one by one.

    `executescript` would commit the migration's transaction first (and so drop the lock that
    keeps two processes from migrating at once), so the script runs a statement at a time.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        raise ValueError(f"Migration script ends in an unfinished statement: {statement!r}")


def _free_lease(stamp: datetime, stale: Sequence[str]) -> tuple[str, list[Any]]:
    """The condition (and its parameters) of a lease another may take: none, expired, or
    held by one of `stale`."""
    clause = "(lease_owner IS NULL OR lease_expires_at < ?"
    if stale:
        clause += f" OR lease_owner IN ({', '.join('?' for _ in stale)})"
    return clause + ")", [_expiry(stamp, 0), *stale]


def _expiry(stamp: datetime, lease_s: float) -> str:
    # Fixed precision, so that expiries compare as text in timestamp order.
    return (stamp + timedelta(seconds=lease_s)).isoformat(timespec="microseconds")


def _column(key: str, value: Any) -> Any:
    # SQLite has no JSON or timestamp types: both are stored as text.
    if key in JSON_FIELDS:
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
