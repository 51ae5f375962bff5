"""Background investigation: one search on the raw question, so the planner sees real context."""

from __future__ import annotations

from langgraph.runtime import Runtime as GraphRuntime

from agents.events import ErrorEvent, Phase, Status, ToolResult
from agents.nodes import emit
from agents.retrieval import Gathered, first_query, search_into
from agents.runtime import Runtime
from agents.state import ResearchState

BACKGROUND_STEP = -1


async def background_investigator(
    state: ResearchState, runtime: GraphRuntime[Runtime]
) -> ResearchState:
    """Search the question once and register what comes back."""
    options = state["options"]
    emit(runtime, Status(message="Looking for background on the question.", phase=Phase.PLANNING))
    gathered = Gathered()
    found = await search_into(
        gathered,
        runtime.context,
        options.provider,
        first_query(state["question"]),
        options.max_search_results,
    )
    for error in gathered.errors:
        emit(runtime, ErrorEvent(message=error))
    titles = ", ".join(source.title for source in found) or "nothing"
    emit(runtime, ToolResult(index=BACKGROUND_STEP, tool="search", summary=f"Found {titles}."))
    return {"sources": gathered.sources}
