"""The report renderer: Markdown in, HTML that cannot run script or load remote content out."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from app.web.render import render_report, sanitize

REPORT = """# What is the capital of France?

## Answer

Paris is the capital of France [1]. It lies on the Seine [2][3].

## Sources

- **[1]** [Paris](https://en.wikipedia.org/wiki/Paris) — retrieved 2026-11-21
- **[2]** [Seine](https://en.wikipedia.org/wiki/Seine) — retrieved 2026-11-21
"""


class Elements(HTMLParser):
    """Every start tag with its attributes, as the browser's parser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def test_citations_link_to_their_sources_entry() -> None:
    html = Elements(render_report(REPORT))
    citations = [a for a in html.named("a") if (a.get("href") or "").startswith("#source-")]
    assert [a["href"] for a in citations] == ["#source-1", "#source-2"]
    anchored = [li["id"] for li in html.named("li") if li.get("id")]
    assert anchored == ["source-1", "source-2"]


def test_citation_without_a_sources_entry_stays_text() -> None:
    html = render_report(REPORT)
    assert "[3]" in html
    assert 'href="#source-3"' not in html


def test_sources_open_in_a_new_tab_without_referrer() -> None:
    links = Elements(render_report(REPORT)).named("a")
    external = [a for a in links if (a.get("href") or "").startswith("https://")]
    assert [a["href"] for a in external] == [
        "https://en.wikipedia.org/wiki/Paris",
        "https://en.wikipedia.org/wiki/Seine",
    ]
    for link in external:
        assert link["target"] == "_blank"
        assert set((link["rel"] or "").split()) >= {"noopener", "noreferrer", "nofollow"}


def test_citation_links_stay_in_the_page() -> None:
    links = Elements(render_report(REPORT)).named("a")
    for link in links:
        if (link.get("href") or "").startswith("#"):
            assert "target" not in link


def test_brackets_in_code_are_not_citations() -> None:
    html = render_report("See `a[1]`.\n\n```python\nx = a[1]\n```\n\n" + REPORT.split("## ", 2)[2])
    assert "<code>a[1]</code>" in html
    assert "x = a[1]" in html
    assert html.count('href="#source-1"') == 0


@pytest.mark.parametrize(
    "markdown",
    [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](vbscript:msgbox(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<a href='javascript:alert(1)'>click</a>",
    ],
)
def test_script_links_are_not_links(markdown: str) -> None:
    elements = Elements(render_report(markdown))
    assert elements.named("a") == []
    assert all(not attrs for _, attrs in elements.tags)


def test_raw_html_in_markdown_is_shown_as_text() -> None:
    html = render_report(
        "Hello <script>alert(1)</script> <img src=x onerror=alert(1)> "
        "<iframe src='https://evil.example'></iframe>\n\n<svg onload=alert(1)>"
    )
    elements = Elements(html)
    assert {tag for tag, _ in elements.tags} == {"p"}
    assert "&lt;script&gt;" in html


def test_remote_images_become_their_alt_text() -> None:
    html = render_report("![tracking pixel](https://evil.example/p.png) ![x](//evil.example/q)")
    assert Elements(html).named("img") == []
    assert "[image: tracking pixel]" in html


def test_figures_as_data_uris_stay_inline() -> None:
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
        "RU5ErkJggg=="
    )
    images = Elements(render_report(f"![chart](data:image/png;base64,{png})")).named("img")
    assert images == [{"src": f"data:image/png;base64,{png}", "alt": "chart"}]


def test_file_links_show_their_text_only() -> None:
    html = render_report("- **[1]** [notes.md](file:///data/uploads/notes.md) — retrieved")
    assert Elements(html).named("a") == []
    assert "notes.md" in html


@pytest.mark.parametrize(
    ("dirty", "forbidden"),
    [
        ('<a href="javascript:alert(1)">x</a>', "javascript:"),
        ('<img src="https://evil.example/x.png">', "evil.example"),
        ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "svg"),
        ('<p onclick="alert(1)">x</p>', "onclick"),
        ('<img src="data:image/png;base64,AAAA" onerror="alert(1)">', "onerror"),
        ('<iframe src="https://evil.example"></iframe>', "iframe"),
        ("<script>alert(1)</script>", "alert"),
        ("<style>body{display:none}</style>", "display"),
        ('<p style="background:url(https://evil.example)">x</p>', "style"),
        ('<form action="https://evil.example"><input name="q"></form>', "form"),
        ('<a href="//evil.example/x">x</a>', "evil.example"),
        ('<a href="/api/research/x" >x</a>', "/api/"),
        ('<li id="main">x</li>', "main"),
        ('<object data="x.swf"></object>', "object"),
        ('<base href="https://evil.example/">', "base"),
        ('<meta http-equiv="refresh" content="0;url=https://evil.example">', "refresh"),
    ],
)
def test_sanitizer_strips_what_could_run_or_load(dirty: str, forbidden: str) -> None:
    assert forbidden not in sanitize(dirty)


def test_sanitizer_keeps_report_markup() -> None:
    clean = (
        '<h2>Answer</h2><p><strong>Paris</strong> <a href="#source-1">[1]</a></p>'
        '<ul><li id="source-1">x</li></ul><table><thead><tr><th>a</th></tr></thead>'
        "<tbody><tr><td>b</td></tr></tbody></table><pre><code>x = 1</code></pre>"
    )
    kept = Elements(sanitize(clean))
    assert [tag for tag, _ in kept.tags] == [
        "h2", "p", "strong", "a", "ul", "li", "table", "thead", "tr", "th", "tbody", "tr", "td",
        "pre", "code",
    ]  # fmt: skip
    assert kept.named("li") == [{"id": "source-1"}]
