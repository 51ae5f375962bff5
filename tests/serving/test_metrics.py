"""The metrics reader on the real engine's /metrics: counters move by exactly what was served."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from serving.endpoint import Endpoint
from serving.errors import EngineError
from serving.metrics import parse_metrics, read_metrics, scrape_metrics

ENGINE_0 = 'engine="0"'
ENGINE_1 = 'engine="1"'


def _as_two_engines(text: str) -> str:
    """The page a two-engine (data-parallel) server would give: every sample again as engine 1.

    Each copy follows its original so that a family's samples stay together, as Prometheus
    requires.
    """
    lines = []
    for line in text.splitlines():
        lines.append(line)
        if ENGINE_0 in line:
            lines.append(line.replace(ENGINE_0, ENGINE_1))
    return "\n".join(lines)


def _complete(engine: Endpoint, limit: int) -> dict[str, int]:
    response = httpx.post(
        engine.base_url + "/completions",
        json={
            "model": engine.model,
            "prompt": "The capital of France is",
            "max_tokens": limit,
        },
        timeout=120,
    )
    response.raise_for_status()
    return response.json()["usage"]


@pytest.mark.engine
async def test_scrape_counts_a_completion_token_for_token(engine: Endpoint) -> None:
    before = await scrape_metrics(engine.root_url)
    usage = _complete(engine, limit=12)
    after = await scrape_metrics(engine.root_url)

    assert after.prompt_tokens_total - before.prompt_tokens_total == usage["prompt_tokens"]
    assert (
        after.generation_tokens_total - before.generation_tokens_total == usage["completion_tokens"]
    )
    assert after.requests_succeeded_total == before.requests_succeeded_total + 1
    assert after.requests_running == 0 and after.requests_waiting == 0


@pytest.mark.engine
def test_read_metrics_reports_the_kv_cache_the_engine_allocated(engine: Endpoint) -> None:
    _complete(engine, limit=4)
    metrics = read_metrics(engine.root_url)

    assert metrics.model_name == engine.model
    assert metrics.engines == 1
    assert metrics.block_size == 128  # vLLM's CPU backend always uses 128-token blocks
    assert metrics.num_gpu_blocks is not None and metrics.kv_capacity_tokens is not None
    assert metrics.kv_capacity_tokens == metrics.num_gpu_blocks * 128
    # vLLM refuses to start unless one full-length request fits, and reports how many do.
    assert metrics.kv_capacity_tokens >= engine.max_model_len
    assert metrics.kv_cache_max_concurrency == pytest.approx(
        metrics.kv_capacity_tokens / engine.max_model_len
    )
    assert 0.0 <= metrics.kv_cache_usage_perc <= 1.0
    assert metrics.prefix_caching is True


@pytest.mark.engine
def test_parse_metrics_sums_counters_across_engines_on_real_text(engine: Endpoint) -> None:
    _complete(engine, limit=4)
    text = httpx.get(engine.root_url + "/metrics", timeout=10).text
    # A data-parallel server repeats every sample with another `engine` label; build that page
    # from the real one, keeping each family's samples together as Prometheus requires.
    # The second engine is the fuller one: usage is the fullest engine's, not a sum.
    doubled = re.sub(
        r'^(vllm:kv_cache_usage_perc\{engine="1".*\}) \S+$',
        r"\1 0.5",
        _as_two_engines(text),
        flags=re.MULTILINE,
    )
    one, two = parse_metrics(text), parse_metrics(doubled)

    assert one.generation_tokens_total > 0
    assert two.engines == 2
    assert two.generation_tokens_total == 2 * one.generation_tokens_total
    assert two.prompt_tokens_total == 2 * one.prompt_tokens_total
    assert two.num_gpu_blocks == 2 * (one.num_gpu_blocks or 0)
    assert one.kv_cache_usage_perc < 0.5
    assert two.kv_cache_usage_perc == 0.5


@pytest.mark.engine
def test_parse_metrics_leaves_unknown_cache_options_empty(engine: Endpoint) -> None:
    text = httpx.get(engine.root_url + "/metrics", timeout=10).text
    unset = re.sub(r'num_gpu_blocks="\d+"', 'num_gpu_blocks="None"', text)

    metrics = parse_metrics(unset)

    assert metrics.num_gpu_blocks is None
    assert metrics.kv_capacity_tokens is None
    assert metrics.kv_cache_used_tokens is None


def test_parse_metrics_rejects_a_page_from_another_server() -> None:
    registry = CollectorRegistry()
    Gauge("http_requests_in_flight", "A non-vLLM server's gauge.", registry=registry).set(3)
    page = generate_latest(registry).decode()

    with pytest.raises(EngineError, match="not a vLLM"):
        parse_metrics(page)


async def test_scrape_of_an_unreachable_engine_says_how_to_fix_it() -> None:
    with pytest.raises(EngineError, match="fawn serve"):
        await scrape_metrics("http://127.0.0.1:9", timeout_s=2)


def test_read_metrics_of_an_unreachable_engine_says_how_to_fix_it() -> None:
    with pytest.raises(EngineError, match="FAWN_LLM_BASE_URL"):
        read_metrics("http://127.0.0.1:9/v1", timeout_s=2)
