"""Two real engines behind one gateway: each keeps its own budget, and losing one loses no call."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from serving.engine import EngineProcess, start_engine, wait_until_healthy
from serving.errors import EngineStartError
from serving.metrics import scrape_metrics
from serving.profiles import EMBEDDED_PROFILE, load_profile
from tests.conftest import MODELS_DIR, free_port
from tests.serving.conftest import gateway_metric, running_gateway

pytestmark = pytest.mark.engine

BUDGET = 3
# A small KV cache per engine (40 blocks of 128 tokens), as on a crowded GPU.
SMALL_KV = ("--num-gpu-blocks-override", "40")
CHAT = "/v1/chat/completions"


def launch(port: int) -> EngineProcess:
    """Start one embedded engine with a small KV cache on `port` (not yet healthy)."""
    return start_engine(
        load_profile(EMBEDDED_PROFILE), models_dir=MODELS_DIR, port=port, extra_args=SMALL_KV
    )


def launch_healthy(port: int | None = None, attempts: int = 3) -> EngineProcess:
    """An engine that came up; a port taken between choosing and binding it means another try
    on a fresh one (on a busy machine other processes pick free ports too)."""
    for attempt in range(attempts):
        engine = launch(port or free_port())
        try:
            wait_until_healthy(engine, timeout_s=600)
            return engine
        except EngineStartError as exc:
            engine.stop()
            if "Address already in use" not in str(exc) or attempt == attempts - 1:
                raise
            port = None
    raise AssertionError("unreachable: the last attempt returns or raises")


@pytest.fixture(scope="module")
def two_engines() -> Iterator[list[EngineProcess]]:
    """Two engines behind one gateway."""
    engines: list[EngineProcess] = []
    try:
        engines.append(launch_healthy())
        engines.append(launch_healthy())
        yield engines
    finally:
        for engine in engines:
            engine.stop()


def root_of(engine: EngineProcess) -> str:
    return engine.base_url.removesuffix("/v1")


async def sample_running(roots: list[str], stop: asyncio.Event) -> dict[str, list[int]]:
    """Each live engine's running count until `stop` (a dead engine's samples are skipped)."""
    seen: dict[str, list[int]] = {root: [] for root in roots}
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            for root in roots:
                try:
                    seen[root].append((await scrape_metrics(root, client)).requests_running)
                except Exception:  # a killed engine has no metrics; that is the point
                    continue
            await asyncio.sleep(0.05)
    return seen


async def engines_state(root: str) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"{root}/health", timeout=10)).json()
    return {engine["url"]: engine for engine in body["engines"]}


async def wait_until(root: str, url: str, healthy: bool, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (await engines_state(root))[url]["healthy"] is not healthy:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never became {'healthy' if healthy else 'unhealthy'}")
        await asyncio.sleep(0.2)


async def test_both_engines_serve_within_their_own_budgets(
    two_engines: list[EngineProcess],
) -> None:
    roots = [root_of(engine) for engine in two_engines]
    with running_gateway(*roots, budget=BUDGET) as gateway:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_running(roots, stop))
        async with httpx.AsyncClient(timeout=300) as client:
            replies = await asyncio.gather(
                *(client.post(gateway + CHAT, json=ask(n)) for n in range(24))
            )
        stop.set()
        running = await sampler
        admitted = {
            url: state["in_flight"] for url, state in (await engines_state(gateway)).items()
        }

    assert [reply.status_code for reply in replies] == [200] * 24
    for root in roots:
        assert 0 < max(running[root]) <= BUDGET, (root, running[root])
    assert admitted == dict.fromkeys(roots, 0)


async def test_a_killed_engine_loses_no_call_and_rejoins_when_back(
    two_engines: list[EngineProcess],
) -> None:
    victim, survivor = two_engines
    victim_root = root_of(victim)
    port = int(victim_root.rsplit(":", 1)[1])
    roots = [victim_root, root_of(survivor)]
    with running_gateway(*roots, budget=BUDGET, health_interval_s=0.5) as gateway:
        async with httpx.AsyncClient(timeout=600) as client:
            batch = [
                asyncio.create_task(client.post(gateway + CHAT, json=ask(n, 48))) for n in range(24)
            ]
            await asyncio.sleep(3)  # well into the batch: both engines are generating
            os.killpg(victim.process.pid, signal.SIGKILL)
            victim.process.wait()
            replies = await asyncio.gather(*batch)
            assert [reply.status_code for reply in replies] == [200] * 24
            # Calls the victim held when it died were re-sent to the survivor, not lost.
            assert gateway_metric(gateway, "fawn_gateway_upstream_retries_total") > 0
            await wait_until(gateway, victim_root, healthy=False, timeout_s=10)

            restarted = launch(port)  # the same port: the gateway knows it by its URL
            two_engines[0] = restarted
            wait_until_healthy(restarted, timeout_s=600)
            await wait_until(gateway, victim_root, healthy=True, timeout_s=30)
            after = await client.post(gateway + CHAT, json=ask(99))
            assert after.status_code == 200


def ask(n: int, max_tokens: int = 24) -> dict[str, object]:
    """A research-sized chat call that generates exactly `max_tokens` tokens."""
    return {
        "messages": [{"role": "user", "content": f"Write a story about the number {n}."}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
    }
