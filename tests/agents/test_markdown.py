"""Untrusted text in the Markdown report: a Markdown client renders it as text, not markup."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from agents.markdown import escape, prose, unescape

# A client that renders raw HTML, as many Markdown viewers do.
RENDERER = MarkdownIt("commonmark", {"html": True})


@pytest.mark.parametrize(
    "text",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script> and *bold* and [a link](javascript:alert(1))",
        "1924. The year",
        "- not a list",
        "`code` ~~struck~~ _under_ \\ backslash",
    ],
)
def test_escaped_text_renders_as_exactly_its_own_words(text: str) -> None:
    html = RENDERER.render(escape(text)).strip()
    assert html.startswith("<p>") and html.count("<") == 2, html
    assert unescape(escape(text)) == text


def test_prose_keeps_citations_and_drops_heading_marks() -> None:
    text = "Ed Wood was American [1].\n\n## Career\nHe made films <b>cheaply</b> [2]. C# is #1."
    out = prose(text)
    assert "\n" not in out and "##" not in out
    assert "[1]" in out and "[2]" in out and "C# is #1." in out
    html = RENDERER.render(out)
    assert "<b>" not in html and "&lt;b&gt;cheaply" in html
