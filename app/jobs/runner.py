"""The job runner: executes queued jobs through the research graph, one budget for all.

Each job is a LangGraph thread (thread id = job id) checkpointed beside the job store, so a job
interrupted by a crash or a restart resumes from its last completed step: nothing done is lost
or redone. A job runs under its lease (app/jobs/lease.py), so it runs in one process at a time,
whichever processes share the store; a heartbeat renews the leases and stops, within about a
second, a job cancelled from another process or taken over by one.
An engine or a database that does not answer does not fail a job at once: its run waits, with
backoff, and resumes from its checkpoint when they answer again (up to `jobs.outage_limit_s`,
then the job fails with the cause, retryable).
Events go to the job's event log as they happen; the job's status follows the run's phases.
A job whose plan awaits review ends its attempt at the review: it is stored as
`awaiting_plan_review` and holds no slot, connection or task until a verdict is recorded
(app/jobs/review.py) and it is submitted again, here or in any other process.
A job whose options ask for a podcast gets it right after its report, in the same task: the
podcast is part of the job's work, but never its outcome (a failed podcast leaves the job done).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver

from agents.config import ResearchOptions
from agents.events import Done, ErrorEvent, Phase, ResearchEvent, Status
from agents.research import (
    PlanPause,
    ResearchResult,
    continue_research,
    paused_for_review,
    start_research,
)
from agents.runtime import Runtime
from app.jobs.errors import StoreUnavailable
from app.jobs.lease import Leases
from app.jobs.models import Job, JobOptions, JobStatus
from app.jobs.podcast import PodcastMaker, pending_podcasts, podcast_pending
from app.jobs.review import pending_review
from app.jobs.settings import JobSettings
from app.jobs.store import JobStore
from serving.errors import EngineUnreachable, FawnError
from serving.pressure import PressureState

logger = logging.getLogger(__name__)
# What a run waits out rather than fails on: both may answer again.
OUTAGES = (EngineUnreachable, StoreUnavailable)
_STATUS_BY_PHASE = {
    Phase.PLANNING: JobStatus.PLANNING,
    Phase.RESEARCHING: JobStatus.RESEARCHING,
    Phase.REPORTING: JobStatus.REPORTING,
}
# Statuses a resumed run keeps: it continues mid-phase without announcing the phase again.
_RESUMED_PHASES = frozenset({JobStatus.RESEARCHING, JobStatus.REPORTING})
# Events that imply a phase without announcing it: a run resumed mid-phase does not announce
# the phase again.
_STATUS_BY_EVENT = {
    "step_started": JobStatus.RESEARCHING,
    "report_chunk": JobStatus.REPORTING,
}
CheckpointerFactory = Callable[[], AbstractAsyncContextManager[BaseCheckpointSaver]]


class JobRunner(Protocol):
    """What the job service asks of a runner."""

    def submit(self, job: Job) -> None:
        """Start (or resume) a job in the background."""

    def is_running(self, job_id: str) -> bool:
        """Whether the job runs (or waits for a slot) here."""

    async def cancel(self, job_id: str) -> None:
        """Stop the job's run here; a run that had started ends as cancelled."""

    async def wait(self, job_id: str) -> None:
        """Wait until the job ends (or stops for its plan review), wherever it runs."""

    async def shutdown(self) -> None:
        """Stop every run here, unmarked, for the next process to resume."""


class JobCancelled(Exception):
    """The job was cancelled from outside this process (e.g. `fawn jobs cancel`)."""


def research_options(options: dict[str, Any]) -> ResearchOptions:
    """The graph's options for a job's stored options."""
    job_options = JobOptions.model_validate(options)
    return ResearchOptions(**job_options.model_dump(exclude={"podcast"}))


def job_status_for(event: ResearchEvent) -> JobStatus | None:
    """The status a job enters when its run reports `event` (None: the status stays)."""
    if isinstance(event, Status) and event.phase is not None:
        return _STATUS_BY_PHASE[event.phase]
    return _STATUS_BY_EVENT.get(event.kind)


class LocalJobRunner:
    """Runs jobs as asyncio tasks in this process, at most `settings.concurrency` at a time."""

    def __init__(
        self,
        store: JobStore,
        runtime: Runtime,
        checkpointer: CheckpointerFactory,
        *,
        settings: JobSettings | None = None,
        podcasts: PodcastMaker | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.podcasts = podcasts
        self.settings = settings or JobSettings()
        self.leases = Leases(store, self.settings)
        self._checkpointer = checkpointer
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        # Jobs whose run here stops because another process has them now (or they are gone):
        # their run ends without marking them.
        self._lost: set[str] = set()
        self._under_pressure = False

    @property
    def free_slots(self) -> int:
        """How many more jobs this runner would start at once now."""
        return max(0, self.settings.concurrency - len(self._tasks))

    def submit(self, job: Job) -> None:
        """Run the job in the background (a no-op if it is already running).

        A job awaiting plan review is not run: it waits, without a task, for its verdict.
        """
        running = self._tasks.get(job.id)
        # A task that has just ended (parked at a review) may still be listed: run it again.
        if running is not None and not running.done():
            return
        self._loop = asyncio.get_running_loop()
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = self._loop.create_task(self._beat(), name="job-leases")
        task = self._loop.create_task(self._run(job.id), name=f"job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda done: self._forget(job.id, done))

    def _forget(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]

    def is_running(self, job_id: str) -> bool:
        """Whether this runner has a task for the job (waiting for a slot, or running)."""
        task = self._tasks.get(job_id)
        return task is not None and not task.done()

    def pressure_changed(self, state: PressureState) -> None:
        """Pressure monitor listener (called from its thread): running jobs hear of the change."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._announce_pressure, state)

    def _announce_pressure(self, state: PressureState) -> None:
        if state.under_pressure == self._under_pressure:
            return  # only the reason changed
        self._under_pressure = state.under_pressure
        message = (
            f"The engine is under memory pressure ({state.reason}): research slows down, "
            "the report waits until it clears; nothing is lost."
            if state.under_pressure
            else "Memory pressure cleared: work goes on at the full budget."
        )
        for job_id in list(self._tasks):
            self.store.append_event(
                job_id, "status", {"message": message, "under_pressure": state.under_pressure}
            )

    def resume_podcasts(self) -> list[str]:
        """Submit the done jobs whose requested podcast was never made; returns their ids."""
        jobs = pending_podcasts(self.store) if self.podcasts is not None else []
        for job in jobs:
            self.submit(job)
        return [job.id for job in jobs]

    async def cancel(self, job_id: str) -> None:
        """Cancel the job's task here, if any; a run that had started ends as cancelled."""
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop every running job without marking it, and give its lease up: the next process
        (or another one now) resumes it."""
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._heartbeat is not None and not self._heartbeat.done():
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)

    async def wait(self, job_id: str) -> None:
        """Wait until the job ends or stops for its review, running it here whenever no other
        process does (one that died gives it up when its lease expires)."""
        while not self._stopping:
            task = self._tasks.get(job_id)
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
            try:
                job = await asyncio.to_thread(self.store.get, job_id)
            except StoreUnavailable:
                await self._later()
                continue
            if job is None or job.status.is_final or job.status is JobStatus.AWAITING_PLAN_REVIEW:
                return
            if not self.is_running(job_id):
                await self._later()
                if not self._stopping:
                    self.submit(job)

    async def _later(self) -> None:
        await asyncio.sleep(self.settings.poll_s)

    async def _run(self, job_id: str) -> None:
        claimed = False
        try:
            async with self._slots:
                job = await asyncio.to_thread(self.leases.claim, job_id)
                if job is None:
                    return  # another process runs it
                claimed = True
                if not job.status.is_final and job.status is not JobStatus.AWAITING_PLAN_REVIEW:
                    await self._attempt(job)
            # Out of the job slot: a podcast waits in the budget's TTS class, not a job's place.
            await self._podcast(job_id)
        except StoreUnavailable as exc:
            # Nothing can be recorded now; the job keeps its checkpoint and, once its lease
            # expires, any process resumes it.
            logger.warning("job %s stopped: %s", job_id, exc)
        finally:
            self._lost.discard(job_id)
            if claimed:
                self._release(job_id)

    def _release(self, job_id: str) -> None:
        try:
            self.leases.release(job_id)
        except StoreUnavailable as exc:  # the lease expires by itself
            logger.warning("lease of job %s not released: %s", job_id, exc)

    async def _beat(self) -> None:
        """Renew the leases held here; stop the runs of jobs lost or cancelled elsewhere.

        It ends when nothing runs here (`submit` starts it again).
        """
        while self._tasks or self.leases.held:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                renewal = await asyncio.to_thread(self.leases.renew)
            except StoreUnavailable as exc:
                logger.warning("job leases not renewed: %s", exc)
                continue
            for job_id in renewal.lost:
                self._lost.add(job_id)
                self._cancel_task(job_id)
            for job_id, status in renewal.held.items():
                if status is JobStatus.CANCELLED:
                    self._cancel_task(job_id)

    def _cancel_task(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()

    async def _attempt(self, job: Job) -> None:
        """Run the job up to its end or its review, waiting out an engine or database outage."""
        outage = Outage(self.settings)
        while True:
            try:
                await self._attempt_once(job)
                return
            except OUTAGES as exc:
                try:
                    resumed = await self._wait_out(job.id, exc, outage)
                except asyncio.CancelledError:
                    if not self._stopping and job.id not in self._lost:
                        self._cancelled(job.id)
                    raise
                if resumed is None:
                    return
                job = resumed

    async def _attempt_once(self, job: Job) -> None:
        job_id = job.id
        try:
            result = await self._research(job)
        except JobCancelled:
            self._log(job_id, ErrorEvent(message="The job was cancelled.", fatal=True))
        except asyncio.CancelledError:
            if not self._stopping and job_id not in self._lost:
                self._cancelled(job_id)
            raise
        except OUTAGES:
            raise
        except FawnError as exc:
            self._log(job_id, ErrorEvent(message=str(exc), fatal=True))
            self._finish(job_id, JobStatus.FAILED, error=str(exc))
        except Exception as exc:  # a bug must fail the job, not the runner
            logger.exception("job %s crashed", job_id)
            self._finish(job_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            self._log(job_id, ErrorEvent(message=str(exc), fatal=True))
        else:
            if isinstance(result, PlanPause):
                self._park(job_id, result)
            else:
                self._complete(job_id, result)

    async def _wait_out(self, job_id: str, cause: FawnError, outage: Outage) -> Job | None:
        """Wait (with backoff) until the job can go on; the job to resume, or None when it
        failed for good, ended elsewhere, or another process has it now."""
        while True:
            delay = outage.next_delay()
            if delay is None:
                self._give_up(job_id, cause, outage)
                return None
            self._note_outage(job_id, cause, delay)
            await asyncio.sleep(delay)
            try:
                job = await asyncio.to_thread(self.leases.claim, job_id)
            except StoreUnavailable as exc:
                cause = exc
                continue
            if job is None or job.status.is_final:
                return None
            return job

    def _note_outage(self, job_id: str, cause: FawnError, delay: float) -> None:
        what = "The engine" if isinstance(cause, EngineUnreachable) else "The job database"
        message = (
            f"{what} does not answer; trying again in {delay:.0f} s. Nothing done so far is lost."
        )
        logger.warning("job %s waits %.0f s: %s", job_id, delay, cause)
        # The database may be what is down (the log line says it), or the job deleted meanwhile
        # (the next claim finds out): neither stops the wait.
        with contextlib.suppress(StoreUnavailable, KeyError):
            self.store.append_event(job_id, "status", {"message": message, "waiting": True})

    def _give_up(self, job_id: str, cause: FawnError, outage: Outage) -> None:
        error = (
            f"{cause} Waited {outage.waited_s():.0f} s for it to answer; retry the job once it "
            "does (it resumes from its last completed step)."
        )
        self._log(job_id, ErrorEvent(message=error, fatal=True))
        self._finish(job_id, JobStatus.FAILED, error=error)

    def _cancelled(self, job_id: str) -> None:
        """Mark a run stopped by a cancel, unless the cancel already did (from elsewhere)."""
        job = self.store.get(job_id)
        if job is None:
            return
        if job.status is not JobStatus.CANCELLED:
            self._finish(job_id, JobStatus.CANCELLED, error="Cancelled.")
        self._log(job_id, ErrorEvent(message="The job was cancelled.", fatal=True))

    async def _podcast(self, job_id: str) -> None:
        """Make the podcast the job asked for, if it is done and has none yet."""
        job = self.store.get(job_id)
        if self.podcasts is None or job is None or not podcast_pending(self.store, job):
            return
        try:
            await self.podcasts.make(job)
        except FawnError as exc:  # already a `podcast` error event; the job stays done
            logger.warning("podcast of job %s failed: %s", job_id, exc)
        except Exception:
            logger.exception("podcast of job %s crashed", job_id)

    async def _research(self, job: Job) -> ResearchResult | PlanPause:
        """Start, resume or (with its verdict) continue the job's run, up to its end or review."""
        on_event = self._event_sink(job.id)
        async with self._checkpointer() as saver:
            stored = await saver.aget_tuple({"configurable": {"thread_id": job.id}})
            if stored is None:
                self._begin(job, JobStatus.PLANNING)
                return await start_research(
                    job.question,
                    research_options(job.options),
                    self.runtime,
                    saver,
                    job.id,
                    on_event=on_event,
                )
            pause = await paused_for_review(job.id, saver)
            review = None if pause is None else pending_review(job)
            if pause is not None and review is None:
                return pause  # still unanswered (e.g. a cancelled review retried): wait again
            # A verdict continues the same attempt; anything else is a new one after a crash,
            # a shutdown or a retry.
            status = job.status if job.status in _RESUMED_PHASES else JobStatus.PLANNING
            self._begin(job, status, new_attempt=review is None)
            return await continue_research(
                job.id, self.runtime, saver, review=review, on_event=on_event
            )

    def _begin(self, job: Job, status: JobStatus, *, new_attempt: bool = True) -> None:
        attempts = job.attempts + 1 if new_attempt else job.attempts
        self.store.update(job.id, status=status, attempts=attempts)
        if new_attempt:
            # Which process ran which attempt: where to look when several workers share jobs.
            self.store.append_event(
                job.id, "attempt", {"attempt": attempts, "worker": self.leases.owner}
            )

    def _park(self, job_id: str, pause: PlanPause) -> None:
        """End the attempt at the plan review: the job waits in the store, not in this process."""
        job = self.store.get(job_id)
        if job is None or job.status.is_final:
            return  # cancelled or deleted while it planned
        plan = pause.plan.model_dump(mode="json")
        self.store.update(job_id, status=JobStatus.AWAITING_PLAN_REVIEW, plan=plan, review=None)
        self.store.append_event(job_id, "status", {"status": JobStatus.AWAITING_PLAN_REVIEW})

    def _event_sink(self, job_id: str) -> Callable[[ResearchEvent], None]:
        def sink(event: ResearchEvent) -> None:
            job = self.store.get(job_id)
            if job is None or job.status is JobStatus.CANCELLED:
                raise JobCancelled(job_id)
            if isinstance(event, Done):
                return  # logged once the report is stored, so `done` means readable
            if isinstance(event, ErrorEvent) and event.fatal:
                return  # the runner logs how the attempt ended (an outage is waited out)
            self._log(job_id, event)
            status = job_status_for(event)
            if event.kind == "plan":
                self.store.update(job_id, plan=event.plan.model_dump(mode="json"))
            if status is not None and job.status != status:
                self.store.update(job_id, status=status)
                self.store.append_event(job_id, "status", {"status": status})

        return sink

    def _log(self, job_id: str, event: ResearchEvent) -> None:
        data = event.model_dump(mode="json")
        self.store.append_event(job_id, data.pop("kind"), data)

    def _complete(self, job_id: str, result: ResearchResult) -> None:
        self.store.update(
            job_id,
            status=JobStatus.DONE,
            report=result.report,
            sources=[s.model_dump(mode="json") for s in result.sources],
            plan=result.plan.model_dump(mode="json") if result.plan else None,
            error=None,
        )
        self.store.append_event(job_id, "status", {"status": JobStatus.DONE})
        done = Done(llm_calls=result.llm_calls, wall_s=result.wall_s, citations=result.citations)
        self._log(job_id, done)

    def _finish(self, job_id: str, status: JobStatus, *, error: str) -> None:
        if self.store.get(job_id) is None:
            return
        self.store.update(job_id, status=status, error=error)
        self.store.append_event(job_id, "status", {"status": status, "error": error})


class Outage:
    """How long a run has waited for an engine or database, and how long it waits next."""

    def __init__(self, settings: JobSettings) -> None:
        self.settings = settings
        self._since: float | None = None
        self._tries = 0

    def next_delay(self) -> float | None:
        """Seconds to wait before the next try (1, 2, 4, ... up to the cap); None once the
        outage has lasted `outage_limit_s`."""
        if self._since is None:
            self._since = time.monotonic()
        left = self.settings.outage_limit_s - self.waited_s()
        if left <= 0:
            return None
        delay = min(2.0**self._tries, self.settings.outage_backoff_max_s, left)
        self._tries += 1
        return delay

    def waited_s(self) -> float:
        """Seconds since the outage was first met."""
        return 0.0 if self._since is None else time.monotonic() - self._since
