"""Searching for a step: queries built from the question, and a multi-hop follow-up.

A small model copies example queries and drifts off topic, so the first query is built here from
the question (and the step's own terms); the follow-up adds what the first results revealed,
the names in their passages, so a bridge entity ("the woman who played X" -> her name) is searched
for directly. The model may only add terms to the follow-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agents.config import SearchProviderName
from agents.errors import SearchError
from agents.runtime import Runtime
from agents.sources import Source, canonical_url, new_source
from agents.state import Step
from agents.text import content_words, entities, unique

MAX_STEP_TERMS = 4
MAX_BRIDGE_ENTITIES = 4
MAX_MODEL_TERMS = 6


def first_query(question: str, step: Step | None = None) -> str:
    """The question, plus a few terms of the step that the question does not already have."""
    if step is None:
        return question.strip()
    asked = set(content_words(question))
    extra = [w for w in content_words(f"{step.title} {step.description}") if w not in asked]
    return " ".join([question.strip(), *extra[:MAX_STEP_TERMS]])


def follow_up_query(question: str, found: Sequence[Source], model_terms: str = "") -> str:
    """The question's terms, the names the found passages mention, and the model's extra terms."""
    asked = content_words(question)
    known = {w for source in found for w in content_words(source.title)} | set(asked)
    bridges = [
        name
        for name in entities(" ".join(source.passage for source in found))
        if not set(content_words(name)) <= known
    ][:MAX_BRIDGE_ENTITIES]
    extra = [w for w in content_words(model_terms) if w not in asked][:MAX_MODEL_TERMS]
    return " ".join(unique([*asked, *bridges, *extra]))


@dataclass
class Gathered:
    """Sources a step found, in the order found, and any search failures."""

    sources: list[Source] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def urls(self) -> set[str]:
        """URLs already found."""
        return {source.url for source in self.sources}


async def search_into(
    gathered: Gathered,
    runtime: Runtime,
    provider: SearchProviderName,
    query: str,
    max_results: int,
) -> list[Source]:
    """Search and add up to `max_results` unseen documents to `gathered`; returns the new ones."""
    seen = gathered.urls
    try:
        hits = await runtime.search_for(provider).search(query, max_results + len(seen))
    except SearchError as exc:
        gathered.errors.append(str(exc))
        return []
    fresh: list[Source] = []
    for hit in hits:
        url = canonical_url(hit.url)
        if url in seen or len(fresh) >= max_results:
            continue
        seen.add(url)
        fresh.append(new_source(url, hit.title, hit.passage, hit.provider))
    gathered.sources.extend(fresh)
    return fresh
