"""The LLM budget gate on the real embedded engine, each comparison side by side in one run.

a. Time to first token of interactive calls while 16 research-class callers saturate the engine,
   through the gate and straight to the engine.
b. The engine's waiting queue and preemptions during a burst on a KV-constrained engine
   (`--num-gpu-blocks-override 40`: 5,120 KV tokens), with and without the gate.
c. Wall time of one research job whose plan is pinned to 3 independent research steps, the steps
   in parallel vs one after another (`parallel_steps=False`, as DeerFlow runs them).
d. 8 concurrent research jobs on different questions, each plan pinned to 3 independent research
   steps (up to 24 research calls at once against a budget of 8): through one gate, and with no
   gate, with interactive calls probing time to first token meanwhile.

    .venv/bin/python bench/scheduler.py              # a and b; starts the engines itself
    .venv/bin/python bench/scheduler.py --only c,d   # whole research jobs (bench/jobs.py)
    .venv/bin/python bench/scheduler.py --only d --kv-constrained   # d on b's 40-block KV cache
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import openai
from prometheus_client import CollectorRegistry

# Run as `python bench/scheduler.py`, this folder comes first on sys.path and bench/serving.py
# would shadow the `serving` package; the repo root instead makes `bench.*` importable.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from app.settings import load_settings
from bench.jobs import TtftProbe, part_c, part_d, table_c, table_d
from bench.sampling import engine_sampled, percentile
from serving.budget import Budget, CallClass, budget_for_engine
from serving.endpoint import Endpoint, discover_endpoint
from serving.engine import running_engine
from serving.gpu import read_gpus
from serving.observability import gate_metrics
from serving.profiles import EMBEDDED_PROFILE, load_profile
from serving.settings import LLMSettings
from serving.transport import PROMPT_TOKENS_HEADER, GatedAsyncTransport, KvEstimate

REPO_ROOT = Path(__file__).resolve().parent.parent
HOTPOTQA = REPO_ROOT.parent / "shared" / "data" / "hotpotqa-dev-20.json"
KV_CONSTRAINED_ARGS = ("--num-gpu-blocks-override", "40")
REQUEST_TIMEOUT_S = 900.0
DEV_MODE_VAR = "VLLM_SERVER_DEV_MODE"


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


def interactive_probe(endpoint: Endpoint) -> TtftProbe:
    """Part d's probe: a short streamed interactive call, one client per budget (or none)."""
    clients: dict[int | None, openai.AsyncOpenAI] = {}

    async def probe(budget: Budget | None, index: int) -> float:
        key = id(budget) if budget else None
        if key not in clients:
            clients[key] = openai_client(endpoint, budget, CallClass.INTERACTIVE)
        return await time_to_first_token(clients[key], endpoint.model, f"Hi #{index}!")

    return probe


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


@contextmanager
def embedded_engine(
    extra_args: tuple[str, ...] = (), *, dev_mode: bool = False
) -> Iterator[Endpoint]:
    """The embedded CPU engine with `extra_args`, started here and stopped after.

    `dev_mode` turns on vLLM's development endpoints (POST /reset_prefix_cache).
    """
    settings = load_settings()
    print(f"Starting the embedded engine {' '.join(extra_args)} ...", file=sys.stderr)
    # The engine process inherits this environment; it is the only way to switch dev mode on.
    previous = os.environ.get(DEV_MODE_VAR)
    if dev_mode:
        os.environ[DEV_MODE_VAR] = "1"
    try:
        with running_engine(
            load_profile(EMBEDDED_PROFILE),
            models_dir=settings.model_cache,
            port=_free_port(),
            extra_args=extra_args,
        ) as engine:
            yield discover_endpoint(engine.base_url, settings.llm)
    finally:
        if previous is None:
            os.environ.pop(DEV_MODE_VAR, None)
        else:
            os.environ[DEV_MODE_VAR] = previous


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
    parser.add_argument(
        "--repeats", type=int, default=3, help="c: runs per mode, alternating which goes first."
    )
    parser.add_argument("--jobs", type=int, default=8, help="d: concurrent research jobs.")
    parser.add_argument(
        "--no-ungated", dest="ungated", action="store_false", help="d: skip the no-gate row."
    )
    parser.add_argument(
        "--ungated-first",
        action="store_true",
        help="d: run the no-gate batch before the gated one (the default runs the gate first).",
    )
    parser.add_argument(
        "--no-probe",
        dest="probe",
        action="store_false",
        help="d: make no interactive calls while the jobs run (no TTFT table).",
    )
    parser.add_argument(
        "--kv-constrained",
        action="store_true",
        help="c, d: run them on b's KV-constrained engine (40 blocks, 5,120 KV tokens).",
    )
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    print(f"Machine: {machine_description()}; {date.today().isoformat()}\n")
    if "a" in parts:
        with embedded_engine() as endpoint:
            print(table_a(asyncio.run(part_a(endpoint, args)), args) + "\n", flush=True)
    if "b" in parts:
        with embedded_engine(KV_CONSTRAINED_ARGS) as endpoint:
            print(table_b(asyncio.run(part_b(endpoint, args)), args) + "\n", flush=True)
    if parts & {"c", "d"}:
        extra_args = KV_CONSTRAINED_ARGS if args.kv_constrained else ()
        with embedded_engine(extra_args, dev_mode=True) as endpoint:
            if "c" in parts:
                runs = asyncio.run(part_c(endpoint, args.hotpotqa, args.repeats))
                print(table_c(runs) + "\n", flush=True)
            if "d" in parts:
                probe = interactive_probe(endpoint) if args.probe else None
                d_args = (args.hotpotqa, args.jobs, args.ungated, probe, args.ungated_first)
                runs = asyncio.run(part_d(endpoint, *d_args))
                print(table_d(runs) + "\n", flush=True)


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
