"""Logging in through a real browser on a server with an API key: wrong key, right key, then the
live page's own requests (events stream, plan review fragment, form posts) ride on the cookie."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from app.api.auth import SESSION_COOKIE
from app.jobs.models import JobStatus
from tests.app.web.conftest import API_KEY, WebServer, open_tab

pytestmark = pytest.mark.engine
PLAN = {
    "locale": "en-US", "thought": "Look it up.", "title": "Rivers", "has_enough_context": False,
    "steps": [{"title": "Find the longest river", "description": "Search the corpus.",
               "step_type": "research", "need_search": True}],
}  # fmt: skip


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile at phone width."""
    ctx = browser.new_context(viewport={"width": 375, "height": 740})
    yield ctx
    ctx.close()


def test_browser_logs_in_with_the_key_and_the_live_page_works_on_the_cookie(
    keyed_server: WebServer, phone: BrowserContext
) -> None:
    store = keyed_server.store
    job = store.create("What is the longest river in Africa?", {})
    store.update(job.id, status=JobStatus.PLANNING)
    tab = open_tab(phone, accept_dialogs=True)
    page = tab.page

    page.goto(f"{keyed_server.url}/jobs/{job.id}")
    expect(page).to_have_url(re.compile(rf"/login\?next=/jobs/{job.id}$"))
    assert page.evaluate("document.activeElement.id") == "key"  # type straight away
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    tab.screenshot("13-login")

    page.keyboard.type("not-the-key")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_contain_text("That is not the API key")
    assert phone.cookies() == []
    tab.screenshot("14-login-wrong-key")
    tab.console_errors.clear()  # the refusal page itself is a 401, which Chromium logs

    page.fill("#key", API_KEY)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{keyed_server.url}/jobs/{job.id}")
    (cookie,) = phone.cookies()
    assert cookie["name"] == SESSION_COOKIE and API_KEY not in cookie["value"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # out of reach of scripts

    # The page's own requests carry the cookie: the event stream, then the review fragment.
    store.update(job.id, status=JobStatus.AWAITING_PLAN_REVIEW, plan=PLAN)
    store.append_event(job.id, "plan", {"plan": PLAN, "iteration": 1})
    store.append_event(job.id, "status", {"status": "awaiting_plan_review"})
    expect(page.locator("#timeline .ev-plan")).to_have_count(1)
    expect(page.locator("#plan-review-form")).to_be_visible()

    # A form post from the page passes the cross-site check (same Origin).
    page.click("form[data-confirm] button.danger")
    expect(page).to_have_url(f"{keyed_server.url}/history")
    assert store.get(job.id) is None
    assert tab.console_errors == []

    page.click("form.logout button")
    expect(page).to_have_url(f"{keyed_server.url}/login")
    assert phone.cookies() == []
    page.goto(f"{keyed_server.url}/history")
    expect(page).to_have_url(re.compile(r"/login\?next=/history$"))
