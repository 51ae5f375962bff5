"""The job runner: executes queued jobs through the research graph, one budget for all.

Each job is a LangGraph thread (thread id = job id) checkpointed in SQLite, so a job interrupted
by a crash or a restart resumes from its last completed step: nothing done is lost or redone.
Events go to the job's event log as they happen; the job's status follows the run's phases.
A job whose plan awaits review ends its attempt at the review: it is stored as
`awaiting_plan_review` and holds no slot, connection or task until a verdict is recorded
(app/jobs/review.py) and it is submitted again, here or in any other process.
A job whose options ask for a podcast gets it right after its report, in the same task: the
podcast is part of the job's work, but never its outcome (a failed podcast leaves the job done).
"""

from __future__ import annotations

import asyncio
import logging
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
from app.jobs.models import Job, JobOptions, JobStatus
from app.jobs.podcast import PodcastMaker, pending_podcasts, podcast_pending
from app.jobs.review import pending_review
from app.jobs.store import JobStore
from serving.errors import FawnError
from serving.pressure import PressureState

logger = logging.getLogger(__name__)
DEFAULT_CONCURRENT_JOBS = 4
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
        """Wait until the job's run here ends (or stops for its plan review)."""

    def resume_unfinished(self) -> list[str]:
        """Start the jobs a previous process left unfinished; returns their ids."""

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
    """Runs jobs as asyncio tasks in this process, at most `concurrency` at a time."""

    def __init__(
        self,
        store: JobStore,
        runtime: Runtime,
        checkpointer: CheckpointerFactory,
        *,
        concurrency: int = DEFAULT_CONCURRENT_JOBS,
        podcasts: PodcastMaker | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.podcasts = podcasts
        self._checkpointer = checkpointer
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._under_pressure = False

    def submit(self, job: Job) -> None:
        """Run the job in the background (a no-op if it is already running).

        A job awaiting plan review is not run: it waits, without a task, for its verdict.
        """
        running = self._tasks.get(job.id)
        # A task that has just ended (parked at a review) may still be listed: run it again.
        if running is not None and not running.done():
            return
        self._loop = asyncio.get_running_loop()
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

    def resume_unfinished(self) -> list[str]:
        """Submit every job a previous process left unfinished; returns their ids.

        With a podcast maker, that includes done jobs whose requested podcast was never made.
        Jobs awaiting plan review are not unfinished work: they wait for their verdict.
        """
        jobs = [
            job
            for job in self.store.unfinished()
            if job.status is not JobStatus.AWAITING_PLAN_REVIEW
        ]
        if self.podcasts is not None:
            jobs += pending_podcasts(self.store)
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
        """Stop every running job without marking it: the next process resumes them."""
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self, job_id: str) -> None:
        """Wait until the job's task (if any) ends."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, job_id: str) -> None:
        async with self._slots:
            job = self.store.get(job_id)
            if job is None or job.status is JobStatus.AWAITING_PLAN_REVIEW:
                return
            if not job.status.is_final:
                await self._attempt(job)
        # Out of the job slot: a podcast waits in the budget's TTS class, not in a job's place.
        await self._podcast(job_id)

    async def _attempt(self, job: Job) -> None:
        job_id = job.id
        try:
            result = await self._research(job)
        except JobCancelled:
            self._log(job_id, ErrorEvent(message="The job was cancelled.", fatal=True))
        except asyncio.CancelledError:
            if not self._stopping:
                self._finish(job_id, JobStatus.CANCELLED, error="Cancelled.")
                self._log(job_id, ErrorEvent(message="The job was cancelled.", fatal=True))
            raise
        except FawnError as exc:
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
            review = None if pause is None else pending_review(self.store, job.id)
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

    def _park(self, job_id: str, pause: PlanPause) -> None:
        """End the attempt at the plan review: the job waits in the store, not in this process."""
        job = self.store.get(job_id)
        if job is None or job.status.is_final:
            return  # cancelled or deleted while it planned
        plan = pause.plan.model_dump(mode="json")
        self.store.update(job_id, status=JobStatus.AWAITING_PLAN_REVIEW, plan=plan)
        self.store.append_event(job_id, "status", {"status": JobStatus.AWAITING_PLAN_REVIEW})

    def _event_sink(self, job_id: str) -> Callable[[ResearchEvent], None]:
        def sink(event: ResearchEvent) -> None:
            job = self.store.get(job_id)
            if job is None or job.status is JobStatus.CANCELLED:
                raise JobCancelled(job_id)
            if isinstance(event, Done):
                return  # logged once the report is stored, so `done` means readable
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
        self._log(job_id, Done(llm_calls=result.llm_calls, wall_s=result.wall_s))

    def _finish(self, job_id: str, status: JobStatus, *, error: str) -> None:
        if self.store.get(job_id) is None:
            return
        self.store.update(job_id, status=status, error=error)
        self.store.append_event(job_id, "status", {"status": status, "error": error})
