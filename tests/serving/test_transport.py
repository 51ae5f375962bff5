"""The gated transports on their own: call class from the header, retries, slots, estimates.

The inner transport is httpx's MockTransport where a test needs to see what the gate hands on or
to script a failure; the real sockets are in test_client.py.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry

from serving.budget import CALL_CLASS_HEADER, Budget, CallClass
from serving.observability import gate_metrics
from serving.transport import (
    PROMPT_TOKENS_HEADER,
    GatedAsyncTransport,
    GatedTransport,
    KvEstimate,
    PerLoopAsyncTransport,
    RetryPolicy,
    estimate_prompt_tokens,
    estimate_text_tokens,
)

URL = "http://engine/v1/chat/completions"


def new_budget(limit: int = 8) -> Budget:
    return Budget(limit, metrics=gate_metrics(CollectorRegistry()))


def test_the_slot_is_taken_in_the_class_the_request_header_names() -> None:
    budget = new_budget()
    seen: list[tuple[dict[CallClass, int], httpx.Headers]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((budget.snapshot().in_flight, request.headers))
        return httpx.Response(200)

    transport = GatedTransport(budget, CallClass.RESEARCH, inner=httpx.MockTransport(handler))
    with httpx.Client(transport=transport) as client:
        headers = {CALL_CLASS_HEADER: "interactive", PROMPT_TOKENS_HEADER: "12"}
        client.post(URL, json={}, headers=headers)
    in_flight, sent = seen[0]
    assert in_flight[CallClass.INTERACTIVE] == 1
    assert in_flight[CallClass.RESEARCH] == 0
    # The class header travels on (a gateway budgets by it); the prompt count does not.
    assert sent[CALL_CLASS_HEADER] == "interactive"
    assert PROMPT_TOKENS_HEADER not in sent
    assert budget.snapshot().total_in_flight == 0


@pytest.mark.parametrize("header", [None, "no-such-class"])
def test_a_request_without_a_known_class_takes_the_default_and_says_so(
    header: str | None,
) -> None:
    budget = new_budget()
    seen: list[tuple[dict[CallClass, int], httpx.Headers]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((budget.snapshot().in_flight, request.headers))
        return httpx.Response(200)

    transport = GatedTransport(budget, CallClass.PLAN, inner=httpx.MockTransport(handler))
    with httpx.Client(transport=transport) as client:
        client.post(URL, json={}, headers={CALL_CLASS_HEADER: header} if header else None)
    in_flight, sent = seen[0]
    assert in_flight[CallClass.PLAN] == 1
    assert sent[CALL_CLASS_HEADER] == "plan"


async def test_one_async_transport_holds_slots_of_several_classes_at_once() -> None:
    budget = new_budget()
    transport = GatedAsyncTransport(
        budget, CallClass.RESEARCH, inner=httpx.MockTransport(lambda r: httpx.Response(200))
    )
    async with httpx.AsyncClient(transport=transport) as client:
        report = {CALL_CLASS_HEADER: CallClass.REPORT.value}
        interactive = {CALL_CLASS_HEADER: CallClass.INTERACTIVE.value}
        async with (
            client.stream("POST", URL, json={}, headers=report),
            client.stream("POST", URL, json={}, headers=interactive),
            client.stream("POST", URL, json={}),
        ):
            in_flight = budget.snapshot().in_flight
    assert in_flight[CallClass.REPORT] == 1
    assert in_flight[CallClass.INTERACTIVE] == 1
    assert in_flight[CallClass.RESEARCH] == 1
    assert budget.snapshot().total_in_flight == 0


def test_each_event_loop_gets_its_own_connection_pool() -> None:
    built: list[httpx.MockTransport] = []

    def factory() -> httpx.MockTransport:
        built.append(httpx.MockTransport(lambda r: httpx.Response(200)))
        return built[-1]

    transport = PerLoopAsyncTransport(factory)
    client = httpx.AsyncClient(transport=transport)

    async def two_requests() -> int:
        await client.get(URL)
        await client.get(URL)
        return transport.pools

    assert asyncio.run(two_requests()) == 1
    assert asyncio.run(two_requests()) == 1
    assert len(built) == 2
    assert transport.pools == 0, "the pools of closed loops are dropped"


def test_connection_errors_are_retried_by_the_transport() -> None:
    attempts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={})

    budget = new_budget()
    transport = GatedTransport(
        budget,
        CallClass.RESEARCH,
        retry=RetryPolicy(retries=3, backoff_s=0.01),
        inner=httpx.MockTransport(handler),
    )
    with httpx.Client(transport=transport) as client:
        assert client.post(URL, json={}).status_code == 200
    assert len(attempts) == 3
    assert budget.snapshot().total_in_flight == 0


def test_a_503_is_retried_no_sooner_than_its_retry_after() -> None:
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        if len(sent) == 1:
            return httpx.Response(503, headers={"Retry-After": "0.4"}, json={})
        return httpx.Response(200, json={})

    transport = GatedTransport(
        new_budget(),
        CallClass.RESEARCH,
        retry=RetryPolicy(retries=2, backoff_s=0.01),
        inner=httpx.MockTransport(handler),
    )
    with httpx.Client(transport=transport) as client:
        assert client.post(URL, json={}).status_code == 200
    assert sent[1] - sent[0] >= 0.4


def test_a_huge_retry_after_is_capped() -> None:
    policy = RetryPolicy(backoff_s=0.01, max_retry_after_s=5)
    assert policy.delay(0, retry_after_s=3600) == 5
    assert policy.delay(0, retry_after_s=None) <= 0.01


async def test_read_timeouts_are_not_retried() -> None:
    attempts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        raise httpx.ReadTimeout("slow", request=request)

    budget = new_budget()
    transport = GatedAsyncTransport(
        budget,
        CallClass.RESEARCH,
        retry=RetryPolicy(retries=3, backoff_s=0.01),
        inner=httpx.MockTransport(handler),
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(URL, json={})
    assert len(attempts) == 1
    assert budget.snapshot().total_in_flight == 0


async def test_an_unread_response_holds_its_slot_until_closed() -> None:
    budget = new_budget()
    transport = GatedAsyncTransport(
        budget, CallClass.RESEARCH, inner=httpx.MockTransport(lambda r: httpx.Response(200))
    )
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("POST", URL, json={}):
            assert budget.snapshot().total_in_flight == 1
        assert budget.snapshot().total_in_flight == 0


def test_the_kv_estimate_is_the_prompt_estimate_plus_the_completion_cap() -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = estimate_prompt_tokens({"messages": messages})
    capped = json.dumps({"messages": messages, "max_completion_tokens": 100}).encode()
    uncapped = json.dumps({"messages": messages}).encode()
    assert KvEstimate(default_max_tokens=1024)(capped) == prompt + 100
    assert KvEstimate(default_max_tokens=1024)(uncapped) == prompt + 1024
    # An uncapped request may run to the end of the context, and nothing runs past it.
    assert KvEstimate(max_model_len=4096)(uncapped) == 4096
    assert KvEstimate(default_max_tokens=8000, max_model_len=4096)(uncapped) == 4096
    assert KvEstimate()(b"not json") == 0


def test_the_prompt_estimate_counts_text_parts_tool_calls_and_tool_schemas() -> None:
    text = "Find the year Arthur's Magazine was founded."
    plain = estimate_prompt_tokens({"messages": [{"role": "user", "content": text}]})
    parts = estimate_prompt_tokens(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    )
    tool = {"type": "function", "function": {"name": "web_search", "parameters": {}}}
    with_tools = estimate_prompt_tokens(
        {"messages": [{"role": "user", "content": text}], "tools": [tool]}
    )
    assert parts == plain
    assert with_tools > plain + 20


def test_digits_and_punctuation_count_more_than_letters() -> None:
    assert estimate_text_tokens("1234567890") == 10
    assert estimate_text_tokens("abcdefghij") == pytest.approx(10 / 3)
    assert estimate_text_tokens("北京") == 6
