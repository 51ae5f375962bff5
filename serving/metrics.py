"""Read vLLM's Prometheus `/metrics` into a typed snapshot (`EngineMetrics`).

The scheduler watches these numbers for memory pressure (KV-cache usage, waiting requests,
preemptions) and `fawn doctor` shows them. Only the vLLM V1 metric names below are read. A
server runs one engine per data-parallel rank, each with its own `engine` label; the snapshot
adds them up.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving.errors import EngineError

DEFAULT_SCRAPE_TIMEOUT_S = 5.0
Number = TypeVar("Number", int, float)

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
PREEMPTIONS = "vllm:num_preemptions_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
REQUESTS_SUCCEEDED = "vllm:request_success_total"
PREFIX_CACHE_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_CACHE_HITS = "vllm:prefix_cache_hits_total"
CACHE_CONFIG = "vllm:cache_config_info"

_SUMMED = (
    RUNNING,
    WAITING,
    PREEMPTIONS,
    PROMPT_TOKENS,
    GENERATION_TOKENS,
    REQUESTS_SUCCEEDED,
    PREFIX_CACHE_QUERIES,
    PREFIX_CACHE_HITS,
)


@dataclass(frozen=True)
class EngineMetrics:
    """One scrape of a vLLM server, summed over its engines. Counters only ever grow."""

    requests_running: int
    requests_waiting: int
    # vLLM's name says "perc" but the value is a fraction: 1.0 is a full KV cache. With several
    # engines this is the fullest one, since that is where preemptions start.
    kv_cache_usage_perc: float
    preemptions_total: int
    prompt_tokens_total: int
    generation_tokens_total: int
    requests_succeeded_total: int
    prefix_cache_queries_total: int
    prefix_cache_hits_total: int
    engines: int
    model_name: str | None
    # From the `vllm:cache_config_info` labels; None where the server does not say.
    block_size: int | None
    num_gpu_blocks: int | None
    kv_cache_max_concurrency: float | None
    cache_dtype: str | None
    prefix_caching: bool | None

    @property
    def kv_capacity_tokens(self) -> int | None:
        """Tokens the KV cache holds across all engines (blocks x block size)."""
        if self.block_size is None or self.num_gpu_blocks is None:
            return None
        return self.block_size * self.num_gpu_blocks

    @property
    def kv_cache_used_tokens(self) -> int | None:
        """Tokens the KV cache holds right now, estimated from the usage fraction."""
        capacity = self.kv_capacity_tokens
        return None if capacity is None else round(capacity * self.kv_cache_usage_perc)

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        """Share of queried prompt tokens served from the prefix cache (None before any query)."""
        if self.prefix_cache_queries_total <= 0:
            return None
        return self.prefix_cache_hits_total / self.prefix_cache_queries_total


def parse_metrics(text: str) -> EngineMetrics:
    """Parse a vLLM `/metrics` page (Prometheus text format) into an `EngineMetrics`."""
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError as exc:
        raise EngineError(f"The engine's /metrics page is not Prometheus text ({exc}).") from exc
    totals: dict[str, float] = defaultdict(float)
    usage: list[float] = []
    configs: list[dict[str, str]] = []
    model_names: set[str] = set()
    for sample in samples:
        if sample.name in _SUMMED:
            totals[sample.name] += sample.value
        elif sample.name == KV_CACHE_USAGE:
            usage.append(sample.value)
        elif sample.name == CACHE_CONFIG:
            configs.append(sample.labels)
        if sample.name == RUNNING and "model_name" in sample.labels:
            model_names.add(sample.labels["model_name"])
    if RUNNING not in totals or not usage:
        raise EngineError(
            f"The /metrics page has no {RUNNING} or {KV_CACHE_USAGE}: the server is not a vLLM "
            "V1 engine. Point FAWN_LLM_BASE_URL at a vLLM server to see its load."
        )
    return EngineMetrics(
        requests_running=round(totals[RUNNING]),
        requests_waiting=round(totals[WAITING]),
        kv_cache_usage_perc=max(usage),
        preemptions_total=round(totals[PREEMPTIONS]),
        prompt_tokens_total=round(totals[PROMPT_TOKENS]),
        generation_tokens_total=round(totals[GENERATION_TOKENS]),
        requests_succeeded_total=round(totals[REQUESTS_SUCCEEDED]),
        prefix_cache_queries_total=round(totals[PREFIX_CACHE_QUERIES]),
        prefix_cache_hits_total=round(totals[PREFIX_CACHE_HITS]),
        engines=len(usage),
        model_name=", ".join(sorted(model_names)) or None,
        **_cache_config(configs),
    )


async def scrape_metrics(
    root_url: str,
    client: httpx.AsyncClient | None = None,
    timeout_s: float = DEFAULT_SCRAPE_TIMEOUT_S,
) -> EngineMetrics:
    """Fetch and parse `<root_url>/metrics`; unreachable or not vLLM raises EngineError."""
    url = metrics_url(root_url)
    try:
        if client is None:
            async with httpx.AsyncClient() as own:
                response = await own.get(url, timeout=timeout_s)
        else:
            response = await client.get(url, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise _unreachable(url, exc) from exc
    return parse_metrics(response.text)


def read_metrics(
    root_url: str,
    timeout_s: float = DEFAULT_SCRAPE_TIMEOUT_S,
    client: httpx.Client | None = None,
) -> EngineMetrics:
    """Blocking `scrape_metrics`, for the CLI, scripts and monitor threads.

    A caller that reads repeatedly passes its own `client`: a new client per read builds a new
    TLS context each time, which grew a monitoring process by ~230 MiB an hour.
    """
    url = metrics_url(root_url)
    try:
        if client is None:
            response = httpx.get(url, timeout=timeout_s)
        else:
            response = client.get(url, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise _unreachable(url, exc) from exc
    return parse_metrics(response.text)


def metrics_url(root_url: str) -> str:
    """The metrics URL for a server root (a base URL ending in /v1 is accepted too)."""
    return root_url.rstrip("/").removesuffix("/v1") + "/metrics"


def _unreachable(url: str, exc: httpx.HTTPError) -> EngineError:
    return EngineError(
        f"Could not read engine metrics at {url} ({type(exc).__name__}: {exc}). Check that the "
        "engine is running (`fawn serve`) and that FAWN_LLM_BASE_URL points at a vLLM server."
    )


def _cache_config(configs: list[dict[str, str]]) -> dict[str, Any]:
    """Block size, blocks and cache options from each engine's `cache_config_info` labels."""
    first = configs[0] if configs else {}
    caching = _text_label(first, "enable_prefix_caching")
    return {
        "block_size": _int_label(first, "block_size"),
        "num_gpu_blocks": _sum_or_none([_int_label(c, "num_gpu_blocks") for c in configs]),
        "kv_cache_max_concurrency": _sum_or_none(
            [_float_label(c, "kv_cache_max_concurrency") for c in configs]
        ),
        "cache_dtype": _text_label(first, "cache_dtype"),
        "prefix_caching": None if caching is None else caching == "True",
    }


def _sum_or_none(values: list[Number | None]) -> Number | None:
    """The sum over engines, or None when any engine (or every one) does not say."""
    known = [value for value in values if value is not None]
    if not known or len(known) != len(values):
        return None
    return sum(known)


def _text_label(labels: dict[str, str], key: str) -> str | None:
    # vLLM writes Python's str(None) for unset options.
    value = labels.get(key)
    return None if value in (None, "None") else value


def _int_label(labels: dict[str, str], key: str) -> int | None:
    value = _text_label(labels, key)
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _float_label(labels: dict[str, str], key: str) -> float | None:
    value = _text_label(labels, key)
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
