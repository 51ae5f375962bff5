"""The runner makes the podcast a job asks for: real engine, real SQLite store, real espeak-ng.

One real research job (podcast requested, plan auto-accepted) runs on a HotpotQA corpus; its
podcast follows its report in the same job task. A done job whose podcast was never made (as a
restart finds it) gets one from `resume_podcasts`; under memory pressure (a settable source
behind a real monitor and budget) that podcast is deferred, and finishes once pressure clears.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agents.graph import sqlite_checkpointer
from agents.podcast import EspeakVoice, TtsSettings
from agents.podcast.settings import DEFAULT_ESPEAK_VOICES
from agents.runtime import Runtime, connect_runtime
from app.jobs.models import Job, JobEvent, JobOptions, JobStatus
from app.jobs.podcast import PodcastMaker, PodcastTasks
from app.jobs.runner import LocalJobRunner
from app.jobs.store import SqliteJobStore
from serving.budget import Budget, CallClass
from serving.endpoint import Endpoint
from serving.observability import gate_metrics
from serving.pressure import PressureMonitor, PressureSettings, SettableSource
from serving.settings import LLMSettings
from tests.agents.test_podcast import AUDIBLE_RMS, REPORT, SECONDS_PER_WORD, wav_facts
from tests.app.api.conftest import FAST_OPTIONS, JOB_TIMEOUT_S, build_corpus

pytestmark = [pytest.mark.engine, pytest.mark.asyncio(loop_scope="session")]
QUESTION = "Were Scott Derrickson and Ed Wood of the same nationality?"
DONE_QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"
PODCAST_TIMEOUT_S = 400


@dataclass
class Bench:
    """A runner with a podcast maker, over a real store, budget and pressure monitor."""

    store: SqliteJobStore
    runner: LocalJobRunner
    tasks: PodcastTasks
    budget: Budget
    monitor: PressureMonitor
    source: SettableSource


@pytest.fixture(scope="module")
async def bench(
    engine: Endpoint, tmp_path_factory: pytest.TempPathFactory, hotpotqa_path: Path
) -> AsyncIterator[Bench]:
    """One bench for the module: a research job costs minutes on a CPU, so tests share it."""
    tmp_path = tmp_path_factory.mktemp("runner-podcast")
    build_corpus(tmp_path, hotpotqa_path)
    metrics = gate_metrics(CollectorRegistry())
    source = SettableSource()
    monitor = PressureMonitor([source], PressureSettings(clear_after_s=0.0), metrics=metrics)
    budget = Budget(4, pressure=monitor, metrics=metrics)
    runtime = connect_runtime(engine, LLMSettings(), budget, data_dir=tmp_path)
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    tasks = PodcastTasks()
    runner = runner_for(store, runtime, tmp_path, TtsSettings(), budget, tasks)
    yield Bench(store, runner, tasks, budget, monitor, source)
    await runner.shutdown()
    store.close()


@pytest.fixture(scope="module")
async def podcast_job(bench: Bench) -> Job:
    """A real research job that asked for a podcast, run to its end (podcast included)."""
    options = {**FAST_OPTIONS, "auto_accept_plan": True, "podcast": True}
    job = bench.store.create(QUESTION, JobOptions(**options).model_dump())
    bench.runner.submit(job)

    def podcast_started_or_job_ended() -> bool:
        status = bench.store.get(job.id).status  # type: ignore[union-attr]
        return bench.tasks.running(job.id) or status in (JobStatus.FAILED, JobStatus.CANCELLED)

    await wait_until(podcast_started_or_job_ended, JOB_TIMEOUT_S, "the podcast to start")
    status_while_podcast = bench.store.get(job.id).status  # type: ignore[union-attr]
    await asyncio.wait_for(bench.runner.wait(job.id), PODCAST_TIMEOUT_S)
    assert status_while_podcast is JobStatus.DONE, "the podcast starts once the job is done"
    finished = bench.store.get(job.id)
    assert finished is not None
    return finished


def runner_for(
    store: SqliteJobStore,
    runtime: Runtime,
    data_dir: Path,
    tts: TtsSettings,
    budget: Budget,
    tasks: PodcastTasks,
) -> LocalJobRunner:
    """A runner whose podcasts use `tts`."""
    maker = PodcastMaker(store, runtime, tts, budget=budget, tasks=tasks)
    return LocalJobRunner(
        store,
        runtime,
        lambda: sqlite_checkpointer(data_dir / "checkpoints.sqlite3"),
        podcasts=maker,
    )


def done_job(store: SqliteJobStore) -> Job:
    """A finished job that asked for a podcast it never got (a restart finds it like this)."""
    job = store.create(DONE_QUESTION, JobOptions(podcast=True).model_dump())
    store.update(job.id, status=JobStatus.DONE, report=REPORT)
    return job


def stages(store: SqliteJobStore, job_id: str) -> list[str]:
    return [e.data["stage"] for e in store.events(job_id) if e.type == "podcast"]


def first(events: list[JobEvent], match: Callable[[JobEvent], bool]) -> int:
    """The position of the first event that matches."""
    return next(i for i, e in enumerate(events) if match(e))


def job_status_event(status: JobStatus) -> Callable[[JobEvent], bool]:
    return lambda e: e.type == "status" and e.data.get("status") == status


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def assert_podcast_stored(store: SqliteJobStore, job_id: str) -> None:
    """The transcript and a WAV that is audible and as long as its words need."""
    names = {a.name for a in store.artifacts(job_id)}
    assert {"podcast.txt", "podcast.wav"} <= names
    transcript = store.get_artifact(job_id, "podcast.txt")
    wav = store.get_artifact(job_id, "podcast.wav")
    assert transcript is not None and wav is not None
    lines = transcript[1].decode().splitlines()
    assert {line.split(":", 1)[0] for line in lines} == set(TtsSettings().hosts)
    words = sum(len(line.split(":", 1)[1].split()) for line in lines)
    duration, rms = wav_facts(wav[1])
    assert rms > AUDIBLE_RMS
    assert SECONDS_PER_WORD[0] < duration / words < SECONDS_PER_WORD[1]


async def test_a_job_that_asks_for_a_podcast_gets_one_after_its_report(
    bench: Bench, podcast_job: Job
) -> None:
    assert podcast_job.status is JobStatus.DONE and podcast_job.error is None
    assert podcast_job.report and "## Answer" in podcast_job.report
    events = bench.store.events(podcast_job.id)
    done = first(events, lambda e: e.type == "done")
    podcast = [e for e in events if e.type == "podcast"]
    assert podcast and podcast[0].seq > events[done].seq, "the podcast comes after the report"
    assert [e.data["stage"] for e in podcast][-1] == "done"
    assert "deferred" not in stages(bench.store, podcast_job.id)
    assert_podcast_stored(bench.store, podcast_job.id)
    assert not bench.tasks.running(podcast_job.id)


async def test_the_job_status_follows_the_graph_phases(bench: Bench, podcast_job: Job) -> None:
    events = bench.store.events(podcast_job.id)
    # The phase announcement moves the job, before the work of the phase shows up.
    researching = first(events, job_status_event(JobStatus.RESEARCHING))
    reporting = first(events, job_status_event(JobStatus.REPORTING))
    assert events[researching - 1].data.get("phase") == "researching"
    assert events[reporting - 1].data.get("phase") == "reporting"
    assert researching < first(events, lambda e: e.type == "step_started")
    assert researching < reporting < first(events, job_status_event(JobStatus.DONE))


async def test_a_podcast_resumed_under_pressure_is_deferred_then_made(bench: Bench) -> None:
    job = done_job(bench.store)
    bench.source.set(kv_usage=0.97)
    assert bench.monitor.sample_once().under_pressure

    assert bench.runner.resume_podcasts() == [job.id]
    await wait_until(
        lambda: bench.budget.snapshot().queued[CallClass.TTS] == 1, 30, "the queued script call"
    )
    await asyncio.sleep(1.0)
    assert stages(bench.store, job.id) == ["deferred", "script"]
    assert bench.budget.snapshot().in_flight[CallClass.TTS] == 0
    assert bench.store.artifacts(job.id) == []
    assert bench.tasks.running(job.id)

    bench.source.set(kv_usage=0.1)
    assert not bench.monitor.sample_once().under_pressure
    await asyncio.wait_for(bench.runner.wait(job.id), PODCAST_TIMEOUT_S)
    assert stages(bench.store, job.id)[-1] == "done"
    assert_podcast_stored(bench.store, job.id)
    assert bench.store.get(job.id).report == REPORT  # type: ignore[union-attr]
    assert bench.runner.resume_podcasts() == [], "a made podcast is not made again"


async def test_a_failed_podcast_leaves_the_job_done_and_is_not_retried(
    engine: Endpoint, tmp_path: Path, bench: Bench
) -> None:
    bad_voice = TtsSettings(espeak_voices=(DEFAULT_ESPEAK_VOICES[0], EspeakVoice(name="xx-nope")))
    runtime = connect_runtime(engine, LLMSettings(), bench.budget, data_dir=tmp_path)
    runner = runner_for(bench.store, runtime, tmp_path, bad_voice, bench.budget, bench.tasks)
    job = done_job(bench.store)
    runner.submit(job)
    await asyncio.wait_for(runner.wait(job.id), PODCAST_TIMEOUT_S)

    after = bench.store.get(job.id)
    assert after is not None and after.status is JobStatus.DONE and after.error is None
    assert after.report == REPORT
    events = [e.data for e in bench.store.events(job.id) if e.type == "podcast"]
    assert events[-1]["stage"] == "error" and "xx-nope" in events[-1]["message"]
    assert bench.store.artifacts(job.id) == []
    assert runner.resume_podcasts() == [], "a failed podcast is not retried on restart"
