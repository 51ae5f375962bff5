"""Prometheus metrics and key=value log lines for the LLM gate and the pressure monitor.

Metrics live in a registry the caller passes in (the global one by default). Each registry gets one
`GateMetrics`, so any number of gates and monitors in a process share the same series instead of
failing on duplicate registration.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Queue waits span from nothing (an idle engine) to minutes (a deferral under pressure).
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, GateMetrics] = (
    weakref.WeakKeyDictionary()
)


class GateMetrics:
    """The app's own serving metrics: calls in flight and queued, waits, deferrals, pressure."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_flight = Gauge(
            "fawn_llm_calls_in_flight",
            "LLM calls holding a slot in the budget.",
            ["call_class"],
            registry=registry,
        )
        self.queued = Gauge(
            "fawn_llm_calls_queued",
            "LLM calls waiting for a slot in the budget.",
            ["call_class"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "fawn_llm_queue_wait_seconds",
            "Time an LLM call waited for its slot.",
            ["call_class"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        self.kv_tokens_admitted = Gauge(
            "fawn_llm_kv_tokens_admitted",
            "KV-cache tokens reserved by the calls in flight.",
            registry=registry,
        )
        self.deferrals = Counter(
            "fawn_llm_deferrals",
            "LLM calls held back because the engine was under memory pressure.",
            ["call_class"],
            registry=registry,
        )
        self.budget_timeouts = Counter(
            "fawn_llm_budget_timeouts",
            "LLM calls that gave up waiting for a slot.",
            ["call_class"],
            registry=registry,
        )
        self.retries = Counter(
            "fawn_llm_retries",
            "LLM requests retried after a connection error or a 5xx answer.",
            ["reason"],
            registry=registry,
        )
        self.job_rejections = Counter(
            "fawn_job_rejections",
            "New jobs refused (HTTP 503) because the engine was under memory pressure.",
            registry=registry,
        )
        self.under_pressure = Gauge(
            "fawn_under_pressure",
            "1 while the engine is under memory pressure, else 0.",
            registry=registry,
        )


def gate_metrics(registry: CollectorRegistry | None = None) -> GateMetrics:
    """The one `GateMetrics` of `registry` (default: prometheus_client's global registry)."""
    registry = registry or REGISTRY
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = _by_registry[registry] = GateMetrics(registry)
        return metrics


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured line, `event=<event> key=value ...`; values with spaces are quoted."""
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={event}"]
    parts.extend(f"{key}={_format_value(value)}" for key, value in fields.items())
    logger.log(level, " ".join(parts))


def _format_value(value: Any) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    if not text or any(char.isspace() or char in '"=' for char in text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return text
