"""Serving fixtures: a real gateway (uvicorn on a loopback port) in front of real engines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving.gateway import gateway_server
from serving.pressure import PressureSettings
from serving.settings import GatewaySettings, UpstreamSettings
from tests.conftest import free_port


@contextmanager
def running_gateway(*upstreams: str, budget: int | None = None, **options: object) -> Iterator[str]:
    """A gateway in front of `upstreams` on a free port, in a thread; yields its root URL."""
    settings = GatewaySettings(
        upstreams=[UpstreamSettings(url=url, budget=budget) for url in upstreams],
        port=free_port(),
        **options,
    )
    server = gateway_server(settings, PressureSettings())
    thread = threading.Thread(target=server.run, name="test-gateway", daemon=True)
    thread.start()
    root = f"http://127.0.0.1:{settings.port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("The gateway did not start.")
        time.sleep(0.05)
    try:
        yield root
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def gateway_state(root: str) -> dict[str, object]:
    """The first engine's state as the gateway's /health reports it."""
    return httpx.get(f"{root}/health", timeout=10).json()["engines"][0]


def gateway_metric(root: str, name: str) -> float:
    """The sum of one gateway metric's samples."""
    text = httpx.get(f"{root}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )
