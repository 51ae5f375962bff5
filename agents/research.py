"""The public entry point: research one question and get a cited Markdown report.

    result = await run_research(question, ResearchOptions(), runtime, on_event=print)

`run_research` drives the graph to the end: events go to `on_event`, a plan review interrupt
goes to `review_plan` (required unless `auto_accept_plan`). With a persistent checkpointer and
a `thread_id`, `resume_research` continues an interrupted run from its last completed step.

A caller that cannot wait for a human (a job runner: a review may come days later, from another
process) uses `start_research` and `continue_research` instead: they stop at the plan review and
return a `PlanPause`, leaving the run in its checkpoint; `continue_research(review=...)` resumes it
with the verdict (`Command(resume=...)`), from any process that opens the same checkpointer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from pydantic import BaseModel, Field

from agents.config import ResearchOptions
from agents.events import Done, ErrorEvent, ResearchEvent
from agents.graph import build_graph, checkpoint_serializer
from agents.llm import Usage
from agents.nodes.plan_review import REVIEW_KIND
from agents.runtime import Runtime
from agents.sources import Source
from agents.state import Plan, PlanReview, ResearchState, Route
from agents.support import CitationSupport
from serving.errors import ConfigError, FawnError

EventSink = Callable[[ResearchEvent], None]
PlanReviewer = Callable[[Plan], Awaitable[PlanReview]]
MAX_QUESTION_CHARS = 4000
# Supersteps a run may take: each plan round is ~6 plus 2 per wave of steps.
RECURSION_LIMIT = 200


class ResearchResult(BaseModel):
    """What a finished run produced, and what it cost."""

    question: str
    route: Route
    report: str = Field(description="The Markdown report (for small talk: the reply).")
    answer: str = Field(description="The text of the report's Answer section.")
    sources: list[Source] = Field(description="Every registered source; `cited` marks those used.")
    plan: Plan | None = Field(description="The last plan; None when no research was needed.")
    notices: list[str] = Field(default_factory=list)
    citations: CitationSupport = Field(
        default_factory=CitationSupport,
        description="The report's cited sentences and how many their passages support.",
    )
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    wall_s: float


class PlanPause(BaseModel):
    """A run stopped at its plan review; its checkpoint keeps it until the verdict comes."""

    plan: Plan
    iteration: int = Field(description="Which plan of the run this is (1 for the first).")


def initial_state(question: str, options: ResearchOptions) -> ResearchState:
    """The graph input for `question`; raises ConfigError for an empty or huge question."""
    question = question.strip()
    if not question:
        raise ConfigError("The question is empty: ask something to research.")
    if len(question) > MAX_QUESTION_CHARS:
        raise ConfigError(
            f"The question is {len(question)} characters long; keep it under "
            f"{MAX_QUESTION_CHARS} (put long material in the corpus instead)."
        )
    return {"question": question, "options": options}


def result_from_state(state: ResearchState, wall_s: float) -> ResearchResult:
    """The ResearchResult of a finished run's final state."""
    usage = state.get("usage") or Usage()
    return ResearchResult(
        question=state["question"],
        route=state.get("route", Route.RESEARCH),
        report=state.get("report", ""),
        answer=state.get("answer", ""),
        sources=state.get("sources", []),
        plan=state.get("plan"),
        notices=state.get("notices", []),
        citations=state.get("citations") or CitationSupport(),
        llm_calls=usage.calls,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        wall_s=round(wall_s, 3),
    )


async def run_research(
    question: str,
    options: ResearchOptions,
    runtime: Runtime,
    *,
    on_event: EventSink | None = None,
    review_plan: PlanReviewer | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    thread_id: str | None = None,
) -> ResearchResult:
    """Research `question` to the end and return the report."""
    graph = build_graph(checkpointer or InMemorySaver(serde=checkpoint_serializer()))
    config = _config(thread_id or uuid.uuid4().hex)
    return await _drive(
        graph, initial_state(question, options), config, runtime, on_event, review_plan
    )


async def resume_research(
    thread_id: str,
    runtime: Runtime,
    checkpointer: BaseCheckpointSaver,
    *,
    on_event: EventSink | None = None,
    review_plan: PlanReviewer | None = None,
) -> ResearchResult:
    """Continue the run `thread_id` from its last checkpoint (after a crash or a restart)."""
    graph = build_graph(checkpointer)
    config = _config(thread_id)
    snapshot = await graph.aget_state(config)
    if not snapshot.values:
        raise ConfigError(f"No research run {thread_id!r} is stored in this checkpointer.")
    return await _drive(graph, None, config, runtime, on_event, review_plan)


async def start_research(
    question: str,
    options: ResearchOptions,
    runtime: Runtime,
    checkpointer: BaseCheckpointSaver,
    thread_id: str,
    *,
    on_event: EventSink | None = None,
) -> ResearchResult | PlanPause:
    """Research `question` as run `thread_id` until it ends or stops for its plan review."""
    graph = build_graph(checkpointer)
    payload = initial_state(question, options)
    return await _advance(graph, payload, _config(thread_id), runtime, on_event or _ignore)


async def continue_research(
    thread_id: str,
    runtime: Runtime,
    checkpointer: BaseCheckpointSaver,
    *,
    review: PlanReview | None = None,
    on_event: EventSink | None = None,
) -> ResearchResult | PlanPause:
    """Continue the run `thread_id` from its checkpoint until it ends or stops for a review.

    `review` answers the plan review the run stopped at; without one, a run stopped there stops
    there again, and any other run continues from its last completed step.
    """
    graph = build_graph(checkpointer)
    config = _config(thread_id)
    if not (await graph.aget_state(config)).values:
        raise ConfigError(f"No research run {thread_id!r} is stored in this checkpointer.")
    payload = None if review is None else Command(resume=review.model_dump(mode="json"))
    return await _advance(graph, payload, config, runtime, on_event or _ignore)


async def paused_for_review(thread_id: str, checkpointer: BaseCheckpointSaver) -> PlanPause | None:
    """The plan review the stored run `thread_id` stopped at; None if it is not stopped at one."""
    snapshot = await build_graph(checkpointer).aget_state(_config(thread_id))
    for pending in snapshot.interrupts:
        value = pending.value
        if isinstance(value, dict) and value.get("kind") == REVIEW_KIND:
            return PlanPause(plan=Plan.model_validate(value["plan"]), iteration=value["iteration"])
    return None


async def _drive(
    graph: CompiledStateGraph,
    payload: ResearchState | Command | None,
    config: dict[str, Any],
    runtime: Runtime,
    on_event: EventSink | None,
    review_plan: PlanReviewer | None,
) -> ResearchResult:
    sink = on_event or _ignore
    started = time.monotonic()  # the run's wall time includes the reviews' waits
    while True:
        outcome = await _advance(graph, payload, config, runtime, sink, started=started)
        if isinstance(outcome, ResearchResult):
            return outcome
        try:
            if review_plan is None:
                raise ConfigError(
                    "The plan is waiting for review but nobody can answer: pass review_plan, "
                    "or set auto_accept_plan."
                )
            verdict = await review_plan(outcome.plan)
        except FawnError as exc:
            sink(ErrorEvent(message=str(exc), fatal=True))
            raise
        payload = Command(resume=verdict.model_dump(mode="json"))


async def _advance(
    graph: CompiledStateGraph,
    payload: ResearchState | Command | None,
    config: dict[str, Any],
    runtime: Runtime,
    sink: EventSink,
    *,
    started: float | None = None,
) -> ResearchResult | PlanPause:
    """Run until the graph ends (its result, after a `Done` event) or pauses for plan review."""
    started = time.monotonic() if started is None else started
    try:
        pause = await _stream_until_pause(graph, payload, config, runtime, sink)
    except FawnError as exc:
        sink(ErrorEvent(message=str(exc), fatal=True))
        raise
    if pause is not None:
        return PlanPause(plan=Plan.model_validate(pause["plan"]), iteration=pause["iteration"])
    state = (await graph.aget_state(config)).values
    result = result_from_state(state, time.monotonic() - started)
    sink(Done(llm_calls=result.llm_calls, wall_s=result.wall_s, citations=result.citations))
    return result


async def _stream_until_pause(
    graph: CompiledStateGraph,
    payload: ResearchState | Command | None,
    config: dict[str, Any],
    runtime: Runtime,
    sink: EventSink,
) -> dict[str, Any] | None:
    """Run until the graph ends (None) or pauses for plan review (the interrupt's value)."""
    pause = None
    # "sync": a superstep's checkpoint is written before the next one starts, so a process killed
    # once the next node has begun (its events are out) never runs the finished step again.
    async for mode, chunk in graph.astream(
        payload, config, context=runtime, stream_mode=["custom", "updates"], durability="sync"
    ):
        if mode == "custom":
            sink(chunk)
        elif "__interrupt__" in chunk:
            pause = chunk["__interrupt__"][0].value
    return pause


def _ignore(_event: ResearchEvent) -> None:
    pass


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": RECURSION_LIMIT}
