"""Serving fixtures: a real gateway (uvicorn on a loopback port) in front of real engines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving.gateway import GatewayThread
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
    gateway = GatewayThread(settings, PressureSettings())
    gateway.start()
    try:
        yield gateway.url
    finally:
        gateway.stop()


def gateway_state(root: str) -> dict[str, object]:
    """The first engine's state as the gateway's /health reports it."""
    return httpx.get(f"{root}/health", timeout=10).json()["engines"][0]


def gateway_metric(root: str, name: str, **labels: str) -> float:
    """The sum of one gateway metric's samples (those with `labels`, when given)."""
    text = httpx.get(f"{root}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
