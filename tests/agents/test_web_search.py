"""Web search fails cleanly without a network, and reads its top pages through the guarded reader.

There is no internet here, so the failures are made real and deterministic: a proxy on a closed
local port (refused at once) and a proxy that accepts connections but never answers (a hang).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.errors import SearchError
from agents.tools.reader import PageReader
from agents.tools.search import make_provider
from agents.tools.ssrf import UrlGuard
from agents.tools.web_search import WebSearch, best_chunk
from tests.agents.test_reader import ARTICLE, Route, Site, running_site
from tests.conftest import free_port


@pytest.fixture
def silent_proxy() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel does) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def site() -> Iterator[Site]:
    with running_site() as site:
        yield site


@pytest.mark.timeout(30)
async def test_unreachable_network_is_a_clean_search_error() -> None:
    search = WebSearch(proxy=f"http://127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(SearchError, match="web search is unreachable") as caught:
        await search.search("Arthur's Magazine", 5)
    assert "local corpus" in str(caught.value)


@pytest.mark.timeout(30)
async def test_a_network_that_never_answers_ends_in_a_search_error(silent_proxy: str) -> None:
    search = WebSearch(proxy=silent_proxy, timeout_s=1)
    with pytest.raises(SearchError, match="unreachable"):
        await search.search("Arthur's Magazine", 5)


async def test_web_search_refuses_an_empty_query() -> None:
    with pytest.raises(SearchError, match="empty"):
        await WebSearch().search("   ", 5)


class ScriptedEngine(WebSearch):
    """WebSearch whose engine answers with fixed rows, to test what is done with them."""

    def __init__(self, rows: list[dict[str, Any]], **options: Any) -> None:
        super().__init__(**options)
        self.rows = rows

    def _text(self, query: str, max_results: int) -> list[dict[str, Any]]:
        return self.rows[:max_results]


async def test_top_hits_get_passages_from_their_pages(site: Site) -> None:
    site.routes["/article"] = Route(body=ARTICLE)
    rows = [
        {"title": "Arthur's Magazine", "href": f"{site.origin}/article", "body": "a snippet"},
        {"title": "Missing", "href": f"{site.origin}/missing", "body": "kept snippet"},
        {"title": "Unread", "href": "https://example.org/", "body": "third snippet"},
    ]
    search = ScriptedEngine(rows, reader=site.reader(), read_pages=2)
    hits = await search.search("When was Arthur's Magazine merged into Godey's?", 3)
    assert [hit.provider for hit in hits] == ["web"] * 3
    assert "Godey's Lady's Book" in hits[0].passage
    assert hits[1].passage == "kept snippet"  # its page answered 404
    assert hits[2].passage == "third snippet"  # beyond read_pages: never fetched
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    # The two pages are read concurrently, so they may arrive in either order.
    assert sorted(path for path, _ in site.requests) == ["/article", "/missing"]


async def test_hits_pointing_at_private_addresses_keep_their_snippets() -> None:
    rows = [{"title": "Metadata", "href": "http://169.254.169.254/latest/", "body": "snippet"}]
    search = ScriptedEngine(rows, reader=PageReader(UrlGuard()), read_pages=1)
    [hit] = await search.search("metadata", 1)
    assert hit.passage == "snippet"


def test_best_chunk_is_the_one_sharing_most_query_words() -> None:
    filler = " ".join(f"Sentence {n} talks about weather and rivers." for n in range(80))
    text = f"{filler} The Godey's Lady's Book merger happened in May 1846. {filler}"
    assert "merger happened in May 1846" in best_chunk(text, "When did the Godey merger happen?")


def test_make_provider_builds_the_web_provider(tmp_path: Path) -> None:
    provider = make_provider("web", data_dir=tmp_path)
    assert provider.name == "web"
    assert isinstance(provider, WebSearch)
