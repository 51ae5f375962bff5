"""The budget gate on its own: limits, priority, KV admission, cancellation, pressure, timeouts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from serving.budget import Budget, CallClass, KvCapacity
from serving.errors import BudgetTimeout
from serving.observability import gate_metrics
from serving.pressure import PressureMonitor, PressureSettings, SettableSource

# The KV-constrained benchmark engine: 40 blocks of 128 tokens, one of them vLLM's null block.
SMALL_CACHE = KvCapacity(blocks=39, block_size=128)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pressure_fixture(registry: CollectorRegistry) -> tuple[PressureMonitor, SettableSource]:
    source = SettableSource()
    settings = PressureSettings(clear_after_s=0.0, research_budget_fraction=0.5)
    monitor = PressureMonitor([source], settings, metrics=gate_metrics(registry), clock=FakeClock())
    return monitor, source


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def queued(budget: Budget, count: int) -> Callable[[], bool]:
    return lambda: budget.snapshot().total_queued == count


async def test_budget_is_never_exceeded_by_200_concurrent_callers() -> None:
    budget = Budget(8, metrics=gate_metrics(CollectorRegistry()))
    in_flight = 0
    peak = 0

    async def call() -> None:
        nonlocal in_flight, peak
        async with budget.slot(CallClass.RESEARCH):
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.002)
            in_flight -= 1

    await asyncio.gather(*(call() for _ in range(200)))
    snapshot = budget.snapshot()
    assert peak == 8
    assert snapshot.peak_in_flight == 8
    assert snapshot.admitted_total == 200
    assert snapshot.total_in_flight == 0 and snapshot.total_queued == 0


async def test_waiting_calls_start_by_class_then_first_come_first_served() -> None:
    budget = Budget(1, metrics=gate_metrics(CollectorRegistry()))
    started: list[str] = []
    holder = await budget.acquire(CallClass.RESEARCH)

    async def call(name: str, call_class: CallClass) -> None:
        async with budget.slot(call_class):
            started.append(name)

    arrivals = [
        ("tts", CallClass.TTS),
        ("research-1", CallClass.RESEARCH),
        ("report", CallClass.REPORT),
        ("interactive", CallClass.INTERACTIVE),
        ("research-2", CallClass.RESEARCH),
        ("plan", CallClass.PLAN),
    ]
    tasks = []
    for name, call_class in arrivals:
        tasks.append(asyncio.create_task(call(name, call_class)))
        await wait_until(queued(budget, len(tasks)))
    holder.release()
    await asyncio.gather(*tasks)
    assert started == ["interactive", "plan", "research-1", "research-2", "report", "tts"]


async def test_cancelled_waiter_leaves_the_queue_and_frees_nothing_it_did_not_hold() -> None:
    budget = Budget(1, metrics=gate_metrics(CollectorRegistry()))
    holder = await budget.acquire(CallClass.RESEARCH)
    waiting = asyncio.create_task(budget.acquire(CallClass.INTERACTIVE))
    await wait_until(lambda: budget.snapshot().total_queued == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert budget.snapshot().total_queued == 0
    assert budget.snapshot().total_in_flight == 1
    holder.release()
    assert budget.snapshot().total_in_flight == 0


async def test_cancelling_a_holder_frees_its_slot_at_once() -> None:
    budget = Budget(1, metrics=gate_metrics(CollectorRegistry()))
    entered = asyncio.Event()

    async def long_call() -> None:
        async with budget.slot(CallClass.RESEARCH):
            entered.set()
            await asyncio.sleep(3600)

    holder = asyncio.create_task(long_call())
    await entered.wait()
    next_call = asyncio.create_task(budget.acquire(CallClass.RESEARCH))
    await wait_until(lambda: budget.snapshot().total_queued == 1)
    holder.cancel()
    slot = await asyncio.wait_for(next_call, timeout=1.0)
    assert budget.snapshot().in_flight[CallClass.RESEARCH] == 1
    slot.release()


async def test_an_exception_in_a_holder_frees_its_slot() -> None:
    budget = Budget(1, metrics=gate_metrics(CollectorRegistry()))
    with pytest.raises(ZeroDivisionError):
        async with budget.slot(CallClass.PLAN):
            _ = 1 / 0
    slot = await asyncio.wait_for(budget.acquire(CallClass.PLAN), timeout=1.0)
    slot.release()
    assert budget.snapshot().total_in_flight == 0


def test_an_exception_in_a_sync_holder_frees_its_slot() -> None:
    budget = Budget(1, wait_timeout_s=1.0, metrics=gate_metrics(CollectorRegistry()))
    with pytest.raises(KeyError), budget.slot_sync(CallClass.PLAN):
        raise KeyError("boom")
    with budget.slot_sync(CallClass.PLAN):
        assert budget.snapshot().total_in_flight == 1


def test_kv_footprint_rounds_up_to_whole_blocks_and_caps_at_the_cache() -> None:
    assert SMALL_CACHE.footprint(782 + 600) == 11 * 128
    assert SMALL_CACHE.footprint(128) == 128
    assert SMALL_CACHE.footprint(1) == 128
    assert SMALL_CACHE.footprint(10**6) == SMALL_CACHE.tokens


async def test_a_burst_larger_than_the_kv_cache_is_admitted_in_waves() -> None:
    budget = Budget(8, kv_capacity=SMALL_CACHE, metrics=gate_metrics(CollectorRegistry()))
    release = asyncio.Event()

    async def call() -> None:
        async with budget.slot(CallClass.RESEARCH, kv_tokens=782 + 600):
            await release.wait()

    tasks = [asyncio.create_task(call()) for _ in range(8)]
    await wait_until(lambda: budget.snapshot().total_queued == 5)
    first_wave = budget.snapshot()
    release.set()
    await asyncio.gather(*tasks)
    # 39 blocks hold three 11-block sequences; the whole burst at once would need 88.
    assert first_wave.total_in_flight == 3
    assert first_wave.kv_tokens_admitted == 3 * 11 * 128 <= SMALL_CACHE.tokens
    assert budget.snapshot().peak_in_flight == 3
    assert budget.snapshot().admitted_total == 8


async def test_a_call_larger_than_the_whole_cache_runs_alone() -> None:
    budget = Budget(8, kv_capacity=SMALL_CACHE, metrics=gate_metrics(CollectorRegistry()))
    small = await budget.acquire(CallClass.RESEARCH, kv_tokens=500)
    huge = asyncio.create_task(budget.acquire(CallClass.RESEARCH, kv_tokens=50_000))
    await wait_until(lambda: budget.snapshot().total_queued == 1)
    after_huge = asyncio.create_task(budget.acquire(CallClass.RESEARCH, kv_tokens=100))
    await wait_until(lambda: budget.snapshot().total_queued == 2)
    small.release()
    huge_slot = await asyncio.wait_for(huge, timeout=1.0)
    assert budget.snapshot().total_in_flight == 1
    assert budget.snapshot().total_queued == 1
    huge_slot.release()
    (await asyncio.wait_for(after_huge, timeout=1.0)).release()


async def test_small_lower_class_calls_do_not_overtake_a_waiting_large_interactive_call() -> None:
    budget = Budget(8, kv_capacity=SMALL_CACHE, metrics=gate_metrics(CollectorRegistry()))
    research = await budget.acquire(CallClass.RESEARCH, kv_tokens=3000)
    big = asyncio.create_task(budget.acquire(CallClass.INTERACTIVE, kv_tokens=3000))
    await wait_until(lambda: budget.snapshot().total_queued == 1)
    small = asyncio.create_task(budget.acquire(CallClass.RESEARCH, kv_tokens=100))
    await wait_until(lambda: budget.snapshot().total_queued == 2)
    assert budget.snapshot().total_in_flight == 1
    research.release()
    (await asyncio.wait_for(big, timeout=1.0)).release()
    (await asyncio.wait_for(small, timeout=1.0)).release()


async def test_pressure_defers_report_and_tts_until_it_clears() -> None:
    registry = CollectorRegistry()
    monitor, source = pressure_fixture(registry)
    budget = Budget(8, pressure=monitor, metrics=gate_metrics(registry))
    source.set(kv_usage=0.95)
    monitor.sample_once()
    assert budget.under_pressure

    report = asyncio.create_task(budget.acquire(CallClass.REPORT))
    tts = asyncio.create_task(budget.acquire(CallClass.TTS))
    await wait_until(lambda: budget.snapshot().total_queued == 2)
    interactive = await asyncio.wait_for(budget.acquire(CallClass.INTERACTIVE), timeout=1.0)
    await asyncio.sleep(0.05)
    assert not report.done() and not tts.done()
    assert registry.get_sample_value("fawn_llm_deferrals_total", {"call_class": "report"}) == 1

    source.set(kv_usage=0.2)
    monitor.sample_once()
    assert not budget.under_pressure
    for slot in await asyncio.wait_for(asyncio.gather(report, tts), timeout=1.0):
        slot.release()
    interactive.release()


async def test_report_already_running_keeps_its_slot_when_pressure_starts() -> None:
    registry = CollectorRegistry()
    monitor, source = pressure_fixture(registry)
    budget = Budget(8, pressure=monitor, metrics=gate_metrics(registry))
    running = await budget.acquire(CallClass.REPORT)
    source.set(kv_usage=0.95)
    monitor.sample_once()
    assert budget.snapshot().in_flight[CallClass.REPORT] == 1
    running.release()


async def test_research_runs_at_a_reduced_budget_under_pressure() -> None:
    registry = CollectorRegistry()
    monitor, source = pressure_fixture(registry)
    budget = Budget(8, pressure=monitor, metrics=gate_metrics(registry))
    source.set(preemptions_total=0)
    monitor.sample_once()
    source.set(preemptions_total=2)
    monitor.sample_once()
    assert budget.under_pressure

    tasks = [asyncio.create_task(budget.acquire(CallClass.RESEARCH)) for _ in range(8)]
    await wait_until(lambda: budget.snapshot().total_queued == 4)
    assert budget.snapshot().in_flight[CallClass.RESEARCH] == 4
    plan = await asyncio.wait_for(budget.acquire(CallClass.PLAN), timeout=1.0)
    plan.release()

    monitor.sample_once()  # no new preemptions: pressure clears
    slots = await asyncio.wait_for(asyncio.gather(*tasks), timeout=1.0)
    assert budget.snapshot().in_flight[CallClass.RESEARCH] == 8
    for slot in slots:
        slot.release()


async def test_a_call_that_waits_too_long_raises_budget_timeout_and_leaves_the_queue() -> None:
    registry = CollectorRegistry()
    budget = Budget(1, wait_timeout_s=0.1, metrics=gate_metrics(registry))
    holder = await budget.acquire(CallClass.RESEARCH)
    with pytest.raises(BudgetTimeout, match="FAWN_LLM_BUDGET"):
        await budget.acquire(CallClass.RESEARCH)
    assert budget.snapshot().total_queued == 0
    assert (
        registry.get_sample_value("fawn_llm_budget_timeouts_total", {"call_class": "research"}) == 1
    )
    holder.release()
    (await asyncio.wait_for(budget.acquire(CallClass.RESEARCH), timeout=1.0)).release()


def test_a_sync_call_that_waits_too_long_raises_budget_timeout() -> None:
    budget = Budget(1, wait_timeout_s=0.1, metrics=gate_metrics(CollectorRegistry()))
    with budget.slot_sync(CallClass.RESEARCH), pytest.raises(BudgetTimeout):
        budget.acquire_sync(CallClass.INTERACTIVE)
    assert budget.snapshot().total_queued == 0


async def test_a_deferred_call_does_not_time_out_while_pressure_lasts() -> None:
    registry = CollectorRegistry()
    monitor, source = pressure_fixture(registry)
    budget = Budget(8, pressure=monitor, wait_timeout_s=0.05, metrics=gate_metrics(registry))
    source.set(kv_usage=0.99)
    monitor.sample_once()
    report = asyncio.create_task(budget.acquire(CallClass.REPORT))
    await asyncio.sleep(0.3)
    assert not report.done()
    source.set(kv_usage=0.1)
    monitor.sample_once()
    (await asyncio.wait_for(report, timeout=1.0)).release()


async def test_sync_threads_and_async_tasks_share_one_budget() -> None:
    budget = Budget(3, metrics=gate_metrics(CollectorRegistry()))
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def enter() -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)

    def leave() -> None:
        nonlocal in_flight
        with lock:
            in_flight -= 1

    def sync_call() -> None:
        with budget.slot_sync(CallClass.RESEARCH):
            enter()
            time.sleep(0.01)
            leave()

    async def async_call() -> None:
        async with budget.slot(CallClass.RESEARCH):
            enter()
            await asyncio.sleep(0.01)
            leave()

    threads = [threading.Thread(target=sync_call) for _ in range(20)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(async_call() for _ in range(20)))
    for thread in threads:
        await asyncio.to_thread(thread.join)
    assert peak == 3
    assert budget.snapshot().admitted_total == 40


async def test_gate_metrics_count_queue_and_flight_by_class() -> None:
    registry = CollectorRegistry()
    budget = Budget(1, metrics=gate_metrics(registry))
    holder = await budget.acquire(CallClass.PLAN)
    waiting = asyncio.create_task(budget.acquire(CallClass.INTERACTIVE))
    await wait_until(lambda: budget.snapshot().total_queued == 1)

    def value(name: str, call_class: str) -> float | None:
        return registry.get_sample_value(name, {"call_class": call_class})

    assert value("fawn_llm_calls_in_flight", "plan") == 1
    assert value("fawn_llm_calls_queued", "interactive") == 1
    holder.release()
    (await waiting).release()
    assert value("fawn_llm_calls_in_flight", "plan") == 0
    assert value("fawn_llm_calls_queued", "interactive") == 0
    assert value("fawn_llm_queue_wait_seconds_count", "interactive") == 1


async def test_the_interactive_reserve_keeps_a_slot_only_interactive_calls_take() -> None:
    budget = Budget(3, metrics=gate_metrics(CollectorRegistry()), interactive_reserve=1)
    held = [await budget.acquire(CallClass.RESEARCH) for _ in range(2)]
    waiting_research = asyncio.create_task(budget.acquire(CallClass.RESEARCH))
    await wait_until(queued(budget, 1))

    urgent = await asyncio.wait_for(budget.acquire(CallClass.INTERACTIVE), timeout=1)
    assert budget.snapshot().total_in_flight == 3 and not waiting_research.done()

    urgent.release()
    assert budget.snapshot().total_queued == 1  # the reserved slot stays for interactive calls
    held[0].release()
    (await waiting_research).release()
    held[1].release()
    assert budget.snapshot().total_in_flight == 0


def test_the_interactive_reserve_always_leaves_one_slot_to_every_class() -> None:
    budget = Budget(1, metrics=gate_metrics(CollectorRegistry()), interactive_reserve=3)
    assert budget.interactive_reserve == 0
    budget.acquire_sync(CallClass.RESEARCH).release()
