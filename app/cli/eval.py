"""`fawn eval`: measure the research pipeline on a benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agents.evaluation.hotpotqa import (
    EvalResults,
    Isolate,
    Question,
    QuestionResult,
    Research,
    build_corpus,
    gold_hidden,
    load_questions,
    open_results,
    pipeline,
    run_eval,
)
from agents.tools.corpus import LocalCorpus
from agents.tools.ingest import load_documents
from agents.tools.search import corpus_path
from app.cli.progress import engine_status
from app.services import Services, run_connected
from app.settings import Settings, load_settings

app = typer.Typer(help="Measure the research pipeline.", no_args_is_help=True)
console = Console()


@app.command()
def hotpotqa(
    data: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="HotpotQA JSON (original format).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            dir_okay=False, help="Results JSON, written after each question; rerun resumes."
        ),
    ],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Eval data dir for its corpus; default <data dir>/eval/hotpotqa."),
    ] = None,
    unanswerable: Annotated[
        bool,
        typer.Option(
            help="Run each question without its gold paragraphs and score abstentions "
            "(an honest report says the evidence is missing)."
        ),
    ] = False,
) -> None:
    """Answer HotpotQA questions from their own Wikipedia paragraphs and score the answers.

    Example: fawn eval hotpotqa --data hotpotqa-dev-20.json --out results.json --limit 5
    """
    settings = eval_settings(load_settings(), data_dir)
    questions = load_questions(data, limit)
    documents = build_corpus(data, settings.data_dir)
    hidden = ", each without its gold paragraphs" if unanswerable else ""
    console.print(
        f"Corpus: {documents} paragraphs from {data.name} in {settings.data_dir} "
        f"({len(questions)} questions{hidden})"
    )
    isolate = gold_isolation(data, settings) if unanswerable else None

    async def run(services: Services) -> EvalResults:
        results = open_results(out, data, services.endpoint.model, unanswerable=unanswerable)
        todo = len([q for q in questions if q.id not in results.finished_ids()])
        if todo < len(questions):
            done = len(questions) - todo
            console.print(f"Resuming {out}: {done} of {len(questions)} questions already done.")
        research = pipeline(services.runtime)
        return await _run(questions, research, results, out, todo, isolate)

    results = run_connected(settings, run, on_status=engine_status(console))
    console.print(summary_table(results))
    console.print(f"Results: {out}")


def eval_settings(settings: Settings, data_dir: Path | None) -> Settings:
    """The settings with the eval's own data dir, so its corpus never mixes with the user's."""
    return settings.model_copy(
        update={
            "data_dir": data_dir or settings.data_dir / "eval" / "hotpotqa",
            "models_dir": settings.model_cache,
        }
    )


def gold_isolation(data: Path, settings: Settings) -> Isolate:
    """Each question's run on the eval corpus without its own gold paragraphs."""
    corpus = LocalCorpus(corpus_path(settings.data_dir))
    documents = list(load_documents(data))
    return lambda question: gold_hidden(corpus, documents, question)


async def _run(
    questions: list[Question],
    research: Research,
    results: EvalResults,
    out: Path,
    todo: int,
    isolate: Isolate | None = None,
) -> EvalResults:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("HotpotQA", total=todo)

        def started(question: Question) -> None:
            progress.update(task, description=_clip(question.question, 50))

        def finished(row: QuestionResult) -> None:
            progress.console.print(_row_line(row))
            progress.advance(task)

        return await run_eval(
            questions,
            research,
            results,
            out,
            on_start=started,
            on_result=finished,
            isolate=isolate,
        )


def _row_line(row: QuestionResult) -> str:
    if row.error:
        return f"[red]✗[/] {_clip(row.question, 60)}  [red]{_clip(row.error, 100)}[/]"
    mark = "[green]✓[/]" if row.answer_recall else "[blue]∅[/]" if row.abstained else "[yellow]·[/]"
    return (
        f"{mark} {_clip(row.question, 60)}  gold {row.gold_answer!r}  F1 {row.f1:.2f}  "
        f"titles {row.title_recall:.1f}  {row.wall_s:.0f} s  {row.llm_calls} calls"
    )


def summary_table(results: EvalResults) -> Table:
    """The totals of a results file as a table."""
    totals = results.totals
    mode = " (without gold paragraphs)" if results.unanswerable else ""
    table = Table(title=f"HotpotQA{mode}: {results.model}", show_header=True)
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    if totals is None:
        table.add_row("questions", "0")
        return table
    rows = [
        ("questions (failed)", f"{totals.questions} ({totals.failed})"),
        (
            "answer recall",
            f"{totals.answer_recall:.1%} ({totals.answers_found}/{totals.questions})",
        ),
        ("abstained (evidence missing)", f"{totals.abstention:.1%}"),
        ("wrong answer stated", f"{totals.wrong_answer:.1%}"),
        ("cited sentences supported", f"{totals.cited_supported:.1%}"),
        ("exact match", f"{totals.exact_match:.1%}"),
        ("F1", f"{totals.f1:.3f}"),
        ("supporting titles cited: recall", f"{totals.title_recall:.1%}"),
        ("supporting titles cited: precision", f"{totals.title_precision:.1%}"),
        ("supporting titles retrieved: recall", f"{totals.source_title_recall:.1%}"),
        ("gold answer anywhere in report", f"{totals.report_recall:.1%}"),
        ("wall time median / mean", f"{totals.median_wall_s:.0f} s / {totals.mean_wall_s:.0f} s"),
        ("LLM calls (mean)", f"{totals.mean_llm_calls:.1f}"),
        (
            "tokens prompt / completion (mean)",
            f"{totals.mean_prompt_tokens:.0f} / {totals.mean_completion_tokens:.0f}",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
