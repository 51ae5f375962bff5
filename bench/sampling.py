"""Engine load sampled from vLLM's /metrics while a benchmark phase runs, and percentiles."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from serving.errors import EngineError
from serving.metrics import scrape_metrics

SAMPLE_INTERVAL_S = 0.1
# On 2 busy CPU cores the engine's API process can take seconds to answer /metrics; the
# production scrape timeout would end a benchmark that has minutes of results in hand.
SCRAPE_TIMEOUT_S = 30.0


@dataclass
class EngineSamples:
    """What the engine's /metrics showed while a phase ran."""

    running: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    kv_usage: list[float] = field(default_factory=list)
    preemptions_start: int = 0
    preemptions_end: int = 0
    missed: int = 0

    @property
    def preemptions(self) -> int:
        """Requests the engine preempted during the phase."""
        return self.preemptions_end - self.preemptions_start


@asynccontextmanager
async def engine_sampled(
    root_url: str, interval_s: float = SAMPLE_INTERVAL_S
) -> AsyncIterator[EngineSamples]:
    """Sample the engine's running/waiting counts, KV usage and preemptions during the block."""
    samples = EngineSamples()
    stop = asyncio.Event()
    async with httpx.AsyncClient() as client:
        samples.preemptions_start = (
            await scrape_metrics(root_url, client, SCRAPE_TIMEOUT_S)
        ).preemptions_total

        async def sample() -> None:
            while not stop.is_set():
                try:
                    metrics = await scrape_metrics(root_url, client, SCRAPE_TIMEOUT_S)
                # A scrape the busy engine did not answer in time is a missed sample, no more.
                except EngineError:
                    samples.missed += 1
                    continue
                samples.running.append(metrics.requests_running)
                samples.waiting.append(metrics.requests_waiting)
                samples.kv_usage.append(metrics.kv_cache_usage_perc)
                await asyncio.sleep(interval_s)

        sampler = asyncio.create_task(sample())
        try:
            yield samples
        finally:
            stop.set()
            await sampler
            samples.preemptions_end = (
                await scrape_metrics(root_url, client, SCRAPE_TIMEOUT_S)
            ).preemptions_total


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank q-th percentile (0-100)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
