"""The chat-model factory, its pooled clients and the token counter against a scripted server.

The server is a real uvicorn thread speaking just enough of the OpenAI chat API (and vLLM's
/tokenize) to answer with the status codes a test scripts, so retries, error translation,
headers and connection reuse run over real sockets. The transports alone are in
test_transport.py; behaviour on the real engine is in test_budget_engine.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agents.runtime import connect_runtime
from serving.budget import CALL_CLASS_HEADER, Budget, CallClass, KvCapacity
from serving.client import EnginePool, chat_model, engine_pool
from serving.endpoint import Endpoint
from serving.errors import BudgetTimeout, EngineError
from serving.observability import gate_metrics
from serving.settings import LLMSettings
from serving.tokens import EngineTokenCounter, estimate_tokens
from serving.transport import PROMPT_TOKENS_HEADER
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


TOKENIZE_COUNT = 42
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class ScriptedServer:
    """Answers chat completions with scripted status codes (then 200), recording each body,
    its headers and the client port it came from (one port: one pooled connection)."""

    base_url: str
    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    # /tokenize: a scripted status, or a delay in seconds, per request (then 200 at once).
    tokenize_script: list[int | float] = field(default_factory=list)
    tokenize_requests: int = 0

    async def handle(self, request: Request) -> JSONResponse:
        self.bodies.append(json.loads(await request.body()))
        self.headers.append(dict(request.headers))
        self.ports.append(request.client.port if request.client else 0)
        status = self.statuses.pop(0) if self.statuses else 200
        if status != 200:
            return JSONResponse({"error": {"message": f"scripted {status}"}}, status_code=status)
        return JSONResponse(COMPLETION)

    async def tokenize(self, request: Request) -> JSONResponse:
        self.tokenize_requests += 1
        step = self.tokenize_script.pop(0) if self.tokenize_script else 200
        if isinstance(step, float):
            await asyncio.sleep(step)
        elif step != 200:
            return JSONResponse({"detail": "scripted"}, status_code=step)
        return JSONResponse({"count": TOKENIZE_COUNT, "tokens": []})


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    port = free_port()
    scripted = ScriptedServer(base_url=f"http://127.0.0.1:{port}/v1")
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", scripted.handle, methods=["POST"]),
            Route("/tokenize", scripted.tokenize, methods=["POST"]),
        ]
    )
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


def test_every_request_carries_its_call_class_in_a_header(server: ScriptedServer) -> None:
    endpoint, llm, budget = endpoint_for(server), fast_llm(), new_budget()
    chat_model(endpoint, llm, budget, CallClass.PLAN).invoke("one")
    chat_model(endpoint, llm, budget, CallClass.INTERACTIVE, prompt_tokens=30).invoke("two")
    assert [h[CALL_CLASS_HEADER] for h in server.headers] == ["plan", "interactive"]
    assert PROMPT_TOKENS_HEADER not in server.headers[1]


async def test_many_calls_of_every_class_share_one_pool_and_one_connection(
    server: ScriptedServer,
) -> None:
    endpoint, llm, budget = endpoint_for(server), fast_llm(), new_budget()
    pool = engine_pool(endpoint, llm, budget)
    for index, call_class in enumerate(list(CallClass) * 2):
        model = chat_model(endpoint, llm, budget, call_class, prompt_tokens=100 + index)
        await model.ainvoke("hi")
    assert engine_pool(endpoint, llm, budget) is pool
    assert pool.clients_built == 2, "one sync and one async client, whatever the class"
    assert len(set(server.ports)) == 1, "every call went over one kept-alive connection"
    assert budget.snapshot().admitted_total == 2 * len(CallClass)


def test_a_chat_model_is_reused_for_the_same_configuration(server: ScriptedServer) -> None:
    endpoint, llm, budget = endpoint_for(server), fast_llm(), new_budget()
    first = chat_model(endpoint, llm, budget, CallClass.RESEARCH, max_tokens=64)
    # The settings' defaults spelled out are the same configuration.
    same = chat_model(
        endpoint, llm, budget, CallClass.RESEARCH, max_tokens=64,
        temperature=llm.sampling.temperature,
    )  # fmt: skip
    other_count = chat_model(endpoint, llm, budget, CallClass.RESEARCH, prompt_tokens=5)
    other_class = chat_model(endpoint, llm, budget, CallClass.REPORT, max_tokens=64)
    assert same is first
    assert other_count is not first
    assert other_class is not first
    assert first.http_client is other_class.http_client


def test_the_model_cache_keeps_only_the_most_recent_configurations(
    server: ScriptedServer,
) -> None:
    pool = EnginePool(endpoint_for(server), fast_llm(), new_budget(), max_models=2)
    first = pool.chat_model(CallClass.RESEARCH, prompt_tokens=1)
    pool.chat_model(CallClass.RESEARCH, prompt_tokens=2)
    assert pool.chat_model(CallClass.RESEARCH, prompt_tokens=1) is first
    pool.chat_model(CallClass.RESEARCH, prompt_tokens=3)  # evicts prompt_tokens=2
    pool.chat_model(CallClass.RESEARCH, prompt_tokens=2)  # evicts prompt_tokens=1
    assert pool.chat_model(CallClass.RESEARCH, prompt_tokens=1) is not first
    assert pool.models_built == 5
    pool.close()


def test_a_pooled_model_works_across_successive_event_loops(server: ScriptedServer) -> None:
    model = chat_model(endpoint_for(server), fast_llm(), new_budget(), CallClass.RESEARCH)
    # Each asyncio.run is a new loop, as in the CLI; a connection kept from a closed loop fails.
    for _ in range(3):
        assert asyncio.run(model.ainvoke("hi")).content == "Paris."
    assert len(server.bodies) == 3


def test_a_closed_pool_closes_its_clients_and_the_next_call_gets_a_new_one(
    server: ScriptedServer,
) -> None:
    endpoint, llm, budget = endpoint_for(server), fast_llm(), new_budget()
    pool = engine_pool(endpoint, llm, budget)
    pool.chat_model(CallClass.RESEARCH).invoke("hi")
    client = pool.sync_client
    pool.close()
    assert client.is_closed
    assert engine_pool(endpoint, llm, budget) is not pool
    assert chat_model(endpoint, llm, budget, CallClass.RESEARCH).invoke("hi").content == "Paris."


async def test_a_runtime_takes_its_models_from_one_pool_and_closes_it(
    server: ScriptedServer, tmp_path: Path
) -> None:
    endpoint, llm, budget = endpoint_for(server), fast_llm(), new_budget()
    runtime = connect_runtime(endpoint, llm, budget, data_dir=tmp_path)
    model = runtime.model_for(CallClass.RESEARCH, max_tokens=16, prompt_tokens=20)
    assert model is runtime.model_for(CallClass.RESEARCH, max_tokens=16, prompt_tokens=20)
    await model.ainvoke("hi")
    assert await runtime.context_budget.counter.count(MESSAGES) == TOKENIZE_COUNT
    assert runtime.clients is engine_pool(endpoint, llm, budget)
    await runtime.aclose()
    assert runtime.clients.closed


async def test_a_tokenize_timeout_estimates_that_call_only(server: ScriptedServer) -> None:
    server.tokenize_script = [2.0]
    counter = EngineTokenCounter(endpoint_for(server), timeout_s=0.3)
    assert await counter.count(MESSAGES) == estimate_tokens(MESSAGES)
    assert not counter.exact
    assert await counter.count(MESSAGES) == TOKENIZE_COUNT
    assert counter.exact


@pytest.mark.parametrize("status", [500, 503])
async def test_a_tokenize_server_error_estimates_that_call_only(
    server: ScriptedServer, status: int
) -> None:
    server.tokenize_script = [status]
    counter = EngineTokenCounter(endpoint_for(server))
    assert await counter.count(MESSAGES) == estimate_tokens(MESSAGES)
    assert await counter.count(MESSAGES) == TOKENIZE_COUNT


@pytest.mark.parametrize("status", [404, 405, 501])
async def test_a_server_without_tokenize_is_not_asked_again(
    server: ScriptedServer, status: int
) -> None:
    server.tokenize_script = [status]
    counter = EngineTokenCounter(endpoint_for(server))
    assert await counter.count(MESSAGES) == estimate_tokens(MESSAGES)
    assert await counter.count(MESSAGES) == estimate_tokens(MESSAGES)
    assert server.tokenize_requests == 1
    assert not counter.exact
