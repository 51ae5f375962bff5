"""The job store contract, on SQLite and on a real Postgres: each test on a fresh database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.jobs.models import JobStatus
from app.jobs.postgres_store import PostgresJobStore
from app.jobs.sqlite_store import SqliteJobStore
from app.jobs.store import JobStore, open_job_store
from app.settings import load_settings

StoreOpener = Callable[[], JobStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    """Opens (another) store on one fresh database; every store it opened is closed after."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
        settings = load_settings(database_url=url)
    else:
        settings = load_settings(data_dir=tmp_path)
    opened: list[JobStore] = []

    def opener() -> JobStore:
        opened.append(open_job_store(settings))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: StoreOpener) -> JobStore:
    return open_store()


def run_in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run `work(i)` in `count` threads at once and re-raise the first failure."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def target(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_the_factory_picks_the_backend_from_the_settings(
    open_store: StoreOpener, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["open_store"]
    expected = PostgresJobStore if backend == "postgres" else SqliteJobStore
    assert isinstance(open_store(), expected)


def test_a_new_job_is_queued_and_read_back_whole(store: JobStore) -> None:
    options = {"report_style": "news", "max_step_num": 2, "nested": {"a": [1, "ü"]}}
    job = store.create("Who wrote Dune?", options)
    assert job.status is JobStatus.QUEUED and job.attempts == 0
    assert job.options == options and job.sources == [] and job.plan is None
    assert job.created_at.tzinfo is not None and job.finished_at is None
    assert store.get(job.id) == job
    assert store.get("no-such-job") is None


def test_listing_is_newest_first_pages_and_filters(store: JobStore) -> None:
    press = store.create("History of the printing press", {})
    grids = store.create("100% renewable grids", {})
    under = store.create("snake_case names", {})
    store.update(press.id, status=JobStatus.DONE)

    page = store.list()
    assert [j.id for j in page.jobs] == [under.id, grids.id, press.id]
    assert (page.total, page.offset, page.limit) == (3, 0, 20)
    second = store.list(limit=1, offset=1)
    assert [j.id for j in second.jobs] == [grids.id] and second.total == 3
    assert store.list(offset=3).jobs == []
    assert [j.id for j in store.list(status=JobStatus.DONE).jobs] == [press.id]
    assert store.list(status=JobStatus.FAILED).total == 0
    # Text matches case-insensitively and literally: % and _ are not wildcards.
    assert [j.id for j in store.list(text="PRINTING").jobs] == [press.id]
    assert [j.id for j in store.list(text="100%").jobs] == [grids.id]
    assert [j.id for j in store.list(text="_").jobs] == [under.id]
    assert store.list(text="%", status=JobStatus.DONE).total == 0


def test_updates_are_stored_and_a_final_status_stamps_finished_at(store: JobStore) -> None:
    job = store.create("q", {})
    plan = {"title": "t", "steps": [{"title": "s", "need_search": True}]}
    sources = [{"id": 1, "url": "https://example.org", "title": "Example"}]
    started = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    running = store.update(
        job.id,
        status=JobStatus.RESEARCHING,
        plan=plan,
        sources=sources,
        attempts=1,
        started_at=started,
    )
    assert (running.plan, running.sources, running.attempts) == (plan, sources, 1)
    assert running.started_at == started and running.finished_at is None
    assert running.updated_at >= job.updated_at
    assert store.get(job.id) == running

    failed = store.update(job.id, status="failed", error="engine down")
    assert failed.status is JobStatus.FAILED and failed.error == "engine down"
    assert failed.finished_at is not None
    retried = store.update(job.id, status=JobStatus.QUEUED, error=None, plan=None)
    assert retried.finished_at is None and retried.error is None and retried.plan is None
    done = store.update(job.id, status=JobStatus.DONE, report="# Report\n\nü")
    assert store.get(job.id) == done and done.report == "# Report\n\nü"


def test_updating_an_unknown_job_or_field_is_refused(store: JobStore) -> None:
    with pytest.raises(KeyError):
        store.update("nope", status=JobStatus.DONE)
    job = store.create("q", {})
    with pytest.raises(ValueError, match="question"):
        store.update(job.id, question="changed")
    assert store.get(job.id) == job


def test_unfinished_jobs_are_the_non_final_ones_oldest_first(store: JobStore) -> None:
    jobs = [store.create(f"q{n}", {}) for n in range(5)]
    store.update(jobs[0].id, status=JobStatus.DONE)
    store.update(jobs[1].id, status=JobStatus.FAILED)
    store.update(jobs[2].id, status=JobStatus.CANCELLED)
    store.update(jobs[4].id, status=JobStatus.AWAITING_PLAN_REVIEW)
    assert [j.id for j in store.unfinished()] == [jobs[3].id, jobs[4].id]


def test_events_are_numbered_from_one_and_replay_after_a_sequence(store: JobStore) -> None:
    job = store.create("q", {})
    other = store.create("other", {})
    for n in range(5):
        event = store.append_event(job.id, "step_done", {"n": n, "text": "ü"})
        assert event.seq == n + 1 and event.job_id == job.id
    store.append_event(other.id, "status", {})
    events = store.events(job.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4]
    assert events[0].type == "step_done" and events[0].data["text"] == "ü"
    replay = store.events(job.id, after_seq=3)
    assert [e.seq for e in replay] == [4, 5] and replay[0].data == {"n": 3, "text": "ü"}
    assert store.events(job.id, after_seq=5) == []
    assert [e.seq for e in store.events(other.id)] == [1]
    assert store.events("no-such-job") == []


def test_events_and_artifacts_of_an_unknown_job_are_refused(store: JobStore) -> None:
    with pytest.raises(KeyError):
        store.append_event("no-such-job", "status", {})
    with pytest.raises(KeyError):
        store.put_artifact("no-such-job", "a.png", "image/png", b"x")


def test_artifacts_are_stored_replaced_and_listed_without_bytes(store: JobStore) -> None:
    job = store.create("q", {})
    png = bytes(range(256)) * 4
    stored = store.put_artifact(job.id, "figure-1.png", "image/png", png)
    assert (stored.name, stored.media_type, stored.size) == ("figure-1.png", "image/png", 1024)
    store.put_artifact(job.id, "audio.wav", "audio/wav", b"RIFF")
    replaced = store.put_artifact(job.id, "audio.wav", "audio/x-wav", b"RIFF....")
    assert replaced.size == 8

    listed = store.artifacts(job.id)
    assert [(a.name, a.media_type, a.size) for a in listed] == [
        ("audio.wav", "audio/x-wav", 8),
        ("figure-1.png", "image/png", 1024),
    ]
    found = store.get_artifact(job.id, "figure-1.png")
    assert found is not None and found[1] == png and found[0] == stored
    assert store.get_artifact(job.id, "missing.png") is None
    assert store.artifacts("no-such-job") == []


def test_delete_removes_the_job_with_its_events_and_artifacts(store: JobStore) -> None:
    job = store.create("q", {})
    kept = store.create("kept", {})
    store.append_event(job.id, "status", {})
    store.put_artifact(job.id, "a.wav", "audio/wav", b"RIFF")
    store.append_event(kept.id, "status", {})
    assert store.delete(job.id) is True
    assert store.get(job.id) is None
    assert store.events(job.id) == [] and store.artifacts(job.id) == []
    assert store.delete(job.id) is False
    assert store.get(kept.id) is not None and len(store.events(kept.id)) == 1


def test_concurrent_writers_in_threads_never_reuse_a_sequence_number(store: JobStore) -> None:
    job = store.create("q", {})

    def append_and_update(i: int) -> None:
        for n in range(25):
            store.append_event(job.id, "source_added", {"thread": i, "n": n})
            if n % 5 == 0:
                store.update(job.id, attempts=n)

    run_in_threads(4, append_and_update)
    events = store.events(job.id)
    assert [e.seq for e in events] == list(range(1, 101))
    for i in range(4):
        mine = [e.data["n"] for e in events if e.data["thread"] == i]
        assert mine == list(range(25)), "each thread's events keep their order"


def test_concurrent_creates_in_threads_all_land(store: JobStore) -> None:
    run_in_threads(4, lambda i: [store.create(f"q{i}-{n}", {"i": i}) for n in range(10)])
    page = store.list(limit=100)
    assert page.total == 40 and len({j.id for j in page.jobs}) == 40


def test_two_stores_on_one_database_share_jobs_and_one_event_sequence(
    open_store: StoreOpener,
) -> None:
    # As two processes would: each store has its own connection(s) to the same database.
    first, second = open_store(), open_store()
    assert first.schema_version() == second.schema_version() >= 1
    job = first.create("q", {})
    assert second.get(job.id) == job

    def append(i: int) -> None:
        writer = (first, second)[i % 2]
        for _ in range(20):
            writer.append_event(job.id, "source_added", {"writer": i})

    run_in_threads(4, append)
    assert [e.seq for e in first.events(job.id)] == list(range(1, 81))
    second.update(job.id, status=JobStatus.CANCELLED)
    assert first.get(job.id).status is JobStatus.CANCELLED  # type: ignore[union-attr]


def test_a_runnable_job_is_claimed_by_one_claimant_oldest_first(store: JobStore) -> None:
    jobs = [store.create(f"q{n}", {}) for n in range(4)]
    store.update(jobs[0].id, status=JobStatus.DONE)
    store.update(jobs[1].id, status=JobStatus.AWAITING_PLAN_REVIEW)

    claimed = store.claim_next("worker-a", lease_s=30, limit=5)
    assert [j.id for j in claimed] == [jobs[2].id, jobs[3].id]
    assert store.claim_next("worker-b", lease_s=30, limit=5) == [], "a live lease is held"
    assert store.claim(jobs[2].id, "worker-b", lease_s=30) is None
    assert store.claim(jobs[2].id, "worker-a", lease_s=30) is not None, "the owner re-claims"


def test_claims_take_at_most_the_limit(store: JobStore) -> None:
    for n in range(3):
        store.create(f"q{n}", {})
    assert len(store.claim_next("w", lease_s=30, limit=2)) == 2
    assert len(store.claim_next("w", lease_s=30, limit=2)) == 1
    assert store.claim_next("w", lease_s=30, limit=2) == []


def test_an_expired_lease_can_be_claimed_by_another_worker(store: JobStore) -> None:
    job = store.create("q", {})
    assert store.claim_next("dead-worker", lease_s=0.2, limit=1)
    time.sleep(0.4)
    taken = store.claim_next("live-worker", lease_s=30, limit=1)
    assert [j.id for j in taken] == [job.id]
    assert store.renew("dead-worker", [job.id], lease_s=30) == {}, "the old owner lost it"
    assert store.renew("live-worker", [job.id], lease_s=30) == {job.id: JobStatus.QUEUED}


def test_renewal_reports_the_status_of_held_jobs_and_drops_deleted_ones(store: JobStore) -> None:
    kept, cancelled, deleted = (store.create(f"q{n}", {}) for n in range(3))
    store.claim_next("w", lease_s=30, limit=3)
    store.update(cancelled.id, status=JobStatus.CANCELLED)
    store.delete(deleted.id)
    held = store.renew("w", [kept.id, cancelled.id, deleted.id], lease_s=30)
    assert held == {kept.id: JobStatus.QUEUED, cancelled.id: JobStatus.CANCELLED}
    assert store.renew("w", [], lease_s=30) == {}


def test_a_released_job_is_claimable_at_once(store: JobStore) -> None:
    job = store.create("q", {})
    store.claim_next("first", lease_s=30, limit=1)
    store.release(job.id, "someone-else")
    assert store.claim_next("second", lease_s=30, limit=1) == [], "only the owner releases"
    store.release(job.id, "first")
    assert [j.id for j in store.claim_next("second", lease_s=30, limit=1)] == [job.id]


def test_a_done_job_can_be_claimed_by_id_for_its_podcast_but_is_not_runnable(
    store: JobStore,
) -> None:
    job = store.create("q", {})
    store.update(job.id, status=JobStatus.DONE, report="r")
    assert store.claim_next("w", lease_s=30, limit=1) == []
    claimed = store.claim(job.id, "w", lease_s=30)
    assert claimed is not None and claimed.status is JobStatus.DONE


def test_concurrent_claimants_never_share_a_job(open_store: StoreOpener) -> None:
    # As workers in several processes would: each its own store on the one database.
    stores = [open_store() for _ in range(4)]
    created = [stores[0].create(f"q{n}", {}) for n in range(20)]
    taken: dict[int, list[str]] = {}

    def claim_all(i: int) -> None:
        mine: list[str] = []
        while batch := stores[i].claim_next(f"worker-{i}", lease_s=30, limit=2):
            mine += [job.id for job in batch]
        taken[i] = mine

    run_in_threads(4, claim_all)
    every = [job_id for mine in taken.values() for job_id in mine]
    assert sorted(every) == sorted(job.id for job in created), "each job exactly once"


def test_a_conditional_update_changes_the_job_only_in_the_expected_status(
    store: JobStore,
) -> None:
    job = store.create("q", {})
    store.update(job.id, status=JobStatus.AWAITING_PLAN_REVIEW)
    won = store.update_if(job.id, JobStatus.AWAITING_PLAN_REVIEW, status=JobStatus.RESEARCHING)
    assert won is not None and won.status is JobStatus.RESEARCHING
    lost = store.update_if(job.id, JobStatus.AWAITING_PLAN_REVIEW, status=JobStatus.RESEARCHING)
    assert lost is None
    assert store.update_if("no-such-job", JobStatus.QUEUED, status=JobStatus.DONE) is None


def test_a_lease_of_an_owner_known_to_be_gone_is_free_at_once(store: JobStore) -> None:
    job = store.create("q", {})
    store.claim_next("gone", lease_s=30, limit=1)
    assert store.lease_holders() == {"gone"}
    assert store.claim(job.id, "new", lease_s=30, stale=["someone-else"]) is None
    assert store.claim_next("new", lease_s=30, limit=1, stale=["gone"]) != []
    assert store.lease_holders() == {"new"}
    assert store.claim(job.id, "newer", lease_s=30, stale=["new"]) is not None
