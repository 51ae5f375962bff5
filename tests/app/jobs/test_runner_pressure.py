"""Running jobs hear of memory pressure: a real monitor tells the runner, which logs it per job.

The model is scripted and slow on purpose (the job must still be running when pressure comes);
the store, the checkpoints and the monitor with its hysteresis are the real ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from agents.graph import sqlite_checkpointer
from app.jobs.models import JobOptions
from app.jobs.runner import LocalJobRunner
from app.jobs.store import SqliteJobStore
from serving.observability import gate_metrics
from serving.pressure import PressureMonitor, PressureSettings, SettableSource
from tests.agents.conftest import Script, scripted_runtime

SLOW_S = 60.0
ROLES = ("route", "plan", "query", "notes", "answer", "small_talk")


def _pressure_events(store: SqliteJobStore, job_id: str) -> list[dict[str, object]]:
    return [
        event.data
        for event in store.events(job_id)
        if event.type == "status" and "under_pressure" in event.data
    ]


async def test_running_jobs_hear_when_memory_pressure_starts_and_clears(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    runtime = scripted_runtime(Script(delays=dict.fromkeys(ROLES, SLOW_S)))
    runner = LocalJobRunner(
        store, runtime, lambda: sqlite_checkpointer(tmp_path / "checkpoints.sqlite3")
    )
    source = SettableSource()
    monitor = PressureMonitor(
        [source],
        PressureSettings(clear_after_s=0),
        metrics=gate_metrics(CollectorRegistry()),
    )
    monitor.subscribe(runner.pressure_changed)
    options = JobOptions(auto_accept_plan=True).model_dump(mode="json")
    running = store.create("Which magazine was started first?", options)
    queued = store.create("Who founded Arthur's Magazine?", options)
    runner.submit(running)
    try:
        # Sampled from another thread, as the monitor's own sampler does.
        source.set(kv_usage=0.95)
        await asyncio.to_thread(monitor.sample_once)
        source.set(kv_usage=0.97)  # only the reason changes: no second message
        await asyncio.to_thread(monitor.sample_once)
        source.set(kv_usage=0.1)
        await asyncio.to_thread(monitor.sample_once)
        await asyncio.sleep(0.1)  # the announcements run on the runner's loop

        heard = _pressure_events(store, running.id)
        assert [event["under_pressure"] for event in heard] == [True, False]
        assert "KV cache 95% full" in str(heard[0]["message"])
        assert "nothing is lost" in str(heard[0]["message"])
        assert "cleared" in str(heard[1]["message"])
        assert _pressure_events(store, queued.id) == []
    finally:
        await runner.shutdown()
        store.close()
