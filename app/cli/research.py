"""`fawn research`: one question as a stored job, followed live from the terminal.

The job lives in the data dir's job store (the one `fawn api` and `fawn jobs` read) and runs
through the job service with the store's checkpointer, so an interrupted or failed run can be
inspected with `fawn jobs show ID` and retried from its last completed step. Progress (plan,
steps, sources) is read from the job's event log and goes to stderr; the report goes to stdout
or `--out`, so `fawn research "..." > report.md` works. In a terminal the plan is shown for
review unless `--auto-accept`; without a terminal it is accepted as made, with a note.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agents.config import ReportMode, ReportStyle, SearchProviderName
from app.cli.errors import fail
from app.cli.progress import engine_status
from app.jobs.models import JobOptions, JobStatus
from app.settings import Settings, load_settings

if TYPE_CHECKING:
    from agents.events import ResearchEvent
    from agents.state import Plan, PlanReview
    from app.jobs.models import Job, JobEvent
    from app.jobs.service import JobService
    from app.jobs.store import JobStore

_progress = Console(stderr=True, highlight=False, soft_wrap=True)
EXIT_INTERRUPTED = 130


def research(
    question: Annotated[str, typer.Argument(help="The research question.")],
    provider: Annotated[
        SearchProviderName,
        typer.Option(
            help="Where to search: local (the corpus), web, or mcp:NAME (the search tool of "
            "the MCP server configured as NAME; `fawn mcp list` shows them)."
        ),
    ] = "local",
    corpus: Annotated[
        Path | None,
        typer.Option(exists=True, help="Add this file or folder to the local corpus first."),
    ] = None,
    style: Annotated[ReportStyle, typer.Option(help="The report's voice.")] = (
        ReportStyle.ACADEMIC
    ),
    locale: Annotated[str, typer.Option(help="Language of the report (BCP 47).")] = "en-US",
    report: Annotated[
        ReportMode,
        typer.Option(
            "--report",
            help="full: a report in sections; card: the short answer card; auto: what the "
            "served model declares it can write.",
        ),
    ] = ReportMode.AUTO,
    auto_accept: Annotated[
        bool, typer.Option("--auto-accept", help="Research the plan without review.")
    ] = False,
    coder: Annotated[
        bool, typer.Option("--coder/--no-coder", help="Run analysis steps as sandboxed Python.")
    ] = True,
    max_steps: Annotated[int, typer.Option(min=1, max=10, help="Most steps in a plan.")] = 3,
    podcast: Annotated[
        bool,
        typer.Option(
            "--podcast",
            help="Also make a two-host audio summary, stored with the job; with --out it is "
            "written beside the report as <out stem>.wav.",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write the report here instead of to stdout.")
    ] = None,
) -> None:
    """Research a question as a stored job and write a cited Markdown report.

    Example: fawn research --auto-accept --corpus notes/ "Who founded Arthur's Magazine?"
    """
    if not question.strip():
        raise fail("The question is empty: ask something to research.")
    if podcast and out is not None and out.suffix.lower() == ".wav":
        raise fail(f"--out {out} would be overwritten by the podcast: give the report a .md name.")
    interactive = not auto_accept and sys.stdin.isatty()
    if not auto_accept and not interactive:
        _progress.print("[dim]stdin is not a terminal: the plan is accepted as made.[/]")
    try:
        options = JobOptions(
            provider=provider,
            report_style=style,
            report_mode=report,
            locale=locale,
            auto_accept_plan=not interactive,
            enable_coder=coder,
            max_step_num=max_steps,
            podcast=podcast,
        )
    except ValidationError as exc:
        raise fail(
            f"Invalid option: {exc.errors()[0]['msg']} (see `fawn research --help`)."
        ) from None
    # Imported here so that every other command starts without loading langgraph.
    from agents.research import initial_state

    initial_state(question, options)  # a question the graph would refuse fails before any job
    settings = load_settings()
    settings.mcp.check_provider(provider)
    if podcast:
        _check_speech(settings)
    if corpus is not None:
        _add_to_corpus(corpus, settings.data_dir)
    _research_job(settings, question, options, interactive=interactive, out=out)


def _check_speech(settings: Settings) -> None:
    """Fail in a moment, before the engine starts, if the speech backend cannot speak."""
    from agents.podcast import speech_backend

    asyncio.run(speech_backend(settings.tts).check())


def _add_to_corpus(path: Path, data_dir: Path) -> None:
    from agents.tools.corpus import LocalCorpus
    from agents.tools.ingest import load_documents
    from agents.tools.search import corpus_path

    result = LocalCorpus(corpus_path(data_dir)).add(load_documents(path))
    _progress.print(
        f"[dim]Corpus: {result.added} passages added, {result.updated} updated, "
        f"{result.unchanged} unchanged from {path}.[/]"
    )


def _research_job(
    settings: Settings, question: str, options: JobOptions, *, interactive: bool, out: Path | None
) -> None:
    """Store the job, run it to its end with live progress, and deliver what it made."""
    from app.jobs.store import open_job_store

    store = open_job_store(settings)
    try:
        job = run_in_terminal(
            settings, store, lambda jobs: jobs.submit(question, options), interactive=interactive
        )
        deliver(store, job, out)
    finally:
        store.close()


def run_in_terminal(
    settings: Settings,
    store: JobStore,
    queue: Callable[[JobService], Awaitable[Job]],
    *,
    interactive: bool,
) -> Job:
    """Connect, queue the job (`queue`: submit, retry or review) and run it here to its end,
    with its progress on stderr and, `interactive`, its plan reviews asked in the terminal."""
    from app.jobs.service import run_job_here

    queued: list[str] = []

    def announce(job: Job) -> None:
        queued.append(job.id)
        _progress.print(f"Job {job.id}: follow with `fawn jobs show {job.id}`")

    try:
        return run_job_here(
            settings,
            store,
            queue,
            on_event=show_job_event,
            review=_review_in_terminal if interactive else None,
            on_queued=announce,
            on_status=engine_status(_progress),
        )
    except KeyboardInterrupt:
        for job_id in queued:
            _progress.print(
                f"[yellow]Interrupted: job {job_id} is cancelled; `fawn jobs retry {job_id}` "
                "resumes it where it stopped.[/]"
            )
        raise typer.Exit(EXIT_INTERRUPTED) from None


async def _review_in_terminal(plan: Plan) -> PlanReview:
    return await asyncio.to_thread(ask_review, plan)


def deliver(store: JobStore, job: Job, out: Path | None) -> None:
    """Write the report (and the podcast audio); a failed job exits 2 with its cause."""
    if job.status is JobStatus.AWAITING_PLAN_REVIEW:
        raise fail(
            f"Job {job.id} awaits its plan review: `fawn jobs review {job.id}` shows the plan, "
            "takes your verdict and researches it."
        )
    if job.status is not JobStatus.DONE or job.report is None:
        cause = escape(job.error or "no report was made")
        raise fail(
            f"Job {job.id} {job.status.value}: {cause}. Inspect it with `fawn jobs show {job.id}`; "
            f"`fawn jobs retry {job.id}` resumes it from its last completed step."
        )
    if out is None:
        typer.echo(job.report)
    else:
        out.write_text(job.report, encoding="utf-8")
        _progress.print(f"Report written to {out}")
    if JobOptions.model_validate(job.options).podcast:
        _deliver_podcast(store, job, out)


def _deliver_podcast(store: JobStore, job: Job, out: Path | None) -> None:
    from agents.podcast import AudioFormat
    from app.jobs.podcast import audio_artifact, last_podcast_event

    found = store.get_artifact(job.id, audio_artifact(AudioFormat.WAV))
    if found is None:
        last = last_podcast_event(store, job.id)
        cause = last.message if last is not None else "it was never started"
        raise fail(f"The report is done, but the podcast failed: {escape(cause)}")
    if out is None:
        _progress.print(
            f"Podcast stored with job {job.id}: with `fawn api` running, "
            f"GET /api/research/{job.id}/podcast (.wav; ?format=ogg or mp3)."
        )
        return
    audio = out.with_suffix(".wav")
    audio.write_bytes(found[1])
    _progress.print(f"Podcast written to {audio}")


def show_job_event(event: JobEvent) -> None:
    """Print one entry of a job's event log to stderr (the report itself is not echoed)."""
    from agents.events import EVENT_ADAPTER

    if event.type == "status" and "status" in event.data:
        _show_status_change(event.data)
    elif event.type == "plan_review":
        steps = event.data.get("steps") or []
        edited = event.data.get("action") == "edit"
        _progress.print(f"[bold]Plan {f'edited: {len(steps)} steps' if edited else 'accepted'}.[/]")
    elif event.type == "podcast":
        message = escape(str(event.data.get("message", "")))
        _progress.print(f"[dim]Podcast ({event.data.get('stage')}): {message}[/]")
    elif event.type != "report_chunk":
        try:
            research_event = EVENT_ADAPTER.validate_python({"kind": event.type, **event.data})
        except ValidationError:
            return  # a kind this version does not know how to show
        show_event(research_event)


def _show_status_change(data: dict[str, object]) -> None:
    status = data.get("status")
    if status == JobStatus.AWAITING_PLAN_REVIEW:
        _progress.print("[bold]The plan awaits review.[/]")
    elif status in (JobStatus.FAILED, JobStatus.CANCELLED):
        cause = f": {escape(str(data['error']))}" if data.get("error") else ""
        _progress.print(f"[red]Job {status}{cause}[/]")


def show_event(event: ResearchEvent) -> None:
    """Print one progress event to stderr."""
    match event.kind:
        case "status":
            _progress.print(f"[dim]{escape(event.message)}[/]")
        case "plan":
            _progress.print(plan_table(event.plan))
            if event.fallback_reason:
                _progress.print(f"[yellow]{escape(event.fallback_reason)}[/]")
        case "step_started":
            _progress.print(f"[bold]Step {event.index + 1}:[/] {escape(event.title)}")
        case "tool_result":
            _progress.print(f"  [dim]{escape(event.summary)}[/]")
        case "tool_call":
            outcome = f"[red]{escape(event.error)}[/]" if event.error else escape(event.summary)
            _progress.print(f"  [dim]MCP {escape(event.server)}/{escape(event.tool)}:[/] {outcome}")
        case "source_added":
            source = event.source
            _progress.print(
                f"  [cyan]\\[{source.id}][/] {escape(source.title)} [dim]{escape(source.url)}[/]"
            )
        case "step_done":
            note = f" [yellow]({escape(event.error)})[/]" if event.error else ""
            _progress.print(f"  [green]Step {event.index + 1} done[/]{note}")
        case "error":
            _progress.print(f"[red]{escape(event.message)}[/]")
        case "done":
            _progress.print(f"[dim]Done: {event.llm_calls} LLM calls in {event.wall_s:.0f} s.[/]")
            if event.citations and event.citations.cited_sentences:
                support = event.citations
                _progress.print(
                    f"[dim]Citations: {support.supported} of {support.cited_sentences} cited "
                    f"sentences supported by their source ({support.method} check).[/]"
                )


def plan_table(plan: Plan) -> Table:
    """The plan as a table of its steps."""
    table = Table("#", "type", "step", title=f"Plan: {escape(plan.title)}", title_justify="left")
    for index, step in enumerate(plan.steps, start=1):
        text = f"{escape(step.title)}\n[dim]{escape(step.description)}[/]"
        table.add_row(str(index), step.step_type.value, text)
    return table


def ask_review(plan: Plan) -> PlanReview:
    """Ask in the terminal: accept the plan, or type new steps."""
    from agents.state import PlanReview, Step, StepType

    answer = typer.prompt("Accept this plan? [a]ccept / [e]dit", default="a")
    if not answer.strip().lower().startswith("e"):
        return PlanReview()
    _progress.print("Type one step per line (title, or title: description); an empty line ends.")
    steps: list[Step] = []
    while line := typer.prompt(f"Step {len(steps) + 1}", default="", show_default=False).strip():
        title, _, description = line.partition(":")
        steps.append(
            Step(
                title=title.strip(),
                description=description.strip() or title.strip(),
                step_type=StepType.RESEARCH,
                need_search=True,
            )
        )
    return PlanReview(action="edit", steps=steps) if steps else PlanReview()
