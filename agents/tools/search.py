"""What every search provider returns and promises, and the factory that picks one by name.

    provider = make_provider("local", data_dir=settings.data_dir)
    hits = await provider.search("Who founded Arthur's Magazine?", max_results=5)

`local` searches the SQLite FTS5 corpus at `<data dir>/corpus.sqlite3` (built with
`fawn corpus add`), offline; `web` searches DuckDuckGo and reads the top pages through the guarded
page reader; `mcp:NAME` calls the search tool of the MCP server configured as NAME. Providers
raise `agents.errors.SearchError` for every failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict

from agents.config import SearchProviderName
from agents.errors import SearchError

if TYPE_CHECKING:
    from agents.tools.mcp_config import McpSettings

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


def make_provider(
    name: SearchProviderName, *, data_dir: Path, mcp: McpSettings | None = None
) -> SearchProvider:
    """The search provider called `name`: `local` (the offline corpus), `web`, or `mcp:NAME`
    (the search tool of the server `mcp` configures as NAME)."""
    # Imported here: the providers import this module's types, and only the chosen one is needed.
    if name == "local":
        from agents.tools.corpus import LocalCorpus, LocalSearch

        return LocalSearch(LocalCorpus(corpus_path(data_dir)))
    if name == "web":
        from agents.tools.reader import PageReader
        from agents.tools.web_search import WebSearch

        return WebSearch(reader=PageReader())
    if name.startswith("mcp:"):
        return _mcp_provider(name.removeprefix("mcp:"), mcp)
    raise SearchError(f"Unknown search provider {name!r}; use 'local', 'web' or 'mcp:NAME'.")


def _mcp_provider(server: str, mcp: McpSettings | None) -> SearchProvider:
    from agents.tools.mcp_client import McpServer
    from agents.tools.mcp_search import McpSearch

    config = mcp.servers.get(server) if mcp is not None else None
    if config is None:
        raise SearchError(
            f"No MCP server {server!r} is configured: add [mcp.servers.{server}] to the config "
            "file (`fawn mcp list` shows those configured)."
        )
    return McpSearch(McpServer(server, config))
