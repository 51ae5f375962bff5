"""The research graph's state and the structured outputs the model writes.

State values are pydantic models, lists and plain scalars, so a SQLite checkpointer can store a
run after every step and a job can resume from its last completed step. Reducers merge what
parallel steps write: sources by URL, step results by (iteration, index), usage by addition.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from agents.config import ResearchOptions
from agents.llm import Usage, add_usage
from agents.sources import LocalRefs, Source, merge_sources
from agents.support import CitationSupport


class StepType(StrEnum):
    """What kind of work a plan step is."""

    RESEARCH = "research"
    ANALYSIS = "analysis"
    PROCESSING = "processing"


class Step(BaseModel):
    """One step of a research plan."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="A short name for the step.")
    description: str = Field(description="What to find out or compute, in one sentence.")
    step_type: StepType = Field(
        description="research: search for facts; analysis: reason or compute over what was "
        "found; processing: transform data with code."
    )
    need_search: bool = Field(description="True when the step must search for new sources.")


class Plan(BaseModel):
    """The planner's plan for answering the question."""

    model_config = ConfigDict(extra="forbid")

    locale: str = Field(description="Language of the plan, a BCP 47 tag.")
    thought: str = Field(description="What the question asks and what is still unknown.")
    title: str = Field(description="A short title for the research.")
    has_enough_context: bool = Field(
        description="True only when the sources already found answer the question."
    )
    steps: list[Step] = Field(description="The steps that find what is missing.")


class Route(StrEnum):
    """The coordinator's decision."""

    SMALL_TALK = "small_talk"
    RESEARCH = "research"


class Figure(BaseModel):
    """An image a code step produced, as base64 PNG (reports embed it as a data: URI)."""

    name: str
    png_base64: str

    @property
    def data_uri(self) -> str:
        """The figure as a `data:image/png;base64,...` URI."""
        return f"data:image/png;base64,{self.png_base64}"


class CodeRun(BaseModel):
    """What a code step ran and what came back."""

    code: str
    stdout: str
    stderr: str
    exit_code: int | None
    ok: bool
    figures: list[Figure] = Field(default_factory=list)


class StepResult(BaseModel):
    """The outcome of one plan step: notes citing local passage numbers, and what they map to."""

    iteration: int
    index: int
    title: str
    step_type: StepType
    notes: str = Field(description="Findings, citing `refs` by local number [k].")
    refs: LocalRefs = Field(default_factory=LocalRefs)
    code: CodeRun | None = None
    error: str | None = Field(default=None, description="Why the step fell short, if it did.")

    @property
    def key(self) -> tuple[int, int]:
        """Which plan and which step of it this result belongs to."""
        return (self.iteration, self.index)


class PlanReview(BaseModel):
    """A human's answer to the plan review interrupt: accept, or replace the steps."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "edit"] = "accept"
    steps: list[Step] | None = Field(
        default=None, description="With action=edit: the steps to research instead."
    )


class StepTask(BaseModel):
    """What the research team hands one step worker (a `Send` payload)."""

    question: str
    options: ResearchOptions
    iteration: int
    index: int
    step: Step
    earlier: list[StepResult] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)


def merge_step_results(done: list[StepResult] | None, new: list[StepResult]) -> list[StepResult]:
    """Reducer: a result replaces the one for the same step; results stay in plan order."""
    merged = {result.key: result for result in done or []}
    merged.update({result.key: result for result in new})
    return [merged[key] for key in sorted(merged)]


def merge_notices(notices: list[str] | None, new: list[str]) -> list[str]:
    """Reducer: notices for the report, each once, in order."""
    merged = list(notices or [])
    merged.extend(notice for notice in new if notice not in merged)
    return merged


class ResearchState(TypedDict, total=False):
    """Everything a run knows; the input is `question` and `options`."""

    question: str
    options: ResearchOptions
    route: Route
    plan: Plan | None
    plan_iterations: int
    sources: Annotated[list[Source], merge_sources]
    sources_announced: int
    # (iteration, index) of every step result already announced as a StepDone event.
    steps_announced: list[list[int]]
    step_results: Annotated[list[StepResult], merge_step_results]
    notices: Annotated[list[str], merge_notices]
    usage: Annotated[Usage, add_usage]
    answer: str
    report: str
    citations: CitationSupport
