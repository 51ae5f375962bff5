"""Engine throughput: output tokens/s, requests/s and latency at several concurrency levels.

This measures the engine itself, straight over HTTP, not Fawn's LLM budget gate. Every request
asks for exactly `--max-tokens` tokens (vLLM's `ignore_eos`), so levels compare like for like.

    .venv/bin/python bench/serving.py                      # starts the embedded CPU engine
    FAWN_LLM_BASE_URL=http://gpu-box:8000/v1 .venv/bin/python bench/serving.py
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

# Run as `python bench/serving.py`, this folder comes first on sys.path, and this file's name
# would shadow the `serving` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from app.settings import load_settings
from serving.endpoint import Endpoint, discover_endpoint
from serving.engine import running_engine
from serving.gpu import read_gpus
from serving.profiles import EMBEDDED_PROFILE, load_profile

PROMPT = "Write a detailed history of the printing press, from Gutenberg to the present day."
WARM_UP_REQUESTS = 2
# Enough samples at low concurrency for a p95 that means something.
MIN_REQUESTS_PER_LEVEL = 8
REQUEST_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class LevelResult:
    """What one concurrency level measured."""

    concurrency: int
    requests: int
    output_tokens: int
    wall_s: float
    latencies_s: tuple[float, ...]

    @property
    def tokens_per_s(self) -> float:
        """Output tokens per second over the whole level."""
        return self.output_tokens / self.wall_s

    @property
    def requests_per_s(self) -> float:
        """Completed requests per second over the whole level."""
        return self.requests / self.wall_s

    def latency_percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of request latency, nearest-rank."""
        ordered = sorted(self.latencies_s)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1]


async def complete(client: httpx.AsyncClient, endpoint: Endpoint, max_tokens: int) -> int:
    """One chat completion of exactly `max_tokens` tokens; returns the tokens generated."""
    response = await client.post(
        endpoint.base_url + "/chat/completions",
        json={
            "model": endpoint.model,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "temperature": 0.7,
            "ignore_eos": True,  # vLLM extension: generate all max_tokens even past an EOS
        },
        headers={"Authorization": f"Bearer {endpoint.api_key}"},
    )
    response.raise_for_status()
    return int(response.json()["usage"]["completion_tokens"])


async def run_level(
    client: httpx.AsyncClient, endpoint: Endpoint, concurrency: int, requests: int, max_tokens: int
) -> LevelResult:
    """Send `requests` completions with `concurrency` of them in flight at all times."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)
    latencies: list[float] = []
    tokens: list[int] = []

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            tokens.append(await complete(client, endpoint, max_tokens))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return LevelResult(concurrency, requests, sum(tokens), wall, tuple(latencies))


async def benchmark(
    endpoint: Endpoint, levels: Sequence[int], rounds: int, max_tokens: int
) -> list[LevelResult]:
    """Warm the engine up, then measure each level with `rounds` requests per slot (at least 8)."""
    limits = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        for _ in range(WARM_UP_REQUESTS):
            await complete(client, endpoint, max_tokens)
        results = []
        for level in levels:
            requests = max(level * rounds, MIN_REQUESTS_PER_LEVEL)
            result = await run_level(client, endpoint, level, requests, max_tokens)
            print(f"  concurrency {level}: {result.tokens_per_s:.1f} tok/s", file=sys.stderr)
            results.append(result)
        return results


def markdown_table(results: Sequence[LevelResult]) -> str:
    """The results as a Markdown table, one row per concurrency level."""
    lines = [
        "| Concurrency | Requests | Output tokens/s | Requests/s | p50 latency (s) | "
        "p95 latency (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.concurrency} | {r.requests} | {r.tokens_per_s:.1f} | {r.requests_per_s:.2f} | "
            f"{r.latency_percentile(50):.1f} | {r.latency_percentile(95):.1f} |"
        )
    return "\n".join(lines)


@contextmanager
def served_endpoint() -> Iterator[Endpoint]:
    """FAWN_LLM_BASE_URL's engine, or the embedded CPU engine started here and stopped after."""
    settings = load_settings()
    if settings.llm.base_url:
        yield discover_endpoint(settings.llm.base_url, settings.llm)
        return
    print("Starting the embedded engine (embedded-cpu) ...", file=sys.stderr)
    profile = load_profile(EMBEDDED_PROFILE)
    with running_engine(
        profile, models_dir=settings.model_cache, port=_free_port(), timeout_s=600
    ) as engine:
        yield discover_endpoint(engine.base_url, settings.llm)


def machine_description() -> str:
    """CPU count and GPUs, for the report header."""
    gpus = read_gpus()
    gpu = ", ".join(g.name for g in gpus) if gpus else "no GPU"
    return f"{platform.machine()}, {_cpu_count()} CPU cores, {gpu}"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print a Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,32", help="Concurrency levels, comma-separated.")
    parser.add_argument("--rounds", type=int, default=2, help="Requests per slot per level.")
    parser.add_argument("--max-tokens", type=int, default=128, help="Tokens per completion.")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.levels.split(",")]
    with served_endpoint() as endpoint:
        results = asyncio.run(benchmark(endpoint, levels, args.rounds, args.max_tokens))
    print(
        f"Engine: {endpoint.model} at {endpoint.base_url} (max_model_len "
        f"{endpoint.max_model_len}); {args.max_tokens}-token completions; "
        f"machine: {machine_description()}; {date.today().isoformat()}\n"
    )
    print(markdown_table(results))


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
