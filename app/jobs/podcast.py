"""A job's podcast: made from its finished report, logged as `podcast` events, stored as artifacts.

Progress goes to the job's event log as `podcast` events (deferred, script, script_ready,
speaking, encoding, done, error). The audio and transcript are job artifacts (`podcast.wav`,
`.ogg`, `.mp3`, `podcast.txt`); the report itself is never changed. The runner makes the podcast
of a job that asked for one (`PodcastMaker`); the API and `fawn podcast` make one on request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from agents.podcast import (
    AudioFormat,
    Podcast,
    PodcastProgress,
    PodcastStage,
    ProgressSink,
    SpeechBackend,
    TtsSettings,
    make_podcast,
)
from agents.runtime import Runtime
from app.jobs.models import Job, JobStatus
from app.jobs.store import JobStore
from serving.budget import Budget
from serving.errors import FawnError

logger = logging.getLogger(__name__)
EVENT_TYPE = "podcast"
TRANSCRIPT = "podcast.txt"
# A podcast whose last event is one of these was made or tried; it is not made again unasked.
_ENDED = frozenset({PodcastStage.DONE, PodcastStage.ERROR})
_LISTING_PAGE = 200


def audio_artifact(fmt: AudioFormat) -> str:
    """The artifact name of the podcast audio in `fmt`."""
    return f"podcast.{fmt.value}"


async def produce_podcast(
    store: JobStore,
    job: Job,
    runtime: Runtime,
    settings: TtsSettings,
    *,
    budget: Budget | None = None,
    backend: SpeechBackend | None = None,
    on_progress: ProgressSink | None = None,
) -> Podcast:
    """Make the job's podcast, logging `podcast` events and storing the artifacts.

    Failures are logged as an `error` event and raised; the job and its report stay as they are.
    """

    def progress(event: PodcastProgress) -> None:
        store.append_event(job.id, EVENT_TYPE, event.model_dump(mode="json", exclude_none=True))
        if on_progress is not None:
            on_progress(event)

    if budget is not None and budget.under_pressure:
        progress(
            PodcastProgress(
                stage=PodcastStage.DEFERRED,
                message="The engine is under memory pressure: the podcast starts when it clears.",
            )
        )
    try:
        podcast = await make_podcast(
            job.report or "",
            runtime,
            settings,
            question=job.question,
            backend=backend,
            on_progress=progress,
        )
        await asyncio.to_thread(_store_podcast, store, job.id, podcast)
    except Exception as exc:
        progress(PodcastProgress(stage=PodcastStage.ERROR, message=str(exc) or type(exc).__name__))
        raise
    return podcast


def _store_podcast(store: JobStore, job_id: str, podcast: Podcast) -> None:
    store.put_artifact(job_id, TRANSCRIPT, "text/plain; charset=utf-8", podcast.transcript.encode())
    # WAV last: its presence is what says the podcast is ready.
    for fmt in sorted(podcast.audio, key=lambda f: f is AudioFormat.WAV):
        store.put_artifact(job_id, audio_artifact(fmt), fmt.media_type, podcast.audio[fmt])


def last_podcast_event(store: JobStore, job_id: str) -> PodcastProgress | None:
    """The job's latest `podcast` event; None if no podcast of it was ever started."""
    last = next((e for e in reversed(store.events(job_id)) if e.type == EVENT_TYPE), None)
    return None if last is None else PodcastProgress.model_validate(last.data)


def podcast_pending(store: JobStore, job: Job) -> bool:
    """Whether the job is done and asked for a podcast that was never finished nor failed.

    A podcast cut off by a shutdown or a crash counts as pending: it logged no done or error.
    """
    if job.status is not JobStatus.DONE or not job.report:
        return False
    # Only this option is read: a job stored under older options must not stop a restart.
    if job.options.get("podcast") is not True:
        return False
    last = last_podcast_event(store, job.id)
    return last is None or last.stage not in _ENDED


def pending_podcasts(store: JobStore) -> list[Job]:
    """Every done job whose requested podcast was never made, oldest first."""
    found: list[Job] = []
    offset = 0
    while True:
        page = store.list(status=JobStatus.DONE, offset=offset, limit=_LISTING_PAGE)
        found.extend(job for job in page.jobs if podcast_pending(store, job))
        offset += len(page.jobs)
        if not page.jobs or offset >= page.total:
            return sorted(found, key=lambda job: job.created_at)


class PodcastTasks:
    """The podcasts being made in this process: at most one per job at a time."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def running(self, job_id: str) -> bool:
        """Whether a podcast of the job is being made."""
        return job_id in self._tasks

    def start(self, job_id: str, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` in the background for the job."""
        task = asyncio.get_running_loop().create_task(
            _logged(job_id, work), name=f"podcast-{job_id}"
        )
        self._tasks[job_id] = task
        task.add_done_callback(lambda _task: self._tasks.pop(job_id, None))

    @contextmanager
    def claim(self, job_id: str) -> Iterator[None]:
        """Count the current task as making the job's podcast for the duration of the block.

        Raises FawnError if a podcast of the job is already being made.
        """
        if self.running(job_id):
            raise FawnError(f"A podcast of job {job_id} is already being made; wait for it.")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("PodcastTasks.claim needs a running asyncio task.")
        self._tasks[job_id] = task
        try:
            yield
        finally:
            self._tasks.pop(job_id, None)

    async def wait(self, job_id: str) -> None:
        """Wait until the job's podcast (if one is being made) ends."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def cancel(self, job_id: str) -> None:
        """Stop the job's podcast, if one is being made, and wait until it has stopped."""
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def shutdown(self) -> None:
        """Cancel every podcast in progress."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _logged(job_id: str, work: Coroutine[Any, Any, Any]) -> None:
    try:
        await work
    except Exception:  # already in the job's events; a background task has no caller to tell
        logger.warning("podcast of job %s failed", job_id, exc_info=True)


class PodcastMaker:
    """Makes the podcast of a finished job, as the job runner does for jobs that ask for one.

    With `tasks`, a podcast being made here also counts as running there, so that the API does
    not start a second one of the same job.
    """

    def __init__(
        self,
        store: JobStore,
        runtime: Runtime,
        settings: TtsSettings,
        *,
        budget: Budget | None = None,
        tasks: PodcastTasks | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.settings = settings
        self.budget = budget
        self.tasks = tasks

    async def make(self, job: Job, backend: SpeechBackend | None = None) -> Podcast:
        """Make and store the job's podcast, counted among `tasks` while it is made."""
        if self.tasks is None:
            return await self.produce(job, backend)
        with self.tasks.claim(job.id):
            return await self.produce(job, backend)

    async def produce(
        self,
        job: Job,
        backend: SpeechBackend | None = None,
        *,
        on_progress: ProgressSink | None = None,
    ) -> Podcast:
        """Make and store the job's podcast; failures are `error` events, then raised.

        Unlike `make`, it claims no place among `tasks`: a caller that started it as a task
        there (the API) has claimed it already.
        """
        return await produce_podcast(
            self.store,
            job,
            self.runtime,
            self.settings,
            budget=self.budget,
            backend=backend,
            on_progress=on_progress,
        )
