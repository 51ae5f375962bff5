"""What the SQLite and the Postgres job stores share, so that they differ only in their SQL.

Rows arrive as mappings (`sqlite3.Row`, psycopg's dict rows). SQLite hands JSON columns over as
text and timestamps as ISO strings; Postgres as decoded JSON and datetimes. The converters here
take either, and the models validate both timestamp forms.

Schema migrations are numbered by position (a backend's `MIGRATIONS[0]` is version 1); each
backend records the versions it applied in a `schema_migrations` table and applies the pending
ones in order, under its own lock, in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from app.jobs.models import Artifact, Job, JobEvent, JobStatus
from serving.errors import ConfigError

JSON_FIELDS = ("options", "plan", "sources", "review")
UPDATABLE = frozenset(
    {"status", "plan", "sources", "report", "error", "attempts", "started_at", "review"}
)
FINAL_STATUSES = tuple(s.value for s in JobStatus if s.is_final)
# What a worker may claim and run: not final, and not waiting for a person's plan review.
CLAIMABLE_STATUSES = tuple(
    s.value for s in JobStatus if not s.is_final and s is not JobStatus.AWAITING_PLAN_REVIEW
)


def now() -> datetime:
    """The current time, in UTC, as every stored timestamp is."""
    return datetime.now(UTC)


def job_from_row(row: Mapping[str, Any]) -> Job:
    """A job from a `jobs` row of either backend."""
    data = dict(row)
    for key in JSON_FIELDS:
        data[key] = _decoded(data[key])
    return Job.model_validate(data)


def event_from_row(row: Mapping[str, Any]) -> JobEvent:
    """An event from an `events` row of either backend."""
    return JobEvent(
        job_id=row["job_id"],
        seq=row["seq"],
        type=row["type"],
        data=_decoded(row["data"]),
        created_at=row["created_at"],
    )


def artifact_from_row(row: Mapping[str, Any]) -> Artifact:
    """An artifact's description from an `artifacts` row selected with its `size`."""
    return Artifact(
        job_id=row["job_id"],
        name=row["name"],
        media_type=row["media_type"],
        size=row["size"],
        created_at=row["created_at"],
    )


def update_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The columns `JobStore.update(**fields)` sets, as Python values (each store encodes JSON).

    Refuses fields that are not updatable; a status is normalised, and a final one stamps
    `finished_at` (any other clears it, so a retried job is unfinished again).
    """
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"Job fields cannot be updated: {sorted(unknown)}")
    values = dict(fields)
    status = fields.get("status")
    if status is not None:
        values["status"] = JobStatus(status).value
        values["finished_at"] = now() if JobStatus(status).is_final else None
    values["updated_at"] = now()
    return values


def job_filter(
    status: JobStatus | None, text: str | None, *, param: str, like: str = "LIKE"
) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") and its parameters for `JobStore.list`'s filters.

    `param` is the backend's placeholder; `like` its case-insensitive LIKE (SQLite's LIKE is,
    Postgres needs ILIKE). The text is matched literally: `%` and `_` in it are escaped.
    """
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append(f"status = {param}")
        params.append(status.value)
    if text:
        where.append(f"question {like} {param} ESCAPE '\\'")
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    return (f"WHERE {' AND '.join(where)}" if where else ""), params


def pending_migrations(steps: Sequence[str], current: int, where: str) -> list[tuple[int, str]]:
    """The (version, SQL) steps after `current`, in order; refuses a schema newer than the code.

    `where` names the database in the error (a path or a URL without its password).
    """
    if current > len(steps):
        raise ConfigError(
            f"The job store {where} has schema version {current}, newer than this Fawn knows "
            f"({len(steps)}): upgrade Fawn, or point it at another data dir or database."
        )
    return [(version, steps[version - 1]) for version in range(current + 1, len(steps) + 1)]


def _decoded(value: Any) -> Any:
    # SQLite stores JSON as text; Postgres (JSONB) returns it decoded already.
    return json.loads(value) if isinstance(value, str | bytes) else value
