"""The gateway's Prometheus metrics: each engine's budget and health, requests by class and outcome.

Budget gauges are read from each engine's budget snapshot at scrape time, so they can never drift
from what the gate really holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.budget import CallClass
from serving.gateway.engines import Engine
from serving.observability import QUEUE_WAIT_BUCKETS


class GatewayMetrics:
    """Counters the gateway updates as it serves, plus a collector over the engines' budgets."""

    def __init__(self, engines: Callable[[], Sequence[Engine]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fawn_gateway_requests",
            "Completion requests the gateway answered, by call class and HTTP status.",
            ["call_class", "status"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "fawn_gateway_queue_wait_seconds",
            "Time a call waited for a slot on an engine.",
            ["call_class"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.upstream_retries = Counter(
            "fawn_gateway_upstream_retries",
            "Calls re-sent to an engine after one failed before answering.",
            ["engine"],
            registry=self.registry,
        )
        self.registry.register(_BudgetCollector(engines))


class _BudgetCollector(Collector):
    def __init__(self, engines: Callable[[], Sequence[Engine]]) -> None:
        self._engines = engines

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "fawn_gateway_engine_up", "1 while the engine is in rotation.", labels=["engine"]
        )
        limit = GaugeMetricFamily(
            "fawn_gateway_budget_limit", "Most calls in flight on the engine.", labels=["engine"]
        )
        in_flight = GaugeMetricFamily(
            "fawn_gateway_calls_in_flight", "Calls holding a slot.", labels=["engine", "call_class"]
        )
        queued = GaugeMetricFamily(
            "fawn_gateway_calls_queued",
            "Calls waiting for a slot.",
            labels=["engine", "call_class"],
        )
        kv = GaugeMetricFamily(
            "fawn_gateway_kv_tokens_admitted",
            "KV tokens reserved by calls in flight.",
            labels=["engine"],
        )
        peak = GaugeMetricFamily(
            "fawn_gateway_peak_in_flight", "Most calls ever in flight at once.", labels=["engine"]
        )
        pressure = GaugeMetricFamily(
            "fawn_gateway_under_pressure",
            "1 while the engine is under memory pressure.",
            labels=["engine"],
        )
        admitted = CounterMetricFamily(
            "fawn_gateway_admitted", "Calls admitted onto the engine.", labels=["engine"]
        )
        for engine in self._engines():
            snap = engine.budget.snapshot()
            name = engine.name
            up.add_metric([name], 1.0 if engine.healthy else 0.0)
            limit.add_metric([name], snap.limit)
            kv.add_metric([name], snap.kv_tokens_admitted)
            peak.add_metric([name], snap.peak_in_flight)
            pressure.add_metric([name], 1.0 if snap.under_pressure else 0.0)
            admitted.add_metric([name], snap.admitted_total)
            for call_class in CallClass:
                in_flight.add_metric([name, call_class.value], snap.in_flight[call_class])
                queued.add_metric([name, call_class.value], snap.queued[call_class])
        yield from (up, limit, in_flight, queued, kv, peak, pressure, admitted)
