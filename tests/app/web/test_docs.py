"""The API reference at /docs works offline: Swagger UI comes from the app, nothing remote."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.app.web.conftest import WebServer, open_tab
from tests.app.web.test_pages import RECORD_CSP_VIOLATIONS

pytestmark = pytest.mark.engine
URL_ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)""", re.I)


def test_api_docs_render_from_the_app_alone(web_server: WebServer, context: BrowserContext) -> None:
    remote: list[str] = []
    context.on(
        "request",
        lambda r: None if r.url.startswith((web_server.url, "data:")) else remote.append(r.url),
    )
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    tab = open_tab(context)
    page = tab.page
    response = page.goto(web_server.url + "/docs")
    assert response is not None and response.status == 200
    linked = URL_ATTRIBUTE.findall(response.text())
    assert [url for url in linked if not url.startswith(web_server.url)] == []

    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=30_000)
    expect(page.locator(".swagger-ui")).to_contain_text("/api/research/{job_id}/podcast")
    assert page.evaluate("window.__cspViolations || []") == []
    assert remote == []
    assert tab.console_errors == []
    tab.screenshot("18-api-docs")
    assert page.locator("#openapi-link").get_attribute("href") == "/openapi.json"
