"""Per-run research options (DeerFlow's knobs and defaults), kept in graph state so a resumed
run behaves exactly as it started."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# `local`, `web`, or `mcp:NAME` (an MCP server's search tool; whether NAME is configured is
# known only where the settings are, so a run with an unknown one reports it at its first search).
MCP_SERVER_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
PROVIDER_PATTERN = rf"^(local|web|mcp:{MCP_SERVER_NAME})$"
SearchProviderName = Annotated[str, StringConstraints(pattern=PROVIDER_PATTERN)]


class ReportStyle(StrEnum):
    """The voice the reporter writes in."""

    ACADEMIC = "academic"
    POPULAR_SCIENCE = "popular_science"
    NEWS = "news"
    SOCIAL_MEDIA = "social_media"
    STRATEGIC_INVESTMENT = "strategic_investment"


class ReportMode(StrEnum):
    """Which report the reporter writes."""

    # What the served model declares it can do (serving/models.yaml `abilities`).
    AUTO = "auto"
    # The extractive answer card: a short answer read from the best passages, with its evidence.
    CARD = "card"
    # A full report: the answer, then sections written from the findings (falls back to the card).
    FULL = "full"


class ResearchOptions(BaseModel):
    """How one research run plans, searches and reports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_plan_iterations: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Planning rounds: after the steps the planner may re-plan until this many "
        "plans were made. 0 and 1 both mean one plan, no re-planning.",
    )
    max_step_num: int = Field(
        default=3, ge=1, le=10, description="Most steps one plan may have; longer plans are cut."
    )
    max_search_results: int = Field(
        default=3, ge=1, le=20, description="Documents kept from each search."
    )
    report_style: ReportStyle = Field(
        default=ReportStyle.ACADEMIC, description="The voice of the report."
    )
    report_mode: ReportMode = Field(
        default=ReportMode.AUTO,
        description="`full` forces a full report, `card` the short answer card; `auto` writes "
        "what the served model can do.",
    )
    locale: str = Field(
        default="en-US",
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="Language of the plan and the report, as a BCP 47 tag (en-US, zh-CN, ...).",
    )
    provider: SearchProviderName = Field(
        default="local",
        description="Where to search: `local` (the corpus), `web`, or `mcp:NAME` (the search "
        "tool of the MCP server configured as NAME).",
    )
    auto_accept_plan: bool = Field(
        default=False, description="Skip the human plan review and research the plan as made."
    )
    enable_coder: bool = Field(
        default=True,
        description="Run analysis and processing steps as Python in the sandbox "
        "(needs bubblewrap).",
    )
    enable_background_investigation: bool = Field(
        default=True, description="Search the raw question once before planning."
    )
    parallel_steps: bool = Field(
        default=True,
        description="Research the plan's independent steps at the same time. False runs the "
        "steps one after another, as DeerFlow does: slower, but a run then holds at most one "
        "engine slot, leaving more to other jobs.",
    )

    @property
    def plan_rounds(self) -> int:
        """How many plans a run may make; always at least one."""
        return max(1, self.max_plan_iterations)
