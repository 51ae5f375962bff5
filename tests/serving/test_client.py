"""The chat-model factory and the gated transports against a scripted local HTTP server.

The server is a real uvicorn process thread speaking just enough of the OpenAI chat API to answer
with the status codes a test scripts, so retries and error translation run over real sockets.
Behaviour on the real engine is in test_budget_engine.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.budget import Budget, CallClass, KvCapacity
from serving.client import chat_model
from serving.endpoint import Endpoint
from serving.errors import BudgetTimeout, EngineError
from serving.observability import gate_metrics
from serving.settings import LLMSettings
from serving.transport import (
    PROMPT_TOKENS_HEADER,
    GatedAsyncTransport,
    GatedTransport,
    KvEstimate,
    RetryPolicy,
    estimate_prompt_tokens,
    estimate_text_tokens,
)
from tests.conftest import free_port

COMPLETION = {
    "id": "chatcmpl-test",
    "object": "chat.completion",
    "created": 0,
    "model": "scripted",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


@dataclass
class ScriptedServer:
    """Answers chat completions with scripted status codes (then 200), recording each body."""

    base_url: str
    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: Request) -> JSONResponse:
        self.bodies.append(json.loads(await request.body()))
        self.headers.append(dict(request.headers))
        status = self.statuses.pop(0) if self.statuses else 200
        if status != 200:
            return JSONResponse({"error": {"message": f"scripted {status}"}}, status_code=status)
        return JSONResponse(COMPLETION)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    port = free_port()
    scripted = ScriptedServer(base_url=f"http://127.0.0.1:{port}/v1")
    app = Starlette(routes=[Route("/v1/chat/completions", scripted.handle, methods=["POST"])])
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "scripted server did not start"
        time.sleep(0.01)
    yield scripted
    uv.should_exit = True
    thread.join(timeout=10)


def endpoint_for(server: ScriptedServer) -> Endpoint:
    return Endpoint(base_url=server.base_url, model="scripted", max_model_len=4096)


def fast_llm(**changes: object) -> LLMSettings:
    return LLMSettings(timeout_s=10.0, **changes)


def new_budget(limit: int = 8, **kwargs: object) -> Budget:
    return Budget(limit, metrics=gate_metrics(CollectorRegistry()), **kwargs)


def test_chat_model_sends_sampling_defaults_and_always_caps_the_completion(
    server: ScriptedServer,
) -> None:
    llm = fast_llm()
    model = chat_model(endpoint_for(server), llm, new_budget(), CallClass.RESEARCH)
    assert model.invoke("What is the capital of France?").content == "Paris."
    body = server.bodies[0]
    assert body["model"] == "scripted"
    assert body["temperature"] == llm.sampling.temperature
    assert body["top_p"] == llm.sampling.top_p
    assert body["top_k"] == llm.sampling.top_k
    assert body["min_p"] == llm.sampling.min_p
    assert body["max_completion_tokens"] == llm.max_tokens


def test_explicit_max_tokens_and_temperature_win_over_the_defaults(server: ScriptedServer) -> None:
    model = chat_model(
        endpoint_for(server),
        fast_llm(),
        new_budget(),
        CallClass.PLAN,
        max_tokens=64,
        temperature=0.0,
    )
    model.invoke("hi")
    assert server.bodies[0]["max_completion_tokens"] == 64
    assert server.bodies[0]["temperature"] == 0.0


def test_an_exact_prompt_count_sizes_the_kv_reservation(server: ScriptedServer) -> None:
    budget = new_budget(kv_capacity=KvCapacity(blocks=1000, block_size=16))
    model = chat_model(
        endpoint_for(server),
        fast_llm(),
        budget,
        CallClass.RESEARCH,
        max_tokens=100,
        prompt_tokens=500,
    )
    model.invoke("What is the capital of France?")
    # 500 + 100 tokens round up to 38 blocks of 16; the hint never reaches the engine.
    assert budget.snapshot().peak_kv_tokens == 38 * 16
    assert PROMPT_TOKENS_HEADER not in server.headers[0]


async def test_sync_and_async_invocations_both_go_through_the_gate(server: ScriptedServer) -> None:
    budget = new_budget()
    model = chat_model(endpoint_for(server), fast_llm(), budget, CallClass.INTERACTIVE)
    model.invoke("one")
    await model.ainvoke("two")
    snapshot = budget.snapshot()
    assert snapshot.admitted_total == 2
    assert snapshot.total_in_flight == 0


async def test_server_errors_are_retried_until_the_call_succeeds(server: ScriptedServer) -> None:
    server.statuses = [500, 503]
    registry = CollectorRegistry()
    budget = Budget(8, metrics=gate_metrics(registry))
    model = chat_model(endpoint_for(server), fast_llm(retries=3), budget, CallClass.RESEARCH)
    reply = await model.ainvoke("hi")
    assert reply.content == "Paris."
    assert len(server.bodies) == 3
    assert registry.get_sample_value("fawn_llm_retries_total", {"reason": "http_500"}) == 1
    assert budget.snapshot().admitted_total == 1


def test_client_errors_are_not_retried_and_become_engine_errors(server: ScriptedServer) -> None:
    server.statuses = [400]
    budget = new_budget()
    model = chat_model(endpoint_for(server), fast_llm(retries=3), budget, CallClass.RESEARCH)
    with pytest.raises(EngineError, match="HTTP 400"):
        model.invoke("hi")
    assert len(server.bodies) == 1
    assert budget.snapshot().total_in_flight == 0


async def test_server_errors_after_every_retry_become_engine_errors(server: ScriptedServer) -> None:
    server.statuses = [500, 500]
    budget = new_budget()
    model = chat_model(endpoint_for(server), fast_llm(retries=1), budget, CallClass.RESEARCH)
    with pytest.raises(EngineError, match="HTTP 500 after every retry"):
        await model.ainvoke("hi")
    assert len(server.bodies) == 2
    assert budget.snapshot().total_in_flight == 0


def test_an_unreachable_engine_is_an_engine_error_that_names_the_fix() -> None:
    endpoint = Endpoint(
        base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", max_model_len=4096
    )
    budget = new_budget()
    model = chat_model(endpoint, fast_llm(retries=1), budget, CallClass.RESEARCH)
    with pytest.raises(EngineError, match="fawn serve"):
        model.invoke("hi")
    assert budget.snapshot().total_in_flight == 0


async def test_a_call_that_cannot_get_a_slot_raises_budget_timeout(server: ScriptedServer) -> None:
    budget = new_budget(1, wait_timeout_s=0.1)
    model = chat_model(endpoint_for(server), fast_llm(), budget, CallClass.REPORT)
    async with budget.slot(CallClass.INTERACTIVE):
        with pytest.raises(BudgetTimeout):
            await model.ainvoke("hi")
    assert server.bodies == []


def test_connection_errors_are_retried_by_the_transport() -> None:
    attempts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=COMPLETION)

    budget = new_budget()
    transport = GatedTransport(
        budget,
        CallClass.RESEARCH,
        retry=RetryPolicy(retries=3, backoff_s=0.01),
        inner=httpx.MockTransport(handler),
    )
    with httpx.Client(transport=transport) as client:
        assert client.post("http://engine/v1/chat/completions", json={}).status_code == 200
    assert len(attempts) == 3
    assert budget.snapshot().total_in_flight == 0


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
            await client.post("http://engine/v1/chat/completions", json={})
    assert len(attempts) == 1
    assert budget.snapshot().total_in_flight == 0


async def test_an_unread_response_holds_its_slot_until_closed() -> None:
    budget = new_budget()
    transport = GatedAsyncTransport(
        budget, CallClass.RESEARCH, inner=httpx.MockTransport(lambda r: httpx.Response(200))
    )
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("POST", "http://engine/v1/chat/completions", json={}):
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
