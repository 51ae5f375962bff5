"""What a research run reports while it works, as typed events.

Nodes emit them through LangGraph's custom stream (`runtime.stream_writer`); `run_research`
forwards them to its `on_event` callback, and a job store can log them and serve them as SSE.
Every event dumps to JSON with `event.model_dump(mode="json")`; `kind` names its type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, field_validator

from agents.sources import Source
from agents.state import Figure, Plan, StepType
from agents.support import CitationSupport

TOOL_OUTPUT_CHARS = 4000
TRUNCATED = "\n… (truncated)"


class Phase(StrEnum):
    """The stage a run has reached (a job's status follows it)."""

    PLANNING = "planning"
    RESEARCHING = "researching"
    REPORTING = "reporting"


class Status(BaseModel):
    """Progress in words: which role is working on what, or a notice for the user; `phase` is
    set when the run enters a new stage."""

    kind: Literal["status"] = "status"
    message: str
    phase: Phase | None = None


class PlanReady(BaseModel):
    """A plan was made (or a fallback plan used); review comes next unless auto-accepted."""

    kind: Literal["plan"] = "plan"
    plan: Plan
    iteration: int
    fallback_reason: str | None = None


class StepStarted(BaseModel):
    """A worker took up a plan step."""

    kind: Literal["step_started"] = "step_started"
    iteration: int
    index: int
    title: str
    step_type: StepType


class SourceAdded(BaseModel):
    """A document entered the source registry under its id."""

    kind: Literal["source_added"] = "source_added"
    source: Source


def capped(text: str | None, max_chars: int = TOOL_OUTPUT_CHARS) -> str | None:
    """`text` cut to `max_chars` (marked as truncated), so one event stays small."""
    if text is None or len(text) <= max_chars:
        return text
    return text[: max_chars - len(TRUNCATED)] + TRUNCATED


class ToolResult(BaseModel):
    """A tool a step used came back: a search (its summary), or a sandbox run, which also
    carries its program, output and figures for the live timeline (each text capped)."""

    kind: Literal["tool_result"] = "tool_result"
    index: int
    tool: Literal["search", "python"]
    summary: str
    code: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    figures: list[Figure] = Field(default_factory=list)

    @field_validator("code", "stdout", "stderr")
    @classmethod
    def _cap(cls, text: str | None) -> str | None:
        return capped(text)


class ToolCall(BaseModel):
    """A call of an MCP server's tool and what came of it: a summary of its result, or the
    error that made the step go on without it."""

    kind: Literal["tool_call"] = "tool_call"
    server: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    summary: str
    error: str | None = None


class StepDone(BaseModel):
    """A plan step finished, with its notes."""

    kind: Literal["step_done"] = "step_done"
    iteration: int
    index: int
    title: str
    notes: str
    error: str | None = None


class ReportChunk(BaseModel):
    """A piece of the final report, in order."""

    kind: Literal["report_chunk"] = "report_chunk"
    text: str


class ErrorEvent(BaseModel):
    """Something failed; `fatal` says whether the run stopped."""

    kind: Literal["error"] = "error"
    message: str
    fatal: bool = False


class Done(BaseModel):
    """The run finished."""

    kind: Literal["done"] = "done"
    llm_calls: int
    wall_s: float
    citations: CitationSupport | None = Field(
        default=None,
        description="The report's cited sentences and how many their passages support.",
    )


ResearchEvent = Annotated[
    Status
    | PlanReady
    | StepStarted
    | SourceAdded
    | ToolResult
    | ToolCall
    | StepDone
    | ReportChunk
    | ErrorEvent
    | Done,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[ResearchEvent] = TypeAdapter(ResearchEvent)
