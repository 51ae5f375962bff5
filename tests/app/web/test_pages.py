"""The pages in a real browser: hostile content stays inert, history and corpus work, every page
is labelled, keyboard-usable, phone-width and free of remote content."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from app.jobs.models import Job, JobStatus
from tests.app.web.conftest import WebServer, open_tab

pytestmark = pytest.mark.engine
PROBE = '<img src=x onerror="window.__xss=1;alert(1)">'
PROBE_SCRIPT = "<script>window.__xss=1;alert(2)</script>"
# Attributes and elements that would mean content escaped the sanitizer or the templates.
FIND_ACTIVE_CONTENT = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith('on')) found.push(el.tagName + '[' + attr.name + ']');
      if (['href', 'src', 'action', 'formaction'].includes(attr.name)
          && /^\\s*(javascript|vbscript|data:text)/i.test(attr.value)) {
        found.push(el.tagName + '[' + attr.name + '=' + attr.value + ']');
      }
    }
  }
  for (const s of document.scripts) {
    if (!s.src.startsWith(location.origin + '/static/')) found.push('script ' + s.outerHTML);
  }
  for (const img of document.images) {
    if (!img.src.startsWith('data:')) found.push('img ' + img.src);
  }
  for (const f of document.forms) {
    if (new URL(f.action).origin !== location.origin) found.push('form ' + f.action);
  }
  const embedded = 'iframe, object, embed, svg, base, meta[http-equiv=refresh]';
  for (const el of document.querySelectorAll(embedded)) {
    found.push(el.outerHTML);
  }
  if (window.__xss) found.push('window.__xss was set');
  if (window.__cspViolations) found.push('CSP blocked: ' + window.__cspViolations.join(', '));
  return found;
}"""
RECORD_CSP_VIOLATIONS = """document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations = (window.__cspViolations || []).concat(e.violatedDirective);
});"""
UNLABELLED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter((c) => c.type !== 'hidden' && c.labels.length === 0 && !c.getAttribute('aria-label'))
  .map((c) => c.outerHTML)"""


def probe_job(web_server: WebServer) -> Job:
    """A finished job whose question, plan, sources, events and report all carry XSS probes."""
    store = web_server.store
    job = store.create(f"{PROBE_SCRIPT} What is {PROBE}?", {})
    now = datetime.now(UTC).isoformat(timespec="seconds")
    sources = [
        {"id": 1, "url": "https://example.org/a", "title": PROBE, "passage": PROBE_SCRIPT,
         "provider": "web", "retrieved_at": now, "cited": True},
        {"id": 2, "url": "javascript:alert(3)", "title": "<svg onload=alert(4)>",
         "passage": "x", "provider": "web", "retrieved_at": now, "cited": False},
    ]  # fmt: skip
    plan = {
        "locale": "en-US", "thought": PROBE_SCRIPT, "title": PROBE, "has_enough_context": False,
        "steps": [{"title": PROBE, "description": PROBE_SCRIPT, "step_type": "research",
                   "need_search": True}],
    }  # fmt: skip
    report = (
        f"# {PROBE_SCRIPT}\n\n## Answer\n\nIt is {PROBE_SCRIPT} {PROBE} [1].\n"
        '<iframe src="https://evil.example"></iframe> [click](javascript:alert(5)) '
        '![pixel](https://evil.example/p.png) <a href="#" onclick="alert(6)">x</a>\n\n'
        "## Sources\n\n"
        f"- **[1]** [{PROBE}](https://example.org/a) — retrieved 2026-11-21\n"
        "- **[2]** [evil](javascript:alert(3)) — retrieved 2026-11-21\n"
    )
    figure = {"name": PROBE, "png_base64": 'x" onerror="alert(7)'}
    for kind, data in [
        ("status", {"message": PROBE}),
        ("plan", {"plan": plan, "iteration": 1, "fallback_reason": PROBE_SCRIPT}),
        ("step_started", {"iteration": 1, "index": 0, "title": PROBE, "step_type": "research"}),
        ("tool_result", {"index": 0, "tool": "python", "summary": PROBE, "code": PROBE_SCRIPT,
                         "stdout": PROBE, "figures": [figure]}),
        ("source_added", {"source": sources[0]}),
        ("source_added", {"source": sources[1]}),
        ("step_done", {"iteration": 1, "index": 0, "title": PROBE, "notes": PROBE, "error": None}),
        ("report_chunk", {"text": PROBE_SCRIPT}),
        ("error", {"message": PROBE, "fatal": False}),
        ("status", {"status": "done"}),
        ("done", {"llm_calls": 1, "wall_s": 1.0}),
    ]:  # fmt: skip
        store.append_event(job.id, kind, data)
    return store.update(job.id, status=JobStatus.DONE, report=report, sources=sources, plan=plan)


@pytest.fixture
def remote_requests(context: BrowserContext, web_server: WebServer) -> Iterator[list[str]]:
    """Every request the context makes that does not go to the server (or is not data:)."""
    requests: list[str] = []
    context.on(
        "request",
        lambda r: (
            None if r.url.startswith((web_server.url, "data:", "file:")) else requests.append(r.url)
        ),
    )
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    yield requests


def assert_inert(page: Page) -> None:
    assert page.evaluate(FIND_ACTIVE_CONTENT) == []


def test_hostile_content_stays_inert_on_every_page(
    web_server: WebServer, context: BrowserContext, remote_requests: list[str], tmp_path: Path
) -> None:
    job = probe_job(web_server)
    tab = open_tab(context)
    page = tab.page
    page.goto(f"{web_server.url}/jobs/{job.id}")
    page.wait_for_function("() => document.querySelector('#job').dataset.eventsSeen === '11'")
    expect(page.locator("#timeline .ev-tool")).to_contain_text(PROBE)  # shown, as text
    assert_inert(page)
    tab.screenshot("07-xss-job")

    page.goto(f"{web_server.url}/jobs/{job.id}/report")
    expect(page.locator("#report h1")).to_have_text(PROBE_SCRIPT)
    assert page.locator("#report a[href^='javascript']").count() == 0
    assert page.locator("#source-1 a").get_attribute("href") == "https://example.org/a"
    assert_inert(page)
    tab.screenshot("08-xss-report")

    for path in ("/", "/history?" + urlencode({"q": "What is <img"})):
        page.goto(web_server.url + path)
        expect(page.get_by_text(PROBE_SCRIPT, exact=False).first).to_be_visible()
        assert_inert(page)

    page.goto(f"{web_server.url}/jobs/{job.id}/report")
    with page.expect_download() as download:
        page.click(".downloads >> text=HTML")
    saved = tmp_path / "report.html"
    download.value.save_as(saved)
    page.goto(saved.as_uri())
    expect(page.locator("h1")).to_have_text(PROBE_SCRIPT)
    assert_inert(page)

    assert tab.dialogs == []
    assert remote_requests == []


def test_finished_report_reads_without_javascript(
    web_server: WebServer, browser_without_js: BrowserContext
) -> None:
    job = probe_job(web_server)
    tab = open_tab(browser_without_js)
    page = tab.page
    page.goto(f"{web_server.url}/jobs/{job.id}/report")
    expect(page.locator("#report h2").first).to_have_text("Answer")
    page.click("#report a[href='#source-1']")
    assert page.evaluate("location.hash") == "#source-1"
    page.goto(f"{web_server.url}/jobs/{job.id}")
    expect(page.locator("#report h2").first).to_have_text("Answer")
    expect(page.locator("#job-status")).to_have_text("Done")
    assert tab.dialogs == []


def test_history_filters_by_text_and_status_opens_and_deletes(
    web_server: WebServer, context: BrowserContext
) -> None:
    store = web_server.store
    done = store.update(store.create("zebrafish-7 rivers of Europe", {}).id, status=JobStatus.DONE,
                        report="# Rivers\n\nThe Danube.\n")  # fmt: skip
    failed = store.update(store.create("zebrafish-7 mountains", {}).id, status=JobStatus.FAILED,
                          error="The engine stopped.")  # fmt: skip
    store.update(store.create("unrelated question", {}).id, status=JobStatus.CANCELLED)
    tab = open_tab(context, accept_dialogs=True)
    page = tab.page

    page.goto(web_server.url + "/history")
    page.fill("#q", "zebrafish-7")
    page.click("form.filters button")
    expect(page.locator("#history-list > li")).to_have_count(2)
    tab.screenshot("09-history")
    page.select_option("#status", "failed")
    page.click("form.filters button")
    expect(page.locator("#history-list > li")).to_have_count(1)
    expect(page.locator("#history-list")).to_contain_text("zebrafish-7 mountains")

    page.goto(web_server.url + "/history?q=zebrafish-7")
    page.click(f"#history-list li[data-job-id='{done.id}'] a.question")
    expect(page).to_have_url(re.compile(rf"/jobs/{done.id}$"))
    page.go_back()
    page.click(f"#history-list li[data-job-id='{failed.id}'] button.danger")
    expect(page.locator("#history-list > li")).to_have_count(1)
    assert page.url.endswith("/history?q=zebrafish-7")
    assert tab.dialogs == ["confirm: Delete this job and its report?"]
    assert store.get(failed.id) is None
    assert store.get(done.id) is not None


def test_corpus_page_uploads_lists_and_deletes_a_document(
    web_server: WebServer, context: BrowserContext
) -> None:
    tab = open_tab(context, accept_dialogs=True)
    page = tab.page
    page.goto(web_server.url + "/corpus")
    before = int(page.locator("#corpus-count").inner_text().split()[0])

    page.set_input_files(
        "#file",
        {"name": "river-notes.md", "mimeType": "text/markdown",
         "buffer": b"# Okavango field notes\n\nThe Okavango ends in a desert delta.\n"},
    )  # fmt: skip
    page.click("form.upload button")
    expect(page.locator(".notice")).to_contain_text("1 passage added")
    expect(page.locator("#corpus-count")).to_have_text(f"{before + 1} passages")
    uploaded = page.locator("#corpus-list li", has_text="Okavango field notes")
    expect(uploaded).to_have_count(1)

    page.fill("#q", "Where does the Okavango end?")
    page.click("form.search button")
    first = page.locator("#corpus-results li").first
    expect(first.locator(".title")).to_have_text("Okavango field notes")
    expect(first.locator(".passage")).to_have_text("The Okavango ends in a desert delta.")
    expect(page.locator("#q")).to_have_value("Where does the Okavango end?")
    tab.screenshot("10-corpus")

    page.go_back()  # to the listing page that shows the upload
    uploaded.locator("button.danger").click()
    expect(page.locator(".notice")).to_contain_text("deleted")
    expect(page.locator("#corpus-count")).to_have_text(f"{before} passages")

    page.set_input_files(
        "#file", {"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}
    )
    page.click("form.upload button")
    expect(page.locator("#corpus-error")).to_contain_text("file: upload a")
    expect(page.locator("#corpus-count")).to_have_text(f"{before} passages")


@pytest.mark.parametrize("path", ["/", "/history", "/corpus", "/jobs/{job}", "/jobs/{job}/report"])
def test_pages_are_labelled_keyboard_usable_and_fit_a_phone(
    web_server: WebServer, context: BrowserContext, path: str
) -> None:
    job = web_server.store.create("What is the longest river in Africa?", {})
    web_server.store.update(job.id, status=JobStatus.DONE, report="# Rivers\n\nThe Nile.\n")
    tab = open_tab(context)
    page = tab.page
    response = page.goto(web_server.url + path.format(job=job.id))
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "object-src 'none'" in csp
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    assert page.locator("div[onclick], span[onclick]").count() == 0

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    page.set_viewport_size({"width": 375, "height": 740})
    assert page.locator("meta[name=viewport]").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    tab.screenshot(
        "11-phone-" + (path.strip("/").replace("/", "-").replace("{job}", "job") or "home")
    )


def test_pdf_without_chromium_is_404_saying_how_to_get_it(
    web_server: WebServer, context: BrowserContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    job = web_server.store.create("What is the longest river in Africa?", {})
    web_server.store.update(job.id, status=JobStatus.DONE, report="# Rivers\n\nThe Nile.\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no Chromium on it
    page = open_tab(context).page
    page.goto(f"{web_server.url}/jobs/{job.id}/report")
    expect(page.locator(".downloads")).to_contain_text("PDF unavailable")
    response = page.goto(f"{web_server.url}/jobs/{job.id}/report.pdf")
    assert response is not None and response.status == 404
    expect(page.locator(".alert")).to_contain_text("PDF export needs Chromium")
