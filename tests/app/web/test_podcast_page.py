"""The podcast on the job page, in a real browser behind the login, on the real engine and real
espeak-ng: the button makes it, progress shows live, the player plays the smallest file made
(MP3 or OGG before the WAV), and a reload
(even without JavaScript) shows the player; a refusal is shown as a message."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from app.jobs.models import Job, JobStatus
from app.jobs.podcast import audio_artifact
from app.web.podcast import PLAYER_ORDER
from tests.agents.test_podcast import REPORT
from tests.app.web.conftest import API_KEY, WebServer, open_tab

pytestmark = pytest.mark.engine
QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"
PODCAST_TIMEOUT_MS = 400_000
LOADED_DURATION = """audio => new Promise((resolve, reject) => {
  audio.onloadedmetadata = () => resolve(audio.duration);
  audio.onerror = () => reject(new Error('audio error ' + audio.error.code));
  audio.preload = 'auto';
  audio.load();
})"""


def finished_job(server: WebServer) -> Job:
    """A done job with a real report and the events a finished run leaves."""
    store = server.store
    job = store.create(QUESTION, {})
    store.append_event(job.id, "status", {"status": "done"})
    store.append_event(job.id, "done", {"llm_calls": 5, "wall_s": 60.0})
    return store.update(job.id, status=JobStatus.DONE, report=REPORT)


@pytest.fixture
def logged_in(browser: Browser, keyed_server: WebServer) -> Iterator[BrowserContext]:
    """A browser profile logged in to the keyed server through its login form."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"{keyed_server.url}/login")
    page.fill("#key", API_KEY)
    page.click("#login-submit")
    expect(page).to_have_url(f"{keyed_server.url}/")
    page.close()
    yield ctx
    ctx.close()


def test_make_a_podcast_then_play_it_and_read_the_transcript(
    keyed_server: WebServer, logged_in: BrowserContext, browser: Browser
) -> None:
    job = finished_job(keyed_server)
    tab = open_tab(logged_in)
    page = tab.page
    page.goto(f"{keyed_server.url}/jobs/{job.id}")
    expect(page.locator("#podcast")).to_be_visible()
    expect(page.locator("#podcast-player")).to_be_hidden()
    page.wait_for_function("() => document.querySelector('#job').dataset.eventsSeen === '2'")

    page.click("#podcast-button")
    expect(page.locator("#podcast-form")).to_be_hidden()
    expect(page.locator("#podcast-status")).to_contain_text(re.compile(r"podcast|script", re.I))
    tab.screenshot("15-podcast-making")
    audio = page.locator("#podcast-audio")
    audio.wait_for(timeout=PODCAST_TIMEOUT_MS)
    expect(page.locator("#podcast-status")).not_to_have_class("alert")
    expect(page.locator("#timeline .ev-podcast").last).to_contain_text("Podcast:")
    stages = [e.data["stage"] for e in keyed_server.store.events(job.id) if e.type == "podcast"]
    assert stages[-1] == "done" and "speaking" in stages
    duration = audio.evaluate(LOADED_DURATION)
    assert duration > 1
    tab.screenshot("16-podcast-ready")

    # The player loads the smallest file made: an MP3 or OGG where one was made, else the WAV.
    made = {a.name for a in keyed_server.store.artifacts(job.id)}
    best = next(fmt for fmt in PLAYER_ORDER if audio_artifact(fmt) in made)
    loaded = audio.evaluate("audio => audio.currentSrc")
    assert loaded.endswith(f"/api/research/{job.id}/podcast?format={best.value}")
    played = page.request.get(loaded)
    assert played.status == 200 and played.headers["content-type"] == best.media_type
    assert page.get_attribute("#podcast-download", "href") == loaded
    transcript_path = page.get_attribute("#podcast-transcript", "href") or ""
    transcript = page.request.get(keyed_server.url + transcript_path)
    assert transcript.status == 200 and "Maya:" in transcript.text()
    assert tab.console_errors == []

    # Reloaded without JavaScript, the page shows the player itself.
    without_js = browser.new_context(java_script_enabled=False)
    try:
        without_js.add_cookies(logged_in.cookies())
        plain = without_js.new_page()
        plain.goto(f"{keyed_server.url}/jobs/{job.id}")
        expect(plain.locator("#podcast-audio source").first).to_have_attribute(
            "src", f"/api/research/{job.id}/podcast?format={best.value}"
        )
        expect(plain.locator("#podcast-download")).to_have_text(f"Download ({best.value.upper()})")
        expect(plain.locator("#podcast-button")).to_have_text("Make it again")
        plain.goto(f"{keyed_server.url}/jobs/{job.id}/report")
        expect(plain.locator("#podcast-audio")).to_have_count(1)
    finally:
        without_js.close()


def test_a_refused_podcast_says_why(keyed_server: WebServer, logged_in: BrowserContext) -> None:
    job = finished_job(keyed_server)
    tab = open_tab(logged_in)
    page = tab.page
    page.goto(f"{keyed_server.url}/jobs/{job.id}")
    expect(page.locator("#podcast-button")).to_be_enabled()
    # The job changed after the page loaded (a retry elsewhere): the API answers 409.
    keyed_server.store.update(job.id, status=JobStatus.FAILED)
    page.click("#podcast-button")
    expect(page.locator("#podcast-status")).to_have_class("alert")
    expect(page.locator("#podcast-status")).to_contain_text("No podcast: The report is not done")
    expect(page.locator("#podcast-button")).to_be_enabled()
    tab.screenshot("17-podcast-refused")
