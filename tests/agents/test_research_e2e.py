"""End to end on the real embedded engine, over a real local corpus of HotpotQA paragraphs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agents.citations import cited_ids
from agents.config import ReportMode, ResearchOptions
from agents.events import ResearchEvent
from agents.markdown import escape
from agents.report_writer import SECTION_WORDS
from agents.research import ResearchResult, run_research
from agents.runtime import Runtime, connect_runtime
from agents.state import Plan, PlanReview, Step, StepType
from agents.text import sentences
from agents.tools.corpus import LocalCorpus
from agents.tools.ingest import load_documents
from agents.tools.search import corpus_path
from serving.budget import Budget
from serving.endpoint import Endpoint
from serving.settings import LLMSettings

pytestmark = pytest.mark.engine
URL = re.compile(r"https?://[^\s)\]>]+")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory, hotpotqa_path: Path) -> Path:
    """A data dir whose local corpus holds the 200 real Wikipedia paragraphs."""
    data_dir = tmp_path_factory.mktemp("research-data")
    LocalCorpus(corpus_path(data_dir)).add(load_documents(hotpotqa_path))
    return data_dir


@pytest.fixture
def runtime(engine: Endpoint, corpus_dir: Path) -> Runtime:
    return connect_runtime(engine, LLMSettings(), Budget(8), data_dir=corpus_dir)


def assert_citations_resolve(result: ResearchResult) -> None:
    """At least one citation; every one, and every URL, belongs to a registered source."""
    body, _sources = result.report.split("\n## Sources\n")
    registered = {source.id: source.url for source in result.sources}
    assert cited_ids(body), "the report cites nothing"
    assert set(cited_ids(body)) <= set(registered)
    assert set(URL.findall(body)) <= set(registered.values())
    assert {s.id for s in result.sources if s.cited} == set(cited_ids(body))
    assert all(url.startswith("https://en.wikipedia.org/wiki/") for url in registered.values())


async def test_a_question_gets_an_answered_and_cited_report(runtime: Runtime) -> None:
    question = "Were Scott Derrickson and Ed Wood of the same nationality?"
    events: list[ResearchEvent] = []
    result = await run_research(
        question,
        ResearchOptions(auto_accept_plan=True, max_step_num=2, enable_coder=False),
        runtime,
        on_event=events.append,
    )
    assert result.report.startswith(f"# {question}\n\n## Answer\n\n")
    assert result.answer and result.answer in result.report
    assert_citations_resolve(result)
    titles = {source.title for source in result.sources}
    assert {"Scott Derrickson", "Ed Wood"} <= titles, "retrieval missed a supporting paragraph"
    assert result.llm_calls >= 3 and result.completion_tokens > 0
    kinds = {event.kind for event in events}
    assert {"plan", "step_started", "source_added", "step_done", "report_chunk", "done"} <= kinds


async def test_plan_review_pauses_and_resumes_with_edited_steps(runtime: Runtime) -> None:
    question = (
        "What government position was held by the woman who portrayed Corliss Archer in the "
        "film Kiss and Tell?"
    )
    edited = Step(
        title="Shirley Temple government position",
        description="Which government position Shirley Temple held.",
        step_type=StepType.RESEARCH,
        need_search=True,
    )
    reviewed: list[Plan] = []

    async def edit(plan: Plan) -> PlanReview:
        reviewed.append(plan)
        return PlanReview(action="edit", steps=[edited])

    result = await run_research(
        question,
        ResearchOptions(max_step_num=2, enable_coder=False, enable_background_investigation=False),
        runtime,
        review_plan=edit,
    )
    assert len(reviewed) == 1 and reviewed[0].steps, "the model's plan was shown for review"
    assert result.plan is not None and result.plan.steps == [edited]
    assert "### Shirley Temple government position" in result.report
    assert_citations_resolve(result)


async def test_a_forced_full_report_on_the_embedded_model_is_checked_capped_and_in_order(
    runtime: Runtime,
) -> None:
    question = "Were Scott Derrickson and Ed Wood of the same nationality?"
    events: list[ResearchEvent] = []
    options = ResearchOptions(
        auto_accept_plan=True, max_step_num=2, enable_coder=False, report_mode=ReportMode.FULL
    )
    result = await run_research(question, options, runtime, on_event=events.append)
    assert_citations_resolve(result)
    assert result.citations.cited_sentences > 0
    assert result.citations.supported == result.citations.cited_sentences
    body = result.report.split("\n## Sources\n")[0]
    parts = re.split(r"^## (.+)$", body, flags=re.MULTILINE)[1:]
    sections = dict(zip(parts[::2], parts[1::2], strict=True))
    assert next(iter(sections)) == "Answer"
    assert result.plan is not None
    steps = [escape(step.title) for step in result.plan.steps]
    written = [title for title in sections if title in steps]
    assert written and written == [title for title in steps if title in written]
    cap = SECTION_WORDS[options.report_style]
    for title in written:
        said = sentences(sections[title].strip())
        assert len(said) == 1 or len(sections[title].split()) <= cap
    said = [s for text in sections.values() for s in sentences(text.strip())]
    assert len(said) == len(set(said)), "a sentence is repeated"
    chunks = [event.text for event in events if event.kind == "report_chunk"]
    assert len(chunks) >= 3 and "".join(chunks) == result.report
