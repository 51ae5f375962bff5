"""The Postgres job store (psycopg 3, pooled) and LangGraph's Postgres checkpointer.

Chosen by `FAWN_DATABASE_URL=postgresql://...`, for API processes and workers on several
machines sharing one database. Same contract as the SQLite store (`app.jobs.store.JobStore`);
the shared row and value handling is in `app.jobs.rows`. Methods are synchronous and short,
each one transaction on a connection from the pool.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

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
from serving.errors import ConfigError

logger = logging.getLogger(__name__)
DEFAULT_POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10
# Advisory lock keys, one per schema ("fawn" in ASCII, then a number): any bigint nobody else uses.
JOBS_SCHEMA_LOCK = 0x6661_776E_0001
CHECKPOINTS_SCHEMA_LOCK = 0x6661_776E_0002
# How often a process waiting for another's checkpoint set-up tries the lock again.
LOCK_POLL_S = 0.1

# The schema, one step a version: MIGRATIONS[0] is version 1. Never edit a released step; append
# one (and its SQLite twin in sqlite_store.py). A step is one script, run in the migration's
# transaction.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first release's schema (as SQLite's version 1), with Postgres types.
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        question TEXT NOT NULL,
        options JSONB NOT NULL,
        status TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ,
        plan JSONB,
        sources JSONB NOT NULL DEFAULT '[]',
        report TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
    CREATE TABLE IF NOT EXISTS events (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        data JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE IF NOT EXISTS artifacts (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        data BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (job_id, name)
    );
    """,
    # 2: leases and the review's verdict (as SQLite's version 2). Expiries are the database's
    # clock, not a worker's.
    """
    ALTER TABLE jobs ADD COLUMN IF NOT EXISTS lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN IF NOT EXISTS lease_expires_at TIMESTAMPTZ;
    ALTER TABLE jobs ADD COLUMN IF NOT EXISTS review JSONB;
    CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_owner);
    """,
)
_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL
)
"""
_ARTIFACT_COLUMNS = "job_id, name, media_type, octet_length(data) AS size, created_at"
_LEASE_EXPIRY = "clock_timestamp() + make_interval(secs => %s)"
# A lease another may take: none, expired, or held by one of the owners given (stale ones).
_FREE_LEASE = (
    "(lease_owner IS NULL OR lease_expires_at < clock_timestamp() OR lease_owner = ANY(%s))"
)


class PostgresJobStore:
    """Jobs in a Postgres database, safe to share between threads, processes and machines.

    Opening it applies the pending schema migrations; `migrated` lists the versions this open
    applied (empty when the database was current). Close it to close its connection pool.
    """

    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.where = redacted(url)
        with connect(url) as conn:
            self.migrated = _migrate(conn, self.where)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S},
            # A database restart leaves dead connections in the pool: test each before use.
            check=ConnectionPool.check_connection,
            open=False,
            name="fawn-jobs",
            # How long a call waits for a connection: while the database is down, a job's write
            # fails after this (StoreUnavailable) and the job waits for the database.
            timeout=CONNECT_TIMEOUT_S,
        )
        self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()

    def schema_version(self) -> int:
        """The highest migration applied to this database."""
        with self._connection() as conn:
            return _current_version(conn)

    def create(self, question: str, options: dict[str, Any]) -> Job:
        """Queue a new job."""
        stamp = now()
        with self._connection() as conn:
            row = conn.execute(
                "INSERT INTO jobs (id, question, options, status, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                (uuid.uuid4().hex, question, Jsonb(options), JobStatus.QUEUED.value, stamp, stamp),
            ).fetchone()
        return job_from_row(_found(row))

    def get(self, job_id: str) -> Job | None:
        """The job, or None for an unknown id."""
        with self._connection() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
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
        clause, params = job_filter(status, text, param="%s", like="ILIKE")
        with self._connection() as conn:
            total = _found(
                conn.execute(f"SELECT COUNT(*) AS n FROM jobs {clause}", params).fetchone()
            )["n"]
            rows = conn.execute(
                f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
        return JobPage(
            jobs=[job_from_row(r) for r in rows], total=total, offset=offset, limit=limit
        )

    def update(self, job_id: str, **fields: Any) -> Job:
        """Change some of a job's fields; a final status also stamps finished_at."""
        values = {key: _column(key, value) for key, value in update_values(fields).items()}
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(key), sql.Placeholder()) for key in values
        )
        query = sql.SQL("UPDATE jobs SET {} WHERE id = %s RETURNING *").format(assignments)
        with self._connection() as conn:
            row = conn.execute(query, [*values.values(), job_id]).fetchone()
        if row is None:
            raise KeyError(job_id)
        return job_from_row(row)

    def update_if(self, job_id: str, expected: JobStatus, /, **fields: Any) -> Job | None:
        """`update`, only while the job is in `expected` status; None (nothing changed) otherwise.

        Two processes answering the same review race here: one wins, the other gets None.
        """
        values = {key: _column(key, value) for key, value in update_values(fields).items()}
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(key), sql.Placeholder()) for key in values
        )
        query = sql.SQL("UPDATE jobs SET {} WHERE id = %s AND status = %s RETURNING *").format(
            assignments
        )
        with self._connection() as conn:
            row = conn.execute(
                query, [*values.values(), job_id, JobStatus(expected).value]
            ).fetchone()
        return job_from_row(row) if row else None

    def claim_next(
        self, owner: str, lease_s: float, limit: int, *, stale: Sequence[str] = ()
    ) -> list[Job]:
        """Lease up to `limit` runnable jobs nobody holds, oldest first.

        A lease is free once expired, or at once if its owner is among `stale` (a process known
        to be gone). `FOR UPDATE SKIP LOCKED`: workers claiming at once each lock different
        rows, and none waits for another's pick.
        """
        with self._connection() as conn:
            rows = conn.execute(
                f"UPDATE jobs SET lease_owner = %s, lease_expires_at = {_LEASE_EXPIRY}"
                f" WHERE id IN (SELECT id FROM jobs WHERE status = ANY(%s) AND {_FREE_LEASE}"
                " ORDER BY created_at, id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING *",
                (owner, lease_s, list(CLAIMABLE_STATUSES), list(stale), limit),
            ).fetchall()
        return sorted((job_from_row(r) for r in rows), key=lambda job: (job.created_at, job.id))

    def claim(
        self, job_id: str, owner: str, lease_s: float, *, stale: Sequence[str] = ()
    ) -> Job | None:
        """Lease this job (whatever its status) unless another live owner holds it; None then."""
        with self._connection() as conn:
            row = conn.execute(
                f"UPDATE jobs SET lease_owner = %s, lease_expires_at = {_LEASE_EXPIRY}"
                f" WHERE id = %s AND {_FREE_LEASE} RETURNING *",
                (owner, lease_s, job_id, [*stale, owner]),
            ).fetchone()
        return job_from_row(row) if row else None

    def lease_holders(self) -> set[str]:
        """The owners of unexpired leases."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT lease_owner FROM jobs WHERE lease_owner IS NOT NULL"
                " AND lease_expires_at >= clock_timestamp()"
            ).fetchall()
        return {row["lease_owner"] for row in rows}

    def renew(self, owner: str, job_ids: Sequence[str], lease_s: float) -> dict[str, JobStatus]:
        """Extend `owner`'s leases on these jobs; returns the status of each one still held.

        A job missing from the answer was lost: deleted, or taken over after the lease expired.
        """
        if not job_ids:
            return {}
        with self._connection() as conn:
            rows = conn.execute(
                f"UPDATE jobs SET lease_expires_at = {_LEASE_EXPIRY}"
                " WHERE lease_owner = %s AND id = ANY(%s) RETURNING id, status",
                (lease_s, owner, list(job_ids)),
            ).fetchall()
        return {row["id"]: JobStatus(row["status"]) for row in rows}

    def release(self, job_id: str, owner: str) -> None:
        """Give the job's lease up, if `owner` holds it, so that any worker may claim it now."""
        with self._connection() as conn:
            conn.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL"
                " WHERE id = %s AND lease_owner = %s",
                (job_id, owner),
            )

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[DictRow]]:
        """A pooled connection, in a transaction; a database that does not answer is
        StoreUnavailable (transient: a running job waits for it)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(
                f"The job database {self.where} does not answer ({exc})."
            ) from exc

    def delete(self, job_id: str) -> bool:
        """Delete a job with its events and artifacts; False if it did not exist."""
        with self._connection() as conn:
            return conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,)).rowcount > 0

    def unfinished(self) -> list[Job]:
        """Jobs that are not final, oldest first: what a restarted runner picks up."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE status <> ALL(%s) ORDER BY created_at, id",
                (list(FINAL_STATUSES),),
            ).fetchall()
        return [job_from_row(r) for r in rows]

    def append_event(self, job_id: str, type: str, data: dict[str, Any]) -> JobEvent:
        """Append to the job's event log; seq numbers start at 1 and never repeat.

        Raises KeyError for an unknown job.
        """
        with self._connection() as conn:
            # Locking the job's row orders the appends of every process, so MAX + 1 is unique.
            _require(conn, job_id, "FOR NO KEY UPDATE")
            row = conn.execute(
                "INSERT INTO events (job_id, seq, type, data, created_at)"
                " SELECT %s, COALESCE(MAX(seq), 0) + 1, %s, %s, %s FROM events WHERE job_id = %s"
                " RETURNING *",
                (job_id, type, Jsonb(data), now(), job_id),
            ).fetchone()
        return event_from_row(_found(row))

    def events(self, job_id: str, after_seq: int = 0) -> list[JobEvent]:
        """The job's events after `after_seq` (an SSE client's Last-Event-ID), in order."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE job_id = %s AND seq > %s ORDER BY seq",
                (job_id, after_seq),
            ).fetchall()
        return [event_from_row(r) for r in rows]

    def put_artifact(self, job_id: str, name: str, media_type: str, data: bytes) -> Artifact:
        """Store (or replace) a named file produced by the job; KeyError for an unknown job."""
        with self._connection() as conn:
            # Keeps the job from being deleted in between, so the insert cannot miss it.
            _require(conn, job_id, "FOR KEY SHARE")
            row = conn.execute(
                "INSERT INTO artifacts (job_id, name, media_type, data, created_at)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (job_id, name) DO UPDATE SET media_type = EXCLUDED.media_type,"
                " data = EXCLUDED.data, created_at = EXCLUDED.created_at"
                f" RETURNING {_ARTIFACT_COLUMNS}",
                (job_id, name, media_type, data, now()),
            ).fetchone()
        return artifact_from_row(_found(row))

    def get_artifact(self, job_id: str, name: str) -> tuple[Artifact, bytes] | None:
        """The artifact and its bytes, or None."""
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {_ARTIFACT_COLUMNS}, data FROM artifacts WHERE job_id = %s AND name = %s",
                (job_id, name),
            ).fetchone()
        return (artifact_from_row(row), bytes(row["data"])) if row else None

    def artifacts(self, job_id: str) -> list[Artifact]:
        """The job's artifacts, without their bytes."""
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = %s ORDER BY name",
                (job_id,),
            ).fetchall()
        return [artifact_from_row(r) for r in rows]


class PostgresCheckpointers:
    """LangGraph's Postgres checkpointer, one connection per run: the runner's checkpointer factory.

    The first saver it opens sets LangGraph's tables up (`AsyncPostgresSaver.setup()`); later
    ones skip that. Calling it returns an async context manager, as `sqlite_checkpointer` does.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._ready = False

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncPostgresSaver]:
        """A saver on its own connection, closed when the block ends."""
        from agents.graph import checkpoint_serializer  # the graph's modules, only when used

        try:
            # LangGraph's own settings (autocommit, dict rows, prepare_threshold) for its saver.
            conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                prepare_threshold=0,
                row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT_S,
            )
            async with conn:
                saver = AsyncPostgresSaver(conn, serde=checkpoint_serializer())
                if not self._ready:
                    await _setup_checkpoints(conn, saver)
                    self._ready = True
                yield saver
        except psycopg.OperationalError as exc:
            # The store opened, so the database was there: an outage the run waits out.
            raise StoreUnavailable(
                f"The checkpoint database {redacted(self.url)} does not answer ({exc})."
            ) from exc


def connect(url: str) -> psycopg.Connection[DictRow]:
    """One connection with dict rows; an unreachable database is a ConfigError that says why."""
    try:
        return psycopg.connect(url, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        raise _unreachable(url, exc) from exc


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    info = conninfo_to_dict(url)
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host', '')}{port}/{info.get('dbname', '')}"


def _migrate(conn: psycopg.Connection[DictRow], where: str) -> list[int]:
    """Apply the pending migrations in one transaction; returns the versions applied."""
    with conn.transaction():
        # Held to the end of the transaction: a second process opening the same fresh database
        # waits here, then finds the migrations applied.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (JOBS_SCHEMA_LOCK,))
        conn.execute(_VERSION_TABLE)
        steps = pending_migrations(MIGRATIONS, _current_version(conn), where)
        for version, script in steps:
            conn.execute(script)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                (version, now()),
            )
    applied = [version for version, _ in steps]
    if applied:
        logger.info("job store %s migrated to schema version %d", where, applied[-1])
    return applied


async def _setup_checkpoints(
    conn: psycopg.AsyncConnection[DictRow], saver: AsyncPostgresSaver
) -> None:
    """Run the saver's `setup()` in one process at a time.

    The lock is a session lock, tried and polled: `setup()` creates indexes CONCURRENTLY (no
    transaction around it), and that waits for every open snapshot, a `pg_advisory_lock` call
    blocked in another process included, which would deadlock.
    """
    while True:
        cursor = await conn.execute(
            "SELECT pg_try_advisory_lock(%s) AS locked", (CHECKPOINTS_SCHEMA_LOCK,)
        )
        if _found(await cursor.fetchone())["locked"]:
            break
        await asyncio.sleep(LOCK_POLL_S)
    try:
        await saver.setup()
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (CHECKPOINTS_SCHEMA_LOCK,))


def _current_version(conn: psycopg.Connection[DictRow]) -> int:
    row = conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations").fetchone()
    return int(_found(row)["v"])


def _require(conn: psycopg.Connection[DictRow], job_id: str, lock: str) -> None:
    # A clear KeyError rather than the foreign key's violation, as on SQLite.
    if conn.execute(f"SELECT 1 FROM jobs WHERE id = %s {lock}", (job_id,)).fetchone() is None:
        raise KeyError(job_id)


def _found(row: DictRow | None) -> DictRow:
    # Statements that always return a row (RETURNING, aggregates); tells the type checker so.
    assert row is not None
    return row


def _column(key: str, value: Any) -> Any:
    # None stays SQL NULL; Jsonb(None) would store a JSON null.
    return Jsonb(value) if key in JSON_FIELDS and value is not None else value


def _unreachable(url: str, exc: psycopg.OperationalError) -> ConfigError:
    return ConfigError(
        f"Cannot connect to the job database {redacted(url)} ({exc}). Check FAWN_DATABASE_URL "
        "and that Postgres is running, or unset it to keep jobs in SQLite in the data dir."
    )
