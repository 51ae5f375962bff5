"""Reporter: one focused model call writes the Answer; the rest of the report is assembled.

The model sees the question, the step notes and the registry's passages under their registry
ids. Its answer is cleaned (no reasoning, no loop, no headings), checked (unknown ids and
invented URLs removed) and attributed (uncited sentences that restate a passage get its id).
"""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.runtime import Runtime as GraphRuntime

from agents.citations import check_citations, cited_ids, ground
from agents.events import Phase, ReportChunk, Status
from agents.llm import ModelCalls
from agents.nodes import emit
from agents.prompts import render_messages
from agents.report import NO_ANSWER, STYLE_GUIDES, assemble_report, global_notes, key_points
from agents.runtime import Runtime
from agents.sources import Source
from agents.state import ResearchState, StepResult
from agents.structured import generate_text
from agents.text import overlap, sentences, truncate
from serving.budget import CallClass

ANSWER_MAX_TOKENS = 160
ANSWER_SENTENCES = 3
PASSAGE_CHARS = 700
REPORT_PASSAGES = 4


def best_sources(
    question: str, results: Sequence[StepResult], registry: Sequence[Source]
) -> list[Source]:
    """The REPORT_PASSAGES sources the answer should read: those the notes cite, then those
    sharing most words with the question. A small model answers worse with more passages."""
    cited = {n for r in results for n in cited_ids(global_notes(r, registry))}
    ranked = sorted(
        registry, key=lambda s: (s.id not in cited, -overlap(question, f"{s.title} {s.passage}"))
    )
    return sorted(ranked[:REPORT_PASSAGES], key=lambda s: s.id)


def finish_answer(text: str, registry: Sequence[Source], fallback: str) -> str:
    """The model's answer as one checked, grounded paragraph of at most ANSWER_SENTENCES
    sentences; `fallback` if it is empty.

    Unsupported sentences stay (the direct answer often restates no passage) but uncited.
    """
    flat = " ".join(line.lstrip("#>*- ").strip() for line in text.splitlines() if line.strip())
    checked = " ".join(sentences(check_citations(flat, registry))[:ANSWER_SENTENCES])
    passages = {s.id: s.passage for s in registry}
    return ground(checked, passages, drop_unsupported=False).strip() or fallback


async def reporter(state: ResearchState, runtime: GraphRuntime[Runtime]) -> ResearchState:
    """Write the answer and assemble the cited Markdown report."""
    emit(runtime, Status(message="Writing the report.", phase=Phase.REPORTING))
    question, options = state["question"], state["options"]
    registry = state.get("sources", [])
    results = state.get("step_results", [])
    notes = [global_notes(r, registry) for r in results]
    passages = [
        f"[{s.id}] {s.title}: {truncate(s.passage, PASSAGE_CHARS)}"
        for s in best_sources(question, results, registry)
    ]
    fitted = await runtime.context.context_budget.fit(
        lambda kept: render_messages(
            "reporter",
            question=question,
            notes=kept[: len(notes)],
            passages=kept[len(notes) :],
            style=STYLE_GUIDES[options.report_style],
            locale=options.locale,
        ),
        [*notes, *passages],
        ANSWER_MAX_TOKENS,
    )
    calls = ModelCalls(runtime.context)
    text = await generate_text(
        calls, CallClass.REPORT, fitted.messages, max_tokens=ANSWER_MAX_TOKENS, temperature=0.0
    )
    points = key_points(results, registry)
    answer = finish_answer(text, registry, points[0] if points else NO_ANSWER)
    report = assemble_report(question, answer, results, registry, state.get("notices", []))
    for chunk in report.split("\n## "):
        emit(runtime, ReportChunk(text=chunk if chunk.startswith("# ") else "## " + chunk))
    cited = set(cited_ids(report.split("\n## Sources")[0]))
    marked = [s.model_copy(update={"cited": True}) for s in registry if s.id in cited]
    return {"answer": answer, "report": report, "sources": marked, "usage": calls.usage}
