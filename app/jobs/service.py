"""One job service: every step of a research job's life, for the API, the pages and the CLI.

    admit ─▶ create ─▶ start ─▶ planning ─▶ awaiting_plan_review ─▶ review ─▶ researching ─▶ done
                                  cancel · retry · delete · podcast, at any point that allows it

API routes, web pages and CLI commands call `JobService`; none calls another's handlers. A
request the job's status does not allow is a JobConflict (HTTP 409), an unknown or deleted job a
JobNotFound (404), and a new job under memory pressure Overloaded (503), whoever asked.

Running jobs is the runner's (app/jobs/runner.py): the service hands it jobs, and its worker
(app/jobs/worker.py), if it has one, takes the queued jobs of every process from the store. A
service without a runner (`fawn api --no-worker`, `fawn jobs cancel`) only changes the store,
and a job it would start stays queued for a worker. Whatever runs a job, a change made here
reaches it through the store: a cancel within about a second, a review when it is next claimed.
A service without a pressure monitor admits every job: a CLI command runs its one job in the
foreground, on an engine it has just connected to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from agents.errors import SearchError
from agents.podcast import Podcast, ProgressSink, SpeechBackend, speech_backend
from agents.state import Plan, PlanReview
from app.jobs.errors import InvalidOptions, JobConflict, JobNotFound
from app.jobs.models import Job, JobEvent, JobOptions, JobStatus
from app.jobs.podcast import PodcastMaker, PodcastTasks
from app.jobs.review import record_review
from app.jobs.runner import JobRunner
from app.jobs.store import JobStore
from app.jobs.worker import Worker
from app.services import Services, StatusSink, job_runner, podcast_maker, run_connected
from app.settings import Settings
from serving.errors import ConfigError
from serving.pressure import PressureMonitor

T = TypeVar("T")
Reviewer = Callable[[Plan], Awaitable[PlanReview]]
# Refuses options this deployment cannot honour (raises SearchError for an unknown provider).
OptionsCheck = Callable[[JobOptions], None]
# How often a job run here is looked at for new events.
EVENT_POLL_S = 0.2
_RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)


class JobService:
    """The life of research jobs in one store: admit, create, start, review, cancel, retry,
    delete, and podcasts of finished reports."""

    def __init__(
        self,
        store: JobStore,
        runner: JobRunner | None = None,
        *,
        pressure: PressureMonitor | None = None,
        podcasts: PodcastMaker | None = None,
        worker: Worker | None = None,
        check_options: OptionsCheck | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.pressure = pressure
        self.podcasts = podcasts
        self.worker = worker
        self.check_options = check_options

    def get(self, job_id: str) -> Job:
        """The job; JobNotFound if there is none (never made, or deleted)."""
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def awaiting_review(self, job_id: str) -> Job:
        """The job, which must await its plan review (JobConflict otherwise)."""
        job = self.get(job_id)
        if job.status is not JobStatus.AWAITING_PLAN_REVIEW or job.plan is None:
            raise JobConflict(f"Job {job_id} is {job.status}, not awaiting plan review.")
        return job

    def retryable(self, job_id: str) -> Job:
        """The job, which must have failed or been cancelled (JobConflict otherwise)."""
        job = self.get(job_id)
        if job.status not in _RETRYABLE:
            raise JobConflict(f"Only failed or cancelled jobs retry; job {job_id} is {job.status}.")
        return job

    def with_report(self, job_id: str) -> Job:
        """The job, whose report must be done, as a podcast needs it (JobConflict otherwise)."""
        job = self.get(job_id)
        if job.status is not JobStatus.DONE or not job.report:
            raise JobConflict(
                f"The report is not done. Job {job_id} is {job.status}: a podcast needs its "
                "finished report."
            )
        return job

    def admit(self) -> None:
        """Refuse a new or retried job (Overloaded) while the engine is under memory pressure."""
        if self.pressure is not None:
            self.pressure.admit_job()

    async def submit(self, question: str, options: JobOptions) -> Job:
        """Check the options (InvalidOptions), admit, store and start a new job."""
        if self.check_options is not None:
            try:
                self.check_options(options)
            except SearchError as exc:
                raise InvalidOptions("options.provider", str(exc)) from exc
        self.admit()
        job = await asyncio.to_thread(self.store.create, question, options.model_dump(mode="json"))
        self.start(job)
        return job

    def start(self, job: Job) -> None:
        """Hand the job to this process's runner (without one, it stays queued)."""
        if self.runner is not None:
            self.runner.submit(job)

    async def review(self, job_id: str, review: PlanReview) -> Job:
        """Answer the plan review the job awaits; it resumes from its checkpoint, here."""
        job = await asyncio.to_thread(record_review, self.store, job_id, review)
        self.start(job)
        return job

    async def cancel(self, job_id: str, *, reason: str | None = None) -> Job:
        """Cancel a job that has not finished: it stops at its next step, wherever it runs."""
        job = self.get(job_id)
        if job.status.is_final:
            raise JobConflict(f"Job {job_id} is already {job.status}.")
        await self._stop(job, reason)
        return self.get(job_id)

    async def retry(self, job_id: str) -> Job:
        """Admit a failed or cancelled job again; it resumes from its last completed step."""
        self.retryable(job_id)
        self.admit()
        job = await asyncio.to_thread(
            self.store.update, job_id, status=JobStatus.QUEUED, error=None
        )
        self.start(job)
        return job

    async def delete(self, job_id: str) -> None:
        """Delete a job with its events and artifacts, stopping its run and podcast first."""
        job = self.get(job_id)
        if not job.status.is_final:
            await self._stop(job, None)
        # A finished job may still be making its podcast (the runner's, or one asked for later).
        if self.podcasts is not None and self.podcasts.tasks is not None:
            await self.podcasts.tasks.cancel(job_id)
        await asyncio.to_thread(self.store.delete, job_id)

    async def _stop(self, job: Job, reason: str | None) -> None:
        if self.runner is not None and self.runner.is_running(job.id):
            await self.runner.cancel(job.id)  # a run that had started marks itself cancelled
        current = await asyncio.to_thread(self.store.get, job.id)
        if current is None or current.status.is_final:
            return
        # Not started here: marked in the store, where a run in another process sees it.
        if reason is None:
            reason = "Cancelled before it ran." if job.status is JobStatus.QUEUED else "Cancelled."
        await asyncio.to_thread(self._mark_cancelled, job.id, reason)

    def _mark_cancelled(self, job_id: str, reason: str) -> None:
        self.store.update(job_id, status=JobStatus.CANCELLED, error=reason)
        self.store.append_event(job_id, "status", {"status": JobStatus.CANCELLED, "error": reason})

    def podcast_running(self, job_id: str) -> bool:
        """Whether a podcast of the job is being made in this process."""
        tasks = self.podcasts.tasks if self.podcasts is not None else None
        return tasks is not None and tasks.running(job_id)

    async def start_podcast(self, job_id: str) -> bool:
        """Start making the report's podcast in the background; True if one already is.

        The speech backend is checked first, so a bad voice is an error now, not an event later.
        """
        job = self.with_report(job_id)
        maker, tasks = self._podcast_maker()
        if tasks is None:
            raise ConfigError("This process makes podcasts in the foreground only.")
        if tasks.running(job_id):
            return True
        backend = speech_backend(maker.settings)
        await backend.check()
        tasks.start(job_id, maker.produce(job, backend))
        return False

    async def make_podcast(
        self,
        job_id: str,
        *,
        backend: SpeechBackend | None = None,
        on_progress: ProgressSink | None = None,
    ) -> Podcast:
        """Make the report's podcast now and return it (stored with the job as well)."""
        job = self.with_report(job_id)
        maker, _tasks = self._podcast_maker()
        return await maker.produce(job, backend, on_progress=on_progress)

    def _podcast_maker(self) -> tuple[PodcastMaker, PodcastTasks | None]:
        if self.podcasts is None:
            raise ConfigError("Podcasts need the engine: this job service was opened without it.")
        return self.podcasts, self.podcasts.tasks

    async def wait(self, job_id: str) -> None:
        """Wait until the job ends or stops for review (with a runner: running it here if no
        other process does)."""
        if self.runner is not None:
            await self.runner.wait(job_id)

    async def run_here(
        self,
        job_id: str,
        *,
        on_event: Callable[[JobEvent], None],
        review: Reviewer | None = None,
    ) -> Job:
        """Run the job in this process to its end, handing each logged event to `on_event`.

        `review` answers the job's plan reviews; without it, a job that stops for review is
        returned awaiting it.
        """
        after = 0
        while True:
            self.start(self.get(job_id))
            after = await self._follow(job_id, after, on_event)
            job = self.get(job_id)
            if review is None or job.status is not JobStatus.AWAITING_PLAN_REVIEW or not job.plan:
                return job
            await self.review(job_id, await review(Plan.model_validate(job.plan)))

    async def _follow(self, job_id: str, after: int, on_event: Callable[[JobEvent], None]) -> int:
        """Hand on the job's events until its run here ends; returns the last event's seq."""
        ended = asyncio.ensure_future(self.wait(job_id))
        while True:
            finished = ended.done()  # read before the events, so the last ones are not missed
            for event in await asyncio.to_thread(self.store.events, job_id, after):
                after = event.seq
                on_event(event)
            if finished:
                return after
            await asyncio.wait({ended}, timeout=EVENT_POLL_S)

    async def shutdown(self) -> None:
        """Stop this process's runs (unmarked: the next process resumes them) and podcasts."""
        if self.runner is not None:
            await self.runner.shutdown()
        if self.podcasts is not None and self.podcasts.tasks is not None:
            await self.podcasts.tasks.shutdown()


def job_service(
    settings: Settings,
    services: Services,
    store: JobStore,
    *,
    runner: bool = True,
    worker: bool = False,
    concurrency: int | None = None,
    admit: bool = True,
    podcast_tasks: PodcastTasks | None = None,
) -> JobService:
    """The service over `store`, with a runner on `services`' engine unless `runner` is False.

    `worker` adds a worker that takes every process's queued jobs (run it: `service.worker.run()`);
    `admit` turns memory-pressure admission on (a server's); `podcast_tasks` lets podcasts be
    started in the background (the API's) and counts those the runner makes among them.
    """
    pressure = services.pressure if admit else None

    def check_options(options: JobOptions) -> None:
        settings.mcp.check_provider(options.provider)

    if not runner:
        podcasts = podcast_maker(settings, services, store, podcast_tasks)
        return JobService(
            store, None, pressure=pressure, podcasts=podcasts, check_options=check_options
        )
    job_runs = job_runner(
        settings, services, store, concurrency=concurrency, podcast_tasks=podcast_tasks
    )
    return JobService(
        store,
        job_runs,
        pressure=pressure,
        podcasts=job_runs.podcasts,
        worker=Worker(job_runs) if worker else None,
        check_options=check_options,
    )


def run_jobs(
    settings: Settings,
    store: JobStore,
    work: Callable[[JobService], Coroutine[Any, Any, T]],
    *,
    concurrency: int = 1,
    on_status: StatusSink | None = None,
) -> T:
    """Connect to (or start) the engine, run `work` with a job service over `store`, close.

    The foreground form of every CLI command that runs jobs: no admission (the command is the
    one asking), `concurrency` jobs at a time.
    """

    async def with_service(services: Services) -> T:
        return await work(
            job_service(settings, services, store, concurrency=concurrency, admit=False)
        )

    return run_connected(settings, with_service, on_status=on_status)


def run_job_here(
    settings: Settings,
    store: JobStore,
    queue: Callable[[JobService], Awaitable[Job]],
    *,
    on_event: Callable[[JobEvent], None],
    review: Reviewer | None = None,
    on_queued: Callable[[Job], None] | None = None,
    on_status: StatusSink | None = None,
) -> Job:
    """Connect, queue a job (`queue`: submit, retry or review), and run it here to its end.

    The job is queued only once the engine answers, so a failed connection changes no job.
    """

    async def work(jobs: JobService) -> Job:
        job = await queue(jobs)
        if on_queued is not None:
            on_queued(job)
        return await jobs.run_here(job.id, on_event=on_event, review=review)

    return run_jobs(settings, store, work, concurrency=1, on_status=on_status)
