"""Human plan review: the run pauses (a LangGraph interrupt) until someone accepts or edits it.

The interrupt's value is `{"kind": "plan_review", "plan": {...}, "iteration": n}`; resume with
`Command(resume={"action": "accept"})` or `{"action": "edit", "steps": [...]}` (a PlanReview).
With `auto_accept_plan` the review is skipped.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime as GraphRuntime
from langgraph.types import interrupt
from pydantic import ValidationError

from agents.events import PlanReady
from agents.nodes import emit
from agents.runtime import Runtime
from agents.state import PlanReview, ResearchState
from serving.errors import ConfigError

REVIEW_KIND = "plan_review"


def parse_review(answer: Any) -> PlanReview:
    """A resume value as a PlanReview; the bare string "accept" is accepted too."""
    if isinstance(answer, PlanReview):
        return answer
    if answer == "accept" or answer is None:
        return PlanReview()
    try:
        review = PlanReview.model_validate(answer)
    except ValidationError as exc:
        raise ConfigError(
            f"The plan review answer is not valid ({exc.errors()[0]['msg']}). Answer "
            '{"action": "accept"} or {"action": "edit", "steps": [...]}.'
        ) from exc
    if review.action == "edit" and not review.steps:
        raise ConfigError("An edited plan needs at least one step; to keep the plan, accept it.")
    return review


async def plan_review(state: ResearchState, runtime: GraphRuntime[Runtime]) -> ResearchState:
    """Wait for the human's verdict on the plan and apply an edit."""
    plan = state["plan"]
    if plan is None or state["options"].auto_accept_plan:
        return {}
    iteration = state.get("plan_iterations", 1)
    answer = interrupt(
        {"kind": REVIEW_KIND, "plan": plan.model_dump(mode="json"), "iteration": iteration}
    )
    review = parse_review(answer)
    if review.action == "accept" or review.steps is None:
        return {}
    edited = plan.model_copy(update={"steps": review.steps})
    emit(runtime, PlanReady(plan=edited, iteration=iteration))
    return {"plan": edited}
