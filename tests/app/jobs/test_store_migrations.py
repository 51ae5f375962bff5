"""Versioned job store schemas: an old file upgrades in place, new steps append, one process
migrates a fresh database while another waits, and a schema newer than the code is refused."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from app.jobs import postgres_store, sqlite_store
from app.jobs.models import JobStatus
from app.jobs.store import JobStore, open_job_store
from app.settings import Settings, load_settings
from serving.errors import ConfigError
from tests.app.jobs.starting_line import WAIT_FOR_GO, at_the_line, finish, go

# The schema of the release before versioning, as `git show f799e28~1:app/jobs/store.py` has it.
RELEASE_SCHEMA = """
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
# A step someone might append next: a priority for each job.
PRIORITY_STEP = "ALTER TABLE jobs ADD COLUMN priority INTEGER;"
BROKEN_STEP = "ALTER TABLE jobs ADD COLUMN priority INTEGER;\nSELECT no_such_function();"

# Opens the store the environment selects the moment the parent says "go"; prints what it did.
OPEN_ON_GO = f"""
import json
from app.jobs.store import open_job_store
from app.settings import load_settings
settings = load_settings()
{WAIT_FOR_GO}
store = open_job_store(settings)
print(json.dumps({{"migrated": store.migrated, "version": store.schema_version()}}), flush=True)
store.close()
"""


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings selecting a fresh database of either backend."""
    if request.param == "postgres":
        return load_settings(database_url=request.getfixturevalue("postgres_database"))
    return load_settings(data_dir=tmp_path)


@pytest.fixture
def backend(settings: Settings) -> ModuleType:
    """The backend module the settings select (its MIGRATIONS are patched in some tests)."""
    return postgres_store if settings.database_url else sqlite_store


def reopen(settings: Settings) -> JobStore:
    store = open_job_store(settings)
    store.close()
    return store


def test_a_file_from_the_release_before_versions_upgrades_without_losing_a_job(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(RELEASE_SCHEMA)
        db.execute(
            "INSERT INTO jobs (id, question, options, status, created_at, updated_at, plan,"
            " sources, attempts) VALUES ('j1', 'Who wrote Dune?', '{\"provider\": \"local\"}',"
            " 'researching', '2026-11-30T10:00:00+00:00', '2026-11-30T10:05:00+00:00',"
            ' \'{"title": "Dune"}\', \'[{"id": 1}]\', 1)'
        )
        db.execute(
            "INSERT INTO events VALUES ('j1', 1, 'plan', '{\"title\": \"Dune\"}',"
            " '2026-11-30T10:01:00+00:00')"
        )
        db.execute(
            "INSERT INTO artifacts VALUES ('j1', 'figure-1.png', 'image/png', x'89504e47',"
            " '2026-11-30T10:02:00+00:00')"
        )
    db.close()

    store = open_job_store(load_settings(data_dir=tmp_path))
    try:
        assert store.migrated == list(range(1, len(sqlite_store.MIGRATIONS) + 1))
        assert store.schema_version() == len(sqlite_store.MIGRATIONS)
        job = store.get("j1")
        assert job is not None and job.question == "Who wrote Dune?"
        assert job.status is JobStatus.RESEARCHING and job.attempts == 1
        assert job.options == {"provider": "local"} and job.plan == {"title": "Dune"}
        assert [j.id for j in store.unfinished()] == ["j1"]
        assert [(e.seq, e.type) for e in store.events("j1")] == [(1, "plan")]
        assert store.append_event("j1", "status", {}).seq == 2
        artifact = store.get_artifact("j1", "figure-1.png")
        assert artifact is not None and artifact[1] == b"\x89PNG"
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        versions = db.execute("SELECT version FROM schema_migrations").fetchall()
    db.close()
    assert versions == [(v,) for v in range(1, len(sqlite_store.MIGRATIONS) + 1)]


def test_opening_a_current_database_again_migrates_nothing(settings: Settings) -> None:
    first = reopen(settings)
    assert first.migrated and first.migrated[0] == 1
    again = open_job_store(settings)
    try:
        assert again.migrated == []
        assert again.schema_version() == first.migrated[-1]
    finally:
        again.close()


def test_an_appended_step_upgrades_a_database_in_place(
    settings: Settings, backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_job_store(settings)
    job = store.create("kept across the upgrade", {"a": 1})
    store.close()
    steps = backend.MIGRATIONS
    monkeypatch.setattr(backend, "MIGRATIONS", (*steps, PRIORITY_STEP))

    upgraded = open_job_store(settings)
    try:
        assert upgraded.migrated == [len(steps) + 1]
        assert upgraded.schema_version() == len(steps) + 1
        assert upgraded.get(job.id) == job, "a new column does not disturb reading a job"
        assert "priority" in columns(settings)
    finally:
        upgraded.close()


def test_a_failing_step_leaves_the_database_at_its_version(
    settings: Settings, backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    reopen(settings)
    steps = backend.MIGRATIONS
    monkeypatch.setattr(backend, "MIGRATIONS", (*steps, BROKEN_STEP))
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        open_job_store(settings)
    monkeypatch.setattr(backend, "MIGRATIONS", steps)
    assert reopen(settings).migrated == []
    assert "priority" not in columns(settings), "the step's first statement was rolled back"


def test_a_schema_newer_than_the_code_is_refused_with_the_fix(
    settings: Settings, backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = backend.MIGRATIONS
    monkeypatch.setattr(backend, "MIGRATIONS", (*steps, PRIORITY_STEP))
    reopen(settings)
    monkeypatch.setattr(backend, "MIGRATIONS", steps)
    with pytest.raises(ConfigError, match=r"newer than this Fawn knows.*upgrade Fawn"):
        open_job_store(settings)


def test_two_processes_opening_a_fresh_database_at_once_migrate_it_once(
    settings: Settings,
) -> None:
    env = {**os.environ, "FAWN_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        env["FAWN_DATABASE_URL"] = settings.database_url
    children = at_the_line(OPEN_ON_GO, env)
    # Hold the migration lock while both start, so that both are at the door when it opens.
    with holding_the_migration_lock(settings) as wait_for_waiters:
        go(children)
        wait_for_waiters(len(children))
    reports = [json.loads(out) for out in finish(children)]

    latest = len(postgres_store.MIGRATIONS if settings.database_url else sqlite_store.MIGRATIONS)
    assert sorted(r["migrated"] for r in reports) == [[], list(range(1, latest + 1))]
    assert [r["version"] for r in reports] == [latest, latest]


def columns(settings: Settings) -> set[str]:
    """The jobs table's column names, read straight from the database."""
    if settings.database_url:
        with psycopg.connect(settings.database_url) as conn:
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'"
            ).fetchall()
        return {name for (name,) in rows}
    with sqlite3.connect(settings.job_store_path) as db:
        names = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    db.close()
    return names


@contextmanager
def holding_the_migration_lock(settings: Settings) -> Iterator[Callable[[int], None]]:
    """Hold the lock a store takes to migrate; yields a wait for `n` processes blocked on it.

    On Postgres the waiters show in pg_locks, which proves the stores take the lock before they
    read the version. SQLite shows no waiters: the wait is a short pause.
    """
    if settings.database_url:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (postgres_store.JOBS_SCHEMA_LOCK,))

            def blocked(n: int) -> None:
                for _ in range(600):
                    row = conn.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    ).fetchone()
                    if row and row[0] >= n:
                        return
                    time.sleep(0.05)
                pytest.fail(f"{n} processes never waited for the migration lock")

            yield blocked
            conn.execute("SELECT pg_advisory_unlock(%s)", (postgres_store.JOBS_SCHEMA_LOCK,))
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(settings.job_store_path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    yield lambda _n: time.sleep(1.0)
    db.execute("COMMIT")
    db.close()
