"""The gate in front of the real embedded engine: the engine itself never sees more than the budget.

The budget here (4) is below the engine's own max-num-seqs (8), so the engine's running count can
only stay within it because of the gate.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry

from serving.budget import Budget, CallClass, KvCapacity, budget_for_engine
from serving.client import chat_model
from serving.endpoint import Endpoint
from serving.errors import EngineError
from serving.metrics import read_metrics, scrape_metrics
from serving.observability import gate_metrics
from serving.pressure import EngineMetricsSource
from serving.settings import LLMSettings
from serving.transport import KvEstimate, estimate_prompt_tokens

pytestmark = pytest.mark.engine

GATE_BUDGET = 4
# Generous: two CPU cores serve the engine, its 200 callers and this sampler at once.
SCRAPE_TIMEOUT_S = 30.0


async def sample_engine(root_url: str, stop: asyncio.Event) -> tuple[list[int], list[int]]:
    """Running and waiting request counts from the engine's /metrics until `stop` is set."""
    running: list[int] = []
    waiting: list[int] = []
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            try:
                metrics = await scrape_metrics(root_url, client, timeout_s=SCRAPE_TIMEOUT_S)
            except EngineError:
                continue  # a slow scrape on a loaded machine is a missed sample, nothing more
            running.append(metrics.requests_running)
            waiting.append(metrics.requests_waiting)
            await asyncio.sleep(0.02)
    return running, waiting


async def test_200_concurrent_callers_never_exceed_the_budget_in_the_engine(
    engine: Endpoint,
) -> None:
    budget = Budget(GATE_BUDGET, metrics=gate_metrics(CollectorRegistry()))
    model = chat_model(engine, LLMSettings(), budget, CallClass.RESEARCH, max_tokens=8)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_engine(engine.root_url, stop))
    replies = await asyncio.gather(*(model.ainvoke(f"Count to {n}.") for n in range(200)))
    stop.set()
    running, waiting = await sampler

    assert len(replies) == 200
    snapshot = budget.snapshot()
    assert snapshot.admitted_total == 200
    assert snapshot.peak_in_flight == GATE_BUDGET
    assert snapshot.total_in_flight == 0
    assert len(running) > 10
    assert max(running) <= GATE_BUDGET
    assert max(running) >= 1
    assert max(waiting) == 0


async def test_a_streamed_call_holds_its_slot_until_the_stream_ends(engine: Endpoint) -> None:
    budget = Budget(GATE_BUDGET, metrics=gate_metrics(CollectorRegistry()))
    model = chat_model(engine, LLMSettings(), budget, CallClass.INTERACTIVE, max_tokens=16)
    held_during: list[int] = []
    async for _chunk in model.astream("Name three colours."):
        held_during.append(budget.snapshot().total_in_flight)
    # Every token chunk arrives while the slot is held; langchain may yield a closing chunk
    # (usage, end marker) after the HTTP stream has ended and given the slot back.
    assert held_during.count(1) >= 8
    assert held_during == sorted(held_during, reverse=True)
    assert budget.snapshot().total_in_flight == 0


def test_a_sync_call_through_the_factory_moves_the_gate_counters(engine: Endpoint) -> None:
    registry = CollectorRegistry()
    budget = Budget(GATE_BUDGET, metrics=gate_metrics(registry))
    model = chat_model(engine, LLMSettings(), budget, CallClass.PLAN, max_tokens=16, temperature=0)
    # A prompt the model answers with a clear lead: on "What is the capital of France?" its
    # first token is a near-tie that bf16 rounding on vLLM decides against Paris.
    reply = model.invoke("Name the capital of France.")
    assert "Paris" in str(reply.content)
    assert budget.snapshot().admitted_total == 1
    wait_count = registry.get_sample_value(
        "fawn_llm_queue_wait_seconds_count", {"call_class": "plan"}
    )
    assert wait_count == 1
    assert registry.get_sample_value("fawn_llm_calls_in_flight", {"call_class": "plan"}) == 0


async def test_cancelling_a_call_frees_its_slot_and_the_engine_stops_it(engine: Endpoint) -> None:
    budget = Budget(GATE_BUDGET, metrics=gate_metrics(CollectorRegistry()))
    model = chat_model(engine, LLMSettings(), budget, CallClass.RESEARCH, max_tokens=2000)
    call = asyncio.create_task(model.ainvoke("Write a very long story about a fox."))
    while read_metrics(engine.root_url).requests_running == 0:
        await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert budget.snapshot().total_in_flight == 0
    for _ in range(100):
        if read_metrics(engine.root_url).requests_running == 0:
            break
        await asyncio.sleep(0.1)
    assert read_metrics(engine.root_url).requests_running == 0


def test_budget_for_engine_admits_by_the_engines_real_kv_capacity(engine: Endpoint) -> None:
    metrics = read_metrics(engine.root_url)
    budget = budget_for_engine(
        engine.root_url,
        LLMSettings(budget=6),
        engine_max_num_seqs=8,
        metrics=gate_metrics(CollectorRegistry()),
    )
    assert budget.limit == 6
    assert metrics.num_gpu_blocks is not None and metrics.block_size is not None
    assert budget.kv_capacity == KvCapacity(metrics.num_gpu_blocks - 1, metrics.block_size)


def test_the_kv_estimate_never_undercounts_the_real_prompt(engine: Endpoint) -> None:
    conversations = [
        [{"role": "user", "content": "Hi"}],
        [
            {"role": "system", "content": "You are a careful research assistant."},
            {"role": "user", "content": "Summarise: " + "The fox jumps over the dog. " * 60},
        ],
        [{"role": "user", "content": "1234567890 " * 100}],
        [{"role": "user", "content": '{"queries": ["Arthur\'s Magazine 1844", "x_{i+1}"]} ' * 20}],
        [{"role": "user", "content": "See https://en.wikipedia.org/wiki/Ed_Wood?a=1&b=2 " * 20}],
        [{"role": "user", "content": "北京是中国的首都。Ünïcödé " * 20}],
    ]
    for messages in conversations:
        response = httpx.post(
            engine.root_url + "/tokenize",
            json={"model": engine.model, "messages": messages},
            timeout=10,
        )
        real = response.json()["count"]
        estimated = estimate_prompt_tokens({"messages": messages})
        assert estimated >= real, (messages, estimated, real)
    body = httpx.Request("POST", engine.base_url, json={"messages": conversations[1]}).read()
    assert KvEstimate(default_max_tokens=100)(body) >= 100


def test_engine_metrics_source_reads_the_real_kv_usage(engine: Endpoint) -> None:
    sample = EngineMetricsSource(engine.root_url).read()
    assert sample.kv_usage is not None and 0.0 <= sample.kv_usage <= 1.0
    assert sample.preemptions_total is not None and sample.preemptions_total >= 0
