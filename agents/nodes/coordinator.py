"""Coordinator: answers greetings and small talk itself, hands research questions on.

The decision is deterministic where it can be (a small model misroutes too often): greeting and
thanks patterns are small talk; anything shaped like a question or a task is research. Only a
short message that is neither goes to a constrained classification, and research is the fallback.
"""

from __future__ import annotations

import re
from typing import Literal

from langgraph.graph import END
from langgraph.runtime import Runtime as GraphRuntime
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict

from agents.events import Status
from agents.llm import ModelCalls
from agents.nodes import Node, emit
from agents.prompts import render_messages
from agents.runtime import Runtime
from agents.state import ResearchState, Route
from agents.structured import generate_structured, generate_text
from agents.text import words
from serving.budget import CallClass

_GREETING = re.compile(
    r"^(hi|hello|hey|hiya|howdy|yo|greetings|good (morning|afternoon|evening|day)|"
    r"how are you( doing)?|what'?s up|thanks?( you)?( so much| a lot| again)?|thx|ty|cheers|"
    r"bye|goodbye|see you|ok(ay)?|cool|great|nice|who are you|what can you do)"
    r"( there| fawn| friend| everyone| all| again| today)?$",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^(what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|"
    r"should|will|would|has|have|had|compare|explain|describe|list|find|summari[sz]e|analy[sz]e|"
    r"research|investigate|calculate|compute|plot|estimate|give|tell)\b",
    re.IGNORECASE,
)
# A message this long is a task even without a question mark.
TASK_WORDS = 7
REPLY_MAX_TOKENS = 96
ROUTE_MAX_TOKENS = 16
FALLBACK_REPLY = "Hello! Ask me a research question and I will look into it."


class RouteChoice(BaseModel):
    """The constrained classification's answer."""

    model_config = ConfigDict(extra="forbid")

    route: Route


def obvious_route(message: str) -> Route | None:
    """The route a message's shape decides, or None when only a classifier can tell."""
    text = " ".join(words(message)).strip()
    if _GREETING.match(text):
        return Route.SMALL_TALK
    if (
        message.strip().endswith("?")
        or _QUESTION_START.match(text)
        or len(text.split()) >= TASK_WORDS
    ):
        return Route.RESEARCH
    return None


async def coordinator(
    state: ResearchState, runtime: GraphRuntime[Runtime]
) -> Command[Literal["background_investigator", "planner", "__end__"]]:
    """Route the question: a direct reply for small talk, the research pipeline otherwise."""
    question, options = state["question"], state["options"]
    calls = ModelCalls(runtime.context)
    route = obvious_route(question)
    if route is None:
        choice = await generate_structured(
            calls,
            CallClass.INTERACTIVE,
            render_messages("route", message=question),
            RouteChoice,
            max_tokens=ROUTE_MAX_TOKENS,
            fallback=lambda _reason: RouteChoice(route=Route.RESEARCH),
        )
        route = choice.value.route
    if route is Route.SMALL_TALK:
        reply = await generate_text(
            calls,
            CallClass.INTERACTIVE,
            render_messages("small_talk", message=question, locale=options.locale),
            max_tokens=REPLY_MAX_TOKENS,
        )
        reply = reply or FALLBACK_REPLY
        update = {"route": route, "answer": reply, "report": reply, "usage": calls.usage}
        return Command(goto=END, update=update)
    emit(runtime, Status(message="This is a research question."))
    goto = Node.BACKGROUND if options.enable_background_investigation else Node.PLANNER
    return Command(goto=goto, update={"route": route, "usage": calls.usage})
