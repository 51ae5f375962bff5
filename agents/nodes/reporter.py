"""Reporter: one short, focused call answers the question; the report is assembled around it.

A small model answers best from few passages, read whole, so the registry is ranked for answering
(`rank_for_answer`: the pair of passages that answer together comes first) and the model reads
the top ANSWER_PASSAGES with the question, and answers in a few words (a yes/no question is asked
for yes or no). Its answer is cleaned (no reasoning, no loop, no headings, no cut-off tail),
checked (unknown ids and invented URLs removed) and attributed to the passage that supports it.
The Key points open with the sentence of each passage read that bears most on the question and
the answer, so the report shows the evidence next to the answer.

The answer is honest (`agents.answerability`): its citations are checked against their passages
(`agents.support`: model entailment where the served model declares it, the lexical floor
otherwise), and when the passages read do not back it, the Answer says what was not found and
what was, instead of the model's guess. A model declaring `full-report` (or a run forcing
`report_mode=full`) gets sections written from the findings after the Answer
(`agents.report_writer`), the answer card's body if they fail. Each part of the report is
streamed as a `ReportChunk` as soon as it is written; the chunks join to the whole report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from langgraph.runtime import Runtime as GraphRuntime

from agents.answer_phrase import answer_phrase
from agents.answerability import judge, not_answered
from agents.citations import check_citations, cited_ids, ground, remap_citations
from agents.comparison import Decision, decide
from agents.config import ReportMode, ResearchOptions
from agents.events import Phase, ReportChunk, Status
from agents.llm import ModelCalls
from agents.markdown import flatten
from agents.nodes import emit
from agents.prompts import render_messages
from agents.report import (
    STYLE_GUIDES,
    answer_markdown,
    card_sections,
    global_notes,
    join_report,
    report_head,
    report_tail,
)
from agents.report_writer import write_sections
from agents.retrieval import page_name, rank_for_answer
from agents.runtime import Runtime
from agents.sources import LocalRefs, Source
from agents.state import ResearchState, StepResult
from agents.structured import generate_text
from agents.support import (
    CitationSupport,
    LexicalSupport,
    ModelSupport,
    SupportCheck,
    audit,
    verify,
)
from agents.text import STOPWORDS, content_words, is_yes_no_question, overlap, sentences, truncate
from serving.budget import CallClass
from serving.planner import model_abilities
from serving.profiles import ModelAbility

log = logging.getLogger(__name__)

ANSWER_MAX_TOKENS = 48
ANSWER_SENTENCES = 2
# Two passages: a two-hop answer needs both, and every extra passage costs a small model accuracy.
ANSWER_PASSAGES = 2
PASSAGE_CHARS = 1500
_SENTENCE_ENDS = (".", "!", "?", "。", "！", "？", '"', "”", ")")
_TOKEN = re.compile(r"\S+")
_ANSWER_LABEL = re.compile(
    r"^(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*:\s*|^the answer is\s+", re.I
)
_OPTIONS = re.compile(r"\bor\b", re.IGNORECASE)
# An opening restates the question when it holds this many of the question's content words.
RESTATED_WORDS = 2


def direct_answer(sentence: str, question: str) -> str:
    """`sentence` without an opening that restates the question: "The band X was formed by Y."
    answers "Who formed the band X?" as "Y."

    The opening is the longest run of the question's own words that ends on a function word
    ("by", "in", "was"); it goes only when what is left says something the question does not.
    A question offering options ("X or Y?") keeps the opening: there it names the choice.
    """
    sentence = _ANSWER_LABEL.sub("", sentence.strip()).strip()
    if _OPTIONS.search(question):
        return sentence
    asked = {_bare(token) for token in _TOKEN.findall(question)}
    cut = 0
    for match in _TOKEN.finditer(sentence):
        word = _bare(match.group(0))
        if word not in asked:
            break
        if word in STOPWORDS:
            cut = match.end()
    rest = sentence[cut:].strip()
    restated = len(content_words(sentence[:cut])) >= RESTATED_WORDS
    if not restated or not set(content_words(rest)) - asked:
        return sentence
    return rest[0].upper() + rest[1:]


def _bare(token: str) -> str:
    return token.strip(".,;:!?\"'“”()").lower()


def finish_answer(
    text: str,
    read: Sequence[Source],
    registry: Sequence[Source],
    fallback: str,
    question: str = "",
) -> str:
    """The model's answer as one checked paragraph of at most ANSWER_SENTENCES whole sentences,
    the first one direct, cited by the passage read that supports it; `fallback` if it is empty.

    Unsupported sentences stay (a direct answer often restates no passage) but uncited.
    """
    flat = flatten(text, keep_headings=True)
    parts = sentences(check_citations(_without_echoed_title(flat, read), registry))
    if len(parts) > 1 and not parts[-1].endswith(_SENTENCE_ENDS):
        parts = parts[:-1]  # cut off at the token cap mid-sentence
    if parts:
        parts[0] = direct_answer(parts[0], question)
    checked = " ".join(parts[:ANSWER_SENTENCES])
    passages = {s.id: s.passage for s in read}
    return ground(checked, passages, drop_unsupported=False).strip() or fallback


def _without_echoed_title(text: str, read: Sequence[Source]) -> str:
    """`text` without a leading "Title:" copied from the passages' layout."""
    for source in read:
        for label in (f"{source.title}:", f"{page_name(source.title)}:"):
            if text.startswith(label):
                return text.removeprefix(label).strip()
    return text


def evidence(question: str, answer: str, read: Sequence[Source]) -> list[str]:
    """For each passage read, its sentence sharing most words with the question and answer,
    cited."""
    wanted = f"{question} {remap_citations(answer, {})}"
    points = []
    for source in read:
        candidates = sentences(source.passage) or [source.passage]
        best = max(candidates, key=lambda sentence: overlap(wanted, sentence))
        points.append(f"{best.rstrip('.').strip()} [{source.id}].")
    return points


@dataclass(frozen=True)
class Card:
    """The answer card's parts: the Answer (honest: a finding, or what was not found) and the
    evidence read for it."""

    answer: str
    evidence: list[str]
    removed: int
    phrase: str | None = None


async def answer_card(
    state: ResearchState, runtime: Runtime, calls: ModelCalls, check: SupportCheck
) -> Card:
    """Answer from the best passages; the answer stands only if the evidence backs it."""
    question, options = state["question"], state["options"]
    registry = state.get("sources", [])
    yes_no = is_yes_no_question(question)
    everything = rank_for_answer(question, registry)
    decision = decide(question, everything)
    if decision is not None:
        return await decided_card(question, decision, check)
    ranked = everything[:ANSWER_PASSAGES]
    fitted = await runtime.context_budget.fit(
        lambda kept: render_messages(
            "answer",
            question=question,
            passages=kept,
            yes_no=yes_no,
            style=STYLE_GUIDES[options.report_style],
            locale=options.locale,
        ),
        [f"{s.title}: {truncate(s.passage, PASSAGE_CHARS)}" for s in ranked],
        ANSWER_MAX_TOKENS,
    )
    read = ranked[: len(fitted.pieces)]
    text = await generate_text(
        calls, CallClass.REPORT, fitted.messages, max_tokens=ANSWER_MAX_TOKENS, temperature=0.0
    )
    draft = finish_answer(text, read, registry, "", question)
    verified = await verify(draft, {s.id: s.passage for s in read}, check, drop_unsupported=False)
    points = evidence(question, verified.text, read)
    judgement = judge(question, draft, read, yes_no=yes_no)
    if not judgement.answered:
        return Card(not_answered(judgement, points), points, verified.removed)
    first = sentences(verified.text)
    phrase = None if yes_no or not first else answer_phrase(question, first[0])
    return Card(verified.text, points, verified.removed, phrase)


async def decided_card(question: str, decision: Decision, check: SupportCheck) -> Card:
    """The card of a time comparison the passages' dates decide: the option that wins, then
    both dated sentences as its evidence."""
    read = [decision.winner.source, decision.other.source]
    verified = await verify(
        decision.evidence(), {s.id: s.passage for s in read}, check, drop_unsupported=False
    )
    points = evidence(question, verified.text, read)
    return Card(verified.text, points, verified.removed, decision.winner.option)


async def checked_results(
    results: Sequence[StepResult], registry: Sequence[Source], check: SupportCheck
) -> list[StepResult]:
    """The steps' notes citing registry ids, each sentence kept only if a passage it cites
    supports it (a program's own account of its run is not a citation and stays)."""
    passages = {source.id: source.passage for source in registry}
    # Registry ids are 1..n, so these refs map every id to itself.
    identity = LocalRefs(urls=[source.url for source in sorted(registry, key=lambda s: s.id)])
    checked = []
    for result in results:
        notes = global_notes(result, registry)
        if result.code is None:
            notes = (await verify(notes, passages, check, drop_unsupported=True)).text
        checked.append(result.model_copy(update={"notes": notes, "refs": identity}))
    return checked


def served_abilities(runtime: Runtime) -> frozenset[ModelAbility]:
    """What the served model declares it can do (nothing for a scripted or unknown model)."""
    return model_abilities(runtime.clients.endpoint.model) if runtime.clients else frozenset()


def writes_full_report(options: ResearchOptions, abilities: frozenset[ModelAbility]) -> bool:
    """Whether this run gets the full report: forced by its option, or the model can."""
    if options.report_mode is ReportMode.AUTO:
        return ModelAbility.FULL_REPORT in abilities
    return options.report_mode is ReportMode.FULL


async def reporter(state: ResearchState, runtime: GraphRuntime[Runtime]) -> ResearchState:
    """Write the Answer, then the full report's sections or the answer card's evidence, each
    streamed as it is done, and the report's citation support."""
    emit(runtime, Status(message="Writing the report.", phase=Phase.REPORTING))
    question, options = state["question"], state["options"]
    registry = state.get("sources", [])
    abilities = served_abilities(runtime.context)
    calls = ModelCalls(runtime.context)
    entailment = ModelAbility.ENTAILMENT in abilities
    check = ModelSupport(calls) if entailment else LexicalSupport()
    card = await answer_card(state, runtime.context, calls, check)
    head = report_head(question, card.answer, registry, card.phrase)
    emit(runtime, ReportChunk(text=head + "\n\n"))
    results = await checked_results(state.get("step_results", []), registry, check)
    body = (
        await full_sections(state, runtime, calls, check, card, results)
        if writes_full_report(options, abilities)
        else None
    )
    if body is None:
        body = card_sections(results, registry, card.evidence)
        for section in body:
            emit(runtime, ReportChunk(text=section + "\n\n"))
    tail = report_tail(registry, state.get("notices", []))
    emit(runtime, ReportChunk(text=join_report(tail)))
    report = join_report([head, *body, *tail])
    cited, supported = audit(report, {s.id: s.passage for s in registry})
    support = CitationSupport(
        cited_sentences=cited,
        supported=supported,
        removed=card.removed,
        method="model entailment" if entailment else "lexical",
    )
    cited_now = set(cited_ids(report.split("\n## Sources")[0]))
    marked = [s.model_copy(update={"cited": True}) for s in registry if s.id in cited_now]
    return {
        "answer": answer_markdown(card.answer, registry, card.phrase),
        "report": report,
        "sources": marked,
        "citations": support,
        "usage": calls.usage,
    }


async def full_sections(
    state: ResearchState,
    runtime: GraphRuntime[Runtime],
    calls: ModelCalls,
    check: SupportCheck,
    card: Card,
    results: Sequence[StepResult],
) -> list[str] | None:
    """The full report's sections, each streamed when written; None when they cannot be
    written, so the answer card is used."""
    try:
        return await write_sections(
            calls,
            state["question"],
            card.answer,
            results,
            state.get("sources", []),
            state["options"],
            check,
            on_section=lambda _position, markdown: emit(
                runtime, ReportChunk(text=markdown + "\n\n")
            ),
        )
    # Any failure of the full report falls back to the card, which is already written.
    except Exception as exc:
        log.warning("full report not written, using the answer card: %s", exc)
        return None
