"""Several Fawn processes, one engine behind one gateway: together they stay within its budget.

Real processes (`fawn batch` twice, `fawn api` running a job, `fawn chat`), a real gateway and
the real embedded engine. Each process gates nothing of its own worth counting: the budget that
holds is the gateway's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.endpoint import Endpoint
from serving.metrics import scrape_metrics
from tests.app.api.conftest import build_corpus
from tests.conftest import free_port
from tests.serving.conftest import gateway_metric, gateway_state, running_gateway

pytestmark = pytest.mark.engine
FAWN = Path(sys.executable).with_name("fawn")
BUDGET = 3
QUESTIONS = [
    "Which magazine was started first, Arthur's Magazine or First for Women?",
    "Were Scott Derrickson and Ed Wood of the same nationality?",
]


def fawn(args: list[str], data_dir: Path, gateway: str) -> subprocess.Popen[str]:
    """A real `fawn` process on `data_dir` whose engine is the gateway."""
    env = {**os.environ, "FAWN_DATA_DIR": str(data_dir), "FAWN_LLM_BASE_URL": f"{gateway}/v1"}
    return subprocess.Popen(
        [str(FAWN), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def batch_in(tmp_path: Path, name: str, hotpotqa: Path, gateway: str) -> subprocess.Popen[str]:
    data_dir = tmp_path / name
    build_corpus(data_dir, hotpotqa)
    questions = data_dir / "questions.txt"
    questions.write_text("\n".join(QUESTIONS[:2]) + "\n")
    return fawn(
        ["batch", str(questions), "--out", str(data_dir / "out"), "--max-steps", "1",
         "--concurrency", "2"],
        data_dir, gateway,
    )  # fmt: skip


async def sample_running(root_url: str, stop: asyncio.Event) -> list[int]:
    running: list[int] = []
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            running.append((await scrape_metrics(root_url, client, timeout_s=30)).requests_running)
            await asyncio.sleep(0.1)
    return running


async def test_two_batches_and_the_api_together_never_exceed_the_gateways_budget(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    async with httpx.AsyncClient() as client:
        succeeded_before = (await scrape_metrics(engine.root_url, client)).requests_succeeded_total
    # No interactive reserve: the batches' calls alone may fill the whole budget here.
    with running_gateway(engine.root_url, budget=BUDGET, interactive_reserve=0) as gateway:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_running(engine.root_url, stop))
        api_dir = tmp_path / "api"
        build_corpus(api_dir, hotpotqa_path)
        api_port = free_port()
        api = fawn(["api", "--port", str(api_port)], api_dir, gateway)
        batches = [batch_in(tmp_path, f"batch-{n}", hotpotqa_path, gateway) for n in (1, 2)]
        try:
            job = await submit_job(f"http://127.0.0.1:{api_port}", QUESTIONS[1])
            outcomes = [await asyncio.to_thread(b.communicate, timeout=1200) for b in batches]
            status = await wait_for_job(f"http://127.0.0.1:{api_port}", job)
        finally:
            api.terminate()
            api.communicate(timeout=60)
        stop.set()
        running = await sampler
        peak = gateway_metric(gateway, "fawn_gateway_peak_in_flight")
        answered = gateway_metric(gateway, "fawn_gateway_requests_total", status="200")
    async with httpx.AsyncClient() as client:
        succeeded = (await scrape_metrics(engine.root_url, client)).requests_succeeded_total

    for batch, (_, stderr) in zip(batches, outcomes, strict=True):
        assert batch.returncode == 0, stderr
        assert "0 not done" in " ".join(stderr.split())  # rich wraps lines
    assert status == "done"
    assert max(running) == BUDGET, running  # the budget was used, and never exceeded
    assert peak == BUDGET
    # The gateway's count of answered calls is the engine's own.
    assert answered == succeeded - succeeded_before


def test_interactive_calls_from_another_process_overtake_a_batchs_queued_research(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    with running_gateway(engine.root_url, budget=1) as gateway:
        batch = batch_in(tmp_path, "batch", hotpotqa_path, gateway)
        try:
            deadline = time.monotonic() + 300
            while gateway_state(gateway)["queued"] < 1:
                assert batch.poll() is None and time.monotonic() < deadline, "no queue formed"
                time.sleep(0.1)
            sent_at = time.time()
            chat = fawn(["chat", "--max-tokens", "4", "Say hello."], tmp_path / "batch", gateway)
            _, chat_err = chat.communicate(timeout=300)
            assert chat.returncode == 0, chat_err
        finally:
            batch.kill()
            batch.communicate(timeout=60)
        order = httpx.get(f"{gateway}/gateway/admissions", timeout=10).json()["admissions"]

    interactive = next(a for a in order if a["call_class"] == "interactive")
    asked_at = interactive["admitted_at"] - interactive["waited_s"]
    assert asked_at >= sent_at
    # Calls of the batch that were already waiting when the interactive call arrived, and were
    # admitted after it: it went ahead of them.
    overtaken = [
        a
        for a in order
        if a["call_class"] != "interactive"
        and a["admitted_at"] - a["waited_s"] < asked_at
        and a["sequence"] > interactive["sequence"]
    ]
    assert overtaken, order


async def submit_job(api: str, question: str) -> str:
    body = {"question": question, "options": {"max_step_num": 1, "auto_accept_plan": True}}
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient() as client:
        while True:
            try:
                response = await client.post(f"{api}/api/research", json=body, timeout=30)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "fawn api did not start"
                await asyncio.sleep(0.5)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def wait_for_job(api: str, job: str) -> str:
    deadline = time.monotonic() + 900
    async with httpx.AsyncClient() as client:
        while True:
            status = (await client.get(f"{api}/api/research/{job}", timeout=30)).json()["status"]
            if status in ("done", "failed", "cancelled") or time.monotonic() > deadline:
                return str(status)
            await asyncio.sleep(1)
