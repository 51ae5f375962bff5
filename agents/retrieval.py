"""Searching for a step, and ordering what was found for reading.

A small model copies example queries and drifts off topic, so the first query is built here from
the question (and the step's own terms); the follow-up adds what the first results revealed,
the names in their passages, so a bridge entity ("the woman who played X" -> her name) is searched
for directly. The model may only add terms to the follow-up.

A small model answers best from two passages that answer together, so `rank_for_answer` puts the
best pair first: the pair covering most of the question, its page names above all, where the
first passage names the second's page (the bridge of a two-hop question).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import permutations

from agents.config import SearchProviderName
from agents.errors import SearchError
from agents.runtime import Runtime
from agents.sources import Source, canonical_url, new_source
from agents.state import Step
from agents.text import content_words, entities, unique

MAX_STEP_TERMS = 4
MAX_BRIDGE_ENTITIES = 4
MAX_MODEL_TERMS = 6
# Ranking weights: a question word in a page name counts this much more than one in its text;
# a passage naming the other's page (a bridge), and a page the question names, add these; among
# pages of one name, the one without a disambiguation is the name's main topic.
NAME_WEIGHT = 2.0
BRIDGE_BONUS = 1.0
NAMED_BONUS = 0.25
MAIN_TOPIC_BONUS = 0.1
_DISAMBIGUATION = re.compile(r"\s*\([^)]*\)\s*$")


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


def page_name(title: str) -> str:
    """A page title without its trailing disambiguation ("Ed Wood (film)" -> "Ed Wood")."""
    return _DISAMBIGUATION.sub("", title).strip() or title


@dataclass(frozen=True)
class _Features:
    words: frozenset[str]
    name_words: frozenset[str]
    named: bool
    main_topic: bool


def rank_for_answer(question: str, sources: Sequence[Source]) -> list[Source]:
    """`sources` ordered for answering `question`: the best pair first, then by relevance."""
    asked = frozenset(content_words(question))
    if not asked or len(sources) < 2:
        return list(sources)
    features: dict[str, _Features] = {}
    for source in sources:
        name_words = frozenset(content_words(page_name(source.title)))
        named = bool(name_words) and name_words <= asked
        features[source.url] = _Features(
            words=frozenset(content_words(f"{source.title} {source.passage}")),
            name_words=name_words,
            named=named,
            main_topic=named and page_name(source.title) == source.title,
        )

    def covered(*group: Source) -> float:
        text = frozenset().union(*(features[s.url].words for s in group)) & asked
        names = frozenset().union(*(features[s.url].name_words for s in group)) & asked
        named = sum(features[s.url].named for s in group)
        main = sum(features[s.url].main_topic for s in group)
        return (
            (len(text) + NAME_WEIGHT * len(names)) / len(asked)
            + NAMED_BONUS * named
            + MAIN_TOPIC_BONUS * main
        )

    def bridge(first: Source, second: Source) -> float:
        new_page = not features[second.url].named
        return (
            BRIDGE_BONUS if new_page and _mentions(first.passage, page_name(second.title)) else 0.0
        )

    pair = max(permutations(sources, 2), key=lambda p: covered(*p) + bridge(*p))
    rest = sorted((s for s in sources if s not in pair), key=lambda s: -covered(s))
    return [*pair, *rest]


def _mentions(text: str, name: str) -> bool:
    """Whether `text` names `name` as whole words, in any case (a band styled "WINNER")."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None
