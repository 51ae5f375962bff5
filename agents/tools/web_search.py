"""The `web` provider: DuckDuckGo (through `ddgs`), with the top pages read for fuller passages.

`ddgs` is synchronous and can wait on a dead network, so it runs in a worker thread under a
deadline; every failure becomes a SearchError that points to the offline default, the local
corpus. A hit's passage is the engine's snippet, or, for the first `read_pages` hits, the chunk
of the page (read through the guarded `PageReader`) that shares the most words with the query.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from ddgs import DDGS
from ddgs.exceptions import DDGSException

from agents.errors import SearchError
from agents.text import content_words
from agents.tools.ingest import chunk_text
from agents.tools.reader import PageReader
from agents.tools.search import SearchHit

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_READ_PAGES = 2
NO_RESULTS = "No results found."
OFFLINE_HINT = (
    "web search is unreachable; check the network, or search the local corpus "
    "(provider `local`, the offline default, filled with `fawn corpus add PATH`)."
)


class WebSearch:
    """Web search through DuckDuckGo; `proxy` routes it through an HTTP or SOCKS proxy."""

    name = "web"

    def __init__(
        self,
        *,
        reader: PageReader | None = None,
        read_pages: int = DEFAULT_READ_PAGES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        proxy: str | None = None,
        backend: str = "auto",
    ) -> None:
        self.reader = reader
        self.read_pages = read_pages if reader else 0
        self.timeout_s = timeout_s
        self.proxy = proxy
        self.backend = backend

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        """The engine's best `max_results` results for `query`."""
        query = query.strip()
        if not query:
            raise SearchError("The search query is empty; give some words to search for.")
        try:
            async with asyncio.timeout(self.timeout_s):
                rows = await asyncio.to_thread(self._text, query, max_results)
        except TimeoutError as exc:
            raise SearchError(
                f"No answer from the web within {self.timeout_s:g} s: {OFFLINE_HINT}"
            ) from exc
        except DDGSException as exc:
            if str(exc) == NO_RESULTS:
                return []
            raise SearchError(f"Web search failed ({exc}): {OFFLINE_HINT}") from exc
        hits = [_hit(rank, row) for rank, row in enumerate(rows) if row.get("href")]
        return await self._enrich(query, hits[:max_results])

    def _text(self, query: str, max_results: int) -> list[dict[str, Any]]:
        # ddgs takes whole seconds; its own timeout ends the worker thread soon after ours.
        client = DDGS(proxy=self.proxy, timeout=max(1, math.ceil(self.timeout_s)))
        return client.text(query, max_results=max_results, backend=self.backend)

    async def _enrich(self, query: str, hits: list[SearchHit]) -> list[SearchHit]:
        """Hits whose passage is the best chunk of their page, for the first `read_pages`."""
        reader = self.reader
        if reader is None or not self.read_pages:
            return hits
        head = hits[: self.read_pages]
        read = await asyncio.gather(*(_read_passage(reader, query, hit) for hit in head))
        return [*read, *hits[self.read_pages :]]


async def _read_passage(reader: PageReader, query: str, hit: SearchHit) -> SearchHit:
    try:
        page = await reader.read(hit.url)
    except SearchError:
        return hit  # the snippet is still a passage
    passage = best_chunk(page.text, query)
    return hit.model_copy(update={"passage": passage}) if passage else hit


def best_chunk(text: str, query: str) -> str:
    """The chunk of `text` that contains the most of the query's content words."""
    wanted = set(content_words(query))
    chunks = chunk_text(text)
    if not chunks:
        return ""
    return max(chunks, key=lambda chunk: len(wanted & set(content_words(chunk))))


def _hit(rank: int, row: dict[str, Any]) -> SearchHit:
    return SearchHit(
        title=str(row.get("title") or row["href"]),
        url=str(row["href"]),
        passage=str(row.get("body") or ""),
        score=1.0 / (rank + 1),
        provider="web",
    )
