"""Every prompt fits the model's context: pieces are trimmed, completions capped, counts real."""

from __future__ import annotations

import pytest
from openai import OpenAI

from agents.context import ContextBudget, ContextOverflow, shrink_pieces
from agents.prompts import render_messages
from serving.endpoint import Endpoint
from serving.tokens import (
    EngineTokenCounter,
    EstimatingTokenCounter,
    Message,
    estimate_text_tokens,
    estimate_tokens,
)

QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"
PASSAGE = (
    "Arthur's Magazine (1844–1846) was an American literary periodical published in "
    "Philadelphia in the 19th century. Edited by T.S. Arthur, it featured work by Edgar A. Poe, "
    "J.H. Ingraham, Sarah Josepha Hale, Thomas G. Spear, and others. "
)


def render(passages: list[str]) -> list[Message]:
    return render_messages(
        "researcher", question=QUESTION, step="Start dates", passages=passages, locale="en-US"
    )


def numbered(count: int) -> list[str]:
    return [f"[{k}] Source {k}: {PASSAGE * 3}" for k in range(1, count + 1)]


async def test_fit_trims_the_last_pieces_first_until_the_prompt_fits() -> None:
    budget = ContextBudget(1024, EstimatingTokenCounter())
    pieces = numbered(12)
    fitted = await budget.fit(render, pieces, max_tokens=256)
    assert await budget.counter.count(fitted.messages) <= budget.prompt_limit(256)
    assert 0 < len(fitted.pieces) < len(pieces)
    assert fitted.pieces[0] == pieces[0], "the first pieces are kept whole"
    assert fitted.pieces[-1] in fitted.messages[-1]["content"]


async def test_fit_keeps_a_prompt_that_already_fits() -> None:
    budget = ContextBudget(4096, EstimatingTokenCounter())
    fitted = await budget.fit(render, numbered(2), max_tokens=256)
    assert fitted.pieces == numbered(2)


async def test_a_fixed_part_too_long_for_the_context_is_refused() -> None:
    budget = ContextBudget(300, EstimatingTokenCounter())
    with pytest.raises(ContextOverflow, match="shorter question"):
        await budget.fit(render, numbered(2), max_tokens=256)


async def test_completion_cap_shrinks_to_the_room_left() -> None:
    budget = ContextBudget(1024, EstimatingTokenCounter())
    messages = render(numbered(1))
    used = await budget.counter.count(messages)
    room = await budget.completion_room(messages, max_tokens=4096)
    assert room.max_tokens == 1024 - used - 16
    assert room.prompt_tokens == used
    assert (await budget.completion_room(messages, max_tokens=64)).max_tokens == 64


async def test_no_room_to_answer_is_refused_before_the_engine_would() -> None:
    budget = ContextBudget(400, EstimatingTokenCounter())
    with pytest.raises(ContextOverflow, match="no room to answer"):
        await budget.completion_room(render(numbered(3)), max_tokens=64)


def test_shrink_pieces_cuts_at_a_word_boundary() -> None:
    assert shrink_pieces(["alpha beta", "gamma delta epsilon"], 16) == ["alpha beta", "gamma…"]


def test_estimate_counts_non_ascii_text_by_bytes() -> None:
    assert estimate_text_tokens("abcdef") == 2
    assert estimate_text_tokens("日本") == 6


async def test_unreachable_tokenize_falls_back_to_the_estimate() -> None:
    endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", max_model_len=4096)
    counter = EngineTokenCounter(endpoint, timeout_s=2)
    messages = render(numbered(1))
    assert await counter.count(messages) == estimate_tokens(messages)
    assert not counter.exact


@pytest.mark.engine
async def test_engine_count_matches_the_prompt_tokens_it_bills(engine: Endpoint) -> None:
    messages = render(numbered(2))
    counter = EngineTokenCounter(engine)
    counted = await counter.count(messages)
    reply = OpenAI(base_url=engine.base_url, api_key="EMPTY").chat.completions.create(
        model=engine.model, messages=messages, max_tokens=1, temperature=0
    )
    assert counter.exact
    assert reply.usage is not None and counted == reply.usage.prompt_tokens


@pytest.mark.engine
async def test_estimate_never_undercounts_the_engine(engine: Endpoint) -> None:
    counter = EngineTokenCounter(engine)
    for messages in (
        render(numbered(3)),
        render(["[1] 東京は日本の首都です。人口は約1400万人です。" * 5]),
        render(["[1] " + "x = [1, 2, 3]; print(sum(x)) # code-like text " * 20]),
    ):
        assert estimate_tokens(messages) >= await counter.count(messages)


@pytest.mark.engine
async def test_a_fitted_prompt_is_accepted_by_the_engine(engine: Endpoint) -> None:
    budget = ContextBudget(engine.max_model_len, EngineTokenCounter(engine))
    fitted = await budget.fit(render, numbered(40), max_tokens=256)
    assert len(fitted.pieces) < 40
    reply = OpenAI(base_url=engine.base_url, api_key="EMPTY").chat.completions.create(
        model=engine.model, messages=fitted.messages, max_tokens=256, temperature=0
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens + 256 <= engine.max_model_len
