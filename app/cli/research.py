"""`fawn research`: one question, researched from the terminal with live progress.

Progress (plan, steps, sources) goes to stderr; the report goes to stdout or `--out`, so
`fawn research "..." > report.md` works. In a terminal the plan is shown for review unless
`--auto-accept`; without a terminal it is accepted as made, with a note.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agents.config import ReportStyle, ResearchOptions, SearchProviderName
from app.cli.errors import fail
from app.settings import Settings, load_settings

if TYPE_CHECKING:
    from agents.events import ResearchEvent
    from agents.research import PlanReviewer
    from agents.state import Plan, PlanReview

_progress = Console(stderr=True, highlight=False, soft_wrap=True)


def research(
    question: Annotated[str, typer.Argument(help="The research question.")],
    provider: Annotated[
        SearchProviderName, typer.Option(help="Where to search: local corpus or the web.")
    ] = "local",
    corpus: Annotated[
        Path | None,
        typer.Option(exists=True, help="Add this file or folder to the local corpus first."),
    ] = None,
    style: Annotated[ReportStyle, typer.Option(help="The report's voice.")] = (
        ReportStyle.ACADEMIC
    ),
    locale: Annotated[str, typer.Option(help="Language of the report (BCP 47).")] = "en-US",
    auto_accept: Annotated[
        bool, typer.Option("--auto-accept", help="Research the plan without review.")
    ] = False,
    coder: Annotated[
        bool, typer.Option("--coder/--no-coder", help="Run analysis steps as sandboxed Python.")
    ] = True,
    max_steps: Annotated[int, typer.Option(min=1, max=10, help="Most steps in a plan.")] = 3,
    out: Annotated[
        Path | None, typer.Option(help="Write the report here instead of to stdout.")
    ] = None,
) -> None:
    """Research a question and write a cited Markdown report.

    Example: fawn research --auto-accept --corpus notes/ "Who founded Arthur's Magazine?"
    """
    if not question.strip():
        raise fail("The question is empty: ask something to research.")
    interactive = not auto_accept and sys.stdin.isatty()
    if not auto_accept and not interactive:
        _progress.print("[dim]stdin is not a terminal: the plan is accepted as made.[/]")
    try:
        options = ResearchOptions(
            provider=provider,
            report_style=style,
            locale=locale,
            auto_accept_plan=not interactive,
            enable_coder=coder,
            max_step_num=max_steps,
        )
    except ValidationError as exc:
        raise fail(
            f"Invalid option: {exc.errors()[0]['msg']} (see `fawn research --help`)."
        ) from None
    settings = load_settings()
    if corpus is not None:
        _add_to_corpus(corpus, settings.data_dir)
    report = _run(settings, question, options, review_plan=_review if interactive else None)
    if out is None:
        typer.echo(report)
    else:
        out.write_text(report, encoding="utf-8")
        _progress.print(f"Report written to {out}")


def _add_to_corpus(path: Path, data_dir: Path) -> None:
    from agents.tools.corpus import LocalCorpus
    from agents.tools.ingest import load_documents
    from agents.tools.search import corpus_path

    result = LocalCorpus(corpus_path(data_dir)).add(load_documents(path))
    _progress.print(
        f"[dim]Corpus: {result.added} passages added, {result.updated} updated, "
        f"{result.unchanged} unchanged from {path}.[/]"
    )


def _run(
    settings: Settings,
    question: str,
    options: ResearchOptions,
    review_plan: PlanReviewer | None,
) -> str:
    """Open the engine, run the research, and return the report."""
    # Imported here so that every other command starts without loading langgraph.
    from agents.research import run_research
    from app.services import open_services

    with ExitStack() as stack:
        with _progress.status("Connecting to the engine ...") as status:
            services = stack.enter_context(
                open_services(
                    settings,
                    on_tick=lambda s: status.update(f"Starting the embedded engine ... {s:.0f} s"),
                )
            )
        result = asyncio.run(
            run_research(
                question,
                options,
                services.runtime,
                on_event=show_event,
                review_plan=review_plan,
            )
        )
    return result.report


def show_event(event: ResearchEvent) -> None:
    """Print one progress event to stderr."""
    match event.kind:
        case "status":
            _progress.print(f"[dim]{escape(event.message)}[/]")
        case "plan":
            _progress.print(plan_table(event.plan))
            if event.fallback_reason:
                _progress.print(
                    f"[yellow]The model's plan was unusable ({escape(event.fallback_reason)}).[/]"
                )
        case "step_started":
            _progress.print(f"[bold]Step {event.index + 1}:[/] {escape(event.title)}")
        case "tool_result":
            _progress.print(f"  [dim]{escape(event.summary)}[/]")
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


def plan_table(plan: Plan) -> Table:
    """The plan as a table of its steps."""
    table = Table("#", "type", "step", title=f"Plan: {escape(plan.title)}", title_justify="left")
    for index, step in enumerate(plan.steps, start=1):
        text = f"{escape(step.title)}\n[dim]{escape(step.description)}[/]"
        table.add_row(str(index), step.step_type.value, text)
    return table


async def _review(plan: Plan) -> PlanReview:
    return await asyncio.to_thread(_ask_review, plan)


def _ask_review(plan: Plan) -> PlanReview:
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
