"""The LLM budget gate on the real embedded engine, each comparison side by side in one run.

a. Time to first token of interactive calls while 16 research-class callers saturate the engine,
   through the gate and straight to the engine.
b. The engine's waiting queue and preemptions during a burst on a KV-constrained engine
   (`--num-gpu-blocks-override 40`: 5,120 KV tokens), with and without the gate.
c. Wall time of one research job whose plan has 3 independent steps, parallel vs one after another.
d. Throughput of 8 concurrent research jobs through the gate.

    .venv/bin/python bench/scheduler.py              # a and b; starts the engines itself
    .venv/bin/python bench/scheduler.py --only c,d   # needs the research graph (agents/)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import openai
from prometheus_client import CollectorRegistry

# Run as `python bench/scheduler.py`, this folder comes first on sys.path and bench/serving.py
# would shadow the `serving` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from app.settings import load_settings
from serving.budget import Budget, CallClass, budget_for_engine
from serving.endpoint import Endpoint, discover_endpoint
from serving.engine import running_engine
from serving.gpu import read_gpus
from serving.metrics import scrape_metrics
from serving.observability import gate_metrics
from serving.profiles import EMBEDDED_PROFILE, load_profile
from serving.settings import LLMSettings
from serving.transport import PROMPT_TOKENS_HEADER, GatedAsyncTransport, KvEstimate

REPO_ROOT = Path(__file__).resolve().parent.parent
HOTPOTQA = REPO_ROOT.parent / "shared" / "data" / "hotpotqa-dev-20.json"
KV_CONSTRAINED_ARGS = ("--num-gpu-blocks-override", "40")
REQUEST_TIMEOUT_S = 900.0
SAMPLE_INTERVAL_S = 0.1


@dataclass
class EngineSamples:
    """What the engine's /metrics showed while a phase ran."""

    running: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    kv_usage: list[float] = field(default_factory=list)
    preemptions_start: int = 0
    preemptions_end: int = 0

    @property
    def preemptions(self) -> int:
        """Requests the engine preempted during the phase."""
        return self.preemptions_end - self.preemptions_start


@asynccontextmanager
async def engine_sampled(root_url: str) -> AsyncIterator[EngineSamples]:
    """Sample the engine's running/waiting counts, KV usage and preemptions during the block."""
    samples = EngineSamples()
    stop = asyncio.Event()
    async with httpx.AsyncClient() as client:
        samples.preemptions_start = (await scrape_metrics(root_url, client)).preemptions_total

        async def sample() -> None:
            while not stop.is_set():
                metrics = await scrape_metrics(root_url, client)
                samples.running.append(metrics.requests_running)
                samples.waiting.append(metrics.requests_waiting)
                samples.kv_usage.append(metrics.kv_cache_usage_perc)
                await asyncio.sleep(SAMPLE_INTERVAL_S)

        sampler = asyncio.create_task(sample())
        try:
            yield samples
        finally:
            stop.set()
            await sampler
            samples.preemptions_end = (await scrape_metrics(root_url, client)).preemptions_total


def openai_client(
    endpoint: Endpoint, budget: Budget | None, call_class: CallClass
) -> openai.AsyncOpenAI:
    """A client straight to the engine (no budget) or through the gate's transport."""
    estimate = KvEstimate(max_model_len=endpoint.max_model_len)
    transport = GatedAsyncTransport(budget, call_class, estimate=estimate) if budget else None
    http = httpx.AsyncClient(transport=transport, timeout=REQUEST_TIMEOUT_S, trust_env=False)
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=0, http_client=http
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank q-th percentile (0-100)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def distinct_documents(path: Path, count: int) -> list[str]:
    """`count` different real documents (HotpotQA context paragraphs), one per request.

    Distinct prompts keep vLLM's prefix cache from sharing KV blocks between requests.
    """
    rows = json.loads(path.read_text())
    texts = [" ".join("".join(sentences) for _, sentences in row["context"]) for row in rows]
    return [f"Document set {index}:\n{texts[index % len(texts)]}" for index in range(count)]


async def time_to_first_token(client: openai.AsyncOpenAI, model: str, question: str) -> float:
    """Seconds from sending a streamed chat request to its first content token."""
    started = time.perf_counter()
    first: float | None = None
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        max_tokens=4,
        stream=True,
    )
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first if first is not None else time.perf_counter() - started


@dataclass(frozen=True)
class LatencyRow:
    """Part a, one mode."""

    mode: str
    ttft_s: tuple[float, ...]
    window_s: float
    research_calls: int
    research_tokens_per_s: float
    engine_waiting_max: int


async def interactive_under_load(
    endpoint: Endpoint, budget: Budget | None, args: argparse.Namespace
) -> LatencyRow:
    """Part a for one mode: probe TTFT while `research_callers` research loops keep running."""
    research = openai_client(endpoint, budget, CallClass.RESEARCH)
    interactive = openai_client(endpoint, budget, CallClass.INTERACTIVE)
    documents = distinct_documents(args.hotpotqa, args.research_callers)
    rng = random.Random(7)
    done = {"calls": 0, "tokens": 0}

    async def research_loop(document: str) -> None:
        while True:
            reply = await research.chat.completions.create(
                model=endpoint.model,
                messages=[{"role": "user", "content": f"Summarise:\n{document[:1500]}"}],
                # Varied lengths, as real steps have, so calls do not all end at once.
                max_tokens=rng.randint(32, 128),
                extra_body={"ignore_eos": True},
            )
            done["calls"] += 1
            done["tokens"] += reply.usage.completion_tokens if reply.usage else 0

    loops = [asyncio.create_task(research_loop(doc)) for doc in documents]
    await asyncio.sleep(args.saturate_s)
    ttfts: list[float] = []
    async with engine_sampled(endpoint.root_url) as samples:
        started, calls_before, tokens_before = time.perf_counter(), done["calls"], done["tokens"]
        for index in range(args.probes):
            ttfts.append(await time_to_first_token(interactive, endpoint.model, f"Hi #{index}!"))
            await asyncio.sleep(rng.uniform(0.2, 1.0))
        elapsed = time.perf_counter() - started
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    return LatencyRow(
        mode="through the gate" if budget else "straight to the engine",
        ttft_s=tuple(ttfts),
        window_s=elapsed,
        research_calls=done["calls"] - calls_before,
        research_tokens_per_s=(done["tokens"] - tokens_before) / elapsed,
        engine_waiting_max=max(samples.waiting, default=0),
    )


@dataclass(frozen=True)
class BurstRow:
    """Part b, one mode."""

    mode: str
    wall_s: float
    engine_waiting_max: int
    preemptions: int
    kv_usage_max: float
    gate_peak_in_flight: int | None


async def prompt_of_tokens(endpoint: Endpoint, document: str, tokens: int) -> tuple[str, int]:
    """The longest prefix of `document` whose chat prompt is at most `tokens` (by /tokenize)."""
    async with httpx.AsyncClient() as client:

        async def count(text: str) -> int:
            messages = [{"role": "user", "content": text}]
            response = await client.post(
                endpoint.root_url + "/tokenize",
                json={"model": endpoint.model, "messages": messages},
            )
            return int(response.json()["count"])

        low, high = 0, len(document)
        while low < high:
            middle = (low + high + 1) // 2
            if await count(document[:middle]) <= tokens:
                low = middle
            else:
                high = middle - 1
        return document[:low], await count(document[:low])


async def kv_burst(
    endpoint: Endpoint, budget: Budget | None, exact: bool, args: argparse.Namespace
) -> BurstRow:
    """Part b for one mode: `burst` concurrent long requests at once."""
    client = openai_client(endpoint, budget, CallClass.RESEARCH)
    documents = distinct_documents(args.hotpotqa, args.burst)
    prompts = [await prompt_of_tokens(endpoint, doc, args.prompt_tokens) for doc in documents]

    async def call(prompt: str, counted: int) -> None:
        headers = {PROMPT_TOKENS_HEADER: str(counted)} if exact else None
        await client.chat.completions.create(
            model=endpoint.model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=args.completion_tokens,
            extra_body={"ignore_eos": True},
            extra_headers=headers,
        )

    async with engine_sampled(endpoint.root_url) as samples:
        started = time.perf_counter()
        await asyncio.gather(*(call(prompt, counted) for prompt, counted in prompts))
        wall = time.perf_counter() - started
    if budget is None:
        mode = "straight to the engine"
    else:
        mode = "gate, exact prompt counts" if exact else "gate, estimated prompts"
    return BurstRow(
        mode=mode,
        wall_s=wall,
        engine_waiting_max=max(samples.waiting, default=0),
        preemptions=samples.preemptions,
        kv_usage_max=max(samples.kv_usage, default=0.0),
        gate_peak_in_flight=budget.snapshot().peak_in_flight if budget else None,
    )


def new_budget(endpoint: Endpoint) -> Budget:
    """The production gate for this engine (default budget, KV capacity from its /metrics)."""
    return budget_for_engine(
        endpoint.root_url, LLMSettings(), metrics=gate_metrics(CollectorRegistry())
    )


async def part_a(endpoint: Endpoint, args: argparse.Namespace) -> list[LatencyRow]:
    """Interactive TTFT under research load: straight to the engine, then through the gate."""
    rows = [await interactive_under_load(endpoint, None, args)]
    rows.append(await interactive_under_load(endpoint, new_budget(endpoint), args))
    return rows


async def part_b(endpoint: Endpoint, args: argparse.Namespace) -> list[BurstRow]:
    """A KV-heavy burst: straight to the engine, then through the gate (estimated, exact)."""
    rows = [await kv_burst(endpoint, None, False, args)]
    rows.append(await kv_burst(endpoint, new_budget(endpoint), False, args))
    rows.append(await kv_burst(endpoint, new_budget(endpoint), True, args))
    return rows


def table_a(rows: Sequence[LatencyRow], args: argparse.Namespace) -> str:
    """Part a as Markdown, with the direct/gated ratios."""
    lines = [
        f"a. Interactive time to first token ({args.probes} probes) while "
        f"{args.research_callers} research callers saturate the engine",
        "",
        "| Mode | TTFT p50 (s) | TTFT p95 (s) | Probing took (s) | Research calls in it | "
        "Research tok/s | Engine waiting (max) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.mode} | {percentile(row.ttft_s, 50):.2f} | {percentile(row.ttft_s, 95):.2f} "
            f"| {row.window_s:.0f} | {row.research_calls} | {row.research_tokens_per_s:.1f} "
            f"| {row.engine_waiting_max} |"
        )
    direct, gated = rows
    lines.append("")
    lines.append(
        f"Ratio direct/gate: p50 {_ratio(direct.ttft_s, gated.ttft_s, 50)}, "
        f"p95 {_ratio(direct.ttft_s, gated.ttft_s, 95)}."
    )
    return "\n".join(lines)


def table_b(rows: Sequence[BurstRow], args: argparse.Namespace) -> str:
    """Part b as Markdown."""
    lines = [
        f"b. Burst of {args.burst} requests of ~{args.prompt_tokens} prompt + "
        f"{args.completion_tokens} generated tokens on a 40-block (5,120-token) KV cache",
        "",
        "| Mode | Engine waiting (max) | Preemptions | KV usage (max) | Gate peak in flight | "
        "Wall (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        peak = "-" if row.gate_peak_in_flight is None else str(row.gate_peak_in_flight)
        lines.append(
            f"| {row.mode} | {row.engine_waiting_max} | {row.preemptions} | "
            f"{row.kv_usage_max:.0%} | {peak} | {row.wall_s:.1f} |"
        )
    return "\n".join(lines)


def _ratio(direct: Sequence[float], gated: Sequence[float], q: float) -> str:
    return f"{percentile(direct, q) / percentile(gated, q):.1f}x"


@dataclass(frozen=True)
class JobsRow:
    """Parts c and d: research jobs run side by side, and the engine slots they kept busy."""

    mode: str
    jobs: int
    wall_s: float
    engine_running_mean: float
    engine_running_max: int

    @property
    def jobs_per_hour(self) -> float:
        """Finished jobs per hour of wall time."""
        return self.jobs * 3600 / self.wall_s


JobRunner = Callable[[int], Awaitable[object]]


async def measure_jobs(endpoint: Endpoint, mode: str, run_job: JobRunner, jobs: int) -> JobsRow:
    """Run `jobs` research jobs at once (`run_job(index)` runs one to its report) and measure.

    The hook for parts c and d: c calls it once with a runner that researches the plan's steps in
    parallel and once with one that runs them one after another; d calls it with 8 jobs through
    the gate. Both need the research graph to take a fixed 3-step plan and a sequential switch.
    """
    async with engine_sampled(endpoint.root_url) as samples:
        started = time.perf_counter()
        await asyncio.gather(*(run_job(index) for index in range(jobs)))
        wall = time.perf_counter() - started
    running = samples.running or [0]
    return JobsRow(mode, jobs, wall, sum(running) / len(running), max(running))


def table_jobs(title: str, rows: Sequence[JobsRow]) -> str:
    """Parts c and d as Markdown."""
    lines = [
        title,
        "",
        "| Mode | Jobs | Wall (s) | Jobs/hour | Engine slots in use (mean) | (max) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.mode} | {row.jobs} | {row.wall_s:.1f} | {row.jobs_per_hour:.1f} | "
            f"{row.engine_running_mean:.1f} | {row.engine_running_max} |"
        )
    return "\n".join(lines)


# Parts c and d wait for the research graph: it must accept a fixed plan of 3 independent steps
# and a switch that runs a plan's steps one after another. Until then they report why.
NOT_YET = {
    "c": "c. not measured: the research graph has no switch to run a plan's steps one after "
    "another, nor a way to pin a 3-step plan; plug both into `measure_jobs`.",
    "d": "d. not measured: needs a `run_job` that runs one research job to its report on the "
    "local corpus through the gate; plug it into `measure_jobs` with 8 jobs.",
}


@contextmanager
def embedded_engine(extra_args: tuple[str, ...] = ()) -> Iterator[Endpoint]:
    """The embedded CPU engine with `extra_args`, started here and stopped after."""
    settings = load_settings()
    print(f"Starting the embedded engine {' '.join(extra_args)} ...", file=sys.stderr)
    with running_engine(
        load_profile(EMBEDDED_PROFILE),
        models_dir=settings.model_cache,
        port=_free_port(),
        extra_args=extra_args,
    ) as engine:
        yield discover_endpoint(engine.base_url, settings.llm)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen parts and print a Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b", help="Parts to run, comma-separated (a,b,c,d).")
    parser.add_argument("--probes", type=int, default=12, help="a: interactive probes per mode.")
    parser.add_argument("--research-callers", type=int, default=16, help="a: research load.")
    parser.add_argument("--saturate-s", type=float, default=15.0, help="a: load before probing.")
    parser.add_argument("--burst", type=int, default=8, help="b: concurrent requests.")
    parser.add_argument("--prompt-tokens", type=int, default=780, help="b: prompt length.")
    parser.add_argument("--completion-tokens", type=int, default=600, help="b: tokens generated.")
    parser.add_argument("--hotpotqa", type=Path, default=HOTPOTQA, help="Documents for prompts.")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    print(f"Machine: {machine_description()}; {date.today().isoformat()}\n")
    if "a" in parts:
        with embedded_engine() as endpoint:
            print(table_a(asyncio.run(part_a(endpoint, args)), args) + "\n", flush=True)
    if "b" in parts:
        with embedded_engine(KV_CONSTRAINED_ARGS) as endpoint:
            print(table_b(asyncio.run(part_b(endpoint, args)), args) + "\n", flush=True)
    for part in sorted(parts & NOT_YET.keys()):
        print(NOT_YET[part] + "\n")


def machine_description() -> str:
    """CPU cores and GPUs, for the report header."""
    gpus = read_gpus()
    gpu = ", ".join(g.name for g in gpus) if gpus else "no GPU"
    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores, {gpu}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
