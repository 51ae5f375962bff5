"""`fawn batch`: many questions as jobs through one budget, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from app.settings import load_settings

if TYPE_CHECKING:
    from app.jobs.batch import BatchRow
    from app.jobs.service import JobService

console = Console(stderr=True, highlight=False)


def batch(
    file: Annotated[Path, typer.Argument(help=".txt (one question per line) or .jsonl.")],
    out: Annotated[Path, typer.Option(help="Folder for the reports and summary.json.")],
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Jobs run at once.")] = 4,
    provider: Annotated[str, typer.Option(help="Default provider: local or web.")] = "local",
    max_steps: Annotated[int, typer.Option(min=1, max=10, help="Most steps a plan has.")] = 3,
) -> None:
    """Research every question in FILE; rerun to skip finished ones and resume the rest.

    Example: fawn batch questions.txt --out reports/ --concurrency 4
    """
    from app.cli.progress import engine_status
    from app.jobs.batch import Batch, read_batch
    from app.jobs.models import JobOptions, JobStatus
    from app.jobs.service import run_jobs
    from app.jobs.store import open_job_store

    settings = load_settings()
    defaults = JobOptions(provider=provider, max_step_num=max_steps, auto_accept_plan=True)
    items = read_batch(file, defaults)
    store = open_job_store(settings)
    work = Batch(items, out, store)
    pending = work.pending()
    console.print(f"{len(items)} questions, {len(items) - len(pending)} already done.")
    if not pending:
        return

    async def run(jobs: JobService) -> list[BatchRow]:
        columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("Researching", total=len(pending))

            def on_done(row: BatchRow) -> None:
                progress.advance(task)
                progress.console.print(f"{_mark(row)} {row.index}: {row.question[:70]}")

            return await work.run(jobs, on_done)

    rows = run_jobs(settings, store, run, concurrency=concurrency, on_status=engine_status(console))
    failed = [row for row in rows if row.status is not JobStatus.DONE]
    console.print(f"Reports and summary.json in {out}; {len(failed)} not done.")
    if any(row.status is JobStatus.AWAITING_PLAN_REVIEW for row in failed):
        console.print(
            "Plans awaiting review: `fawn jobs review ID` for each, then rerun the batch to "
            "write their reports."
        )
    if failed:
        raise typer.Exit(1)


def _mark(row: BatchRow) -> str:
    from app.jobs.models import JobStatus

    if row.status is JobStatus.DONE:
        return "[green]done[/]"
    if row.status is JobStatus.AWAITING_PLAN_REVIEW:
        return f"[yellow]awaiting plan review (fawn jobs review {row.job_id})[/]"
    return f"[red]{row.status}[/]"
