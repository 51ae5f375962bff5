"""Memory pressure: triggers, hysteresis, refusing new jobs, sources and the sampling thread."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from serving.gpu import read_gpus
from serving.observability import gate_metrics
from serving.pressure import (
    EngineMetricsSource,
    GpuSource,
    Overloaded,
    PressureMonitor,
    PressureSample,
    PressureSettings,
    SettableSource,
    monitoring,
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_monitor(
    settings: PressureSettings | None = None,
) -> tuple[PressureMonitor, SettableSource, FakeClock, CollectorRegistry]:
    registry = CollectorRegistry()
    source = SettableSource()
    clock = FakeClock()
    monitor = PressureMonitor(
        [source], settings or PressureSettings(), metrics=gate_metrics(registry), clock=clock
    )
    return monitor, source, clock, registry


def test_a_nearly_full_kv_cache_is_pressure_with_its_reason_and_start_time() -> None:
    monitor, source, _, registry = make_monitor()
    source.set(kv_usage=0.93)
    state = monitor.sample_once()
    assert state.under_pressure
    assert state.reason == "KV cache 93% full"
    assert state.since is not None
    assert "under memory pressure" in state.describe()
    assert registry.get_sample_value("fawn_under_pressure") == 1


def test_gpu_memory_must_stay_high_for_the_hold_time() -> None:
    monitor, source, clock, _ = make_monitor(PressureSettings(gpu_memory_hold_s=5.0))
    source.set(gpu_memory_fraction=0.97)
    assert not monitor.sample_once().under_pressure
    clock.now += 4.0
    assert not monitor.sample_once().under_pressure
    clock.now += 1.5
    state = monitor.sample_once()
    assert state.under_pressure
    assert "GPU memory 97% used" in state.reason


def test_a_dip_in_gpu_memory_restarts_the_hold_time() -> None:
    monitor, source, clock, _ = make_monitor(PressureSettings(gpu_memory_hold_s=5.0))
    source.set(gpu_memory_fraction=0.97)
    monitor.sample_once()
    clock.now += 4.0
    source.set(gpu_memory_fraction=0.5)
    monitor.sample_once()
    source.set(gpu_memory_fraction=0.97)
    clock.now += 2.0
    assert not monitor.sample_once().under_pressure


def test_rising_preemptions_are_pressure_and_a_steady_count_is_not() -> None:
    monitor, source, _, _ = make_monitor(PressureSettings(clear_after_s=0.0))
    source.set(preemptions_total=5)
    assert not monitor.sample_once().under_pressure
    source.set(preemptions_total=7)
    state = monitor.sample_once()
    assert state.under_pressure and "preempted 2 request(s)" in state.reason
    assert not monitor.sample_once().under_pressure


def test_pressure_clears_only_after_readings_stay_below_the_lower_mark() -> None:
    monitor, source, clock, _ = make_monitor(
        PressureSettings(kv_usage_threshold=0.9, clear_margin=0.05, clear_after_s=10.0)
    )
    source.set(kv_usage=0.95)
    assert monitor.sample_once().under_pressure
    # Below the threshold but above the clearing mark: still under pressure, however long.
    source.set(kv_usage=0.87)
    clock.now += 60
    assert monitor.sample_once().under_pressure
    source.set(kv_usage=0.5)
    assert monitor.sample_once().under_pressure
    clock.now += 9
    assert monitor.sample_once().under_pressure
    clock.now += 2
    state = monitor.sample_once()
    assert not state.under_pressure
    assert state.describe() == "no memory pressure"


def test_a_new_trigger_during_the_calm_period_restarts_it() -> None:
    monitor, source, clock, _ = make_monitor(PressureSettings(clear_after_s=10.0))
    source.set(kv_usage=0.95)
    monitor.sample_once()
    source.set(kv_usage=0.5)
    monitor.sample_once()
    clock.now += 8
    source.set(kv_usage=0.95)
    monitor.sample_once()
    source.set(kv_usage=0.5)
    clock.now += 8
    assert monitor.sample_once().under_pressure


def test_listeners_hear_each_change_once() -> None:
    monitor, source, _, _ = make_monitor(PressureSettings(clear_after_s=0.0))
    heard: list[bool] = []
    monitor.subscribe(lambda state: heard.append(state.under_pressure))
    source.set(kv_usage=0.95)
    monitor.sample_once()
    monitor.sample_once()
    source.set(kv_usage=0.1)
    monitor.sample_once()
    monitor.sample_once()
    assert heard == [True, False]


def test_new_jobs_are_refused_with_retry_after_under_pressure() -> None:
    monitor, source, _, registry = make_monitor(PressureSettings(retry_after_s=42))
    monitor.admit_job()
    source.set(kv_usage=0.99)
    monitor.sample_once()
    with pytest.raises(Overloaded, match="Retry in 42 s") as refused:
        monitor.admit_job()
    assert refused.value.retry_after_s == 42
    assert monitor.retry_after_s == 42
    assert registry.get_sample_value("fawn_job_rejections_total") == 1


def test_state_changes_are_logged_as_key_value_lines(caplog: pytest.LogCaptureFixture) -> None:
    monitor, source, _, _ = make_monitor(PressureSettings(clear_after_s=0.0))
    caplog.set_level(logging.INFO, logger="serving.pressure")
    source.set(kv_usage=0.95)
    monitor.sample_once()
    source.set(kv_usage=0.1)
    monitor.sample_once()
    lines = [record.getMessage() for record in caplog.records]
    assert 'event=pressure_on reason="KV cache 95% full"' in lines
    assert 'event=pressure_off reason="KV cache 95% full"' in lines


def test_later_sources_override_earlier_readings() -> None:
    first = PressureSample(gpu_memory_fraction=0.2, kv_usage=0.3)
    second = PressureSample(kv_usage=0.95)
    assert first.merged(second) == PressureSample(gpu_memory_fraction=0.2, kv_usage=0.95)


def test_gpu_source_reads_the_fullest_gpu_or_nothing_without_one() -> None:
    gpus = read_gpus()
    expected = max((gpu.memory_used_fraction for gpu in gpus), default=None)
    assert GpuSource().read().gpu_memory_fraction == expected


def test_an_unreachable_engine_reads_as_no_pressure() -> None:
    source = EngineMetricsSource("http://127.0.0.1:9", timeout_s=1.0)
    assert source.read() == PressureSample()


def test_the_sampling_thread_tracks_a_source_until_stopped() -> None:
    source = SettableSource()
    settings = PressureSettings(interval_s=0.01, clear_after_s=0.0)
    monitor = PressureMonitor([source], settings, metrics=gate_metrics(CollectorRegistry()))
    with monitoring(monitor):
        source.set(kv_usage=0.95)
        deadline = time.monotonic() + 5
        while not monitor.state.under_pressure and time.monotonic() < deadline:
            time.sleep(0.01)
        assert monitor.state.under_pressure
        source.set(kv_usage=0.1)
        while monitor.state.under_pressure and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not monitor.state.under_pressure
    source.set(kv_usage=0.95)
    time.sleep(0.1)
    assert not monitor.state.under_pressure
