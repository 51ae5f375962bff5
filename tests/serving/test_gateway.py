"""The gateway in front of the real embedded engine: an OpenAI-compatible proxy owning the budget.

Every test talks HTTP to a real gateway (uvicorn) in front of the session's real vLLM engine.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from serving.budget import CALL_CLASS_HEADER
from serving.endpoint import Endpoint
from serving.errors import ConfigError
from serving.gateway import create_gateway_app
from serving.metrics import scrape_metrics
from serving.pressure import PressureSettings
from serving.settings import GatewaySettings, UpstreamSettings
from tests.conftest import free_port
from tests.serving.conftest import gateway_metric, gateway_state, running_gateway

pytestmark = pytest.mark.engine

CHAT = "/v1/chat/completions"


def ask(text: str, max_tokens: int = 8, **extra: object) -> dict[str, object]:
    """A chat completion request body."""
    return {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, **extra}


def test_chat_completions_models_and_tokenize_pass_through(engine: Endpoint) -> None:
    with running_gateway(engine.root_url) as root:
        answer = httpx.post(root + CHAT, json=ask("What is the capital of France?"), timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]

        with httpx.stream("POST", root + CHAT, json=ask("Hi", stream=True), timeout=60) as reply:
            lines = [line for line in reply.iter_lines() if line.startswith("data: ")]
        assert reply.status_code == 200
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[0].removeprefix("data: "))["object"] == "chat.completion.chunk"

        text = httpx.post(
            root + "/v1/completions", json={"prompt": "Paris is", "max_tokens": 4}, timeout=60
        )
        assert text.status_code == 200 and text.json()["choices"][0]["text"]

        models = httpx.get(root + "/v1/models", timeout=10).json()["data"]
        assert [m["id"] for m in models] == [engine.model]

        ours = httpx.post(root + "/tokenize", json={"prompt": "hello world"}, timeout=10).json()
        theirs = httpx.post(
            engine.root_url + "/tokenize",
            json={"model": engine.model, "prompt": "hello world"},
            timeout=10,
        ).json()
        assert ours["count"] == theirs["count"] > 0

        health = httpx.get(root + "/health", timeout=10).json()
        assert health["gateway"] == "fawn" and health["status"] == "ok"


def test_bad_requests_are_4xx_that_name_the_problem(engine: Endpoint) -> None:
    with running_gateway(engine.root_url, max_body_bytes=200_000) as root:

        def post(body: bytes | dict[str, object], **headers: str) -> httpx.Response:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            return httpx.post(root + CHAT, content=content, headers=headers, timeout=60)

        cases = {
            "malformed JSON": (post(b"{not json"), 400, "not valid JSON"),
            "unknown class": (post(ask("Hi"), **{CALL_CLASS_HEADER: "urgent"}), 400, "urgent"),
            "no messages": (post({"max_tokens": 4}), 400, "messages"),
            "bad max_tokens": (post(ask("Hi", max_tokens=-3)), 400, "max_tokens"),
            "prompt longer than the context": (post(ask("word " * 6000)), 400, "context"),
            "oversized body": (post(ask("x" * 300_000)), 413, "limit"),
            "unknown model": (post(ask("Hi", model="gpt-9")), 404, "gpt-9"),
        }
        for name, (response, status, words) in cases.items():
            assert response.status_code == status, (name, response.text)
            assert words in response.json()["error"]["message"], name


def test_every_engine_down_is_503_with_retry_after() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with running_gateway(dead, hold_s=1.0, health_interval_s=0.5) as root:
        started = time.monotonic()
        response = httpx.post(root + CHAT, json=ask("Hi"), timeout=30)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert "No engine is available" in response.json()["error"]["message"]
        assert time.monotonic() - started >= 1.0  # it held the call for the hold time first
        health = httpx.get(root + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "unavailable"


def test_a_key_is_required_when_set_and_off_loopback(engine: Endpoint) -> None:
    with running_gateway(engine.root_url, api_key="s3cret") as root:
        assert httpx.post(root + CHAT, json=ask("Hi"), timeout=60).status_code == 401
        allowed = httpx.post(
            root + CHAT, json=ask("Hi"), headers={"Authorization": "Bearer s3cret"}, timeout=60
        )
        assert allowed.status_code == 200
    with pytest.raises(ConfigError, match="API key"):
        create_gateway_app(
            GatewaySettings(host="0.0.0.0", upstreams=[UpstreamSettings(url=engine.root_url)]),
            PressureSettings(),
        )


async def sample_running(root_url: str, stop: asyncio.Event) -> list[int]:
    """The engine's running request count, sampled until `stop` is set."""
    running: list[int] = []
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            metrics = await scrape_metrics(root_url, client, timeout_s=30)
            running.append(metrics.requests_running)
            await asyncio.sleep(0.05)
    return running


async def test_the_engine_never_runs_more_than_the_gateways_budget(engine: Endpoint) -> None:
    # No interactive reserve: research calls alone may fill the whole budget here.
    with running_gateway(engine.root_url, budget=3, interactive_reserve=0) as root:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_running(engine.root_url, stop))
        async with httpx.AsyncClient(timeout=300) as client:
            replies = await asyncio.gather(
                *(client.post(root + CHAT, json=ask(f"Count to {n}.", 24)) for n in range(16))
            )
        stop.set()
        running = await sampler
        peak = gateway_metric(root, "fawn_gateway_peak_in_flight")

    assert [r.status_code for r in replies] == [200] * 16
    assert max(running) == 3, running
    assert peak == 3


async def test_interactive_calls_are_admitted_before_queued_research(engine: Endpoint) -> None:
    with running_gateway(engine.root_url, budget=1) as root:
        async with httpx.AsyncClient(timeout=300) as client:

            def call(call_class: str, tokens: int) -> asyncio.Task[httpx.Response]:
                body = ask("Tell a long story.", tokens, ignore_eos=True)
                headers = {CALL_CLASS_HEADER: call_class}
                return asyncio.create_task(client.post(root + CHAT, json=body, headers=headers))

            holder = call("research", 120)
            await wait_for_state(root, in_flight=1)
            queued = [call("research", 4) for _ in range(3)]
            await wait_for_state(root, queued=3)
            urgent = call("interactive", 4)
            await wait_for_state(root, queued=4)
            await asyncio.gather(holder, *queued, urgent)
        order = httpx.get(root + "/gateway/admissions", timeout=10).json()["admissions"]

    classes = [admission["call_class"] for admission in order]
    assert classes == ["research", "interactive", "research", "research", "research"]


async def test_a_client_that_disconnects_mid_stream_frees_its_slot(engine: Endpoint) -> None:
    with running_gateway(engine.root_url, budget=2) as root:
        body = ask("Tell a long story.", 2000, stream=True, ignore_eos=True)
        async with (
            httpx.AsyncClient(timeout=120) as client,
            client.stream("POST", root + CHAT, json=body) as reply,
        ):
            async for _ in reply.aiter_lines():
                break
            assert gateway_state(root)["in_flight"] == 1
        await wait_for_state(root, in_flight=0, timeout_s=10)
        await wait_for_engine_idle(engine.root_url)


async def test_a_client_that_leaves_before_the_answer_frees_its_slot(engine: Endpoint) -> None:
    with running_gateway(engine.root_url, budget=2) as root:
        body = ask("Tell a long story.", 2000, ignore_eos=True)
        async with httpx.AsyncClient(timeout=2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(root + CHAT, json=body)
        await wait_for_state(root, in_flight=0, timeout_s=10)
        await wait_for_engine_idle(engine.root_url)


async def test_a_client_that_leaves_while_queued_gives_up_its_place(engine: Endpoint) -> None:
    with running_gateway(engine.root_url, budget=1) as root:
        async with httpx.AsyncClient(timeout=300) as client:
            holder = asyncio.create_task(
                client.post(root + CHAT, json=ask("Tell a long story.", 400, ignore_eos=True))
            )
            await wait_for_state(root, in_flight=1)
            async with httpx.AsyncClient(timeout=1) as impatient:
                with pytest.raises(httpx.ReadTimeout):
                    await impatient.post(root + CHAT, json=ask("Hi"))
            await wait_for_state(root, queued=0, timeout_s=5)
            assert not holder.done()  # the queue emptied because the client left, not by turn
            holder.cancel()
        await wait_for_state(root, in_flight=0, timeout_s=10)


async def wait_for_state(root: str, timeout_s: float = 60, **expected: int) -> None:
    """Poll the gateway's /health until its first engine shows `expected` counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = gateway_state(root)
        if all(state[key] == value for key, value in expected.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gateway state {state} never reached {expected}")
        await asyncio.sleep(0.05)


async def wait_for_engine_idle(root_url: str, timeout_s: float = 15) -> None:
    """Poll the engine until it runs nothing: the upstream request was really aborted."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while (await scrape_metrics(root_url, client)).requests_running:
            if time.monotonic() > deadline:
                raise AssertionError("the engine kept generating for a client that left")
            await asyncio.sleep(0.2)
