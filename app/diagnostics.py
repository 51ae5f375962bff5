"""Set-up checks behind `fawn doctor`: each is a small function from Settings to a `Check`.

A check returns None where it does not apply (no vLLM import check when a remote engine is
configured). Add one by writing a function and appending it to `DEFAULT_CHECKS`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ddgs import DDGS
from ddgs.exceptions import DDGSException

from agents.tools.mcp_probe import probe_servers
from app.settings import Settings
from serving.embedded_model import (
    EMBEDDED_MODEL_NAME,
    embedded_model_dir,
    find_gguf,
    model_dir_problem,
)
from serving.endpoint import discover_endpoint, gateway_health
from serving.engine import default_profile_name
from serving.errors import ConfigError, EngineError
from serving.gpu import GpuReading, read_gpus
from serving.metrics import EngineMetrics, read_metrics
from serving.pressure import current_pressure
from serving.profiles import load_profile
from serving.shared_engine import engine_dir, live_record

ENDPOINT_TIMEOUT_S = 5.0
SUBPROCESS_TIMEOUT_S = 60.0
WEB_SEARCH_TIMEOUT_S = 5
GIB = 1024**3


class Status(StrEnum):
    """How a check came out: only FAIL makes `fawn doctor` exit non-zero."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: what was checked, what was found, and how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str = ""


CheckFunction = Callable[[Settings], Check | None]


def check_engine(settings: Settings) -> Check:
    """The configured engine answers and serves a model; or the embedded one can be started."""
    base_url = settings.llm.base_url
    if not base_url:
        return _check_on_demand_engine(settings)
    try:
        endpoint = discover_endpoint(base_url, settings.llm, timeout_s=ENDPOINT_TIMEOUT_S)
    except EngineError as exc:
        return Check(
            "engine",
            Status.FAIL,
            f"{base_url}: {_reason(exc)}",
            "Start an engine with `fawn serve`, or point FAWN_LLM_BASE_URL (and FAWN_LLM_MODEL) "
            "at a running OpenAI-compatible server.",
        )
    return Check(
        "engine",
        Status.OK,
        f"{endpoint.model} at {endpoint.base_url}, max_model_len {endpoint.max_model_len}",
    )


def _check_on_demand_engine(settings: Settings) -> Check:
    try:
        profile = load_profile(settings.engine.profile or default_profile_name())
    except ConfigError as exc:
        return Check("engine", Status.FAIL, "the configured profile cannot be loaded", str(exc))
    started = f"none configured: Fawn starts {profile.name} on demand"
    if profile.model != EMBEDDED_MODEL_NAME:
        return Check("engine", Status.OK, f"{started} (model {profile.model})")
    model_dir = embedded_model_dir(settings.model_cache)
    problem = model_dir_problem(model_dir) if model_dir.is_dir() else None
    if model_dir.is_dir() and problem is None:
        return Check("engine", Status.OK, f"{started}; model ready in {model_dir}")
    if problem is not None:
        return Check(
            "engine",
            Status.WARN,
            f"{started}; its converted model is damaged ({problem})",
            "It is converted again on first use; run `fawn serve prepare` to do it now.",
        )
    try:
        find_gguf()
    except ConfigError as exc:
        return Check("engine", Status.FAIL, f"{started}, but its model is missing", str(exc))
    return Check(
        "engine",
        Status.WARN,
        f"{started}; its model is converted on first use (~25 s)",
        "Run `fawn serve prepare` to convert it now.",
    )


def check_gate(settings: Settings) -> Check:
    """Which LLM budget is in force: a Fawn gateway's (every process) or this process's own."""
    base_url = settings.llm.base_url
    if not base_url:
        record = live_record(engine_dir(settings.data_dir))
        where = f" (running now at {record.gateway_url})" if record else ""
        return Check(
            "gate",
            Status.OK,
            f"the shared embedded engine's gateway{where}: one budget for every Fawn process "
            "on this data dir",
        )
    health = gateway_health(_root(base_url), timeout_s=ENDPOINT_TIMEOUT_S)
    if health is not None:
        engines = health.get("engines") or []
        budgets = ", ".join(f"{e.get('url')} budget {e.get('budget')}" for e in engines)
        return Check("gate", Status.OK, f"Fawn's gateway at {base_url} for every client: {budgets}")
    return Check(
        "gate",
        Status.WARN,
        f"per process: {base_url} is a raw engine, so each Fawn process gates its own calls "
        f"(FAWN_LLM_BUDGET={settings.llm.budget}) and together they can overrun it",
        f"Run `fawn gateway --upstream {_root(base_url)}` and point FAWN_LLM_BASE_URL at the "
        "gateway's /v1 (or start the engine with `fawn serve`, which puts one in front).",
    )


def check_vllm(settings: Settings) -> Check | None:
    """vLLM imports in this interpreter (only needed when Fawn starts the engine itself)."""
    if settings.llm.base_url:
        return None
    # A child interpreter: importing vLLM takes seconds and can fail in ways (broken torch
    # extensions) that should not take the doctor down with it.
    try:
        result = subprocess.run(
            [sys.executable, "-c", "import vllm; print(vllm.__version__)"],
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        result = None
    if result is not None and result.returncode == 0:
        return Check("vllm", Status.OK, f"vllm {result.stdout.strip()} imports")
    reason = _last_line(result.stderr) if result else f"import took over {SUBPROCESS_TIMEOUT_S} s"
    return Check(
        "vllm",
        Status.FAIL,
        f"vllm does not import: {reason}",
        "Install the engine: `pip install -e '.[cpu]'` (`make setup`), or '.[gpu]' on a GPU; "
        "or set FAWN_LLM_BASE_URL to a running engine.",
    )


def check_kv_cache(settings: Settings) -> Check | None:
    """The configured engine's KV cache: capacity, usage and preemptions from /metrics."""
    if not settings.llm.base_url:
        return None
    try:
        metrics = read_metrics(_engine_root(settings.llm.base_url), timeout_s=ENDPOINT_TIMEOUT_S)
    except EngineError as exc:
        return Check(
            "kv cache",
            Status.WARN,
            f"no engine metrics: {_reason(exc)}",
            "Serve the model with vLLM so Fawn can watch its KV cache (other servers have no "
            "/metrics).",
        )
    return Check("kv cache", Status.OK, describe_kv_cache(metrics))


def describe_kv_cache(metrics: EngineMetrics) -> str:
    """A one-line summary of the engine's KV cache and queue."""
    capacity = metrics.kv_capacity_tokens
    size = (
        f"{capacity:,} tokens ({metrics.num_gpu_blocks:,} blocks of {metrics.block_size})"
        if capacity is not None
        else "size unknown"
    )
    return (
        f"{size}, {metrics.kv_cache_usage_perc:.0%} used; {metrics.requests_running} running, "
        f"{metrics.requests_waiting} waiting, {metrics.preemptions_total} preemptions so far"
    )


def check_gpu(settings: Settings) -> Check:
    """The GPUs NVML sees; none is fine with a remote engine and a warning with the embedded one."""
    gpus = read_gpus()
    if gpus:
        return Check("gpu", Status.OK, "; ".join(describe_gpu(gpu) for gpu in gpus))
    if settings.llm.base_url:
        return Check("gpu", Status.OK, f"none here; the engine runs at {settings.llm.base_url}")
    return Check(
        "gpu",
        Status.WARN,
        "none: the embedded CPU engine serves SmolLM2-135M, which is slow and small",
        "For useful reports serve Qwen3-4B on a GPU (e.g. `fawn serve --profile qwen3-4b-24gb` "
        "on a 24 GB card), or set FAWN_LLM_BASE_URL to an engine that runs on one.",
    )


def describe_gpu(gpu: GpuReading) -> str:
    """`GPU0 NVIDIA L4: 1.2/22.5 GiB used, 3% busy`."""
    busy = "load unknown" if gpu.utilization_percent is None else f"{gpu.utilization_percent}% busy"
    return (
        f"GPU{gpu.index} {gpu.name}: {gpu.memory_used_bytes / GIB:.1f}/"
        f"{gpu.memory_total_bytes / GIB:.1f} GiB used, {busy}"
    )


def check_pressure(settings: Settings) -> Check:
    """Memory pressure now, by the scheduler's own rule: GPU memory, KV usage, preemptions."""
    root_url = _engine_root(settings.llm.base_url) if settings.llm.base_url else None
    state = current_pressure(root_url, settings.pressure)
    watched = "the GPU and the engine's /metrics" if root_url else "the GPU"
    if not state.under_pressure:
        return Check("pressure", Status.OK, f"{state.describe()} (watching {watched})")
    return Check(
        "pressure",
        Status.WARN,
        state.describe(),
        "Report and podcast work waits and new jobs get 503 until it clears; free GPU memory, "
        "or serve a smaller profile (`fawn serve plan`).",
    )


def check_sandbox(settings: Settings) -> Check:
    """bubblewrap is installed and can really create a sandbox here."""
    if shutil.which("bwrap") is None:
        return Check(
            "sandbox",
            Status.FAIL,
            "bubblewrap (`bwrap`) is not installed, so model-written code cannot run",
            "Install it: `apt-get install bubblewrap` (or `make setup`).",
        )
    command = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"]
    failure = _run_quietly(command)
    if failure is None:
        return Check("sandbox", Status.OK, "bubblewrap runs a process with no network")
    return Check(
        "sandbox",
        Status.FAIL,
        f"bubblewrap cannot create a sandbox: {failure}",
        "Allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), or run "
        "the container with a seccomp profile that permits them.",
    )


def check_speech(settings: Settings) -> Check:
    """espeak-ng is installed and writes a WAV file (used for spoken reports)."""
    if shutil.which("espeak-ng") is None:
        return Check(
            "speech",
            Status.FAIL,
            "espeak-ng is not installed, so reports cannot be read aloud",
            "Install it: `apt-get install espeak-ng` (or `make setup`).",
        )
    with tempfile.TemporaryDirectory(prefix="fawn-doctor-") as work:
        wav = Path(work) / "check.wav"
        failure = _run_quietly(["espeak-ng", "-w", str(wav), "Fawn is ready."])
        if failure is None and not _is_wav(wav):
            failure = "it exited cleanly but wrote no WAV file"
    if failure is None:
        return Check("speech", Status.OK, "espeak-ng writes WAV audio")
    return Check(
        "speech",
        Status.FAIL,
        f"espeak-ng failed: {failure}",
        "Reinstall it: `apt-get install --reinstall espeak-ng espeak-ng-data`.",
    )


def check_web_search(settings: Settings) -> Check:
    """A real web query answers; offline is only a warning, since the local corpus still works."""
    try:
        results = DDGS(timeout=WEB_SEARCH_TIMEOUT_S).text("deep research", max_results=1)
    except DDGSException as exc:
        return Check(
            "web search",
            Status.WARN,
            f"no search engine answered: {_reason(exc)}",
            "Research still works offline on the local corpus (`fawn corpus`); web search needs "
            "outbound HTTPS.",
        )
    return Check("web search", Status.OK, f"ddgs answered ({len(results)} result)")


def check_mcp(settings: Settings) -> Check:
    """Every configured MCP server answers and lists the tools it is configured with."""
    if not settings.mcp.servers:
        return Check("mcp", Status.OK, "no MCP servers configured (optional)")
    probes = asyncio.run(probe_servers(settings.mcp))
    bad = [
        f"{p.name}: {p.error}" if p.error else f"{p.name} does not list {', '.join(p.problems)}"
        for p in probes
        if p.error or p.problems
    ]
    if not bad:
        found = ", ".join(f"{p.name} ({len(p.tools)} tools)" for p in probes)
        return Check("mcp", Status.OK, f"every server answers: {found}")
    return Check(
        "mcp",
        Status.WARN,
        "; ".join(bad),
        "Research with these servers goes on without them. Check each one's command or url and "
        "its `tools`/`search_tool` in [mcp.servers.NAME]; `fawn mcp list` shows what answers.",
    )


DEFAULT_CHECKS: tuple[CheckFunction, ...] = (
    check_engine,
    check_gate,
    check_vllm,
    check_kv_cache,
    check_gpu,
    check_pressure,
    check_sandbox,
    check_speech,
    check_web_search,
    check_mcp,
)


def run_checks(settings: Settings, checks: Sequence[CheckFunction] = DEFAULT_CHECKS) -> list[Check]:
    """Run every check that applies, in order; a check that crashes becomes a failed row."""
    report = []
    for check in checks:
        try:
            outcome = check(settings)
        except Exception as exc:  # a broken check must not hide what the others find
            name = check.__name__.removeprefix("check_").replace("_", " ")
            outcome = Check(
                name, Status.FAIL, f"the check crashed: {type(exc).__name__}: {exc}", _BUG_FIX
            )
        if outcome is not None:
            report.append(outcome)
    return report


def has_failures(report: Sequence[Check]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(check.status is Status.FAIL for check in report)


_BUG_FIX = "This is a bug in Fawn's doctor; please report it with this line."


def _run_quietly(command: list[str]) -> str | None:
    """Run a short command; None when it succeeded, else why it did not."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if result.returncode == 0:
        return None
    return f"exit code {result.returncode}: {_last_line(result.stderr) or 'no message'}"


def _is_wav(path: Path) -> bool:
    # A RIFF header is 44 bytes; anything beyond it is audio.
    return path.is_file() and path.stat().st_size > 44 and path.read_bytes()[:4] == b"RIFF"


def _root(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")


def _engine_root(base_url: str) -> str:
    """The vLLM server behind `base_url`: the first engine of a Fawn gateway, else itself."""
    health = gateway_health(_root(base_url), timeout_s=ENDPOINT_TIMEOUT_S)
    engines = (health or {}).get("engines") or []
    return str(engines[0]["url"]) if engines else _root(base_url)


def _reason(exc: Exception, limit: int = 160) -> str:
    """What went wrong underneath a Fawn or library error, short enough for one table cell."""
    cause = exc.__cause__ or exc
    text = f"{type(cause).__name__}: {_last_line(str(cause))}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
