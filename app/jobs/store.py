"""The job store: jobs, their event logs and artifacts in one SQLite file (WAL).

`JobStore` is the interface the runner and the API use, so that a Postgres store can follow;
`SqliteJobStore` is the default. Methods are synchronous and short; async callers run them in a
thread (`asyncio.to_thread`). One connection guarded by a lock keeps writes ordered.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from app.jobs.models import Artifact, Job, JobEvent, JobPage, JobStatus

_SCHEMA = """
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
"""
_JSON_FIELDS = ("options", "plan", "sources")
_UPDATABLE = frozenset({"status", "plan", "sources", "report", "error", "attempts", "started_at"})


class JobStore(Protocol):
    """Everything the runner and the API need from a job store."""

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
    def delete(self, job_id: str) -> bool: ...
    def unfinished(self) -> list[Job]: ...
    def append_event(self, job_id: str, type: str, data: dict[str, Any]) -> JobEvent: ...
    def events(self, job_id: str, after_seq: int = 0) -> list[JobEvent]: ...
    def put_artifact(self, job_id: str, name: str, media_type: str, data: bytes) -> Artifact: ...
    def get_artifact(self, job_id: str, name: str) -> tuple[Artifact, bytes] | None: ...
    def artifacts(self, job_id: str) -> list[Artifact]: ...


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SqliteJobStore:
    """Jobs in one SQLite file in WAL mode, safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def create(self, question: str, options: dict[str, Any]) -> Job:
        """Queue a new job."""
        now = _now()
        job_id = uuid.uuid4().hex
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, question, options, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, question, json.dumps(options), JobStatus.QUEUED.value, now, now),
            )
        return self._require(job_id)

    def get(self, job_id: str) -> Job | None:
        """The job, or None for an unknown id."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list(
        self,
        *,
        status: JobStatus | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> JobPage:
        """Newest first, optionally filtered by status and by text in the question."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if text:
            where.append("question LIKE ? ESCAPE '\\'")
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs {clause}", params).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return JobPage(jobs=[_job(r) for r in rows], total=total, offset=offset, limit=limit)

    def update(self, job_id: str, **fields: Any) -> Job:
        """Change some of a job's fields; a final status also stamps finished_at."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"Job fields cannot be updated: {sorted(unknown)}")
        values = {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in fields.items()}
        status = fields.get("status")
        if status is not None:
            values["status"] = JobStatus(status).value
            values["finished_at"] = _now() if JobStatus(status).is_final else None
        if isinstance(values.get("started_at"), datetime):
            values["started_at"] = values["started_at"].isoformat()
        values["updated_at"] = _now()
        assignments = ", ".join(f"{key} = ?" for key in values)
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ?", [*values.values(), job_id]
            )
            if cursor.rowcount == 0:
                raise KeyError(job_id)
        return self._require(job_id)

    def delete(self, job_id: str) -> bool:
        """Delete a job with its events and artifacts; False if it did not exist."""
        with self._transaction() as db:
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def unfinished(self) -> list[Job]:
        """Jobs that are not final, oldest first: what a restarted runner picks up."""
        final = [s.value for s in JobStatus if s.is_final]
        marks = ", ".join("?" for _ in final)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE status NOT IN ({marks}) ORDER BY created_at", final
            ).fetchall()
        return [_job(r) for r in rows]

    def append_event(self, job_id: str, type: str, data: dict[str, Any]) -> JobEvent:
        """Append to the job's event log; seq numbers start at 1 and never repeat."""
        now = _now()
        with self._transaction() as db:
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?", (job_id,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO events (job_id, seq, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
                (job_id, seq, type, json.dumps(data), now),
            )
        return JobEvent(job_id=job_id, seq=seq, type=type, data=data, created_at=now)

    def events(self, job_id: str, after_seq: int = 0) -> list[JobEvent]:
        """The job's events after `after_seq` (an SSE client's Last-Event-ID), in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq",
                (job_id, after_seq),
            ).fetchall()
        return [
            JobEvent(
                job_id=r["job_id"],
                seq=r["seq"],
                type=r["type"],
                data=json.loads(r["data"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def put_artifact(self, job_id: str, name: str, media_type: str, data: bytes) -> Artifact:
        """Store (or replace) a named file produced by the job."""
        now = _now()
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO artifacts (job_id, name, media_type, data, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (job_id, name, media_type, data, now),
            )
        return Artifact(
            job_id=job_id, name=name, media_type=media_type, size=len(data), created_at=now
        )

    def get_artifact(self, job_id: str, name: str) -> tuple[Artifact, bytes] | None:
        """The artifact and its bytes, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM artifacts WHERE job_id = ? AND name = ?", (job_id, name)
            ).fetchone()
        if row is None:
            return None
        return _artifact(row), bytes(row["data"])

    def artifacts(self, job_id: str) -> list[Artifact]:
        """The job's artifacts, without their bytes."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, name, media_type, LENGTH(data) AS size, created_at"
                " FROM artifacts WHERE job_id = ? ORDER BY name",
                (job_id,),
            ).fetchall()
        return [_artifact(r) for r in rows]

    def _require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    for key in _JSON_FIELDS:
        if data[key] is not None:
            data[key] = json.loads(data[key])
    return Job.model_validate(data)


def _artifact(row: sqlite3.Row) -> Artifact:
    size = row["size"] if "size" in row.keys() else len(row["data"])  # noqa: SIM118
    return Artifact(
        job_id=row["job_id"],
        name=row["name"],
        media_type=row["media_type"],
        size=size,
        created_at=row["created_at"],
    )
