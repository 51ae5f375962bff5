"""The research graph, wired top to bottom.

    coordinator ─┬─> END (small talk, answered directly)
                 └─> background_investigator? ─> planner ─┬─> plan_review ─> research_team
                                                          └─> reporter ─> END
    research_team ─┬─> researcher / coder (one Send per ready step, in parallel) ─> research_team
                   └─> planner (plan finished: re-plan or hand over to the reporter)

Nothing is compiled at import; `build_graph` returns a fresh compiled graph. The run context is
an `agents.runtime.Runtime` (`context=` when invoking); the state is `agents.state.ResearchState`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agents.config import ReportMode, ReportStyle, ResearchOptions
from agents.llm import Usage
from agents.nodes import Node
from agents.nodes.background import background_investigator
from agents.nodes.coder import coder
from agents.nodes.coordinator import coordinator
from agents.nodes.plan_review import plan_review
from agents.nodes.planner import planner
from agents.nodes.reporter import reporter
from agents.nodes.research_team import dispatch_steps, research_team
from agents.nodes.researcher import researcher
from agents.runtime import Runtime
from agents.sources import LocalRefs, Source
from agents.state import (
    CodeRun,
    Figure,
    Plan,
    ResearchState,
    Route,
    Step,
    StepResult,
    StepTask,
    StepType,
)
from agents.support import CitationSupport

# Every class a checkpoint of the research state holds (Send payloads included).
STATE_TYPES: tuple[type, ...] = (
    ResearchOptions, ReportStyle, ReportMode, Route, Usage, Source, LocalRefs,
    Plan, Step, StepType, StepResult, StepTask, CodeRun, Figure, CitationSupport,
)  # fmt: skip


def checkpoint_serializer() -> JsonPlusSerializer:
    """The serializer for research checkpoints: it revives the state's own types, no others.

    Pass it to any checkpointer that stores research runs, e.g.
    `AsyncSqliteSaver(connection, serde=checkpoint_serializer())`.
    """
    return JsonPlusSerializer(
        allowed_msgpack_modules=[(cls.__module__, cls.__name__) for cls in STATE_TYPES]
    )


@asynccontextmanager
async def sqlite_checkpointer(path: Path) -> AsyncIterator[AsyncSqliteSaver]:
    """A SQLite checkpointer for research runs at `path` (created if missing)."""
    async with aiosqlite.connect(str(path)) as connection:
        yield AsyncSqliteSaver(connection, serde=checkpoint_serializer())


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The compiled research graph; pass a checkpointer to allow plan review and resuming."""
    builder = StateGraph(ResearchState, context_schema=Runtime)

    builder.add_node(Node.COORDINATOR, coordinator)
    builder.add_node(Node.BACKGROUND, background_investigator)
    builder.add_node(Node.PLANNER, planner)
    builder.add_node(Node.PLAN_REVIEW, plan_review)
    builder.add_node(Node.RESEARCH_TEAM, research_team)
    builder.add_node(Node.RESEARCHER, researcher)
    builder.add_node(Node.CODER, coder)
    builder.add_node(Node.REPORTER, reporter)

    builder.add_edge(START, Node.COORDINATOR)
    builder.add_edge(Node.BACKGROUND, Node.PLANNER)
    builder.add_edge(Node.PLAN_REVIEW, Node.RESEARCH_TEAM)
    builder.add_conditional_edges(
        Node.RESEARCH_TEAM, dispatch_steps, [Node.RESEARCHER, Node.CODER, Node.PLANNER]
    )
    builder.add_edge(Node.RESEARCHER, Node.RESEARCH_TEAM)
    builder.add_edge(Node.CODER, Node.RESEARCH_TEAM)
    builder.add_edge(Node.REPORTER, END)

    return builder.compile(checkpointer=checkpointer)
