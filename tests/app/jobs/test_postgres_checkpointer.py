"""LangGraph's Postgres checkpointer, as `checkpointer_factory` opens it for the job runner.

A run stops at a plan review interrupt, and a new saver (on a new connection, as in another
process) resumes it: the research state's own types come back whole. No engine: the research
graph's model is the scripted one of tests/agents.
"""

from __future__ import annotations

import operator
import os
import time
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from agents.config import ResearchOptions
from agents.graph import build_graph
from agents.research import initial_state
from agents.sources import Source
from agents.state import Plan, Step, StepType
from app.jobs.postgres_store import CHECKPOINTS_SCHEMA_LOCK, PostgresCheckpointers
from app.jobs.store import checkpointer_factory
from app.settings import Settings, load_settings
from tests.agents.conftest import Script, scripted_runtime
from tests.agents.test_graph_routing import QUESTION, default_script
from tests.app.jobs.starting_line import WAIT_FOR_GO, at_the_line, finish, go

PLAN = Plan(
    locale="en-US",
    thought="Two magazines, two start dates.",
    title="Magazine start dates",
    has_enough_context=False,
    steps=[
        Step(
            title="Arthur's Magazine start",
            description="When it started.",
            step_type=StepType.RESEARCH,
            need_search=True,
        )
    ],
)
SOURCE = Source(
    id=1,
    url="https://example.org/arthur",
    title="Arthur's Magazine",
    passage="Arthur's Magazine (1844-1846) was an American literary periodical.",
    provider="local",
    retrieved_at="2026-12-01T09:00:00Z",
)
# Sets the checkpointer up the moment the parent says "go".
SET_UP_ON_GO = f"""
import asyncio
from app.jobs.store import checkpointer_factory
from app.settings import load_settings
factory = checkpointer_factory(load_settings())
{WAIT_FOR_GO}

async def main():
    async with factory() as saver:
        print(type(saver).__name__, flush=True)

asyncio.run(main())
"""


class ReviewState(TypedDict, total=False):
    """A small state holding the research state's types, as a research checkpoint does."""

    question: str
    plan: Plan | None
    sources: Annotated[list[Source], operator.add]
    verdict: str


async def make_plan(state: ReviewState) -> ReviewState:
    return {"plan": PLAN, "sources": [SOURCE]}


async def review(state: ReviewState) -> ReviewState:
    answer = interrupt({"kind": "plan_review", "plan": PLAN.model_dump(mode="json")})
    return {"verdict": answer["action"]}


def review_graph() -> StateGraph:
    builder = StateGraph(ReviewState)
    builder.add_node("make_plan", make_plan)
    builder.add_node("review", review)
    builder.add_edge(START, "make_plan")
    builder.add_edge("make_plan", "review")
    builder.add_edge("review", END)
    return builder


@pytest.fixture
def settings(postgres_database: str) -> Settings:
    return load_settings(database_url=postgres_database)


def test_the_factory_opens_postgres_savers_for_a_database_url(settings: Settings) -> None:
    assert isinstance(checkpointer_factory(settings), PostgresCheckpointers)


async def test_a_run_stopped_at_review_resumes_from_a_new_saver(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    config: dict[str, Any] = {"configurable": {"thread_id": "job-1"}}
    async with checkpointer_factory(settings)() as saver:
        paused = await review_graph().compile(checkpointer=saver).ainvoke({"question": "q"}, config)
    assert paused["__interrupt__"][0].value["plan"]["title"] == PLAN.title

    async with checkpointer_factory(settings)() as saver:
        graph = review_graph().compile(checkpointer=saver)
        assert (await graph.aget_state(config)).next == ("review",)
        done = await graph.ainvoke(Command(resume={"action": "accept"}), config)
    assert done["verdict"] == "accept"
    assert isinstance(done["plan"], Plan) and done["plan"] == PLAN
    assert done["sources"] == [SOURCE] and isinstance(done["sources"][0], Source)
    assert "unregistered type" not in caplog.text


async def test_the_research_graph_resumes_its_plan_review_from_postgres(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    script: Script = default_script()
    config: dict[str, Any] = {"configurable": {"thread_id": "job-2"}}
    async with checkpointer_factory(settings)() as saver:
        paused = await build_graph(saver).ainvoke(
            initial_state(QUESTION, ResearchOptions()), config, context=scripted_runtime(script)
        )
    assert paused["__interrupt__"][0].value["kind"] == "plan_review"

    async with checkpointer_factory(settings)() as saver:
        graph = build_graph(saver)
        await graph.ainvoke(
            Command(resume={"action": "accept"}), config, context=scripted_runtime(script)
        )
        state = (await graph.aget_state(config)).values
    assert len(script.of("plan")) == 1, "the plan made before the new saver is reused"
    assert isinstance(state["plan"], Plan) and len(state["plan"].steps) == 2
    assert "## Answer" in state["report"]
    assert all(isinstance(source, Source) for source in state["sources"])
    assert "unregistered type" not in caplog.text, "a state type is missing from STATE_TYPES"


def test_two_processes_setting_checkpoints_up_at_once_both_succeed(settings: Settings) -> None:
    assert settings.database_url is not None
    env = {**os.environ, "FAWN_DATABASE_URL": settings.database_url}
    children = at_the_line(SET_UP_ON_GO, env)
    # Both wait at the set-up lock, then go one after the other.
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (CHECKPOINTS_SCHEMA_LOCK,))
        go(children)
        time.sleep(1.0)
        conn.execute("SELECT pg_advisory_unlock(%s)", (CHECKPOINTS_SCHEMA_LOCK,))
        assert [out.strip() for out in finish(children)] == ["AsyncPostgresSaver"] * 2
        versions = conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v").fetchall()
    assert [v for (v,) in versions] == list(range(len(versions)))
