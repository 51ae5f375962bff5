"""A real Fawn server (uvicorn, real engine, real SQLite, HotpotQA corpus) and a real browser.

The server runs in a thread so tests can reach its job store and pressure monitor; the browser
is the Debian Chromium driven by Playwright. Screenshots land in `test-artifacts/web/`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, sync_playwright

from agents.tools.corpus import LocalCorpus
from agents.tools.ingest import load_documents
from agents.tools.search import corpus_path
from app.api.app import create_app
from app.jobs.store import SqliteJobStore
from app.settings import Settings
from serving.endpoint import Endpoint
from serving.pressure import PressureMonitor, PressureSettings
from serving.settings import LLMSettings
from tests.conftest import REPO_ROOT, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"
STARTUP_TIMEOUT_S = 120
API_KEY = "test-key-7c1f0a9e"
# The busy test drives pressure by hand: no sampling in between, and it clears at once.
PRESSURE = PressureSettings(interval_s=3600, clear_after_s=0, retry_after_s=3)


@dataclass
class WebServer:
    """The running app: its URL, and the objects tests reach into."""

    url: str
    port: int
    app: FastAPI

    @property
    def store(self) -> SqliteJobStore:
        """The job store the server uses."""
        return self.app.state.store

    @property
    def pressure(self) -> PressureMonitor:
        """The server's memory pressure monitor."""
        return self.app.state.services.pressure


@contextmanager
def serve(settings: Settings) -> Iterator[WebServer]:
    """Fawn with `settings`, served by uvicorn on a free loopback port in a thread."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fawn-web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the web server did not start; see the log above")
        time.sleep(0.1)
    try:
        yield WebServer(url=f"http://127.0.0.1:{port}", port=port, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture(scope="module")
def web_server(
    engine: Endpoint, tmp_path_factory: pytest.TempPathFactory, hotpotqa_path: Path
) -> Iterator[WebServer]:
    """Fawn on the real engine, with the HotpotQA corpus and no API key."""
    data_dir = tmp_path_factory.mktemp("web-data")
    LocalCorpus(corpus_path(data_dir)).add(load_documents(hotpotqa_path))
    settings = Settings(
        data_dir=data_dir, llm=LLMSettings(base_url=engine.base_url), pressure=PRESSURE
    )
    with serve(settings) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_server(engine: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """Fawn on the real engine with an API key (`API_KEY`), as any non-loopback deployment."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("keyed-data"),
        llm=LLMSettings(base_url=engine.base_url),
        api_key=API_KEY,
    )
    with serve(settings) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium (Playwright does not download its own here)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A browser page with what it saw: dialogs opened, console errors, page errors."""

    page: Page
    dialogs: list[str]
    console_errors: list[str]

    def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot as a test artifact."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path


def open_tab(context: BrowserContext, *, accept_dialogs: bool = False) -> Tab:
    """A new page that records every dialog (dismissing it, or accepting confirmations)."""
    page = context.new_page()
    tab = Tab(page=page, dialogs=[], console_errors=[])

    def on_dialog(dialog: Dialog) -> None:
        tab.dialogs.append(f"{dialog.type}: {dialog.message}")
        if accept_dialogs and dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: tab.console_errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            tab.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    return tab


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies, no cache) at desktop size."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture
def browser_without_js(browser: Browser) -> Iterator[BrowserContext]:
    """A browser profile with JavaScript turned off: what plain HTML must handle alone."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    yield ctx
    ctx.close()
