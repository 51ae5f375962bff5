"""Structured output survives whatever the model writes: repair once, then fall back."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict

from agents.config import ResearchOptions
from agents.context import ContextBudget
from agents.llm import Completion, ModelCalls
from agents.nodes.planner import PLAN_FALLBACK, check_plan, fallback_plan, plan_schema
from agents.runtime import Runtime
from agents.state import Plan
from agents.structured import (
    ParseFailure,
    clean_text,
    generate_structured,
    parse_structured,
    strip_think,
    trim_repetition,
)
from serving.budget import Budget, CallClass
from serving.client import chat_model
from serving.endpoint import Endpoint
from serving.settings import LLMSettings
from serving.tokens import EngineTokenCounter
from tests.agents.conftest import MemorySearch, Script, cut_off, scripted_runtime

QUESTION = "Were Scott Derrickson and Ed Wood of the same nationality?"


class Capital(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: str
    population_millions: float


def fallback_capital(_reason: str) -> Capital:
    return Capital(city="unknown", population_millions=0)


async def ask_capital(runtime: Runtime) -> tuple[Capital, str | None, int]:
    made = await generate_structured(
        ModelCalls(runtime),
        CallClass.RESEARCH,
        [{"role": "user", "content": "The capital of France as JSON."}],
        Capital,
        max_tokens=64,
        fallback=fallback_capital,
    )
    return made.value, made.fallback_reason, made.attempts


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<think>plan the answer</think>Paris.", "Paris."),
        ("<THINK>\nmulti\nline\n</THINK>\n\nParis.", "Paris."),
        ("reasoning opened in the prompt</think>Paris.", "Paris."),
        ("Paris.<think>a thought cut off at the cap", "Paris."),
        ("No reasoning here.", "No reasoning here."),
    ],
)
def test_think_blocks_are_stripped(raw: str, clean: str) -> None:
    assert strip_think(raw).strip() == clean


def test_repetition_is_cut_where_the_loop_starts() -> None:
    loop = "Scott Derrickson is an American film director. " * 5
    text, repeated = trim_repetition("Both are American. " + loop)
    assert repeated
    assert text == "Both are American. Scott Derrickson is an American film director."


def test_text_without_loops_is_left_alone() -> None:
    text = "Ed Wood was American. Scott Derrickson is American. So they share a nationality."
    assert trim_repetition(text) == (text, False)


def test_a_run_of_one_character_counts_as_a_loop() -> None:
    text, repeated = trim_repetition("The answer is yes" + "!" * 200)
    assert repeated and text == "The answer is yes!"


def test_clean_text_strips_think_and_loops_together() -> None:
    assert clean_text("<think>x</think> Yes. Yes. Yes. " + "Yes it is so. " * 6) == (
        "Yes. Yes. Yes. Yes it is so."
    )


@pytest.mark.parametrize(
    ("completion", "problem"),
    [
        (Completion("not json", "stop"), "not valid JSON"),
        (Completion("", "stop"), "empty"),
        (Completion('{"city": "Paris", "population_millions": 2.1', "length"), "cut off"),
        (Completion('{"city": "Paris"}', "stop"), "population_millions"),
        (Completion('{"city": "Paris", "population_millions": 2, "x": 1}', "stop"), "x"),
    ],
    ids=["invalid", "empty", "cut-off", "missing-field", "extra-field"],
)
def test_parse_failures_say_what_is_wrong(completion: Completion, problem: str) -> None:
    with pytest.raises(ParseFailure, match=problem):
        parse_structured(completion, Capital)


def test_fenced_json_after_a_think_block_parses() -> None:
    text = '<think>hm</think>```json\n{"city": "Paris", "population_millions": 2.1}\n```'
    assert parse_structured(Completion(text, "stop"), Capital).city == "Paris"


async def test_one_repair_turn_shows_the_model_its_error() -> None:
    script = Script(
        replies={
            "capital": [
                '{"city": "Paris"}',
                json.dumps({"city": "Paris", "population_millions": 2.1}),
            ]
        }
    )
    value, reason, attempts = await ask_capital(scripted_runtime(script))
    assert value.city == "Paris" and reason is None and attempts == 2
    repair = script.calls[1].prompt
    assert '{"city": "Paris"}' in repair and "population_millions" in repair


@pytest.mark.parametrize(
    "junk",
    ["", "nonsense", cut_off('{"city": "Paris, Paris, Paris, Paris')],
    ids=["empty", "invalid", "cut-off"],
)
async def test_two_failures_give_the_fallback_not_an_exception(junk: object) -> None:
    script = Script(replies={"capital": junk})
    value, reason, attempts = await ask_capital(scripted_runtime(script))
    assert value == fallback_capital("") and reason and attempts == 2


async def test_a_length_error_from_the_client_is_a_parse_failure() -> None:
    script = Script(replies={"capital": _raise_length_error})
    value, reason, _attempts = await ask_capital(scripted_runtime(script))
    assert value.city == "unknown" and "cut off" in (reason or "")


def test_plan_schema_pins_locale_and_caps_steps() -> None:
    schema = plan_schema(ResearchOptions(max_step_num=2, locale="de-DE"))
    assert schema["properties"]["locale"]["enum"] == ["de-DE"]
    assert schema["properties"]["steps"]["maxItems"] == 2


def test_check_plan_drops_repeated_and_off_topic_steps_and_caps_length() -> None:
    plan = Plan.model_validate(
        {
            "locale": "xx",
            "thought": "t",
            "title": "t",
            "has_enough_context": True,
            "steps": [
                {"title": t, "description": d, "step_type": "research", "need_search": True}
                for t, d in [
                    ("Scott Derrickson", "His nationality."),
                    ("Scott Derrickson", "Again."),
                    ("Bananas", "Fruit prices."),
                    ("Ed Wood", "His nationality."),
                    ("Nationality", "Compare them."),
                ]
            ],
        }
    )
    checked = check_plan(plan, QUESTION, ResearchOptions(max_step_num=2), first=True)
    assert [s.title for s in checked.steps] == ["Scott Derrickson", "Ed Wood"]
    assert checked.locale == "en-US"
    assert checked.has_enough_context is False, "a first plan always researches"


def test_fallback_plan_researches_the_question_and_says_so_in_user_words() -> None:
    plan = fallback_plan(QUESTION, ResearchOptions())
    assert [s.description for s in plan.steps] == [QUESTION]
    assert plan.thought == PLAN_FALLBACK


@pytest.mark.engine
async def test_cut_off_structured_output_on_the_real_engine_falls_back(
    engine: Endpoint, memory_search: MemorySearch
) -> None:
    budget = Budget(8)
    runtime = Runtime(
        model_for=lambda call_class, *, max_tokens, temperature=None, prompt_tokens=None: (
            chat_model(
                engine,
                LLMSettings(),
                budget,
                call_class,
                max_tokens=max_tokens,
                temperature=0,
                prompt_tokens=prompt_tokens,
            )
        ),
        search_for=lambda _name: memory_search,
        context_budget=ContextBudget(engine.max_model_len, EngineTokenCounter(engine)),
    )
    made = await generate_structured(
        ModelCalls(runtime),
        CallClass.PLAN,
        [{"role": "user", "content": f"Plan research on: {QUESTION}"}],
        Plan,
        max_tokens=8,
        fallback=lambda _reason: fallback_plan(QUESTION, ResearchOptions()),
    )
    assert made.fallback_reason and "cut off" in made.fallback_reason
    assert made.value.steps[0].description == QUESTION


def _raise_length_error(_messages: object) -> str:
    completion = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": '{"city": "Par'},
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 64, "total_tokens": 84},
        }
    )
    raise openai.LengthFinishReasonError(completion=completion)
