"""`fawn worker`: run research jobs from the job store, beside any number of other workers."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from rich.console import Console

from app.cli.progress import engine_status
from app.jobs.service import job_service
from app.jobs.store import open_job_store
from app.services import Services, run_connected
from app.settings import load_settings

console = Console(stderr=True, highlight=False)


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs run at once (default: jobs.concurrency, 4)."),
    ] = None,
) -> None:
    """Run queued jobs until stopped (Ctrl-C or SIGTERM); stopped jobs go to other workers.

    Every worker on the same data dir (SQLite) or FAWN_DATABASE_URL (Postgres, any machine)
    takes jobs from one queue: each job runs in exactly one of them, and the jobs of a worker
    that dies resume in another from their last completed step.

    Example: FAWN_DATABASE_URL=postgresql://fawn:secret@db/fawn fawn worker --concurrency 2
    """
    settings = load_settings()
    store = open_job_store(settings)

    async def work(services: Services) -> None:
        jobs = job_service(settings, services, store, worker=True, concurrency=concurrency)
        runner = jobs.worker
        runs = asyncio.current_task()
        assert runner is not None and runs is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runs.cancel)
        console.print(
            f"Worker {runner.name} runs up to {runner.runner.settings.concurrency} jobs at once "
            f"from {store.where}",
            soft_wrap=True,
        )
        try:
            await runner.run()
        except asyncio.CancelledError:
            console.print("Stopping: running jobs go back to the queue for the next worker.")
        finally:
            await jobs.shutdown()

    try:
        run_connected(settings, work, on_status=engine_status(console))
    finally:
        store.close()
