"""What every search provider returns and promises, and the factory that picks one by name.

    provider = make_provider("local", data_dir=settings.data_dir)
    hits = await provider.search("Who founded Arthur's Magazine?", max_results=5)

`local` searches the SQLite FTS5 corpus at `<data dir>/corpus.sqlite3` (built with
`fawn corpus add`), offline; `web` searches DuckDuckGo and reads the top pages through the guarded
page reader. Providers raise `agents.errors.SearchError` for every failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from agents.errors import SearchError

ProviderName = Literal["local", "web"]
CORPUS_FILE = "corpus.sqlite3"


class SearchHit(BaseModel):
    """One result: where it is, the passage to read, and how well it matched (higher is better)."""

    model_config = ConfigDict(frozen=True)

    title: str
    url: str
    passage: str
    score: float
    provider: str


class SearchProvider(Protocol):
    """Finds passages for a query; `name` is what `make_provider` knows it by."""

    name: str

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        """The best `max_results` passages for `query`, best first."""
        ...


def corpus_path(data_dir: Path) -> Path:
    """Where the local corpus lives under a data dir."""
    return data_dir / CORPUS_FILE


def make_provider(name: ProviderName, *, data_dir: Path) -> SearchProvider:
    """The search provider called `name`: `local` (the offline corpus) or `web`."""
    # Imported here: the providers import this module's types, and only the chosen one is needed.
    if name == "local":
        from agents.tools.corpus import LocalCorpus, LocalSearch

        return LocalSearch(LocalCorpus(corpus_path(data_dir)))
    if name == "web":
        from agents.tools.reader import PageReader
        from agents.tools.web_search import WebSearch

        return WebSearch(reader=PageReader())
    raise SearchError(f"Unknown search provider {name!r}; use 'local' or 'web'.")
