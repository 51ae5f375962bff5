"""The `parallel_steps` switch: a plan's steps at once, or one after another (as DeerFlow)."""

from __future__ import annotations

import json
from itertools import pairwise

from langgraph.types import Send

from agents.config import ResearchOptions
from agents.events import ResearchEvent, StepDone, StepStarted
from agents.nodes import Node
from agents.nodes.research_team import dispatch_steps
from agents.research import run_research
from agents.state import Plan, ResearchState, Step, StepResult, StepType
from tests.agents.conftest import Script, scripted_runtime

QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"
TITLES = ["Arthur's Magazine start", "First for Women start", "Magazine publishers"]
ANALYSIS = "Compare magazine start years"


def step(title: str, step_type: StepType = StepType.RESEARCH) -> Step:
    """A plan step about the magazines."""
    return Step(
        title=title,
        description=f"Find out: {title}.",
        step_type=step_type,
        need_search=step_type is StepType.RESEARCH,
    )


def plan_json(steps: list[Step]) -> str:
    """A plan as the model would write it."""
    return json.dumps(
        {
            "locale": "en-US",
            "thought": "Compare the two magazines' start dates.",
            "title": "Magazine start dates",
            "has_enough_context": False,
            "steps": [s.model_dump(mode="json") for s in steps],
        }
    )


def script_for(steps: list[Step]) -> Script:
    """A well-behaved model whose plan has `steps`; each note takes 0.2 s to write."""
    script = Script(
        replies={
            "plan": plan_json(steps),
            "query": json.dumps({"query": "magazine first published"}),
            "notes": "The magazine was published from 1844 [1].",
            "analysis": "Arthur's Magazine started earlier [1].",
            "answer": "Arthur's Magazine was started first, in 1844 [1].",
        }
    )
    script.delays["notes"] = 0.2
    return script


async def research(script: Script, parallel_steps: bool) -> list[ResearchEvent]:
    """Run the graph to the end with the plan auto-accepted; returns its events."""
    events: list[ResearchEvent] = []
    options = ResearchOptions(
        auto_accept_plan=True, parallel_steps=parallel_steps, enable_background_investigation=False
    )
    await run_research(QUESTION, options, scripted_runtime(script), on_event=events.append)
    return events


def state_with(steps: list[Step], done: list[int], parallel_steps: bool) -> ResearchState:
    """Graph state in the research phase with the steps `done` finished."""
    plan = Plan.model_validate_json(plan_json(steps))
    results = [
        StepResult(iteration=1, index=i, title=s.title, step_type=s.step_type, notes="")
        for i, s in enumerate(steps)
        if i in done
    ]
    return {
        "question": QUESTION,
        "options": ResearchOptions(parallel_steps=parallel_steps),
        "plan": plan,
        "plan_iterations": 1,
        "step_results": results,
    }


def sent_indexes(dispatched: list[Send] | str) -> list[int]:
    """The plan indexes of the steps a dispatch sent."""
    assert isinstance(dispatched, list), f"expected a wave of steps, got {dispatched!r}"
    return [send.arg.index for send in dispatched]


def test_parallel_dispatch_sends_every_independent_research_step_in_one_wave() -> None:
    steps = [step(title) for title in TITLES]
    assert sent_indexes(dispatch_steps(state_with(steps, [], parallel_steps=True))) == [0, 1, 2]


def test_sequential_dispatch_sends_only_the_first_unfinished_step() -> None:
    steps = [step(title) for title in TITLES]
    assert sent_indexes(dispatch_steps(state_with(steps, [], parallel_steps=False))) == [0]
    assert sent_indexes(dispatch_steps(state_with(steps, [0], parallel_steps=False))) == [1]
    assert sent_indexes(dispatch_steps(state_with(steps, [0, 1], parallel_steps=False))) == [2]


def test_sequential_dispatch_returns_to_the_planner_when_the_plan_is_done() -> None:
    steps = [step(title) for title in TITLES]
    assert dispatch_steps(state_with(steps, [0, 1, 2], parallel_steps=False)) == Node.PLANNER


def test_sequential_dispatch_sends_the_analysis_step_after_the_research_steps() -> None:
    steps = [step(TITLES[0]), step(TITLES[1]), step(ANALYSIS, StepType.ANALYSIS)]
    assert sent_indexes(dispatch_steps(state_with(steps, [0, 1], parallel_steps=False))) == [2]
    (send,) = dispatch_steps(state_with(steps, [0, 1], parallel_steps=False))
    assert send.node == Node.CODER
    assert [r.index for r in send.arg.earlier] == [0, 1], "the analysis sees both findings"


async def test_sequential_steps_never_overlap_and_run_in_plan_order() -> None:
    script = script_for([step(title) for title in TITLES])
    events = await research(script, parallel_steps=False)
    notes = script.of("notes")
    assert len(notes) == 3
    for earlier, later in pairwise(notes):
        assert later.started >= earlier.ended, "a step started before the one before it ended"
    for call, title in zip(notes, TITLES, strict=True):
        assert title in call.prompt
    steps = [(type(e).__name__, e.index) for e in events if isinstance(e, StepStarted | StepDone)]
    assert steps == [
        ("StepStarted", 0),
        ("StepDone", 0),
        ("StepStarted", 1),
        ("StepDone", 1),
        ("StepStarted", 2),
        ("StepDone", 2),
    ]


async def test_parallel_steps_overlap_on_the_same_plan() -> None:
    script = script_for([step(title) for title in TITLES])
    await research(script, parallel_steps=True)
    notes = script.of("notes")
    assert len(notes) == 3
    assert max(c.started for c in notes) < min(c.ended for c in notes), "the steps did not overlap"


async def test_sequential_run_reports_every_step_in_plan_order() -> None:
    steps = [step(TITLES[0]), step(TITLES[1]), step(ANALYSIS, StepType.ANALYSIS)]
    script = script_for(steps)
    options = ResearchOptions(
        auto_accept_plan=True, parallel_steps=False, enable_background_investigation=False
    )
    result = await run_research(QUESTION, options, scripted_runtime(script))
    (analysis,) = script.of("analysis")
    assert analysis.started >= max(c.ended for c in script.of("notes"))
    analysis_section = result.report.split("## Analysis")[1]
    positions = [analysis_section.find(title) for title in [TITLES[0], TITLES[1], ANALYSIS]]
    assert -1 not in positions and positions == sorted(positions), positions
