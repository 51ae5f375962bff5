"""Researcher: searches for a step (two hops), reads the best passages, writes notes citing them.

The model reads at most NOTES_PASSAGES passages, ranked for the question (`rank_for_answer`), so
the two that answer together come first and a small model is not swamped; every passage found is
still registered.

Notes cite passages by the local numbers the prompt showed; the step result keeps the URLs behind
those numbers, so the reporter maps them to registry ids. Notes that cite nothing the sources
support are replaced by the sources' own most relevant sentences, so a step always yields
grounded notes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from langgraph.runtime import Runtime as GraphRuntime
from pydantic import BaseModel, ConfigDict, Field

from agents.citations import ground, strip_unknown_urls
from agents.events import ErrorEvent, StepStarted, ToolResult
from agents.llm import ModelCalls
from agents.markdown import flatten
from agents.nodes import emit
from agents.prompts import render_messages
from agents.retrieval import Gathered, first_query, follow_up_query, rank_for_answer, search_into
from agents.runtime import Runtime
from agents.sources import LocalRefs, Source
from agents.state import ResearchState, StepResult, StepTask
from agents.structured import generate_structured, generate_text
from agents.text import overlap, sentences, truncate
from agents.tools.mcp_steps import step_tools, use_step_tools
from serving.budget import CallClass

NOTES_MAX_TOKENS = 256
QUERY_MAX_TOKENS = 48
PASSAGE_CHARS = 1200
NOTES_PASSAGES = 4
EXTRACT_SENTENCES = 2
NO_SOURCES = "No sources were found for this step."
log = logging.getLogger(__name__)


class SearchQuery(BaseModel):
    """The model's extra search terms."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(max_length=120)


def numbered(sources: Sequence[Source]) -> list[str]:
    """Passages as the prompts show them: `[k] Title: text`, numbered from 1."""
    return [
        f"[{k}] {s.title}: {truncate(s.passage, PASSAGE_CHARS)}" for k, s in enumerate(sources, 1)
    ]


def extractive_notes(question: str, sources: Sequence[Source]) -> str:
    """The sentence of each top source that best matches the question, cited; no model needed."""
    picked = []
    for k, source in enumerate(sources[:EXTRACT_SENTENCES], 1):
        candidates = sentences(source.passage) or [source.passage]
        best = max(candidates, key=lambda sentence: overlap(question, sentence))
        picked.append(f"{best.rstrip('.')} [{k}].")
    return " ".join(picked)


def ground_notes(text: str, question: str, sources: Sequence[Source]) -> tuple[str, str | None]:
    """The model's notes cut to the sentences the shown passages support, each cited, or the
    sources' own sentences if none are left; and the problem to show the user, if any."""
    passages = {k: s.passage for k, s in enumerate(sources, 1)}
    text = flatten(text, keep_headings=True)
    text = ground(strip_unknown_urls(text, ()), passages, drop_unsupported=True, known=question)
    if text:
        return text, None
    if not sources:
        return NO_SOURCES, NO_SOURCES
    # Not a failure the user must hear about: the sources' own sentences are the notes.
    log.info("no note of the model's was supported by its sources; extracted sentences instead")
    return extractive_notes(question, sources), None


async def write_notes(
    calls: ModelCalls,
    runtime: Runtime,
    template: str,
    task: StepTask,
    sources: Sequence[Source],
    findings: Sequence[str] = (),
) -> tuple[str, list[Source], str | None]:
    """Ask the model for notes on `sources`; returns notes, the sources shown, and any fallback."""
    step = f"{task.step.title}. {task.step.description}"
    fitted = await runtime.context_budget.fit(
        lambda kept: render_messages(
            template,
            question=task.question,
            step=step,
            findings=findings,
            passages=kept,
            locale=task.options.locale,
        ),
        numbered(sources),
        NOTES_MAX_TOKENS,
    )
    shown = list(sources[: len(fitted.pieces)])
    text = await generate_text(
        calls, CallClass.RESEARCH, fitted.messages, max_tokens=NOTES_MAX_TOKENS, temperature=0.0
    )
    notes, reason = ground_notes(text, task.question, shown)
    return notes, shown, reason


async def gather(calls: ModelCalls, runtime: GraphRuntime[Runtime], task: StepTask) -> Gathered:
    """Two hops of search: the question-built query, then a follow-up on what it revealed."""
    options, tools = task.options, runtime.context
    gathered = Gathered()
    found = await search_into(
        gathered, tools, options.provider, first_query(task.question, task.step),
        options.max_search_results,
    )  # fmt: skip
    emit(runtime, ToolResult(index=task.index, tool="search", summary=_summary(found)))
    refined = await generate_structured(
        calls,
        CallClass.RESEARCH,
        render_messages(
            "query", question=task.question, step=task.step.title, titles=[s.title for s in found]
        ),
        SearchQuery,
        max_tokens=QUERY_MAX_TOKENS,
        fallback=lambda _reason: SearchQuery(query=""),
    )
    query = follow_up_query(task.question, found, refined.value.query)
    more = await search_into(gathered, tools, options.provider, query, options.max_search_results)
    emit(runtime, ToolResult(index=task.index, tool="search", summary=_summary(more)))
    return gathered


async def researcher(task: StepTask, runtime: GraphRuntime[Runtime]) -> ResearchState:
    """Run one research step: search, read, write cited notes.

    A research step always searches, whatever its `need_search` says: without new sources it
    has nothing to research.
    """
    emit(runtime, StepStarted(**step_fields(task), step_type=task.step.step_type))
    calls = ModelCalls(runtime.context)
    gathered = await gather(calls, runtime, task)
    tools = step_tools(runtime.context.mcp, task.step.step_type)
    await use_step_tools(calls, tools, task, gathered)
    read = rank_for_answer(task.question, gathered.sources)[:NOTES_PASSAGES]
    notes, shown, reason = await write_notes(calls, runtime.context, "researcher", task, read)
    result = step_result(task, notes, shown, [*gathered.errors, *([reason] if reason else [])])
    for error in gathered.errors:
        emit(runtime, ErrorEvent(message=error))
    return {"step_results": [result], "sources": gathered.sources, "usage": calls.usage}


def step_result(
    task: StepTask, notes: str, shown: Sequence[Source], problems: Sequence[str]
) -> StepResult:
    """The result of `task`, its notes citing `shown` by local number."""
    return StepResult(
        **step_fields(task),
        step_type=task.step.step_type,
        notes=notes,
        refs=LocalRefs(urls=[s.url for s in shown]),
        error="; ".join(problems) or None,
    )


def step_fields(task: StepTask) -> dict[str, Any]:
    """The fields that identify a step in results and events."""
    return {"iteration": task.iteration, "index": task.index, "title": task.step.title}


def _summary(found: Sequence[Source]) -> str:
    if not found:
        return "The search found nothing new."
    return "Found " + "; ".join(source.title for source in found) + "."
