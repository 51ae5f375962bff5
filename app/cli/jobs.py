"""`fawn jobs list | show ID | review ID | cancel ID | retry ID`: the data dir's job store."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.cli.errors import fail
from app.jobs.models import Job, JobStatus
from app.jobs.store import JobStore, open_job_store
from app.settings import load_settings

app = typer.Typer(
    help="List, inspect, review, cancel and retry research jobs.", no_args_is_help=True
)
console = Console(highlight=False)


def _store() -> JobStore:
    return open_job_store(load_settings())


def _job(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    if job is None:
        raise fail(f"No job {job_id!r}: see `fawn jobs list` for the ids.")
    return job


@app.command("list")
def list_jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
) -> None:
    """The newest jobs.

    Example: fawn jobs list --status failed
    """
    page = _store().list(status=status, limit=limit)
    table = Table("id", "status", "created", "question", title=f"{page.total} jobs")
    for job in page.jobs:
        table.add_row(job.id, job.status.value, f"{job.created_at:%Y-%m-%d %H:%M}", job.question)
    console.print(table)


@app.command()
def show(
    job_id: str, report: Annotated[bool, typer.Option(help="Print the report.")] = False
) -> None:
    """A job's status, plan, sources and error (and its report with --report)."""
    store = _store()
    job = _job(store, job_id)
    console.print(f"[bold]{job.question}[/]\n{job.id}  {job.status.value}  attempts {job.attempts}")
    if job.error:
        console.print(f"[red]{job.error}[/]")
    if job.status is JobStatus.AWAITING_PLAN_REVIEW:
        console.print(f"The plan awaits your review: `fawn jobs review {job.id}`.")
    for number, step in enumerate((job.plan or {}).get("steps", []), 1):
        console.print(f"  step {number}: {step.get('title', '')}")
    for source in job.sources:
        console.print(f"  [{source.get('id')}] {source.get('title')} {source.get('url')}")
    if report and job.report:
        console.print(job.report, markup=False)


@app.command()
def review(
    job_id: str,
    accept: Annotated[
        bool, typer.Option("--accept", help="Accept the plan as it is, without asking.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write the report here instead of to stdout.")
    ] = None,
) -> None:
    """Review the plan of a job that awaits it (accept, or type new steps), then research it here.

    Example: fawn jobs review 1a2b3c --accept --out report.md
    """
    from agents.state import Plan, PlanReview
    from app.cli.research import ask_review, deliver, plan_table, run_in_terminal
    from app.jobs.service import JobService

    settings = load_settings()
    store = _store()
    try:
        job = JobService(store).awaiting_review(job_id)
        plan = Plan.model_validate(job.plan)
        console.print(plan_table(plan))
        if accept:
            verdict = PlanReview()
        elif sys.stdin.isatty():
            verdict = ask_review(plan)
        else:
            raise fail("stdin is not a terminal: pass --accept to accept the plan as it is.")
        # Recorded once the engine answers, so a failed connection leaves the job awaiting.
        ended = run_in_terminal(
            settings,
            store,
            lambda jobs: jobs.review(job_id, verdict),
            interactive=sys.stdin.isatty(),
        )
        deliver(store, ended, out)
    finally:
        store.close()


@app.command()
def cancel(job_id: str) -> None:
    """Cancel a job; a runner working on it stops at its next step."""
    from app.jobs.service import JobService

    store = _store()
    try:
        asyncio.run(JobService(store).cancel(job_id, reason="Cancelled from the command line."))
    finally:
        store.close()
    console.print(f"Job {job_id} cancelled.")


@app.command()
def retry(
    job_id: str,
    out: Annotated[
        Path | None, typer.Option(help="Write the report here instead of to stdout.")
    ] = None,
) -> None:
    """Run a failed or cancelled job again here, from its last completed step, with progress.

    Example: fawn jobs retry 1a2b3c --out report.md
    """
    from app.cli.research import deliver, run_in_terminal
    from app.jobs.models import JobOptions
    from app.jobs.service import JobService

    settings = load_settings()
    store = open_job_store(settings)
    try:
        job = JobService(store).retryable(job_id)  # refused before the engine starts
        reviewed = not JobOptions.model_validate(job.options).auto_accept_plan
        ended = run_in_terminal(
            settings,
            store,
            lambda jobs: jobs.retry(job_id),
            interactive=reviewed and sys.stdin.isatty(),
        )
        deliver(store, ended, out)
    finally:
        store.close()
