"""The research graph's roles, one module each, and the names the graph wires them under."""

from __future__ import annotations

from enum import StrEnum

from langgraph.runtime import Runtime as GraphRuntime
from pydantic import BaseModel

from agents.runtime import Runtime


class Node(StrEnum):
    """Node names of the research graph."""

    COORDINATOR = "coordinator"
    BACKGROUND = "background_investigator"
    PLANNER = "planner"
    PLAN_REVIEW = "plan_review"
    RESEARCH_TEAM = "research_team"
    RESEARCHER = "researcher"
    CODER = "coder"
    REPORTER = "reporter"


def emit(runtime: GraphRuntime[Runtime], event: BaseModel) -> None:
    """Send a ResearchEvent to whoever streams the run (`stream_mode="custom"`)."""
    runtime.stream_writer(event)
