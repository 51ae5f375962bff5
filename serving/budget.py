"""The LLM budget gate: every LLM call in the process takes a slot here before reaching the engine.

A call is admitted while fewer than `limit` calls are in flight and, when the engine's KV capacity
is known, while the KV tokens reserved by admitted calls (prompt plus max_tokens, rounded up to
whole blocks) stay within it, so a burst never pushes the engine into preemption. A call larger
than the whole cache is admitted alone. Waiting calls are served by class, then first come first
served; no class overtakes a waiting call of a higher class, so a large interactive call cannot
starve. An optional interactive reserve keeps slots that only interactive calls may take (the
gateway keeps one by default). Under memory pressure (serving/pressure.py) report and TTS calls
are deferred and research runs at a reduced budget; calls already in flight are never touched.

The core is thread-safe: async callers (any event loop) and sync callers share one budget.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from serving.errors import BudgetTimeout, EngineError
from serving.metrics import EngineMetrics, read_metrics
from serving.observability import GateMetrics, gate_metrics, log_event
from serving.pressure import PressureMonitor, PressureState
from serving.settings import LLMSettings

logger = logging.getLogger(__name__)

# Long enough for a report call to queue behind a busy research phase on a CPU engine; a
# deferred call does not time out while its deferral lasts.
DEFAULT_WAIT_TIMEOUT_S = 900.0


class CallClass(StrEnum):
    """What an LLM call is for; declaration order is priority order (first is served first)."""

    INTERACTIVE = "interactive"
    PLAN = "plan"
    RESEARCH = "research"
    REPORT = "report"
    TTS = "tts"


DEFERRED_UNDER_PRESSURE = frozenset({CallClass.REPORT, CallClass.TTS})
# The request header that carries a call's class to the gateway (serving/gateway); a client whose
# requests lack it gets the gateway's default class.
CALL_CLASS_HEADER = "x-fawn-class"


@dataclass(frozen=True)
class KvCapacity:
    """The engine's KV cache: usable blocks and tokens per block."""

    blocks: int
    block_size: int

    @property
    def tokens(self) -> int:
        """Tokens the cache holds."""
        return self.blocks * self.block_size

    def footprint(self, tokens: int) -> int:
        """KV tokens a sequence of `tokens` occupies: whole blocks, at most the whole cache."""
        blocks = math.ceil(max(tokens, 0) / self.block_size)
        return min(blocks, self.blocks) * self.block_size

    @classmethod
    def from_metrics(cls, metrics: EngineMetrics) -> KvCapacity | None:
        """Capacity from `vllm:cache_config_info`; None when the engine does not say."""
        if metrics.num_gpu_blocks is None or not metrics.block_size:
            return None
        # vLLM keeps one block per engine as its null block; it never holds a request's tokens.
        blocks = metrics.num_gpu_blocks - max(metrics.engines, 1)
        return cls(blocks=max(blocks, 1), block_size=metrics.block_size)


@dataclass(frozen=True)
class BudgetSnapshot:
    """The gate's own counters at one moment."""

    limit: int
    in_flight: dict[CallClass, int]
    queued: dict[CallClass, int]
    kv_tokens_admitted: int
    kv_capacity_tokens: int | None
    peak_in_flight: int
    peak_kv_tokens: int
    admitted_total: int
    under_pressure: bool

    @property
    def total_in_flight(self) -> int:
        """Calls holding a slot."""
        return sum(self.in_flight.values())

    @property
    def total_queued(self) -> int:
        """Calls waiting for a slot."""
        return sum(self.queued.values())


class _Block(Enum):
    """Why the head of a queue cannot start: its class only, or everyone behind it too."""

    CLASS = "class"
    ALL = "all"


@dataclass(eq=False)
class _Waiter:
    call_class: CallClass
    kv_tokens: int
    wake: Callable[[], None]
    enqueued_at: float
    granted: bool = False
    released: bool = False
    deferred: bool = False


@dataclass(eq=False)
class Slot:
    """A place in the budget; `release()` gives it back (safe to call more than once)."""

    call_class: CallClass
    kv_tokens: int
    waited_s: float
    _release: Callable[[], None] = field(repr=False)

    def release(self) -> None:
        """Give the slot back to the budget."""
        self._release()


class Budget:
    """At most `limit` LLM calls in flight, admitted by class and by KV tokens."""

    def __init__(
        self,
        limit: int,
        *,
        kv_capacity: KvCapacity | None = None,
        pressure: PressureMonitor | None = None,
        wait_timeout_s: float | None = DEFAULT_WAIT_TIMEOUT_S,
        metrics: GateMetrics | None = None,
        interactive_reserve: int = 0,
    ) -> None:
        if limit < 1:
            raise ValueError("The budget must allow at least one call in flight.")
        self.limit = limit
        # Slots only interactive calls may take, so a person waits for a prefill, not for a
        # batch call to finish; at least one slot always stays open to every class.
        self.interactive_reserve = max(0, min(interactive_reserve, limit - 1))
        self.kv_capacity = kv_capacity
        self.wait_timeout_s = wait_timeout_s
        self.metrics = metrics or gate_metrics()
        self._lock = threading.Lock()
        self._queues: dict[CallClass, deque[_Waiter]] = {c: deque() for c in CallClass}
        self._in_flight = dict.fromkeys(CallClass, 0)
        self._kv_admitted = 0
        self._peak_in_flight = 0
        self._peak_kv = 0
        self._admitted_total = 0
        self._under_pressure = False
        self._research_limit_under_pressure = limit
        if pressure is not None:
            fraction = pressure.settings.research_budget_fraction
            self._research_limit_under_pressure = max(1, math.floor(limit * fraction))
            self._under_pressure = pressure.state.under_pressure
            pressure.subscribe(self.on_pressure)

    @property
    def under_pressure(self) -> bool:
        """Whether the gate is deferring report/TTS calls and slowing research."""
        return self._under_pressure

    async def acquire(self, call_class: CallClass, kv_tokens: int = 0) -> Slot:
        """Wait for a slot; cancelling the caller while it waits (or after) frees it at once."""
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(_resolve, woken)

        waiter = self._enqueue(call_class, kv_tokens, wake)
        try:
            deadline = self._deadline()
            while not waiter.granted:
                await asyncio.wait({woken}, timeout=_remaining(deadline))
                if not waiter.granted and not woken.done():
                    deadline = self._after_wait_timeout(waiter)
        except BaseException:
            self._abandon(waiter)
            raise
        return self._slot(waiter)

    def acquire_sync(self, call_class: CallClass, kv_tokens: int = 0) -> Slot:
        """Blocking `acquire`, for sync callers in any thread."""
        woken = threading.Event()
        waiter = self._enqueue(call_class, kv_tokens, woken.set)
        try:
            deadline = self._deadline()
            while not waiter.granted:
                if not woken.wait(timeout=_remaining(deadline)):
                    deadline = self._after_wait_timeout(waiter)
        except BaseException:
            self._abandon(waiter)
            raise
        return self._slot(waiter)

    @asynccontextmanager
    async def slot(self, call_class: CallClass, kv_tokens: int = 0) -> AsyncIterator[Slot]:
        """Hold a slot for the duration of the block; an exception in the block frees it."""
        held = await self.acquire(call_class, kv_tokens)
        try:
            yield held
        finally:
            held.release()

    @contextmanager
    def slot_sync(self, call_class: CallClass, kv_tokens: int = 0) -> Iterator[Slot]:
        """Sync `slot`."""
        held = self.acquire_sync(call_class, kv_tokens)
        try:
            yield held
        finally:
            held.release()

    def on_pressure(self, state: PressureState) -> None:
        """Pressure listener: defer or resume calls as the engine's memory state changes."""
        with self._lock:
            changed = state.under_pressure != self._under_pressure
            self._under_pressure = state.under_pressure
            if changed:
                self._dispatch()
        if changed:
            log_event(
                logger,
                "gate_deferring" if state.under_pressure else "gate_resuming",
                deferred=",".join(sorted(DEFERRED_UNDER_PRESSURE)),
                research_limit=self._research_limit_under_pressure,
                reason=state.reason,
            )

    def snapshot(self) -> BudgetSnapshot:
        """The gate's counters now."""
        with self._lock:
            return BudgetSnapshot(
                limit=self.limit,
                in_flight=dict(self._in_flight),
                queued={c: len(q) for c, q in self._queues.items()},
                kv_tokens_admitted=self._kv_admitted,
                kv_capacity_tokens=self.kv_capacity.tokens if self.kv_capacity else None,
                peak_in_flight=self._peak_in_flight,
                peak_kv_tokens=self._peak_kv,
                admitted_total=self._admitted_total,
                under_pressure=self._under_pressure,
            )

    def _footprint(self, kv_tokens: int) -> int:
        return self.kv_capacity.footprint(kv_tokens) if self.kv_capacity else 0

    def _deadline(self) -> float | None:
        return None if self.wait_timeout_s is None else time.monotonic() + self.wait_timeout_s

    def _enqueue(self, call_class: CallClass, kv_tokens: int, wake: Callable[[], None]) -> _Waiter:
        waiter = _Waiter(call_class, self._footprint(kv_tokens), wake, time.monotonic())
        with self._lock:
            self._queues[call_class].append(waiter)
            self.metrics.queued.labels(call_class.value).inc()
            self._dispatch()
        return waiter

    def _after_wait_timeout(self, waiter: _Waiter) -> float | None:
        """A new deadline for a waiter that may keep waiting, else raise (the caller dequeues)."""
        with self._lock:
            if waiter.granted:
                return None
            if self._under_pressure and waiter.call_class in DEFERRED_UNDER_PRESSURE:
                return self._deadline()
        self.metrics.budget_timeouts.labels(waiter.call_class.value).inc()
        log_event(logger, "budget_timeout", logging.WARNING, call_class=waiter.call_class)
        raise BudgetTimeout(
            f"An LLM call ({waiter.call_class} class) waited {self.wait_timeout_s:.0f} s for one "
            f"of the {self.limit} slots in the budget. The engine is overloaded or stuck: check "
            "`fawn doctor`, lower the number of concurrent jobs, or raise FAWN_LLM_BUDGET if the "
            "engine has room for more sequences."
        )

    def _abandon(self, waiter: _Waiter) -> None:
        """The caller gave up (cancelled or failed): free its slot or its place in the queue."""
        with self._lock:
            if waiter.granted:
                self._release_locked(waiter)
                return
            queue = self._queues[waiter.call_class]
            if waiter in queue:
                queue.remove(waiter)
                self.metrics.queued.labels(waiter.call_class.value).dec()
                self._dispatch()

    def _slot(self, waiter: _Waiter) -> Slot:
        def release() -> None:
            with self._lock:
                self._release_locked(waiter)

        waited = time.monotonic() - waiter.enqueued_at
        return Slot(waiter.call_class, waiter.kv_tokens, waited, release)

    def _release_locked(self, waiter: _Waiter) -> None:
        if not waiter.released:
            self._uncount(waiter)
            self._dispatch()

    def _uncount(self, waiter: _Waiter) -> None:
        waiter.released = True
        self._in_flight[waiter.call_class] -= 1
        self._kv_admitted -= waiter.kv_tokens
        self.metrics.in_flight.labels(waiter.call_class.value).dec()
        self.metrics.kv_tokens_admitted.set(self._kv_admitted)

    def _dispatch(self) -> None:
        """Start every waiting call that may start now, in priority order; lock held."""
        for call_class in CallClass:
            queue = self._queues[call_class]
            while queue:
                block = self._block(queue[0])
                if block is None:
                    self._grant(queue.popleft())
                    continue
                if block is _Block.ALL:
                    return
                self._mark_deferred(queue)
                break

    def _block(self, waiter: _Waiter) -> _Block | None:
        """What keeps `waiter` from starting now (None: nothing)."""
        call_class = waiter.call_class
        if self._under_pressure and call_class in DEFERRED_UNDER_PRESSURE:
            return _Block.CLASS
        in_flight = sum(self._in_flight.values())
        if in_flight >= self.limit:
            return _Block.ALL
        if call_class is not CallClass.INTERACTIVE and (
            in_flight >= self.limit - self.interactive_reserve
        ):
            return _Block.CLASS
        if (
            self._under_pressure
            and call_class is CallClass.RESEARCH
            and self._in_flight[call_class] >= self._research_limit_under_pressure
        ):
            return _Block.CLASS
        # Only an empty cache takes a call larger than all of it (its footprint is capped).
        capacity = self.kv_capacity.tokens if self.kv_capacity else None
        if capacity is not None and self._kv_admitted + waiter.kv_tokens > capacity:
            return _Block.ALL
        return None

    def _grant(self, waiter: _Waiter) -> None:
        call_class = waiter.call_class
        waiter.granted = True
        self._in_flight[call_class] += 1
        self._kv_admitted += waiter.kv_tokens
        self._admitted_total += 1
        self._peak_in_flight = max(self._peak_in_flight, sum(self._in_flight.values()))
        self._peak_kv = max(self._peak_kv, self._kv_admitted)
        self.metrics.queued.labels(call_class.value).dec()
        self.metrics.in_flight.labels(call_class.value).inc()
        self.metrics.kv_tokens_admitted.set(self._kv_admitted)
        self.metrics.queue_wait.labels(call_class.value).observe(
            time.monotonic() - waiter.enqueued_at
        )
        try:
            waiter.wake()
        except RuntimeError:
            # Its event loop has closed: nobody is left to use or release this slot.
            self._uncount(waiter)

    def _mark_deferred(self, queue: deque[_Waiter]) -> None:
        """Count each call held back by pressure once."""
        for waiter in queue:
            if waiter.call_class in DEFERRED_UNDER_PRESSURE and not waiter.deferred:
                waiter.deferred = True
                self.metrics.deferrals.labels(waiter.call_class.value).inc()


def budget_for_engine(
    root_url: str,
    llm: LLMSettings,
    *,
    pressure: PressureMonitor | None = None,
    engine_max_num_seqs: int | None = None,
    metrics: GateMetrics | None = None,
) -> Budget:
    """The budget for the engine at `root_url`, with KV admission when its /metrics tell capacity.

    `engine_max_num_seqs` is the engine's own sequence cap where Fawn knows it (the profile it
    launched); a budget that differs from it is allowed but logged as a warning.
    """
    if engine_max_num_seqs is not None and engine_max_num_seqs != llm.budget:
        log_event(
            logger,
            "budget_differs_from_engine",
            logging.WARNING,
            budget=llm.budget,
            engine_max_num_seqs=engine_max_num_seqs,
            fix=f"set FAWN_LLM_BUDGET={engine_max_num_seqs} to match the engine",
        )
    capacity: KvCapacity | None = None
    try:
        capacity = KvCapacity.from_metrics(read_metrics(root_url))
    except EngineError as exc:
        log_event(logger, "kv_capacity_unknown", logging.WARNING, error=exc)
    if capacity is None:
        log_event(logger, "kv_admission_off", logging.WARNING, reason="engine capacity unknown")
    return Budget(llm.budget, kv_capacity=capacity, pressure=pressure, metrics=metrics)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)
