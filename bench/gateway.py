"""Fawn's gateway (`fawn gateway`) on the real embedded engine, comparisons side by side in one run.

a. The gateway's own cost: latency of a 1-token call (p50, p99) and the most calls per second,
   through the gateway and straight to the same engine (and the engine's `/tokenize` alone, which
   the gateway calls once per completion).
b. Interactive time to first token in one process while another process's batch of research
   calls saturates the engine: per-process gates (each process its own in-process Budget of the
   engine's size, straight to the engine) vs both processes through one gateway.
c. 16 research callers against one engine (straight, and behind the gateway) and against two
   engines behind one gateway.
d. Resident memory (RSS) of a client process making many sequential calls through Fawn's client
   (the agents runtime's `model_for`, i.e. serving.client.chat_model) via the gateway, and of the
   gateway process, at call 20 and at the end.

The gateway runs as a real `fawn gateway` process; the callers of part b and d are separate
processes too (this script in its `--worker` mode).

    .venv/bin/python bench/gateway.py                  # a,b,c,d; starts the engines itself
    .venv/bin/python bench/gateway.py --only a,b       # some parts
    .venv/bin/python bench/gateway.py --only b --batch-processes 2   # b with two batch processes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean, median
from typing import Any

import httpx
import openai
from prometheus_client import CollectorRegistry

# Run as `python bench/gateway.py`, this folder comes first on sys.path and bench/serving.py
# would shadow the `serving` package; the repo root instead makes `bench.*` importable.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from app.settings import load_settings
from bench.sampling import engine_sampled, percentile
from bench.scheduler import HOTPOTQA, distinct_documents, machine_description, time_to_first_token
from serving.budget import CALL_CLASS_HEADER, Budget, CallClass, budget_for_engine
from serving.endpoint import Endpoint, discover_endpoint
from serving.engine import EngineProcess, start_engine, wait_until_healthy
from serving.errors import EngineError
from serving.metrics import scrape_metrics
from serving.observability import gate_metrics
from serving.profiles import EMBEDDED_PROFILE, load_profile
from serving.settings import LLMSettings
from serving.transport import GatedAsyncTransport, KvEstimate

CHAT_PATH = "/v1/chat/completions"
ENGINE_BUDGET = 8  # the embedded-cpu profile's --max-num-seqs
ENGINE_START_TIMEOUT_S = 600.0
GATEWAY_START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 900.0


# --- processes: engines, the gateway, workers ----------------------------------------------------


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_engines(count: int) -> Iterator[list[Endpoint]]:
    """`count` embedded CPU engines (`embedded-cpu` profile), started together, stopped after."""
    settings = load_settings()
    profile = load_profile(EMBEDDED_PROFILE)
    print(f"Starting {count} embedded engine(s) ...", file=sys.stderr, flush=True)
    processes: list[EngineProcess] = []
    try:
        for _ in range(count):
            processes.append(
                start_engine(profile, models_dir=settings.model_cache, port=free_port())
            )
        for process in processes:
            wait_until_healthy(process, ENGINE_START_TIMEOUT_S)
        yield [discover_endpoint(p.base_url, settings.llm) for p in processes]
    finally:
        for process in processes:
            process.stop()


@dataclass(frozen=True)
class Gateway:
    """A running `fawn gateway` process."""

    process: subprocess.Popen[bytes]
    root_url: str

    @property
    def base_url(self) -> str:
        """Where OpenAI clients point."""
        return self.root_url + "/v1"


@contextmanager
def running_gateway(engines: Sequence[Endpoint], budget: int = ENGINE_BUDGET) -> Iterator[Gateway]:
    """`fawn gateway` in front of `engines` as its own process, stopped after."""
    fawn = Path(sys.executable).parent / "fawn"
    if not fawn.exists():
        raise SystemExit(
            f"No `fawn` script next to {sys.executable}: run this with the venv's python."
        )
    port = free_port()
    upstreams = [arg for engine in engines for arg in ("--upstream", engine.root_url)]
    command = [str(fawn), "gateway", *upstreams, "--port", str(port), "--budget", str(budget)]
    log = Path(tempfile.mkdtemp(prefix="fawn-bench-gateway-")) / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    gateway = Gateway(process, f"http://127.0.0.1:{port}")
    try:
        _wait_for_gateway(gateway, len(engines), log)
        yield gateway
    finally:
        stop_process(process)


def _wait_for_gateway(gateway: Gateway, engines: int, log: Path) -> None:
    deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise SystemExit(f"The gateway exited while starting:\n{log.read_text()[-2000:]}")
        try:
            health = httpx.get(gateway.root_url + "/health", timeout=2).json()
            if sum(bool(e["healthy"]) for e in health["engines"]) == engines:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    stop_process(gateway.process)
    raise SystemExit(f"The gateway did not see its engines healthy in time; see {log}.")


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def spawn_worker(config: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    """This script in `--worker` mode, as a separate process, stderr into `log`."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(config)]
    with log.open("wb") as err:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)


def check_worker(process: subprocess.Popen[bytes], log: Path) -> None:
    """Fail loudly when a worker exited with an error."""
    if process.returncode not in (0, None):
        raise SystemExit(f"A worker failed ({process.returncode}):\n{log.read_text()[-3000:]}")


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` from /proc, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"No VmRSS for process {pid}.")


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


async def engine_idle(root_url: str, timeout_s: float = 120.0) -> None:
    """Wait until the engine runs and queues nothing (aborted calls of a finished phase drain)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                metrics = await scrape_metrics(root_url, client, 30.0)
                if metrics.requests_running == 0 and metrics.requests_waiting == 0:
                    return
            except EngineError:
                pass
            await asyncio.sleep(0.5)
    print(f"warning: {root_url} still busy after {timeout_s:.0f} s", file=sys.stderr)


def chat_body(model: str, content: str, max_tokens: int, **extra: object) -> dict[str, object]:
    """A chat completion request body."""
    messages = [{"role": "user", "content": content}]
    return {"model": model, "messages": messages, "max_tokens": max_tokens, **extra}


def raw_client(root_url: str, call_class: CallClass | None = None) -> httpx.AsyncClient:
    """A plain pooled httpx client (no gate); with a class, every request carries its header."""
    headers = {CALL_CLASS_HEADER: call_class.value} if call_class else None
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    return httpx.AsyncClient(
        base_url=root_url,
        headers=headers,
        limits=limits,
        timeout=REQUEST_TIMEOUT_S,
        trust_env=False,
    )


# --- a. the gateway's own cost -------------------------------------------------------------------


@dataclass(frozen=True)
class HopRow:
    """Part a: sequential latencies of one path."""

    path: str
    latencies_s: tuple[float, ...]


@dataclass(frozen=True)
class RateRow:
    """Part a: calls per second at one concurrency, each round, per path."""

    concurrency: int
    direct: tuple[float, ...]
    gateway: tuple[float, ...]
    errors: int


@dataclass(frozen=True)
class GatewayCpu:
    """Part a: the gateway process's CPU time per proxied call, and with no calls."""

    per_call_ms: float
    idle_ms_per_s: float


async def part_a(
    engine: Endpoint, args: argparse.Namespace
) -> tuple[list[HopRow], GatewayCpu, list[RateRow]]:
    """1-token calls one at a time (interleaved), then closed loops at each concurrency."""
    with running_gateway([engine]) as gateway:
        direct = raw_client(engine.root_url)
        through = raw_client(gateway.root_url, CallClass.RESEARCH)
        hops, cpu = await hop_latencies(engine, gateway, direct, through, args)
        body = chat_body(engine.model, "Hi", 1)
        rates = [await call_rates(direct, through, body, n, args) for n in args.concurrency]
        await direct.aclose()
        await through.aclose()
    return hops, cpu, rates


async def hop_latencies(
    engine: Endpoint,
    gateway: Gateway,
    direct: httpx.AsyncClient,
    through: httpx.AsyncClient,
    args: argparse.Namespace,
) -> tuple[list[HopRow], GatewayCpu]:
    """Each path's latency, one call at a time, interleaved; the gateway's CPU per call."""
    body = chat_body(engine.model, "Hi", 1)
    tokenize = {"model": engine.model, "messages": body["messages"], "add_generation_prompt": True}
    calls: dict[str, tuple[httpx.AsyncClient, str, dict[str, object]]] = {
        "straight to the engine": (direct, CHAT_PATH, body),
        "through the gateway": (through, CHAT_PATH, body),
        "engine /tokenize alone": (direct, "/tokenize", tokenize),
    }
    for client, path, payload in list(calls.values()) * args.warmup:
        await timed_post(client, path, payload)
    # The gateway's own background (health checks, pressure sampling), to take off per call.
    pid = gateway.process.pid
    cpu_start, started = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(args.idle_cpu_s)
    idle_rate = (cpu_seconds(pid) - cpu_start) / (time.perf_counter() - started)
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    cpu_start, started = cpu_seconds(pid), time.perf_counter()
    for index in range(args.hop_calls):
        # Alternate the order so neither path always follows the other.
        names = list(calls) if index % 2 == 0 else list(reversed(calls))
        for name in names:
            client, path, payload = calls[name]
            latencies[name].append(await timed_post(client, path, payload))
    busy = cpu_seconds(pid) - cpu_start - idle_rate * (time.perf_counter() - started)
    cpu = GatewayCpu(busy / args.hop_calls * 1000, idle_rate * 1000)
    return [HopRow(name, tuple(values)) for name, values in latencies.items()], cpu


async def call_rates(
    direct: httpx.AsyncClient,
    through: httpx.AsyncClient,
    body: dict[str, object],
    concurrency: int,
    args: argparse.Namespace,
) -> RateRow:
    """Closed-loop rounds on both paths at one concurrency, alternating which goes first."""
    rounds: dict[str, list[float]] = {"direct": [], "gateway": []}
    errors = 0
    for index in range(args.rate_rounds):
        order = [("direct", direct), ("gateway", through)]
        for name, client in order if index % 2 == 0 else reversed(order):
            rate, failed = await closed_loop(client, body, concurrency, args.rate_s)
            rounds[name].append(rate)
            errors += failed
    return RateRow(concurrency, tuple(rounds["direct"]), tuple(rounds["gateway"]), errors)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed_post(client: httpx.AsyncClient, path: str, payload: dict[str, object]) -> float:
    """Seconds for one POST and its whole answer."""
    started = time.perf_counter()
    response = await client.post(path, json=payload)
    response.raise_for_status()
    return time.perf_counter() - started


async def closed_loop(
    client: httpx.AsyncClient, body: dict[str, object], concurrency: int, seconds: float
) -> tuple[float, int]:
    """Calls per second with `concurrency` callers sending back to back for `seconds`; errors."""
    deadline = time.perf_counter() + seconds
    counts = {"done": 0, "failed": 0}

    async def caller() -> None:
        while time.perf_counter() < deadline:
            try:
                await timed_post(client, CHAT_PATH, body)
                counts["done"] += 1
            except httpx.HTTPError:
                counts["failed"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return counts["done"] / (time.perf_counter() - started), counts["failed"]


def table_a(
    hops: Sequence[HopRow], cpu: GatewayCpu, rates: Sequence[RateRow], args: argparse.Namespace
) -> str:
    """Part a as Markdown, with what the gateway adds."""
    lines = [
        f"a. The gateway's own cost: {args.hop_calls} sequential 1-token chat calls per path "
        "(interleaved)",
        "",
        "| Path | Calls | p50 (ms) | p90 (ms) | p99 (ms) | mean (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in hops:
        ms = [value * 1000 for value in row.latencies_s]
        lines.append(
            f"| {row.path} | {len(ms)} | {percentile(ms, 50):.1f} | {percentile(ms, 90):.1f} | "
            f"{percentile(ms, 99):.1f} | {fmean(ms):.1f} |"
        )
    direct, through = (row.latencies_s for row in hops[:2])
    added_p50 = (percentile(through, 50) - percentile(direct, 50)) * 1000
    added_p99 = (percentile(through, 99) - percentile(direct, 99)) * 1000
    paired = median(g - d for g, d in zip(through, direct, strict=True)) * 1000
    verdict = "met" if added_p50 <= 3.0 else "not met"
    lines += [
        "",
        f"Added by the gateway: p50 {added_p50:+.1f} ms, p99 {added_p99:+.1f} ms (median of the "
        f"paired differences {paired:+.1f} ms). Goal at most 3 ms at p50: **{verdict}**.",
        "",
        f"Gateway CPU time per proxied call: {cpu.per_call_ms:.1f} ms (its background with no "
        f"calls, {cpu.idle_ms_per_s:.1f} ms per second, taken off).",
        "",
        f"Calls per second, {args.rate_s:.0f} s closed loops of 1-token calls, "
        f"{args.rate_rounds} rounds per path alternating with the other path: median (lowest, "
        "highest)",
        "",
        "| Concurrency | Straight (calls/s) | Through the gateway (calls/s) | "
        "Gateway/straight (medians) | (highest) | Errors |",
        "| ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for row in rates:
        lines.append(
            f"| {row.concurrency} | {_rounds(row.direct)} | {_rounds(row.gateway)} | "
            f"{median(row.gateway) / median(row.direct):.2f}x | "
            f"{max(row.gateway) / max(row.direct):.2f}x | {row.errors} |"
        )
    return "\n".join(lines)


def _rounds(values: Sequence[float]) -> str:
    return f"{median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


# --- b. interactive latency while another process's batch saturates the engine ------------------


@dataclass(frozen=True)
class ContendedRow:
    """Part b, one mode."""

    mode: str
    ttft_s: tuple[float, ...]
    window_s: float
    research_calls: int
    research_tokens_per_s: float
    research_errors: int
    engine_waiting_max: int
    engine_running_mean: float
    load: tuple[float, float]


async def part_b(engine: Endpoint, args: argparse.Namespace) -> list[ContendedRow]:
    """Per-process gates, then one gateway (the order flips on every other round)."""
    rows = []
    for index in range(args.rounds):
        for through_gateway in (False, True) if index % 2 == 0 else (True, False):
            if through_gateway:
                with running_gateway([engine]) as gateway:
                    rows.append(await contended(engine, gateway, args))
            else:
                rows.append(await contended(engine, None, args))
            await engine_idle(engine.root_url)
    return rows


async def contended(
    engine: Endpoint, gateway: Gateway | None, args: argparse.Namespace
) -> ContendedRow:
    """One mode of part b: batch process(es) saturate, then a probe process times first tokens."""
    common = {
        "base_url": gateway.base_url if gateway else engine.base_url,
        "model": engine.model,
        "max_model_len": engine.max_model_len,
        "gate": gateway is None,
        "header": gateway is not None,
    }
    work = Path(tempfile.mkdtemp(prefix="fawn-bench-b-"))
    load_start = load_average()
    batches = []
    for index in range(args.batch_processes):
        config = {
            **common,
            "kind": "research",
            "callers": args.research_callers,
            "seed": index,
            "documents": str(args.hotpotqa),
            "out": str(work / f"research-{index}.jsonl"),
        }
        batches.append(spawn_worker(config, work / f"research-{index}.log"))
    try:
        await asyncio.sleep(args.saturate_s)
        probe_config = {**common, "kind": "probe", "probes": args.probes, "seed": 7}
        probe_config["out"] = str(work / "probe.json")
        async with engine_sampled(engine.root_url) as samples:
            probe = spawn_worker(probe_config, work / "probe.log")
            await asyncio.to_thread(probe.wait)
        check_worker(probe, work / "probe.log")
        for index, batch in enumerate(batches):
            check_worker(batch, work / f"research-{index}.log")
    finally:
        for batch in batches:
            stop_process(batch)
    probed = json.loads((work / "probe.json").read_text())
    started, ended = probed["started"], probed["ended"]
    done = [
        json.loads(line)
        for index in range(args.batch_processes)
        for line in (work / f"research-{index}.jsonl").read_text().splitlines()
    ]
    in_window = [d for d in done if started <= d["t"] <= ended]
    tokens = sum(d.get("tokens", 0) for d in in_window)
    if gateway:
        mode = "one gateway (research / interactive class headers)"
    else:
        mode = f"per-process gates (Budget({ENGINE_BUDGET}) in each process)"
    return ContendedRow(
        mode=mode,
        ttft_s=tuple(probed["ttft_s"]),
        window_s=ended - started,
        research_calls=sum("error" not in d for d in in_window),
        research_tokens_per_s=tokens / (ended - started),
        research_errors=sum("error" in d for d in done),
        engine_waiting_max=max(samples.waiting, default=0),
        engine_running_mean=fmean(samples.running) if samples.running else 0.0,
        load=(load_start, load_average()),
    )


def table_b(rows: Sequence[ContendedRow], args: argparse.Namespace) -> str:
    """Part b as Markdown, with the per-process/gateway ratios."""
    plural = "es" if args.batch_processes > 1 else ""
    lines = [
        f"b. Interactive time to first token ({args.probes} probes from one process) while "
        f"research calls saturate the engine ({args.research_callers} callers in each of "
        f"{args.batch_processes} batch process{plural})",
        "",
        "| Mode | TTFT p50 (s) | TTFT p95 (s) | TTFT max (s) | Probing took (s) | Research calls "
        "in it | Research tok/s | Research errors | Engine running (mean) | Engine waiting (max) "
        "| Load avg (start, end) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.mode} | {percentile(row.ttft_s, 50):.2f} | {percentile(row.ttft_s, 95):.2f} "
            f"| {max(row.ttft_s):.2f} | {row.window_s:.0f} | {row.research_calls} | "
            f"{row.research_tokens_per_s:.1f} | {row.research_errors} | "
            f"{row.engine_running_mean:.1f} | {row.engine_waiting_max} | "
            f"{row.load[0]:.1f}, {row.load[1]:.1f} |"
        )
    gates = [r for r in rows if r.mode.startswith("per-process")]
    through = [r for r in rows if not r.mode.startswith("per-process")]
    for gated, gateway in zip(gates, through, strict=False):
        lines += [
            "",
            f"Ratio per-process gates / gateway: p50 {_ratio(gated.ttft_s, gateway.ttft_s, 50)}, "
            f"p95 {_ratio(gated.ttft_s, gateway.ttft_s, 95)} (goal: p95 at least 5x).",
        ]
    return "\n".join(lines)


def _ratio(slow: Sequence[float], fast: Sequence[float], q: float) -> str:
    return f"{percentile(slow, q) / percentile(fast, q):.2f}x"


# --- c. one engine vs two behind the gateway ---------------------------------------------------


@dataclass(frozen=True)
class ScaleRow:
    """Part c, one setup."""

    setup: str
    latencies_s: tuple[float, ...]
    tokens: int
    wall_s: float
    per_engine: str
    load: tuple[float, float]


SETUPS = (
    "one engine, straight (no gate)",
    "one engine behind the gateway",
    "two engines behind the gateway",
)


async def part_c(stack: ExitStack, first: Endpoint, args: argparse.Namespace) -> list[ScaleRow]:
    """16 research callers on each setup; rounds alternate the order (the load swings)."""
    (second,) = stack.enter_context(embedded_engines(1))
    documents = distinct_documents(args.hotpotqa, args.research_callers)
    for engine in (first, second):
        await warm(engine, documents)
    one = stack.enter_context(running_gateway([first]))
    two = stack.enter_context(running_gateway([first, second]))
    targets = {SETUPS[0]: (first, None), SETUPS[1]: (first, one), SETUPS[2]: (first, two)}
    rows = []
    for index in range(args.scale_rounds):
        for setup in SETUPS if index % 2 == 0 else SETUPS[::-1]:
            engine, gateway = targets[setup]
            rows.append(await research_run(setup, engine, gateway, documents, args))
            for idle in (first, second):
                await engine_idle(idle.root_url)
    return rows


async def warm(engine: Endpoint, documents: Sequence[str]) -> None:
    """One 1-token call per document, so every setup finds the prompts in the prefix cache."""
    async with raw_client(engine.root_url) as client:
        for document in documents:
            await timed_post(
                client, CHAT_PATH, chat_body(engine.model, summary_prompt(document), 1)
            )


def summary_prompt(document: str) -> str:
    """The research call's prompt."""
    return f"Summarise:\n{document[:1500]}"


async def research_run(
    setup: str,
    engine: Endpoint,
    gateway: Gateway | None,
    documents: Sequence[str],
    args: argparse.Namespace,
) -> ScaleRow:
    """`research_callers` callers share `scale_calls` calls; call i generates the same tokens in
    every setup (ignore_eos, a length drawn from i)."""
    load_start = load_average()
    latencies: list[float] = []
    tokens = 0
    next_call = iter(range(args.scale_calls))
    before = _admissions(gateway)
    root = gateway.root_url if gateway else engine.root_url
    client = raw_client(root, CallClass.RESEARCH if gateway else None)

    async def caller(document: str) -> None:
        nonlocal tokens
        for index in next_call:
            length = random.Random(index).randint(32, 128)
            body = chat_body(engine.model, summary_prompt(document), length, ignore_eos=True)
            started = time.perf_counter()
            response = await client.post(CHAT_PATH, json=body)
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)
            tokens += response.json()["usage"]["completion_tokens"]

    started = time.perf_counter()
    await asyncio.gather(*(caller(document) for document in documents))
    wall = time.perf_counter() - started
    await client.aclose()
    split = _admissions(gateway) - before
    per_engine = " / ".join(str(split[name]) for name in sorted(split)) if gateway else "-"
    return ScaleRow(setup, tuple(latencies), tokens, wall, per_engine, (load_start, load_average()))


def _admissions(gateway: Gateway | None) -> Counter[str]:
    """Calls the gateway has admitted so far, per engine (its last 1,000)."""
    if gateway is None:
        return Counter()
    recent = httpx.get(gateway.root_url + "/gateway/admissions", timeout=30).json()
    return Counter(str(admission["engine"]) for admission in recent["admissions"])


def table_c(rows: Sequence[ScaleRow], args: argparse.Namespace) -> str:
    """Part c as Markdown, with throughput against the one engine behind the gateway."""
    lines = [
        f"c. {args.research_callers} research callers, {args.scale_calls} calls of 32-128 "
        "generated tokens (the same per call in every setup)",
        "",
        "| Setup | Wall (s) | Output tok/s | Calls/s | Latency p50 (s) | p95 (s) | Calls per "
        "engine | Load avg (start, end) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.setup} | {row.wall_s:.1f} | {row.tokens / row.wall_s:.1f} | "
            f"{len(row.latencies_s) / row.wall_s:.2f} | {percentile(row.latencies_s, 50):.2f} | "
            f"{percentile(row.latencies_s, 95):.2f} | {row.per_engine} | "
            f"{row.load[0]:.1f}, {row.load[1]:.1f} |"
        )
    rates = {
        setup: [r.tokens / r.wall_s for r in rows if r.setup == setup]
        for setup in SETUPS
        if any(r.setup == setup for r in rows)
    }
    lines += [
        "",
        "Output tok/s per setup, median of its rounds: "
        + "; ".join(f"{setup} {median(values):.1f}" for setup, values in rates.items())
        + ".",
    ]
    if len(rates) == len(SETUPS):
        gain = median(rates[SETUPS[2]]) / median(rates[SETUPS[1]])
        lines.append(f"Two engines / one engine behind the gateway: {gain:.2f}x output tok/s.")
    return "\n".join(lines)


# --- d. memory over a long run of calls ----------------------------------------------------------


@dataclass(frozen=True)
class MemoryRun:
    """Part d: RSS after each call, of the client and of the gateway, in MiB."""

    client_mib: tuple[float, ...]
    gateway_mib: tuple[float, ...]
    wall_s: float
    # The gateway's RSS after the calls and after `idle_s` more with no calls: time-driven growth.
    gateway_idle_mib: tuple[float, float]
    idle_s: float


async def part_d(engine: Endpoint, args: argparse.Namespace) -> MemoryRun:
    """A client process makes `memory_calls` sequential calls through Fawn's client + gateway."""
    with running_gateway([engine]) as gateway:
        work = Path(tempfile.mkdtemp(prefix="fawn-bench-d-"))
        config = {
            "kind": "chat-client",
            "base_url": gateway.base_url,
            "calls": args.memory_calls,
            "gateway_pid": gateway.process.pid,
            "out": str(work / "memory.json"),
        }
        client = spawn_worker(config, work / "client.log")
        await asyncio.to_thread(client.wait)
        check_worker(client, work / "client.log")
        idle_start = rss_mib(gateway.process.pid)
        await asyncio.sleep(args.idle_s)
        idle = (idle_start, rss_mib(gateway.process.pid))
    result = json.loads((work / "memory.json").read_text())
    return MemoryRun(
        tuple(result["client_mib"]),
        tuple(result["gateway_mib"]),
        result["wall_s"],
        idle,
        args.idle_s,
    )


def table_d(run: MemoryRun, args: argparse.Namespace) -> str:
    """Part d as Markdown: RSS at call 20 and at the end, and whether the end is within 5%."""
    calls = len(run.client_mib)
    lines = [
        f"d. RSS over {calls} sequential chat calls (8 tokens each) through Fawn's client "
        f"and the gateway ({run.wall_s:.0f} s)",
        "",
        f"| Process | RSS after call 1 (MiB) | after call 20 | after call {calls} | Peak | "
        "End vs call 20 | Within 5%? |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, series in (("client", run.client_mib), ("gateway", run.gateway_mib)):
        at_20, end = series[min(19, calls - 1)], series[-1]
        change = end / at_20 - 1
        lines.append(
            f"| {name} | {series[0]:.1f} | {at_20:.1f} | {end:.1f} | {max(series):.1f} | "
            f"{change:+.1%} | {'yes' if abs(change) <= 0.05 else 'no'} |"
        )
    step = max(1, calls // 10)
    marks = range(step - 1, calls, step)
    lines += [
        "",
        "Client RSS every "
        + f"{step} calls (MiB): "
        + ", ".join(f"{run.client_mib[i]:.0f}" for i in marks),
        "Gateway RSS every "
        + f"{step} calls (MiB): "
        + ", ".join(f"{run.gateway_mib[i]:.0f}" for i in marks),
        f"Gateway RSS with no calls for {run.idle_s:.0f} s after them: "
        f"{run.gateway_idle_mib[0]:.1f} -> {run.gateway_idle_mib[1]:.1f} MiB.",
    ]
    return "\n".join(lines)


# --- workers (separate processes) ----------------------------------------------------------------


def worker_client(config: dict[str, Any], call_class: CallClass) -> openai.AsyncOpenAI:
    """An OpenAI client as the mode wants: behind an in-process gate, or with a class header."""
    transport = None
    if config["gate"]:
        root = config["base_url"].removesuffix("/v1")
        registry = gate_metrics(CollectorRegistry())
        budget = budget_for_engine(root, LLMSettings(budget=ENGINE_BUDGET), metrics=registry)
        estimate = KvEstimate(max_model_len=config["max_model_len"])
        transport = GatedAsyncTransport(budget, call_class, estimate=estimate)
    http = httpx.AsyncClient(transport=transport, timeout=REQUEST_TIMEOUT_S, trust_env=False)
    headers = {CALL_CLASS_HEADER: call_class.value} if config["header"] else None
    return openai.AsyncOpenAI(
        base_url=config["base_url"],
        api_key="EMPTY",
        max_retries=0,
        http_client=http,
        default_headers=headers,
    )


async def research_worker(config: dict[str, Any]) -> None:
    """Research callers looping until killed; one JSON line per finished call."""
    client = worker_client(config, CallClass.RESEARCH)
    documents = distinct_documents(Path(config["documents"]), config["callers"])
    rng = random.Random(config["seed"])
    with Path(config["out"]).open("a", buffering=1) as out:

        async def loop(document: str) -> None:
            while True:
                try:
                    reply = await client.chat.completions.create(
                        model=config["model"],
                        messages=[{"role": "user", "content": summary_prompt(document)}],
                        # Varied lengths, as real steps have, so calls do not all end at once.
                        max_tokens=rng.randint(32, 128),
                        extra_body={"ignore_eos": True},
                    )
                    tokens = reply.usage.completion_tokens if reply.usage else 0
                    out.write(json.dumps({"t": time.time(), "tokens": tokens}) + "\n")
                except openai.APIError as exc:
                    out.write(json.dumps({"t": time.time(), "error": type(exc).__name__}) + "\n")
                    await asyncio.sleep(1.0)

        await asyncio.gather(*(loop(document) for document in documents))


async def probe_worker(config: dict[str, Any]) -> None:
    """Interactive probes one at a time, 0.2-1 s apart; their times to first token."""
    client = worker_client(config, CallClass.INTERACTIVE)
    rng = random.Random(config["seed"])
    ttfts = []
    started = time.time()
    for index in range(config["probes"]):
        ttfts.append(await time_to_first_token(client, config["model"], f"Hi #{index}!"))
        await asyncio.sleep(rng.uniform(0.2, 1.0))
    result = {"started": started, "ended": time.time(), "ttft_s": ttfts}
    Path(config["out"]).write_text(json.dumps(result))


async def chat_client_worker(config: dict[str, Any]) -> None:
    """Sequential calls through the agents runtime's `model_for`, as a batch's nodes make them."""
    from agents.runtime import connect_runtime

    llm = LLMSettings()
    endpoint = discover_endpoint(config["base_url"], llm)
    runtime = connect_runtime(
        endpoint, llm, Budget(llm.budget), data_dir=Path(tempfile.mkdtemp(prefix="fawn-bench-"))
    )
    client_mib, gateway_mib = [], []
    started = time.perf_counter()
    for index in range(config["calls"]):
        model = runtime.model_for(CallClass.RESEARCH, max_tokens=8)
        await model.ainvoke(f"Say hello to visitor number {index}.")
        client_mib.append(rss_mib(os.getpid()))
        gateway_mib.append(rss_mib(config["gateway_pid"]))
    result = {
        "client_mib": client_mib,
        "gateway_mib": gateway_mib,
        "wall_s": time.perf_counter() - started,
    }
    Path(config["out"]).write_text(json.dumps(result))


WORKERS: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
    "research": research_worker,
    "probe": probe_worker,
    "chat-client": chat_client_worker,
}


# --- the report ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen parts and print a Markdown report."""
    args = parse_args(argv)
    if args.worker:
        config = json.loads(args.worker)
        asyncio.run(WORKERS[config["kind"]](config))
        return
    parts = set(args.only.split(","))
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Machine: {machine_description()}, {memory:.0f} GiB RAM; {now}; "
        f"load average {load_average():.1f}\n",
        flush=True,
    )
    with ExitStack() as stack:
        (engine,) = stack.enter_context(embedded_engines(1))
        if "a" in parts:
            print(table_a(*asyncio.run(part_a(engine, args)), args) + "\n", flush=True)
        if "b" in parts:
            print(table_b(asyncio.run(part_b(engine, args)), args) + "\n", flush=True)
        if "d" in parts:
            print(table_d(asyncio.run(part_d(engine, args)), args) + "\n", flush=True)
        if "c" in parts:
            # Last: it starts a second engine, which stays up until the end.
            print(table_c(asyncio.run(part_c(stack, engine, args)), args) + "\n", flush=True)
    print(f"Done; load average {load_average():.1f}.", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--only", default="a,b,c,d", help="Parts to run, comma-separated (a,b,c,d).")
    add("--hotpotqa", type=Path, default=HOTPOTQA, help="Documents for research prompts.")
    add("--warmup", type=int, default=10, help="a: unmeasured calls per path first.")
    add("--hop-calls", type=int, default=200, help="a: sequential calls per path.")
    add("--idle-cpu-s", type=float, default=10.0, help="a: gateway CPU watched with no calls.")
    add("--concurrency", type=_ints, default=(8, 32), help="a: closed-loop callers, e.g. 8,32.")
    add("--rate-s", type=float, default=4.0, help="a: seconds per closed-loop round.")
    add("--rate-rounds", type=int, default=6, help="a: rounds per path and concurrency.")
    add("--research-callers", type=int, default=16, help="b, c: research callers per process.")
    add("--batch-processes", type=int, default=1, help="b: research batch processes.")
    add("--saturate-s", type=float, default=15.0, help="b: research load before probing.")
    add("--probes", type=int, default=20, help="b: interactive probes per mode.")
    add("--rounds", type=int, default=1, help="b: rounds of both modes, alternating order.")
    add("--scale-calls", type=int, default=48, help="c: research calls per setup and round.")
    add("--scale-rounds", type=int, default=2, help="c: rounds of the setups, alternating order.")
    add("--memory-calls", type=int, default=200, help="d: sequential calls of the client.")
    add("--idle-s", type=float, default=60.0, help="d: gateway RSS watched idle after the calls.")
    add("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


if __name__ == "__main__":
    main()
