"""Memory pressure: watch the GPU and the engine, and say when to hold back work.

Pressure starts when GPU memory stays at or above its threshold for a while, when the KV cache is
nearly full, or when the engine preempts requests. It clears only after every reading has stayed
below a lower mark for `clear_after_s`, so the state does not flap around a threshold. While it
lasts the gate defers report and TTS calls and slows research (serving/budget.py), and new jobs
are refused with `Overloaded` (HTTP 503 with Retry-After in the API). Running jobs lose nothing.

Readings come from small sources: the real GPU (NVML), the real engine's /metrics, and a settable
source for tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import httpx
from pydantic import BaseModel, Field

from serving.errors import EngineError, FawnError
from serving.gpu import read_gpus
from serving.metrics import read_metrics
from serving.observability import GateMetrics, gate_metrics, log_event

logger = logging.getLogger(__name__)

PressureListener = Callable[["PressureState"], None]
T = TypeVar("T")


class Overloaded(FawnError):
    """The engine is under memory pressure, so a new job is refused for now (HTTP 503)."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(
            f"Fawn is busy: the engine is under memory pressure ({reason}). New jobs are refused "
            f"until it clears; running jobs continue. Retry in {retry_after_s} s."
        )
        self.reason = reason
        self.retry_after_s = retry_after_s


class PressureSettings(BaseModel):
    """When the engine counts as under memory pressure, and what that changes."""

    gpu_memory_threshold: float = Field(
        default=0.95, gt=0, le=1, description="GPU memory used fraction that counts as high."
    )
    gpu_memory_hold_s: float = Field(
        default=5.0, ge=0, description="How long GPU memory must stay high to count."
    )
    kv_usage_threshold: float = Field(
        default=0.9, gt=0, le=1, description="KV-cache usage fraction that counts as pressure."
    )
    clear_margin: float = Field(
        default=0.05, ge=0, lt=1, description="Readings must fall this far below a threshold."
    )
    clear_after_s: float = Field(
        default=10.0, ge=0, description="How long readings must stay low before pressure clears."
    )
    interval_s: float = Field(default=1.0, gt=0, description="Seconds between samples.")
    retry_after_s: int = Field(
        default=30, gt=0, description="Retry-After sent with a refused job (HTTP 503)."
    )
    research_budget_fraction: float = Field(
        default=0.5, gt=0, le=1, description="Share of the budget research may use under pressure."
    )


@dataclass(frozen=True)
class PressureSample:
    """One set of readings; None where a source had nothing to say."""

    gpu_memory_fraction: float | None = None
    kv_usage: float | None = None
    preemptions_total: int | None = None

    def merged(self, other: PressureSample) -> PressureSample:
        """These readings, with every reading `other` has taking precedence."""
        return PressureSample(
            gpu_memory_fraction=_first(other.gpu_memory_fraction, self.gpu_memory_fraction),
            kv_usage=_first(other.kv_usage, self.kv_usage),
            preemptions_total=_first(other.preemptions_total, self.preemptions_total),
        )


@dataclass(frozen=True)
class PressureState:
    """Whether the engine is under memory pressure, why, and since when (UTC)."""

    under_pressure: bool = False
    reason: str = ""
    since: datetime | None = None

    def describe(self) -> str:
        """One line for `fawn doctor` and /api/health."""
        if not self.under_pressure:
            return "no memory pressure"
        since = f" since {self.since:%H:%M:%S} UTC" if self.since else ""
        return f"under memory pressure{since}: {self.reason}"


class PressureSource(Protocol):
    """Anything that can take a reading; a source that cannot read returns an empty sample."""

    def read(self) -> PressureSample:
        """Take one reading now."""
        ...


class GpuSource:
    """GPU memory through NVML: the fullest GPU counts. No GPU reads as nothing."""

    def read(self) -> PressureSample:
        """Read every GPU now."""
        gpus = read_gpus()
        if not gpus:
            return PressureSample()
        return PressureSample(gpu_memory_fraction=max(gpu.memory_used_fraction for gpu in gpus))


class EngineMetricsSource:
    """KV-cache usage and preemptions from the engine's /metrics."""

    def __init__(self, root_url: str, timeout_s: float = 2.0) -> None:
        self.root_url = root_url
        self.timeout_s = timeout_s
        # One client for every sample: the monitor reads once a second for the process's life.
        self._client = httpx.Client(trust_env=False)

    def read(self) -> PressureSample:
        """Scrape /metrics now; an unreachable engine reads as nothing (it is not pressure)."""
        try:
            metrics = read_metrics(self.root_url, timeout_s=self.timeout_s, client=self._client)
        except EngineError as exc:
            log_event(logger, "pressure_source_failed", logging.DEBUG, error=exc)
            return PressureSample()
        return PressureSample(
            kv_usage=metrics.kv_cache_usage_perc, preemptions_total=metrics.preemptions_total
        )


class SettableSource:
    """Readings set by hand (tests, and GPU-less demos of the pressure path)."""

    def __init__(self, sample: PressureSample | None = None) -> None:
        self._sample = sample or PressureSample()
        self._lock = threading.Lock()

    def set(
        self,
        *,
        gpu_memory_fraction: float | None = None,
        kv_usage: float | None = None,
        preemptions_total: int | None = None,
    ) -> None:
        """Replace the readings this source returns from now on."""
        with self._lock:
            self._sample = PressureSample(gpu_memory_fraction, kv_usage, preemptions_total)

    def read(self) -> PressureSample:
        """The readings last set."""
        with self._lock:
            return self._sample


class PressureMonitor:
    """Samples its sources, keeps the pressure state with hysteresis, and tells listeners."""

    def __init__(
        self,
        sources: Sequence[PressureSource],
        settings: PressureSettings | None = None,
        *,
        metrics: GateMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or PressureSettings()
        self._sources = tuple(sources)
        self._metrics = metrics or gate_metrics()
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[PressureListener] = []
        self._state = PressureState()
        self._gpu_high_since: float | None = None
        self._calm_since: float | None = None
        self._last_preemptions: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> PressureState:
        """The current pressure state."""
        with self._lock:
            return self._state

    @property
    def retry_after_s(self) -> int:
        """Seconds a refused client should wait before submitting again."""
        return self.settings.retry_after_s

    def subscribe(self, listener: PressureListener) -> None:
        """Call `listener(state)` after every change of state (from the sampling thread)."""
        with self._lock:
            self._listeners.append(listener)

    def admit_job(self) -> None:
        """Raise `Overloaded` (and count the refusal) when a new job must wait for pressure."""
        state = self.state
        if state.under_pressure:
            self._metrics.job_rejections.inc()
            log_event(logger, "job_refused", reason=state.reason)
            raise Overloaded(state.reason, self.retry_after_s)

    def sample_once(self) -> PressureState:
        """Read every source once and update the state; returns the state after the update."""
        sample = PressureSample()
        for source in self._sources:
            sample = sample.merged(source.read())
        return self.update(sample)

    def update(self, sample: PressureSample) -> PressureState:
        """Fold one sample into the state (hysteresis included) and notify on a change."""
        now = self._clock()
        with self._lock:
            before = self._state
            after = self._next_state(sample, now)
            self._state = after
            listeners = list(self._listeners) if after != before else []
        if after.under_pressure != before.under_pressure:
            self._metrics.under_pressure.set(1 if after.under_pressure else 0)
            log_event(
                logger,
                "pressure_on" if after.under_pressure else "pressure_off",
                logging.WARNING if after.under_pressure else logging.INFO,
                reason=after.reason or before.reason,
            )
        for listener in listeners:
            listener(after)
        return after

    def start(self) -> None:
        """Sample in a daemon thread every `interval_s` until `stop()`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fawn-pressure", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the sampling thread, if running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.interval_s + 5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception as exc:  # a broken reading must not end monitoring for good
                log_event(logger, "pressure_sample_failed", logging.WARNING, error=exc)
            self._stop.wait(self.settings.interval_s)

    def _next_state(self, sample: PressureSample, now: float) -> PressureState:
        """The state after `sample`; called with the lock held."""
        reasons = self._triggers(sample, now)
        if reasons:
            self._calm_since = None
            reason = "; ".join(reasons)
            if not self._state.under_pressure:
                return PressureState(True, reason, datetime.now(UTC))
            return replace(self._state, reason=reason)
        if not self._state.under_pressure:
            return self._state
        if not self._calm(sample):
            self._calm_since = None
            return self._state
        if self._calm_since is None:
            self._calm_since = now
        if now - self._calm_since < self.settings.clear_after_s:
            return self._state
        self._calm_since = None
        return PressureState(False, "", datetime.now(UTC))

    def _triggers(self, sample: PressureSample, now: float) -> list[str]:
        """Why this sample means pressure (empty: it does not)."""
        settings = self.settings
        reasons = []
        gpu = sample.gpu_memory_fraction
        if gpu is not None and gpu >= settings.gpu_memory_threshold:
            self._gpu_high_since = self._gpu_high_since if self._gpu_high_since else now
            held = now - self._gpu_high_since
            if held >= settings.gpu_memory_hold_s:
                reasons.append(f"GPU memory {gpu:.0%} used for {held:.0f} s")
        else:
            self._gpu_high_since = None
        if sample.kv_usage is not None and sample.kv_usage >= settings.kv_usage_threshold:
            reasons.append(f"KV cache {sample.kv_usage:.0%} full")
        preempted = _increase(self._last_preemptions, sample.preemptions_total)
        if sample.preemptions_total is not None:
            self._last_preemptions = sample.preemptions_total
        if preempted > 0:
            reasons.append(f"the engine preempted {preempted} request(s)")
        return reasons

    def _calm(self, sample: PressureSample) -> bool:
        """Whether every reading is below its threshold by the clearing margin."""
        margin = self.settings.clear_margin
        gpu, kv = sample.gpu_memory_fraction, sample.kv_usage
        return (gpu is None or gpu < self.settings.gpu_memory_threshold - margin) and (
            kv is None or kv < self.settings.kv_usage_threshold - margin
        )


def default_sources(root_url: str | None) -> list[PressureSource]:
    """The real sources: the GPU, and the engine's /metrics when its root URL is known."""
    sources: list[PressureSource] = [GpuSource()]
    if root_url:
        sources.append(EngineMetricsSource(root_url))
    return sources


def current_pressure(
    root_url: str | None, settings: PressureSettings | None = None
) -> PressureState:
    """One reading of the real sources, for `fawn doctor` (one sample: no GPU hold time)."""
    settings = (settings or PressureSettings()).model_copy(update={"gpu_memory_hold_s": 0.0})
    return PressureMonitor(default_sources(root_url), settings).sample_once()


@contextmanager
def monitoring(monitor: PressureMonitor) -> Iterator[PressureMonitor]:
    """Run `monitor` in the background for the duration of the block."""
    monitor.start()
    try:
        yield monitor
    finally:
        monitor.stop()


def _first(preferred: T | None, fallback: T | None) -> T | None:
    return fallback if preferred is None else preferred


def _increase(before: int | None, after: int | None) -> int:
    """How much a counter grew; a counter that went back (engine restart) grew by nothing."""
    if before is None or after is None or after < before:
        return 0
    return after - before
