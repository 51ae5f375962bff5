"""Keep one engine running: start it, wait until healthy, watch it, restart it when it dies.

An `EngineSupervisor` owns a thread that launches the engine (so PR_SET_PDEATHSIG is tied to a
thread that lives exactly as long as the supervision, see serving/engine.py `spawn_engine`),
waits for `/health`, then watches the process and its health. An engine that exits (a crash, a
`kill -9`) or stops answering `/health` for `unhealthy_after_s` is swept (its whole process group)
and started again on the same port after an exponential backoff. A run of quick failures (the
engine never stayed healthy for `stable_after_s`) makes it give up with an error naming the log,
rather than restart a broken engine forever. `stop()` ends the engine for good.

A first start that fails is reported at once to the caller of `start()`, not retried: it is
almost always a configuration error (a bad profile, a port in use, not enough memory).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from serving.engine import (
    EngineProcess,
    free_port,
    resolve_model,
    start_engine,
    wait_until_healthy,
)
from serving.errors import EngineStartError
from serving.observability import log_event
from serving.profiles import Profile

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a dead engine, and when to give up."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    # Failures in a row (the engine never stayed up `stable_after_s`) before giving up.
    max_quick_failures: int = 5
    stable_after_s: float = 120.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before restart number `failures` (1-based) of a quick-failure run."""
        return min(self.first_delay_s * 2 ** max(failures - 1, 0), self.max_delay_s)

    def gives_up(self, failures: int) -> bool:
        """Whether `failures` quick failures in a row are too many to try again."""
        return failures >= self.max_quick_failures


class _Stopped(Exception):
    """`stop()` was called while the engine was starting."""


class EngineSupervisor:
    """One engine kept alive by a thread of its own; see the module docstring."""

    def __init__(
        self,
        launch: Callable[[], EngineProcess],
        *,
        name: str = "engine",
        startup_timeout_s: float = 600.0,
        policy: RestartPolicy | None = None,
        health_interval_s: float = 1.0,
        unhealthy_after_s: float = 120.0,
    ) -> None:
        self.name = name
        self.policy = policy or RestartPolicy()
        self.startup_timeout_s = startup_timeout_s
        self.health_interval_s = health_interval_s
        self.unhealthy_after_s = unhealthy_after_s
        self.restarts = 0
        self.error: EngineStartError | None = None
        self._launch = launch
        self._engine: EngineProcess | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._healthy = False
        self._thread = threading.Thread(target=self._run, name=f"supervise-{name}", daemon=True)

    @classmethod
    def for_profile(
        cls,
        profile: Profile,
        *,
        models_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_dir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout_s: float = 600.0,
        policy: RestartPolicy | None = None,
    ) -> EngineSupervisor:
        """A supervisor of vLLM on `profile`, on `port` (a free one if None) at every restart."""
        # Converting the embedded model can take half a minute: once, here, not at each restart.
        resolved = resolve_model(profile, models_dir)
        launch = partial(
            start_engine,
            resolved,
            models_dir=models_dir,
            host=host,
            port=port or free_port(host),
            extra_args=extra_args,
            log_dir=log_dir or Path(tempfile.mkdtemp(prefix="fawn-engine-")),
        )
        return cls(launch, name=profile.name, startup_timeout_s=startup_timeout_s, policy=policy)

    @property
    def engine(self) -> EngineProcess | None:
        """The engine process of the moment (None before the first launch)."""
        return self._engine

    @property
    def pid(self) -> int | None:
        """The engine server's pid right now, if one is running."""
        engine = self._engine
        return engine.pid if engine is not None and engine.process.poll() is None else None

    @property
    def base_url(self) -> str:
        """The engine's OpenAI base URL (ends in /v1); the same across restarts."""
        if self._engine is None:
            raise RuntimeError("The supervisor has not launched its engine yet.")
        return self._engine.base_url

    @property
    def root_url(self) -> str:
        """The engine's root URL (where /health and /metrics are)."""
        return self.base_url.removesuffix("/v1")

    @property
    def healthy(self) -> bool:
        """Whether the engine answered its last health check."""
        return self._healthy

    @property
    def running(self) -> bool:
        """Whether the supervisor still keeps an engine up (not stopped, not given up)."""
        return self._thread.is_alive() and not self._done.is_set()

    def start(self, on_tick: Callable[[float], None] | None = None) -> None:
        """Launch the engine and wait until it is healthy; raise EngineStartError if it is not.

        `on_tick(seconds)` is called about once a second while waiting, from this thread, and may
        raise to abandon the start (the engine is stopped then).
        """
        started = time.monotonic()
        self._thread.start()
        try:
            while not self._ready.wait(0.5):
                if on_tick:
                    on_tick(time.monotonic() - started)
        except BaseException:
            self.stop()
            raise
        if self.error is not None:
            self._thread.join()
            raise self.error

    def stop(self) -> None:
        """Stop the engine for good (and every process it started); safe to call twice."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until supervision ends (stopped or given up); False on timeout."""
        return self._done.wait(timeout_s)

    def __enter__(self) -> EngineSupervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                reason, stayed_up = self._one_life(first=not self._ready.is_set())
                if self._stop.is_set() or self.error is not None:
                    return
                failures = 0 if stayed_up >= self.policy.stable_after_s else failures + 1
                if self.policy.gives_up(failures):
                    self._give_up(failures, reason)
                    return
                delay = self.policy.delay(failures)
                log_event(
                    logger,
                    "engine_restart_scheduled",
                    logging.WARNING,
                    engine=self.name,
                    reason=reason,
                    delay_s=delay,
                    quick_failures=failures,
                )
                if self._stop.wait(delay):
                    return
                self.restarts += 1
        finally:
            self._healthy = False
            self._ready.set()
            self._done.set()

    def _one_life(self, *, first: bool) -> tuple[str, float]:
        """Launch, wait healthy, watch until it dies; returns why it ended and how long it ran."""
        engine = self._launch()
        self._engine = engine
        log_event(logger, "engine_launched", engine=self.name, pid=engine.pid, url=engine.root_url)
        try:
            try:
                wait_until_healthy(engine, self.startup_timeout_s, self._abandon_if_stopped)
            except _Stopped:
                return "stopped", 0.0
            except EngineStartError as exc:
                if first:
                    self.error = exc
                    log_event(logger, "engine_start_failed", logging.ERROR, engine=self.name)
                return f"did not become healthy: {str(exc).splitlines()[0]}", 0.0
            healthy_at = time.monotonic()
            self._healthy = True
            self._ready.set()
            log_event(logger, "engine_healthy", engine=self.name, pid=engine.pid)
            reason = self._watch(engine)
            self._healthy = False
            return reason, time.monotonic() - healthy_at
        finally:
            engine.stop()
            log_event(logger, "engine_stopped", engine=self.name, pid=engine.pid)

    def _watch(self, engine: EngineProcess) -> str:
        """Return when the engine exits, hangs, or the supervisor is stopped; says which."""
        failing_since: float | None = None
        while not self._stop.wait(self.health_interval_s):
            code = engine.process.poll()
            if code is not None:
                log_event(
                    logger, "engine_exited", logging.WARNING, engine=self.name, pid=engine.pid,
                    code=code,
                )  # fmt: skip
                return f"exited with code {code}"
            if _answers_health(engine.root_url):
                failing_since = None
                self._healthy = True
                continue
            self._healthy = False
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > self.unhealthy_after_s:
                log_event(
                    logger, "engine_hung", logging.WARNING, engine=self.name, pid=engine.pid,
                    unhealthy_s=self.unhealthy_after_s,
                )  # fmt: skip
                return f"did not answer /health for {self.unhealthy_after_s:.0f} s"
        return "stopped"

    def _give_up(self, failures: int, reason: str) -> None:
        engine = self._engine
        where = f" Log ({engine.log_path}):\n{engine.log_tail()}" if engine else ""
        self.error = EngineStartError(
            f"The engine {self.name} failed {failures} times in a row (last: {reason}); "
            f"not restarting it again. Fix the cause and start it again.{where}"
        )
        log_event(
            logger, "engine_gave_up", logging.ERROR, engine=self.name, failures=failures,
            reason=reason,
        )  # fmt: skip

    def _abandon_if_stopped(self, elapsed: float) -> None:
        if self._stop.is_set():
            raise _Stopped


def _answers_health(root_url: str) -> bool:
    try:
        return httpx.get(f"{root_url}/health", timeout=HEALTH_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return False
