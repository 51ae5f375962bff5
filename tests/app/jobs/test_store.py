"""The SQLite job store on a real file: jobs, event logs, artifacts, and what survives a reopen."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.jobs.models import JobStatus
from app.jobs.store import SqliteJobStore


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(tmp_path / "jobs.sqlite3")


def test_new_job_is_queued_with_its_options(store: SqliteJobStore) -> None:
    job = store.create("Who wrote Dune?", {"report_style": "news", "max_step_num": 2})
    assert job.status is JobStatus.QUEUED
    assert store.get(job.id) == job
    assert job.options == {"report_style": "news", "max_step_num": 2}


def test_store_uses_wal_so_readers_do_not_block_the_runner(store: SqliteJobStore) -> None:
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_final_status_stamps_finished_at_and_retry_clears_it(store: SqliteJobStore) -> None:
    job = store.create("q", {})
    failed = store.update(job.id, status=JobStatus.FAILED, error="engine down")
    assert failed.finished_at is not None and failed.error == "engine down"
    retried = store.update(job.id, status=JobStatus.QUEUED, error=None)
    assert retried.finished_at is None and retried.error is None


def test_listing_is_newest_first_and_filters_by_status_and_text(store: SqliteJobStore) -> None:
    first = store.create("history of the printing press", {})
    second = store.create("100% renewable grids", {})
    store.update(first.id, status=JobStatus.DONE)
    page = store.list()
    assert [j.id for j in page.jobs] == [second.id, first.id]
    assert [j.id for j in store.list(status=JobStatus.DONE).jobs] == [first.id]
    assert [j.id for j in store.list(text="100%").jobs] == [second.id]
    assert store.list(text="_").total == 0
    assert store.list(limit=1, offset=1).jobs[0].id == first.id


def test_events_are_numbered_and_replayable_after_a_sequence(store: SqliteJobStore) -> None:
    job = store.create("q", {})
    for n in range(5):
        store.append_event(job.id, "step_done", {"n": n})
    replay = store.events(job.id, after_seq=3)
    assert [e.seq for e in replay] == [4, 5]
    assert replay[0].data == {"n": 3}


def test_concurrent_appends_never_reuse_a_sequence_number(store: SqliteJobStore) -> None:
    job = store.create("q", {})

    def append_many() -> None:
        for _ in range(50):
            store.append_event(job.id, "source_added", {})

    threads = [threading.Thread(target=append_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.seq for e in store.events(job.id)] == list(range(1, 201))


def test_jobs_events_and_artifacts_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    store = SqliteJobStore(path)
    job = store.create("q", {"provider": "local"})
    store.update(job.id, status=JobStatus.RESEARCHING, plan={"title": "t", "steps": []})
    store.append_event(job.id, "plan", {"title": "t"})
    store.put_artifact(job.id, "figure-1.png", "image/png", b"\x89PNG...")
    store.close()

    reopened = SqliteJobStore(path)
    again = reopened.get(job.id)
    assert again is not None and again.plan == {"title": "t", "steps": []}
    assert [j.id for j in reopened.unfinished()] == [job.id]
    assert reopened.events(job.id)[0].type == "plan"
    stored = reopened.get_artifact(job.id, "figure-1.png")
    assert stored is not None and stored[1] == b"\x89PNG..." and stored[0].size == 7


def test_delete_removes_events_and_artifacts(store: SqliteJobStore) -> None:
    job = store.create("q", {})
    store.append_event(job.id, "status", {})
    store.put_artifact(job.id, "a.wav", "audio/wav", b"RIFF")
    assert store.delete(job.id) is True
    assert store.get(job.id) is None
    assert store.events(job.id) == []
    assert store.artifacts(job.id) == []
    assert store.delete(job.id) is False


def test_updating_an_unknown_job_or_field_is_refused(store: SqliteJobStore) -> None:
    with pytest.raises(KeyError):
        store.update("nope", status=JobStatus.DONE)
    job = store.create("q", {})
    with pytest.raises(ValueError, match="question"):
        store.update(job.id, question="changed")
