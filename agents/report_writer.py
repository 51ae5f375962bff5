"""The full report, for models able to write one: sections that synthesize what the research found.

The outline comes from the plan and its findings: one section per step that produced grounded
notes, in plan order, at most MAX_SECTIONS. Each section is written in parallel, in the `report`
call class, from its own step's notes (already citing registry ids) and the passages those notes
cite, in the run's style and locale, capped at the style's length. What comes back is cleaned
(one plain paragraph, no headings), its citations checked against the registry and against their
passages (`agents.support.verify`: an unsupported sentence goes), and cut of sentences that repeat
the answer or an earlier section. A section that comes back empty falls back to its step's notes;
a report with no section left raises `ReportNotWritten`, and the reporter writes the answer card.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agents.citations import check_citations, cited_ids, remap_citations
from agents.config import ReportStyle, ResearchOptions
from agents.llm import ModelCalls
from agents.markdown import escape, flatten, prose
from agents.prompts import render_messages
from agents.report import STYLE_GUIDES, code_block, global_notes
from agents.sources import Source
from agents.state import StepResult
from agents.structured import generate_text
from agents.support import SupportCheck, verify
from agents.text import content_words, sentences, truncate
from serving.budget import CallClass

MAX_SECTIONS = 4
PASSAGE_CHARS = 1200
# Words a section may have, by style; completions are capped at about twice that in tokens.
SECTION_WORDS: dict[ReportStyle, int] = {
    ReportStyle.ACADEMIC: 180,
    ReportStyle.POPULAR_SCIENCE: 150,
    ReportStyle.NEWS: 120,
    ReportStyle.SOCIAL_MEDIA: 60,
    ReportStyle.STRATEGIC_INVESTMENT: 150,
}
TOKENS_PER_WORD = 2
# A sentence whose content words are mostly in one said before repeats it.
REPEAT_OVERLAP = 0.8

SectionSink = Callable[[int, str], None]


class ReportNotWritten(Exception):
    """The full report could not be written; the reporter falls back to the answer card."""


@dataclass(frozen=True)
class Outline:
    """One planned section: its title, the step result it is written from."""

    title: str
    result: StepResult


def outline(results: Sequence[StepResult], registry: Sequence[Source]) -> list[Outline]:
    """The report's sections: each step with grounded, cited notes, in plan order."""
    sections = [
        Outline(result.title.strip() or f"Step {result.index + 1}", result)
        for result in results
        if cited_ids(global_notes(result, registry)) or result.code is not None
    ]
    return sections[:MAX_SECTIONS]


def cut_repeats(text: str, said: Sequence[str]) -> str:
    """`text` without sentences that repeat one in `said` or an earlier one of its own."""
    seen = [set(content_words(remap_citations(s, {}))) for s in said]
    kept = []
    for sentence in sentences(text):
        words = set(content_words(remap_citations(sentence, {})))
        if not words or any(len(words & old) / len(words) >= REPEAT_OVERLAP for old in seen):
            continue
        seen.append(words)
        kept.append(sentence)
    return " ".join(kept)


def capped(text: str, max_words: int) -> str:
    """`text` cut to whole sentences within `max_words` words (at least its first sentence)."""
    kept: list[str] = []
    count = 0
    for sentence in sentences(text):
        count += len(sentence.split())
        if kept and count > max_words:
            break
        kept.append(sentence)
    return " ".join(kept)


async def write_section(
    calls: ModelCalls,
    question: str,
    answer: str,
    section: Outline,
    registry: Sequence[Source],
    options: ResearchOptions,
    check: SupportCheck,
) -> str:
    """One section's checked paragraph; its step's notes when the model's text does not hold."""
    notes = global_notes(section.result, registry)
    by_id = {source.id: source for source in registry}
    cited = [by_id[n] for n in cited_ids(notes) if n in by_id]
    words = SECTION_WORDS[options.report_style]
    messages = render_messages(
        "section",
        question=question,
        answer=remap_citations(answer, {}),
        title=section.title,
        notes=notes,
        passages=[f"[{s.id}] {s.title}: {truncate(s.passage, PASSAGE_CHARS)}" for s in cited],
        style=STYLE_GUIDES[options.report_style],
        words=words,
        locale=options.locale,
    )
    text = await generate_text(
        calls, CallClass.REPORT, messages, max_tokens=words * TOKENS_PER_WORD, temperature=0.0
    )
    flat = flatten(text)
    passages = {s.id: s.passage for s in cited}
    verified = await verify(check_citations(flat, cited), passages, check, drop_unsupported=True)
    return capped(verified.text, words) or notes


async def write_sections(
    calls: ModelCalls,
    question: str,
    answer: str,
    results: Sequence[StepResult],
    registry: Sequence[Source],
    options: ResearchOptions,
    check: SupportCheck,
    on_section: SectionSink,
) -> list[str]:
    """Every section as Markdown (`## title`, text, code), written in parallel and handed to
    `on_section` in outline order as soon as it and those before it are done."""
    planned = outline(results, registry)
    if not planned:
        raise ReportNotWritten("no step produced cited findings to write sections from")
    tasks = [
        asyncio.ensure_future(
            write_section(calls, question, answer, section, registry, options, check)
        )
        for section in planned
    ]
    said = sentences(answer)
    written: list[str] = []
    try:
        for position, (section, task) in enumerate(zip(planned, tasks, strict=True)):
            text = cut_repeats(await task, said)
            said += sentences(text)
            markdown = _section_markdown(section, text)
            if markdown:
                written.append(markdown)
                on_section(position, markdown)
    finally:
        for task in tasks:
            task.cancel()
    if not written:
        raise ReportNotWritten("every section came back empty")
    return written


def _section_markdown(section: Outline, text: str) -> str:
    parts = [f"## {escape(section.title)}"]
    if text:
        parts.append(prose(text))
    if section.result.code is not None:
        parts.append(code_block(section.result.code))
    return "\n\n".join(parts) if len(parts) > 1 else ""
