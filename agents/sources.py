"""The source registry: every document a run retrieved, under a stable numeric id.

The registry lives in graph state as a list ordered by id. Its reducer merges by URL, so parallel
steps that find the same document do not collide, and ids (1, 2, ...) follow the order LangGraph
applies the steps' updates, which is deterministic. Prompts number passages locally; `LocalRefs`
maps those local numbers back to URLs, and so to registry ids once the registry is merged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import urldefrag

from pydantic import BaseModel, Field


class Source(BaseModel):
    """One retrieved document: where it came from and the passage the run used."""

    id: int = Field(default=0, description="Registry id (1, 2, ...); 0 until registered.")
    url: str
    title: str
    passage: str = Field(description="The text of the document the run read.")
    provider: str = Field(description="The search provider that found it.")
    retrieved_at: str = Field(description="When it was retrieved, ISO 8601 UTC.")
    cited: bool = Field(default=False, description="True once the report cites it.")


def canonical_url(url: str) -> str:
    """The registry key for a URL: trimmed, without its #fragment."""
    return urldefrag(url.strip())[0]


def new_source(url: str, title: str, passage: str, provider: str) -> Source:
    """An unregistered source retrieved now."""
    return Source(
        url=canonical_url(url),
        title=title.strip() or canonical_url(url),
        passage=passage.strip(),
        provider=provider,
        retrieved_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def merge_sources(registered: list[Source] | None, incoming: list[Source]) -> list[Source]:
    """Reducer: add unseen URLs with the next ids; a known URL keeps its id and first passage."""
    merged = list(registered or [])
    index = {source.url: position for position, source in enumerate(merged)}
    for source in incoming:
        position = index.get(source.url)
        if position is None:
            index[source.url] = len(merged)
            merged.append(source.model_copy(update={"id": len(merged) + 1}))
        elif source.cited and not merged[position].cited:
            merged[position] = merged[position].model_copy(update={"cited": True})
    return merged


def ids_by_url(sources: Iterable[Source]) -> dict[str, int]:
    """Registry id of every registered URL."""
    return {source.url: source.id for source in sources}


class LocalRefs(BaseModel):
    """The URLs behind a prompt's local passage numbers: `[k]` means `urls[k - 1]`."""

    urls: list[str] = Field(default_factory=list)

    def registry_ids(self, registry: Sequence[Source]) -> dict[int, int]:
        """Local number -> registry id, for the URLs the registry holds."""
        known = ids_by_url(registry)
        return {local: known[url] for local, url in enumerate(self.urls, start=1) if url in known}
