"""Batch research: many questions as jobs through one job service and one budget, resumable.

A batch's output dir holds one Markdown report per question and `summary.json`. The summary maps
each question to its job, so a rerun skips questions whose report is written and resumes the jobs
an interrupted run left unfinished (from their checkpoints), instead of starting them again.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from app.jobs.models import Job, JobOptions, JobStatus
from app.jobs.service import JobService
from app.jobs.store import JobStore
from serving.errors import ConfigError

SUMMARY = "summary.json"


class BatchItem(BaseModel):
    """One question of a batch file, with its options."""

    index: int
    question: str
    options: JobOptions


class BatchRow(BaseModel):
    """A question's outcome in summary.json."""

    index: int
    question: str
    job_id: str
    status: JobStatus
    report_file: str | None = None
    error: str | None = None
    sources: int = 0


def read_batch(path: Path, defaults: JobOptions) -> list[BatchItem]:
    """Questions from a .txt file (one per line) or a .jsonl file ({question, ...options})."""
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: give a .txt or .jsonl file of questions.")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix.lower() == ".jsonl":
        return [_jsonl_item(n, line, defaults) for n, line in enumerate(lines, 1) if line.strip()]
    if path.suffix.lower() != ".txt":
        raise ConfigError(f"{path}: a batch file must be .txt (one question per line) or .jsonl.")
    questions = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [BatchItem(index=i, question=q, options=defaults) for i, q in enumerate(questions, 1)]


def _jsonl_item(line_number: int, line: str, defaults: JobOptions) -> BatchItem:
    try:
        record: dict[str, Any] = json.loads(line)
        question = str(record.pop("question")).strip()
        options = JobOptions.model_validate({**defaults.model_dump(), **record})
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise ConfigError(
            f'Line {line_number}: expected {{"question": ..., <options>}} ({exc}).'
        ) from exc
    return BatchItem(index=line_number, question=question, options=options)


def report_filename(item: BatchItem) -> str:
    """`007-who-founded-arthurs-magazine.md`: ordered, readable, filesystem-safe."""
    slug = re.sub(r"[^a-z0-9]+", "-", item.question.lower()).strip("-")[:60] or "question"
    return f"{item.index:03d}-{slug}.md"


class Batch:
    """Runs a batch into `out_dir`, recording progress in its summary.json."""

    def __init__(self, items: list[BatchItem], out_dir: Path, store: JobStore) -> None:
        self.items = items
        self.out_dir = out_dir
        self.store = store
        out_dir.mkdir(parents=True, exist_ok=True)
        self.rows = self._load_summary()

    def pending(self) -> list[BatchItem]:
        """Questions without a written report."""
        return [item for item in self.items if not self._finished(item)]

    async def run(
        self, service: JobService, on_done: Callable[[BatchRow], None] | None = None
    ) -> list[BatchRow]:
        """Run every pending question; returns the summary rows in question order."""
        pending = self.pending()
        jobs = [await self._job_for(item, service) for item in pending]

        async def finish(item: BatchItem, job: Job) -> None:
            await service.wait(job.id)
            row = self._record(item, job.id)
            if on_done:
                on_done(row)

        await asyncio.gather(*(finish(item, job) for item, job in zip(pending, jobs, strict=True)))
        return [self.rows[item.index] for item in self.items if item.index in self.rows]

    def _finished(self, item: BatchItem) -> bool:
        row = self.rows.get(item.index)
        return bool(
            row
            and row.question == item.question
            and row.status is JobStatus.DONE
            and row.report_file
            and (self.out_dir / row.report_file).is_file()
        )

    async def _job_for(self, item: BatchItem, service: JobService) -> Job:
        """The question's job from an earlier run, started again (a failed one retried), or a
        new one; a done job without its report file (reviewed and run by `fawn jobs review`,
        say) only has its report written."""
        row = self.rows.get(item.index)
        if row and row.question == item.question:
            job = self.store.get(row.job_id)
            if job is not None and job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
                return await service.retry(job.id)
            if job is not None:
                service.start(job)
                return job
        job = await service.submit(item.question, item.options)
        self.rows[item.index] = BatchRow(
            index=item.index, question=item.question, job_id=job.id, status=job.status
        )
        self._save_summary()
        return job

    def _record(self, item: BatchItem, job_id: str) -> BatchRow:
        job = self.store.get(job_id)
        status = job.status if job else JobStatus.FAILED
        row = BatchRow(
            index=item.index,
            question=item.question,
            job_id=job_id,
            status=status,
            error=job.error if job else "The job disappeared from the store.",
            sources=len(job.sources) if job else 0,
        )
        if job and job.status is JobStatus.DONE and job.report is not None:
            row.report_file = report_filename(item)
            (self.out_dir / row.report_file).write_text(job.report, encoding="utf-8")
        self.rows[item.index] = row
        self._save_summary()
        return row

    def _load_summary(self) -> dict[int, BatchRow]:
        path = self.out_dir / SUMMARY
        if not path.is_file():
            return {}
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {row["index"]: BatchRow.model_validate(row) for row in rows}

    def _save_summary(self) -> None:
        rows = [self.rows[i].model_dump(mode="json") for i in sorted(self.rows)]
        path = self.out_dir / SUMMARY
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=2), encoding="utf-8")
        tmp.replace(path)
