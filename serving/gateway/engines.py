"""The engines behind the gateway: each with its own budget, its health, and the models it serves.

An `Engine` owns one vLLM server's budget (serving/budget.py: sequences, KV tokens, class order,
pressure deferral) and a pooled HTTP client to it. The `EnginePool` health-checks every engine,
takes one that fails out of rotation and back when it answers again, and admits a call onto one
engine: it waits for a healthy engine (up to the hold time), asks the policy for the engine with
the most room, and waits for a slot there. A call queued on an engine that goes down moves to the
others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client import CollectorRegistry

from serving.budget import Budget, BudgetTimeout, CallClass, KvCapacity, Slot
from serving.errors import EngineError
from serving.gateway.policy import Candidate, EnginePolicy, MostFreeRoom
from serving.metrics import parse_metrics
from serving.observability import gate_metrics, log_event
from serving.pressure import EngineMetricsSource, GpuSource, PressureMonitor, PressureSettings
from serving.settings import UpstreamSettings

logger = logging.getLogger(__name__)

# Fawn's engines run 8 sequences (the profiles' max-num-seqs); vLLM does not publish its own cap.
DEFAULT_ENGINE_BUDGET = 8
HEALTH_TIMEOUT_S = 3.0
# Generations on a busy CPU engine can take minutes; the read timeout is per chunk.
UPSTREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=60.0)


class NoEngineAvailable(Exception):
    """No healthy engine serves the model within the hold time (HTTP 503 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnknownModel(Exception):
    """No engine behind the gateway serves the requested model (HTTP 404)."""


@dataclass(eq=False)
class Engine:
    """One vLLM server behind the gateway."""

    name: str
    root_url: str
    budget: Budget
    client: httpx.AsyncClient
    pressure: PressureMonitor
    healthy: bool = False
    # Model id -> max_model_len, from /v1/models.
    models: dict[str, int] = field(default_factory=dict)
    # None until known: whether the engine accepts vLLM's per-request `priority` (it does only
    # when it runs with `--scheduling-policy priority`).
    priority_scheduling: bool | None = None
    last_error: str | None = None
    down: asyncio.Event = field(default_factory=asyncio.Event)

    def serves(self, model: str | None) -> bool:
        """Whether this engine serves `model` (None: any model)."""
        return model is None or model in self.models

    def describe(self) -> dict[str, object]:
        """The engine's state for `/health`."""
        snapshot = self.budget.snapshot()
        return {
            "name": self.name,
            "url": self.root_url,
            "healthy": self.healthy,
            "models": sorted(self.models),
            "budget": snapshot.limit,
            "interactive_reserve": self.budget.interactive_reserve,
            "in_flight": snapshot.total_in_flight,
            "queued": snapshot.total_queued,
            "kv_capacity_tokens": snapshot.kv_capacity_tokens,
            "under_pressure": snapshot.under_pressure,
            "error": self.last_error,
        }


@dataclass(frozen=True)
class Admission:
    """A call admitted onto an engine: it holds `slot` there until released."""

    engine: Engine
    slot: Slot
    sequence: int
    admitted_at: float


class EnginePool:
    """Every engine behind the gateway, their health, and admission onto one of them."""

    def __init__(
        self,
        engines: Sequence[Engine],
        *,
        hold_s: float,
        health_interval_s: float,
        policy: EnginePolicy | None = None,
    ) -> None:
        if not engines:
            raise ValueError("The gateway needs at least one upstream engine.")
        self.engines = list(engines)
        self.hold_s = hold_s
        self.health_interval_s = health_interval_s
        self.policy = policy or MostFreeRoom()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._admitted = 0
        # The order calls were admitted in (class and engine), kept for `/gateway/admissions`.
        self.recent: list[dict[str, object]] = []

    @property
    def retry_after_s(self) -> int:
        """What a 503 tells clients to wait: a couple of health checks."""
        return max(1, round(self.health_interval_s * 2))

    async def start(self) -> None:
        """Check every engine once, then keep checking in the background."""
        await asyncio.gather(*(self.check(engine) for engine in self.engines))
        for engine in self.engines:
            engine.pressure.start()
        self._task = asyncio.create_task(self._watch(), name="fawn-gateway-health")

    async def stop(self) -> None:
        """Stop checking and close every engine's client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for engine in self.engines:
            engine.pressure.stop()
            await engine.client.aclose()

    def model_names(self) -> list[str]:
        """Every model some engine serves (healthy or not), in engine order."""
        names: dict[str, None] = {}
        for engine in self.engines:
            names.update(dict.fromkeys(engine.models))
        return list(names)

    def max_model_len(self, model: str) -> int | None:
        """The shortest context among the engines serving `model` (a call may land on any)."""
        lengths = [e.models[model] for e in self.engines if model in e.models]
        return min(lengths) if lengths else None

    def check_model(self, model: str | None) -> None:
        """Raise UnknownModel when engines are known and none serves `model`."""
        known = self.model_names()
        if model is not None and known and model not in known:
            raise UnknownModel(
                f"The model {model!r} is not served here. Served: {', '.join(known)}."
            )

    async def admit(self, call_class: CallClass, model: str | None, kv_tokens: int) -> Admission:
        """Wait for a slot on the healthy engine with the most room; moves if that engine fails."""
        deadline = time.monotonic() + self.hold_s
        while True:
            engine = await self._healthy_engine(call_class, model, deadline)
            acquire = asyncio.ensure_future(engine.budget.acquire(call_class, kv_tokens))
            down = asyncio.ensure_future(engine.down.wait())
            try:
                await asyncio.wait({acquire, down}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                acquire.cancel()
                raise
            finally:
                down.cancel()
            if acquire.done():
                try:
                    slot = acquire.result()
                except BudgetTimeout as exc:
                    raise NoEngineAvailable(str(exc), self.retry_after_s) from exc
                return self._record(engine, slot)
            # The engine went down while the call waited: give up its place there, go elsewhere.
            acquire.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                slot = await acquire
                slot.release()

    def mark_down(self, engine: Engine, reason: str) -> None:
        """Take an engine out of rotation now (its connection failed); health checks restore it."""
        if engine.healthy:
            log_event(logger, "engine_down", logging.WARNING, engine=engine.name, reason=reason)
        engine.healthy = False
        engine.last_error = reason
        engine.down.set()
        self._notify()

    async def check(self, engine: Engine) -> None:
        """One health check: /health, then the models and KV capacity while they are unknown."""
        try:
            response = await engine.client.get("/health", timeout=HEALTH_TIMEOUT_S)
            if response.status_code != 200:
                raise EngineError(f"/health answered HTTP {response.status_code}")
            models = await self._models(engine)
            await self._learn_capacity(engine)
        except (httpx.HTTPError, EngineError, ValueError, KeyError, TypeError) as exc:
            self.mark_down(engine, f"{type(exc).__name__}: {exc}")
            return
        engine.models = models
        if not engine.healthy:
            log_event(logger, "engine_up", engine=engine.name, models=",".join(models))
            engine.healthy = True
            engine.last_error = None
            engine.down = asyncio.Event()
            self._notify()

    async def _models(self, engine: Engine) -> dict[str, int]:
        response = await engine.client.get("/v1/models", timeout=HEALTH_TIMEOUT_S)
        response.raise_for_status()
        return {
            str(item["id"]): int(item.get("max_model_len") or 4096)
            for item in response.json()["data"]
        }

    async def _learn_capacity(self, engine: Engine) -> None:
        """Read the KV capacity from `vllm:cache_config_info` once; KV admission is off until."""
        if engine.budget.kv_capacity is not None:
            return
        try:
            response = await engine.client.get("/metrics", timeout=HEALTH_TIMEOUT_S)
            response.raise_for_status()
            capacity = KvCapacity.from_metrics(parse_metrics(response.text))
        except (httpx.HTTPError, EngineError) as exc:
            log_event(logger, "kv_capacity_unknown", logging.WARNING, engine=engine.name, error=exc)
            return
        engine.budget.kv_capacity = capacity

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            await asyncio.gather(*(self.check(engine) for engine in self.engines))

    async def _healthy_engine(
        self, call_class: CallClass, model: str | None, deadline: float
    ) -> Engine:
        """The policy's choice among healthy engines serving `model`, waiting until `deadline`."""
        while True:
            candidates = {e.name: e for e in self.engines if e.healthy and e.serves(model)}
            if candidates:
                views = [Candidate(n, e.budget.snapshot()) for n, e in candidates.items()]
                return candidates[self.policy.choose(views, call_class)]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoEngineAvailable(
                    f"No engine is available (waited {self.hold_s:.0f} s): "
                    + "; ".join(f"{e.name}: {e.last_error or 'starting'}" for e in self.engines),
                    self.retry_after_s,
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)

    def _notify(self) -> None:
        self._changed.set()

    def _record(self, engine: Engine, slot: Slot) -> Admission:
        self._admitted += 1
        admission = Admission(engine, slot, self._admitted, time.time())
        self.recent.append(
            {
                "sequence": admission.sequence,
                "engine": engine.name,
                "call_class": slot.call_class.value,
                "waited_s": round(slot.waited_s, 4),
                "admitted_at": admission.admitted_at,
            }
        )
        del self.recent[:-1000]
        return admission


def build_engine(
    upstream: UpstreamSettings,
    index: int,
    *,
    pressure: PressureSettings,
    wait_timeout_s: float | None,
    interactive_reserve: int = 0,
) -> Engine:
    """An engine for `upstream`: its budget, its pressure monitor, and a pooled client."""
    root = upstream.url.rstrip("/").removesuffix("/v1")
    # Each engine's gate counts into its own registry: the gateway's /metrics reports them per
    # engine from budget snapshots (serving/gateway/metrics.py), so one shared series would lie.
    metrics = gate_metrics(CollectorRegistry())
    monitor = PressureMonitor([GpuSource(), EngineMetricsSource(root)], pressure, metrics=metrics)
    gate = Budget(
        upstream.budget or DEFAULT_ENGINE_BUDGET,
        pressure=monitor,
        wait_timeout_s=wait_timeout_s,
        metrics=metrics,
        interactive_reserve=interactive_reserve,
    )
    headers = {"Authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    client = httpx.AsyncClient(
        base_url=root, headers=headers, timeout=UPSTREAM_TIMEOUT, trust_env=False
    )
    return Engine(f"engine-{index}", root, gate, client, monitor)
