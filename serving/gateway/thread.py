"""The gateway served from a thread of this process (`fawn serve`, the shared engine, tests)."""

from __future__ import annotations

import threading
import time

from serving.endpoint import gateway_health
from serving.errors import EngineStartError
from serving.gateway.app import gateway_server
from serving.pressure import PressureSettings
from serving.settings import GatewaySettings

DEFAULT_START_S = 60.0
POLL_S = 0.25


class GatewayThread:
    """A Fawn gateway served by uvicorn in a thread of this process."""

    def __init__(self, settings: GatewaySettings, pressure: PressureSettings) -> None:
        self.settings = settings
        # Building the server checks the settings (an API key off loopback) before any start.
        self.server = gateway_server(settings, pressure)
        self.thread = threading.Thread(target=self.server.run, name="fawn-gateway", daemon=True)

    @property
    def url(self) -> str:
        """The gateway's root URL (its OpenAI base URL is this + /v1)."""
        host = self.settings.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.settings.port}"

    @property
    def alive(self) -> bool:
        """Whether the server thread still runs."""
        return self.thread.is_alive()

    def start(self, timeout_s: float = DEFAULT_START_S, *, healthy: bool = False) -> None:
        """Serve; wait until it listens (and, if `healthy`, until it sees a healthy engine)."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not (self.server.started and (not healthy or self._health_ok())):
            if not self.thread.is_alive():
                raise EngineStartError(
                    f"The gateway could not serve on {self.settings.host}:{self.settings.port} "
                    "(is the port taken?)."
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EngineStartError(f"The gateway did not start within {timeout_s:.0f} s.")
            time.sleep(POLL_S)

    def stop(self) -> None:
        """Stop serving and wait for the thread (calls in flight get a few seconds)."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=30)

    def busy(self) -> bool:
        """Whether any call is in flight or queued at the gateway right now."""
        health = gateway_health(self.url)
        engines = health.get("engines", []) if health else []
        return any(
            int(e.get("in_flight") or 0) + int(e.get("queued") or 0) > 0
            for e in engines
            if isinstance(e, dict)
        )

    def _health_ok(self) -> bool:
        health = gateway_health(self.url)
        return bool(health) and health.get("status") == "ok"  # type: ignore[union-attr]
