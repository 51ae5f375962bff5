"""The Markdown report, assembled deterministically around the model's answer.

Layout: `# question`, `## Answer` (the model's focused answer, first sentence answers the
question), `## Key points` (the evidence the answer was read from, then the first finding of
each step), `## Analysis` (every step's notes, code, output and figures as data: URIs),
`## Notes` (what went differently, if anything) and `## Sources`, written from the registry.
Step notes cite local numbers; they are mapped to registry ids here. Every piece of untrusted
text (the question, titles, passages, model prose) passes the citation check and is escaped
(`agents.markdown`) as it is placed, so no source can inject Markdown or HTML into the report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agents.answerability import NOT_ANSWERED
from agents.citations import check_citations, remap_citations, sources_section
from agents.config import ReportStyle
from agents.markdown import escape, prose
from agents.sources import Source
from agents.state import CodeRun, StepResult
from agents.text import sentences, truncate

# The default voice is plain and precise already; every extra rule costs a small model accuracy.
STYLE_GUIDES: dict[ReportStyle, str] = {
    ReportStyle.ACADEMIC: "",
    ReportStyle.POPULAR_SCIENCE: "Write warmly and simply, for curious readers without "
    "special knowledge.",
    ReportStyle.NEWS: "Write like a news report: the key fact first, plainly and neutrally.",
    ReportStyle.SOCIAL_MEDIA: "Write briefly and engagingly, like a short social media post.",
    ReportStyle.STRATEGIC_INVESTMENT: "Write like an investment analyst: the facts that matter "
    "for a decision, and what they imply.",
}
OUTPUT_CHARS = 3000
_BACKTICKS = re.compile(r"`+")
NO_ANSWER = f"{NOT_ANSWERED}."


def global_notes(result: StepResult, registry: Sequence[Source]) -> str:
    """A step's notes with local citation numbers replaced by registry ids."""
    return remap_citations(result.notes, result.refs.registry_ids(registry))


def key_points(results: Sequence[StepResult], registry: Sequence[Source]) -> list[str]:
    """The first sentence of each step's notes, with registry citations."""
    points = []
    for result in results:
        first = sentences(global_notes(result, registry))
        if first and first[0] not in points:
            points.append(first[0])
    return points


def fenced(text: str, language: str) -> list[str]:
    """`text` in a code fence longer than any backtick run inside it, so it cannot close early."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text, fence]


def code_block(run: CodeRun) -> str:
    """A step's program, its output and its figures, as Markdown."""
    parts = fenced(run.code, "python")
    if run.stdout.strip():
        parts += ["", "Output:", "", *fenced(truncate(run.stdout.strip(), OUTPUT_CHARS), "text")]
    if not run.ok and run.stderr.strip():
        parts += ["", "Error:", "", *fenced(truncate(run.stderr.strip(), OUTPUT_CHARS), "text")]
    parts += [f"\n![{escape(figure.name)}]({figure.data_uri})" for figure in run.figures]
    return "\n".join(parts)


def checked_prose(text: str, registry: Sequence[Source]) -> str:
    """Model or source text as a safe report paragraph citing only registered sources."""
    return prose(check_citations(text, registry))


def analysis_section(results: Sequence[StepResult], registry: Sequence[Source]) -> str:
    """`## Analysis`: each step's notes, and code runs in full."""
    lines = ["## Analysis", ""]
    for result in results:
        lines += [f"### {escape(result.title) or 'Step ' + str(result.index + 1)}", ""]
        notes = global_notes(result, registry)
        if notes.strip():
            lines += [checked_prose(notes, registry), ""]
        if result.code is not None:
            lines += [code_block(result.code), ""]
    return "\n".join(lines)


def assemble_report(
    question: str,
    answer: str,
    results: Sequence[StepResult],
    registry: Sequence[Source],
    notices: Sequence[str] = (),
    evidence: Sequence[str] = (),
) -> str:
    """The answer card: every citation in it resolves to a registered source."""
    head = report_head(question, answer, registry)
    return join_report(
        [head, *card_sections(results, registry, evidence), *report_tail(registry, notices)]
    )


def join_report(parts: Sequence[str]) -> str:
    """The report's Markdown from its parts, in order."""
    return "\n\n".join(part.rstrip() for part in parts) + "\n"


def report_head(
    question: str, answer: str, registry: Sequence[Source], phrase: str | None = None
) -> str:
    """The title (the question) and the Answer section."""
    return f"# {escape(question)}\n\n{answer_section(answer, registry, phrase)}"


def card_sections(
    results: Sequence[StepResult], registry: Sequence[Source], evidence: Sequence[str] = ()
) -> list[str]:
    """The answer card's body: the key points (evidence first) and the analysis."""
    sections = []
    points = list(dict.fromkeys([*evidence, *key_points(results, registry)]))
    if points:
        sections.append(bullets("Key points", points, registry))
    if results:
        sections.append(analysis_section(results, registry).rstrip())
    return sections


def report_tail(registry: Sequence[Source], notices: Sequence[str] = ()) -> list[str]:
    """What closes every report: the notes, if any, and the Sources written from the registry."""
    tail = [bullets("Notes", notices, registry)] if notices else []
    return [*tail, sources_section(registry)]


def answer_section(answer: str, registry: Sequence[Source], phrase: str | None = None) -> str:
    """`## Answer` with the answer as a checked, escaped paragraph."""
    return f"## Answer\n\n{answer_markdown(answer, registry, phrase)}"


def answer_markdown(answer: str, registry: Sequence[Source], phrase: str | None = None) -> str:
    """The answer as a checked, escaped paragraph, opening with its `phrase` in bold (the
    words that answer, read out of the answer: `agents.answer_phrase`) when it has one."""
    paragraph = checked_prose(answer.strip() or NO_ANSWER, registry)
    return f"**{escape(phrase).rstrip('.')}.** {paragraph}" if phrase else paragraph


def bullets(heading: str, items: Sequence[str], registry: Sequence[Source]) -> str:
    """A `## heading` section listing `items` as checked, escaped bullets."""
    lines = "\n".join(f"- {checked_prose(item, registry)}" for item in items)
    return f"## {heading}\n\n{lines}"
