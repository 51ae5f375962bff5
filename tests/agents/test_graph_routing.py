"""The research graph's routing and state, driven by a scripted chat model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agents.citations import cited_ids
from agents.config import ReportStyle, ResearchOptions
from agents.events import (
    Done,
    ErrorEvent,
    Phase,
    PlanReady,
    ResearchEvent,
    Status,
    StepDone,
    StepStarted,
)
from agents.graph import build_graph, sqlite_checkpointer
from agents.nodes.coordinator import obvious_route
from agents.report import STYLE_GUIDES
from agents.research import ResearchResult, initial_state, resume_research, run_research
from agents.state import Plan, PlanReview, Route, Step, StepType
from agents.tools.sandbox import run_python, sandbox_unavailable_reason
from serving.errors import EngineError
from tests.agents.conftest import DOCS, Doc, MemorySearch, Script, cut_off, scripted_runtime

# A choice the passages' dates do not decide (agents.comparison), so the model answers it.
QUESTION = "Which magazine was started by its publisher, Arthur's Magazine or First for Women?"
ARTHUR = {"title": "Arthur's Magazine start", "description": "When Arthur's Magazine started."}
FIRST = {"title": "First for Women start", "description": "When First for Women started."}


def plan_json(*steps: dict[str, Any], enough: bool = False) -> str:
    """A plan as the model would write it."""
    return json.dumps(
        {
            "locale": "en-US",
            "thought": "Compare the two magazines' start dates.",
            "title": "Magazine start dates",
            "has_enough_context": enough,
            "steps": [{"step_type": "research", "need_search": True, **step} for step in steps],
        }
    )


def default_script(**replies: Any) -> Script:
    """A script for a well-behaved model; `replies` override roles."""
    base: dict[str, Any] = {
        "plan": plan_json(ARTHUR, FIRST),
        "query": json.dumps({"query": "magazine first published"}),
        "notes": "The magazine was published from 1844 [1].",
        "answer": "Arthur's Magazine was started first, in 1844 [1].",
    }
    return Script(replies={**base, **replies})


async def research(
    script: Script, question: str = QUESTION, **options: Any
) -> tuple[ResearchResult, list[ResearchEvent]]:
    """Run the graph to the end with the plan auto-accepted."""
    events: list[ResearchEvent] = []
    result = await run_research(
        question,
        ResearchOptions(auto_accept_plan=True, **options),
        scripted_runtime(script),
        on_event=events.append,
    )
    return result, events


@pytest.mark.parametrize(
    ("message", "route"),
    [
        ("hello!", Route.SMALL_TALK),
        ("Thanks a lot", Route.SMALL_TALK),
        ("good morning fawn", Route.SMALL_TALK),
        ("Who directed Ed Wood?", Route.RESEARCH),
        ("compare the GDP of France and Spain", Route.RESEARCH),
        ("Arthur's Magazine", None),
    ],
)
def test_obvious_routes_are_decided_without_the_model(message: str, route: Route | None) -> None:
    assert obvious_route(message) == route


async def test_greeting_is_answered_directly_without_planning() -> None:
    script = default_script(small_talk="Hello! What shall I research for you?")
    result, _events = await research(script, question="Hi there")
    assert result.route is Route.SMALL_TALK
    assert result.report == "Hello! What shall I research for you?"
    assert result.plan is None
    assert [call.role for call in script.calls] == ["small_talk"]


async def test_ambiguous_message_is_classified_by_the_model() -> None:
    script = default_script(route=json.dumps({"route": "small_talk"}), small_talk="Hi!")
    result, _events = await research(script, question="Arthur's Magazine")
    assert [call.role for call in script.calls] == ["route", "small_talk"]
    assert result.route is Route.SMALL_TALK


async def test_question_is_planned_then_paused_for_review_then_accepted() -> None:
    script = default_script()
    graph = build_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "review-accept"}}
    runtime = scripted_runtime(script)
    await graph.ainvoke(initial_state(QUESTION, ResearchOptions()), config, context=runtime)

    paused = await graph.aget_state(config)
    assert paused.next == ("plan_review",)
    review = paused.interrupts[0].value
    assert review["kind"] == "plan_review"
    assert [s["title"] for s in review["plan"]["steps"]] == [ARTHUR["title"], FIRST["title"]]
    assert not script.of("notes"), "no step may run before the plan is accepted"

    final = await graph.ainvoke(Command(resume={"action": "accept"}), config, context=runtime)
    assert {r.title for r in final["step_results"]} == {ARTHUR["title"], FIRST["title"]}
    assert final["report"].startswith(f"# {QUESTION}\n\n## Answer")


async def test_edited_steps_replace_the_plan_on_resume() -> None:
    script = default_script()
    edited = Step(
        title="First for Women founding year",
        description="The year First for Women was started.",
        step_type=StepType.RESEARCH,
        need_search=True,
    )

    async def edit(plan: Plan) -> PlanReview:
        assert len(plan.steps) == 2
        return PlanReview(action="edit", steps=[edited])

    result = await run_research(
        QUESTION, ResearchOptions(), scripted_runtime(script), review_plan=edit
    )
    assert result.plan is not None and result.plan.steps == [edited]
    assert len(script.of("notes")) == 1
    assert "First for Women founding year" in script.of("notes")[0].prompt


async def test_independent_steps_run_concurrently() -> None:
    script = default_script(
        plan=plan_json(
            ARTHUR,
            FIRST,
            {"title": "Magazine publishers", "description": "Who published each magazine."},
        )
    )
    script.delays["notes"] = 0.3
    _result, events = await research(script)
    notes = script.of("notes")
    assert len(notes) == 3
    latest_start = max(call.started for call in notes)
    earliest_end = min(call.ended for call in notes)
    assert latest_start < earliest_end, "the three research steps did not overlap"
    started = [e.index for e in events if isinstance(e, StepStarted)]
    assert sorted(started) == [0, 1, 2]
    phases = [e.phase for e in events if isinstance(e, Status) and e.phase]
    assert list(dict.fromkeys(phases)) == [Phase.PLANNING, Phase.RESEARCHING, Phase.REPORTING]


async def test_analysis_step_waits_for_the_research_steps() -> None:
    analysis = {
        "title": "Compare magazine start years",
        "description": "Which magazine started first.",
        "step_type": "analysis",
        "need_search": False,
    }
    script = default_script(
        plan=plan_json(ARTHUR, FIRST, analysis),
        analysis="Arthur's Magazine started earlier [1].",
    )
    script.delays["notes"] = 0.1
    result, _events = await research(script)
    research_ends = max(call.ended for call in script.of("notes"))
    (analysis_call,) = script.of("analysis")
    assert analysis_call.started >= research_ends
    assert "Arthur's Magazine start" in analysis_call.prompt, "earlier findings are shown"
    assert any("Code execution was off" in n and "bubblewrap" in n for n in result.notices)
    assert "Code execution was off" in result.report


@pytest.mark.parametrize("rounds", [1, 2])
async def test_planner_stops_at_the_iteration_limit(rounds: int) -> None:
    script = default_script()
    result, events = await research(script, max_plan_iterations=rounds)
    assert len(script.of("plan")) == rounds
    assert [e.iteration for e in events if isinstance(e, PlanReady)] == list(range(1, rounds + 1))
    assert len(result.plan.steps if result.plan else []) == 2
    assert "## Answer" in result.report


async def test_planner_may_finish_early_once_it_has_research() -> None:
    script = default_script(plan=[plan_json(ARTHUR), plan_json(enough=True)])
    await research(script, max_plan_iterations=3)
    assert len(script.of("plan")) == 2


@pytest.mark.parametrize(
    "junk",
    [
        "this is not JSON at all",
        cut_off('{"locale": "en-US", "thought": "The the the the'),
        "",
        plan_json({"title": "Unrelated", "description": "Bananas and kiwis."}),
    ],
    ids=["invalid-json", "cut-off", "empty", "off-topic-steps"],
)
async def test_planner_falls_back_to_a_plan_from_the_question(junk: Any) -> None:
    script = default_script(plan=junk)
    result, events = await research(script)
    assert len(script.of("plan")) == 2, "one repair attempt, then the fallback"
    repair = script.of("plan")[1]
    assert "That answer was rejected:" in repair.prompt
    assert result.plan is not None and result.plan.steps[0].description == QUESTION
    plan_events = [e for e in events if isinstance(e, PlanReady)]
    assert plan_events and plan_events[0].fallback_reason
    assert any("plan could not be used" in notice for notice in result.notices)
    assert (
        "## Answer\n\n**Arthur's Magazine.** Arthur's Magazine was started first" in result.report
    )


async def test_planner_repair_succeeds_after_one_invalid_answer() -> None:
    script = default_script(plan=["{not json", plan_json(FIRST)])
    result, _events = await research(script)
    assert result.plan is not None and [s.title for s in result.plan.steps] == [FIRST["title"]]
    assert not result.notices


async def test_think_blocks_never_reach_the_report() -> None:
    script = default_script(
        notes="<think>The user wants dates.</think>The magazine dates from 1844 [1].",
        answer="<think>Let me compare 1844 and 1989.</think>Arthur's Magazine came first [1].",
    )
    result, _events = await research(script)
    assert "<think>" not in result.report and "Let me compare" not in result.report
    assert result.answer == "**Arthur's Magazine.** Arthur's Magazine came first [1]."


async def test_report_drops_unknown_citations_and_invented_urls() -> None:
    script = default_script(
        notes="It started in 1844 [1][9]. See https://fake.example/arthur for more.",
        answer="Arthur's Magazine came first [1][42], per [this page](https://made.up/page).",
    )
    result, _events = await research(script)
    registered = {s.id for s in result.sources}
    assert set(cited_ids(result.report)) <= registered
    assert "fake.example" not in result.report and "made.up" not in result.report
    assert "this page" in result.report
    body, sources = result.report.split("## Sources")
    assert all(s.url in sources for s in result.sources)
    assert {s.id for s in result.sources if s.cited} == set(cited_ids(body))


async def test_uncited_notes_are_replaced_by_the_sources_own_sentences() -> None:
    script = default_script(notes="Magazines are fun to read and many exist.")
    result, _events = await research(script)
    analysis = result.report.split("## Analysis")[1]
    assert "1844" in analysis and "[1]" in analysis


async def test_parallel_steps_finding_the_same_document_share_one_source_id() -> None:
    script = default_script(plan=plan_json(ARTHUR, {**ARTHUR, "title": "Arthur's Magazine city"}))
    result, _events = await research(script, enable_background_investigation=False)
    urls = [s.url for s in result.sources]
    assert len(urls) == len(set(urls))
    assert [s.id for s in result.sources] == list(range(1, len(urls) + 1))


async def test_usage_adds_up_over_every_call() -> None:
    script = default_script()
    result, _events = await research(script)
    assert result.llm_calls == len(script.calls)
    assert result.prompt_tokens == 100 * len(script.calls)


async def test_run_resumes_from_a_sqlite_checkpoint_in_a_new_graph(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = default_script()
    database = tmp_path / "checkpoints.sqlite3"
    async with sqlite_checkpointer(database) as saver:
        graph = build_graph(saver)
        config = {"configurable": {"thread_id": "job-1"}}
        await graph.ainvoke(
            initial_state(QUESTION, ResearchOptions()), config, context=scripted_runtime(script)
        )
    async with sqlite_checkpointer(database) as saver:

        async def accept(_plan: Plan) -> PlanReview:
            return PlanReview()

        result = await resume_research("job-1", scripted_runtime(script), saver, review_plan=accept)
    assert len(script.of("plan")) == 1, "the plan made before the restart is reused"
    assert re.search(r"## Answer\n\n\*\*Arthur's Magazine\.\*\* Arthur's Magazine", result.report)
    assert len(result.plan.steps if result.plan else []) == 2
    assert "unregistered type" not in caplog.text, "a state type is missing from STATE_TYPES"


CHART = """Here is the program:
```python
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.bar(["Arthur's", "First"], [1844, 1989])
plt.savefig("years.png")
print(1989 - 1844)
```"""


@pytest.mark.skipif(sandbox_unavailable_reason() is not None, reason="needs bubblewrap")
async def test_processing_step_runs_code_in_the_sandbox_and_embeds_its_figure() -> None:
    processing = {
        "title": "Chart the magazine start years",
        "description": "Plot when each magazine started.",
        "step_type": "processing",
        "need_search": False,
    }
    script = default_script(plan=plan_json(ARTHUR, processing), code=CHART)
    result = await run_research(
        QUESTION,
        ResearchOptions(auto_accept_plan=True),
        scripted_runtime(script, run_code=run_python),
    )
    (code_call,) = script.of("code")
    assert "The magazine was published from 1844" in code_call.prompt, "findings reach the coder"
    analysis = result.report.split("## Analysis")[1]
    assert "```python\nimport matplotlib" in analysis
    assert "The program printed: 145" in analysis
    assert "![years.png](data:image/png;base64,iVBORw0KGgo" in analysis
    assert not any("Code execution was off" in n for n in result.notices)


@pytest.mark.skipif(sandbox_unavailable_reason() is not None, reason="needs bubblewrap")
async def test_failing_program_gets_one_fix_with_its_error() -> None:
    analysis = {
        "title": "Compute the magazine age gap",
        "description": "Years between the magazines' starts.",
        "step_type": "analysis",
        "need_search": False,
    }
    script = default_script(
        plan=plan_json(ARTHUR, analysis),
        code=["```python\nprint(1989 - undefined_year)\n```", "```python\nprint(1989 - 1844)\n```"],
    )
    result = await run_research(
        QUESTION,
        ResearchOptions(auto_accept_plan=True),
        scripted_runtime(script, run_code=run_python),
    )
    first, fix = script.of("code")
    assert "NameError" in fix.prompt and "NameError" not in first.prompt
    assert "The program printed: 145" in result.report


async def test_style_and_locale_reach_every_writing_prompt() -> None:
    script = default_script()
    result, _events = await research(script, report_style="news", locale="de-DE")
    assert STYLE_GUIDES[ReportStyle.NEWS] in script.of("answer")[0].prompt
    for role in ("answer", "notes"):
        assert "Write in the language de-DE" in script.of(role)[0].prompt
    schema = script.of("plan")[0].kwargs["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["locale"]["enum"] == ["de-DE"]
    assert result.plan is not None and result.plan.locale == "de-DE"


async def test_a_crashed_run_resumes_without_redoing_finished_steps(tmp_path: Path) -> None:
    def notes(messages: list[Any]) -> str:
        if "First for Women start" in str(messages[-1].content) and not recovered:
            raise EngineError("The engine went away.")
        return "The magazine was published from 1844 [1]."

    recovered = False
    script = default_script(notes=notes)
    script.delays["notes"] = 0.05
    options = ResearchOptions(auto_accept_plan=True)
    async with sqlite_checkpointer(tmp_path / "checkpoints.sqlite3") as saver:
        with pytest.raises(EngineError):
            await run_research(
                QUESTION, options, scripted_runtime(script), checkpointer=saver, thread_id="j"
            )
        finished = [c.prompt for c in script.of("notes")]
        recovered = True
        result = await resume_research("j", scripted_runtime(script), saver)
    redone = [c.prompt for c in script.of("notes")][len(finished) :]
    assert len(redone) == 1 and "First for Women start" in redone[0]
    assert len(script.of("plan")) == 1
    assert {r.title for r in (result.plan.steps if result.plan else [])} == {
        ARTHUR["title"],
        FIRST["title"],
    }
    assert "## Answer" in result.report


async def test_step_notes_cite_the_numbers_the_report_uses() -> None:
    result, events = await research(default_script(notes="It was published from 1844 [1]."))
    done = [e for e in events if isinstance(e, StepDone)]
    assert len(done) == 2
    analysis = result.report.split("## Analysis")[1].split("## Sources")[0]
    for event in done:
        assert set(cited_ids(event.notes)) <= {s.id for s in result.sources}
        assert event.notes in analysis
    (finished,) = [e for e in events if isinstance(e, Done)]
    assert finished.citations == result.citations and result.citations.cited_sentences > 0


async def test_users_never_see_parse_errors_from_the_plan() -> None:
    result, events = await research(default_script(plan="{not json"))
    shown = [e.fallback_reason or "" for e in events if isinstance(e, PlanReady)]
    shown += [e.message for e in events if isinstance(e, ErrorEvent)]
    shown += [e.error or "" for e in events if isinstance(e, StepDone)]
    shown += [*result.notices, result.report]
    assert shown[0] == "The model's plan could not be used; researching the question directly."
    assert not any(re.search(r"JSON|cut off|model's notes", text) for text in shown)


async def test_an_untrusted_source_title_reaches_the_markdown_as_text() -> None:
    hostile = Doc("<img src=x onerror=alert(1)> *Arthur's* Magazine", DOCS[0].text)
    events: list[ResearchEvent] = []
    result = await run_research(
        QUESTION,
        ResearchOptions(auto_accept_plan=True),
        scripted_runtime(default_script(), MemorySearch([hostile, *DOCS[1:]])),
        on_event=events.append,
    )
    assert "<img" not in result.report.replace("\\<img", "")
    assert "\\<img src=x onerror=alert(1)\\> \\*Arthur's\\* Magazine" in result.report


async def test_the_answer_says_what_was_not_found_when_the_corpus_lacks_the_subjects() -> None:
    others = [
        Doc("Radio City (Indian radio station)", DOCS[2].text),
        Doc("Women's Health", "Women's Health is a monthly magazine on health, started in 2005."),
    ]
    script = default_script(answer="First for Women began in 1996 [1].")
    result = await run_research(
        QUESTION,
        ResearchOptions(auto_accept_plan=True),
        scripted_runtime(script, MemorySearch(others)),
    )
    assert result.answer.startswith("The sources found do not answer the question")
    assert "Arthur's Magazine" in result.answer and "1996" not in result.answer
    assert result.citations.cited_sentences >= 1
    assert result.citations.supported == result.citations.cited_sentences


async def test_a_note_its_cited_passage_does_not_support_never_reaches_the_report() -> None:
    # "1844" is Arthur's Magazine's year; the note gives it to First for Women.
    wrong = "First for Women was started first, in 1844 [1]."
    script = default_script(notes=f"{wrong} Arthur's Magazine dates from 1844 [1].")
    result, _events = await research(script)
    assert "First for Women was started first, in 1844" not in result.report
    assert "Arthur's Magazine dates from 1844" in result.report
    assert result.citations.supported == result.citations.cited_sentences > 0
