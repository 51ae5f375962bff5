"""Planner: turns the question (and what was found so far) into a plan of steps.

The plan is JSON-schema output, checked beyond the schema (steps on the question's subjects, no
duplicates, at most max_step_num), repaired once, and replaced by a plan derived from the
question if the model still fails, so a run always has a plan. After the research steps the
planner runs again and may add a round, until `plan_rounds` plans were made.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from langgraph.runtime import Runtime as GraphRuntime
from langgraph.types import Command

from agents.citations import remap_citations
from agents.config import ResearchOptions
from agents.events import Phase, PlanReady, Status
from agents.llm import ModelCalls
from agents.nodes import Node, emit
from agents.prompts import render_messages
from agents.runtime import Runtime
from agents.sources import Source
from agents.state import Plan, ResearchState, Step, StepResult, StepType
from agents.structured import generate_structured
from agents.text import content_words, truncate
from serving.budget import CallClass

log = logging.getLogger(__name__)
PLAN_FALLBACK = "The model's plan could not be used; researching the question directly."

PLAN_MAX_TOKENS = 512
FINDING_CHARS = 400
# Lengths the engine's guided decoding enforces, so a looping model cannot eat the whole cap.
TITLE_CHARS = 80
TEXT_CHARS = 200


def plan_schema(options: ResearchOptions) -> dict[str, Any]:
    """The Plan JSON schema with this run's limits: its locale, at most max_step_num steps."""
    schema = Plan.model_json_schema()
    properties = schema["properties"]
    properties["locale"]["enum"] = [options.locale]
    properties["thought"]["maxLength"] = TEXT_CHARS
    properties["title"]["maxLength"] = TITLE_CHARS
    properties["steps"].update(minItems=1, maxItems=options.max_step_num)
    step = schema["$defs"]["Step"]["properties"]
    step["title"]["maxLength"] = TITLE_CHARS
    step["description"]["maxLength"] = TEXT_CHARS
    return schema


def check_plan(plan: Plan, question: str, options: ResearchOptions, first: bool) -> Plan:
    """The plan with off-topic and repeated steps dropped and limits applied; ValueError if
    nothing usable is left.

    A first plan always researches: a small model claims "enough context" far too readily.
    """
    subjects = set(content_words(question))
    steps: list[Step] = []
    for step in plan.steps:
        words = set(content_words(f"{step.title} {step.description}"))
        repeated = any(step.title.strip().lower() == s.title.strip().lower() for s in steps)
        if step.title.strip() and words & subjects and not repeated:
            steps.append(step)
    enough = plan.has_enough_context and not first
    if not steps and not enough:
        raise ValueError(
            "no step is about the question's subjects; give each step a title and description "
            "that name what the question asks about"
        )
    return plan.model_copy(
        update={
            "steps": steps[: options.max_step_num],
            "locale": options.locale,
            "has_enough_context": enough,
        }
    )


def fallback_plan(question: str, options: ResearchOptions) -> Plan:
    """A one-step plan that researches the question itself (its thought says so in user words;
    why the model's plan failed goes to the log)."""
    return Plan(
        locale=options.locale,
        thought=PLAN_FALLBACK,
        title=truncate(question, TITLE_CHARS),
        has_enough_context=False,
        steps=[
            Step(
                title=truncate(question, TITLE_CHARS),
                description=question,
                step_type=StepType.RESEARCH,
                need_search=True,
            )
        ],
    )


def findings(results: Sequence[StepResult], sources: Sequence[Source]) -> list[str]:
    """What the planner is shown: step notes when there are any, else the background passages."""
    if results:
        return [
            f"{r.title}: {truncate(remap_citations(r.notes, {}), FINDING_CHARS)}" for r in results
        ]
    return [f"{s.title}: {truncate(s.passage, FINDING_CHARS)}" for s in sources]


async def planner(
    state: ResearchState, runtime: GraphRuntime[Runtime]
) -> Command[Literal["plan_review", "reporter"]]:
    """Make the next plan, or hand over to the reporter once no more rounds are allowed."""
    question, options = state["question"], state["options"]
    iteration = state.get("plan_iterations", 0)
    if iteration >= options.plan_rounds:
        return Command(goto=Node.REPORTER)
    emit(runtime, Status(message="Planning the research.", phase=Phase.PLANNING))
    fitted = await runtime.context.context_budget.fit(
        lambda kept: render_messages(
            "planner",
            question=question,
            locale=options.locale,
            max_steps=options.max_step_num,
            findings=kept,
        ),
        findings(state.get("step_results", []), state.get("sources", [])),
        PLAN_MAX_TOKENS,
    )
    calls = ModelCalls(runtime.context)
    made = await generate_structured(
        calls,
        CallClass.PLAN,
        fitted.messages,
        Plan,
        max_tokens=PLAN_MAX_TOKENS,
        json_schema=plan_schema(options),
        check=lambda plan: check_plan(plan, question, options, first=iteration == 0),
        fallback=lambda _reason: fallback_plan(question, options),
    )
    plan = made.value
    # The parse error is for developers (the log); users read what happened, in their words.
    shown = PLAN_FALLBACK if made.fallback_reason else None
    if made.fallback_reason:
        log.info("plan fallback: %s", made.fallback_reason)
    emit(runtime, PlanReady(plan=plan, iteration=iteration + 1, fallback_reason=shown))
    update: ResearchState = {"plan": plan, "plan_iterations": iteration + 1, "usage": calls.usage}
    if shown:
        update["notices"] = [shown]
    goto = Node.REPORTER if plan.has_enough_context else Node.PLAN_REVIEW
    return Command(goto=goto, update=update)
