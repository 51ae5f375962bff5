"""The web UI end to end in a real browser, on the real engine: ask, follow live through network
drops, review the plan, read the report, follow a citation, download it; and a busy engine."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from app.jobs.models import JobStatus
from serving.pressure import PressureSample
from tests.app.web.conftest import Tab, WebServer, open_tab
from tests.app.web.network import DroppableProxy

pytestmark = pytest.mark.engine
JOB_TIMEOUT_MS = 420_000
RECONNECT_TIMEOUT_S = 30
LAST_EVENT_ID = re.compile(r"^last-event-id: (\d+)\r$", re.IGNORECASE | re.MULTILINE)


def first_question(hotpotqa: Path) -> str:
    """A real HotpotQA question the corpus can answer."""
    return json.loads(hotpotqa.read_text())[0]["question"]


def ask(page: Page, question: str) -> None:
    """Fill the ask form for a short run: one step, no code, plan review on."""
    page.fill("#question", question)
    page.fill("#max_step_num", "1")
    page.uncheck("input[name=enable_coder]")
    expect(page.locator("input[name=auto_accept_plan]")).not_to_be_checked()


def events_seen(page: Page) -> int:
    return int(page.get_attribute("#job", "data-events-seen") or 0)


def drop_and_wait_for_resume(page: Page, proxy: DroppableProxy) -> int:
    """Cut the network; returns the Last-Event-ID the EventSource resumed with."""
    had = int(page.get_attribute("#job", "data-last-event") or 0)
    sent_before = len(proxy.sent)
    assert proxy.drop() > 0
    deadline = time.monotonic() + RECONNECT_TIMEOUT_S
    while time.monotonic() < deadline:
        resumed = LAST_EVENT_ID.search(proxy.sent[sent_before:])
        if resumed:
            assert int(resumed.group(1)) >= had
            return int(resumed.group(1))
        page.wait_for_timeout(250)
    pytest.fail("the EventSource did not reconnect with Last-Event-ID after the drop")


def test_question_to_reviewed_plan_to_cited_report_through_network_drops(
    web_server: WebServer, context: BrowserContext, hotpotqa_path: Path
) -> None:
    proxy = DroppableProxy(web_server.port)
    tab = open_tab(context)
    page = tab.page
    try:
        page.goto(proxy.url + "/")
        tab.screenshot("01-ask")
        ask(page, first_question(hotpotqa_path))
        page.click("#ask-submit")
        page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
        job_id = page.url.rsplit("/", 1)[1]

        # The plan arrives live and the job waits for review.
        page.wait_for_selector("#plan-review-form", timeout=JOB_TIMEOUT_MS)
        expect(page.locator("#job-status")).to_have_text("Waiting for your plan review")
        expect(page.locator("#plan h3")).not_to_be_empty()
        expect(page.locator("#timeline .ev-plan")).to_have_count(1)
        tab.screenshot("02-job-plan-review")

        # A network drop while waiting: the stream resumes after the last event it had.
        drop_and_wait_for_resume(page, proxy)

        page.click("#accept-plan")
        # Reviewed: the page says the research goes on (it used to keep saying it waits).
        expect(page.locator("#job-status")).not_to_have_text("Waiting for your plan review")
        page.wait_for_selector("#timeline .step", timeout=JOB_TIMEOUT_MS)
        expect(page.locator("#plan-review-form")).to_have_count(0)
        expect(page.locator("#job-status")).to_have_text(
            re.compile("^(Researching|Writing the report|Done)$")
        )
        expect(page.locator("#timeline .ev-review")).to_have_text("Plan accepted")

        # A second drop in the middle of the research.
        drop_and_wait_for_resume(page, proxy)

        page.wait_for_selector("#job[data-status=done]", state="attached", timeout=JOB_TIMEOUT_MS)
        page.wait_for_selector("#report a[href^='#source-']", timeout=RECONNECT_TIMEOUT_S * 1000)
        expect(page.locator("#report-link")).to_be_visible()
        stored = web_server.store.events(job_id)
        page.wait_for_function(
            f"() => document.querySelector('#job').dataset.lastEvent === '{stored[-1].seq}'"
        )
        # Every event was drawn exactly once despite the drops.
        assert events_seen(page) == len(stored)
        assert page.locator("#timeline .step .ev-tool").count() >= 1
        tab.screenshot("03-job-done")

        # A reload replays from the start and draws the same timeline, once.
        entries = page.locator("#timeline [data-seq]").count()
        page.reload()
        page.wait_for_function(
            f"() => document.querySelector('#job').dataset.eventsSeen === '{len(stored)}'"
        )
        expect(page.locator("#timeline [data-seq]")).to_have_count(entries)
        assert not [e for e in tab.console_errors if e.startswith("page error")]
    finally:
        proxy.close()

    check_report_page(web_server, tab, job_id)


def check_report_page(web_server: WebServer, tab: Tab, job_id: str) -> None:
    """The report view: a citation jumps to its source; every download is complete."""
    page = tab.page
    page.goto(f"{web_server.url}/jobs/{job_id}/report")
    tab.screenshot("04-report")
    citation = page.locator("#report a[href^='#source-']").first
    target = citation.get_attribute("href")
    citation.click()
    assert page.evaluate("location.hash") == target
    assert page.evaluate("document.querySelector(':target').id") == target.removeprefix("#")
    source_link = page.locator(f"{target} a").first
    assert source_link.get_attribute("target") == "_blank"
    assert "noopener" in (source_link.get_attribute("rel") or "")

    report = web_server.store.get(job_id).report
    with page.expect_download() as markdown:
        page.click("text=Markdown")
    assert Path(markdown.value.path()).read_text() == report
    assert markdown.value.suggested_filename.endswith(".md")

    with page.expect_download() as html:
        page.click(".downloads >> text=HTML")
    document = Path(html.value.path()).read_text()
    assert "<style>" in document
    assert not re.search(r"<script|<link|src=\"(?!data:)|@import|url\(", document)
    assert 'id="source-1"' in document

    with page.expect_download() as pdf:
        page.click("text=PDF")
    assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF-")


def test_busy_engine_shows_a_countdown_and_keeps_the_question(
    web_server: WebServer, context: BrowserContext
) -> None:
    tab = open_tab(context)
    page = tab.page
    question = "Which magazine was started first, Arthur's Magazine or First for Women?"
    jobs_before = web_server.store.list().total
    page.goto(web_server.url + "/")
    ask(page, question)
    web_server.pressure.update(PressureSample(kv_usage=0.99))
    try:
        page.click("#ask-submit")
        alert = page.locator("#ask-error")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text("memory pressure")
        expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"^[1-3]$"))
        expect(page.locator("#ask-submit")).to_be_disabled()
        expect(page.locator("#question")).to_have_value(question)
        tab.screenshot("05-busy")
        expect(page.locator("[data-countdown]")).to_have_text("0", timeout=6000)
        expect(page.locator("#ask-submit")).to_be_enabled()
    finally:
        web_server.pressure.update(PressureSample(kv_usage=0.0))
    assert web_server.store.list().total == jobs_before  # refused: nothing was queued

    # Once the pressure is gone the same form goes through; cancel the job it started.
    page.click("#ask-submit")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    page.click("#cancel-form button")
    expect(page.locator("#job-status")).to_have_text("Cancelled", timeout=30_000)
    expect(page.locator("#retry-form")).to_be_visible()
    job_id = page.url.rsplit("/", 1)[1]
    assert web_server.store.get(job_id).status is JobStatus.CANCELLED


def test_busy_engine_without_javascript_answers_503_with_the_form_kept(
    web_server: WebServer, browser_without_js: BrowserContext
) -> None:
    tab = open_tab(browser_without_js)
    page = tab.page
    page.goto(web_server.url + "/")
    page.fill("#question", "Who was <b>first</b>?")
    page.select_option("#report_style", "news")
    web_server.pressure.update(PressureSample(kv_usage=0.99))
    try:
        with page.expect_response(lambda r: r.url.endswith("/jobs")) as answer:
            page.click("#ask-submit")
    finally:
        web_server.pressure.update(PressureSample(kv_usage=0.0))
    assert answer.value.status == 503
    assert answer.value.headers["retry-after"] == "3"
    expect(page.locator("#ask-error")).to_contain_text("Retry in 3 s")
    expect(page.locator("[data-countdown]")).to_have_text("3")
    expect(page.locator("#question")).to_have_value("Who was <b>first</b>?")
    expect(page.locator("#report_style")).to_have_value("news")
    tab.screenshot("06-busy-no-js")
