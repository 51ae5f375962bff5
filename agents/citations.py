"""Citations: every `[n]` in a report resolves to a registered source, and no URL is invented.

Model-written text is checked here before it reaches a report: unknown ids are removed, links and
bare URLs that are not a registered source's URL are stripped, and the Sources section is written
from the registry, never by the model. Fenced code blocks are left alone (`a[1]` is not a citation).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from agents.sources import Source
from agents.text import overlap, sentences

_CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\](?!\()")
_LINK = re.compile(r"\[([^\]\n]*)\]\((https?://[^)\s]+)\)")
_BARE_URL = re.compile(r"(?<![(<])\bhttps?://[^\s)\]>]+|<https?://[^>\s]+>")
_EMPTY_PARENS = re.compile(r"\(\s*\)")
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,;:!?])")
_DOUBLE_SPACE = re.compile(r"(?<=\S)[ \t]{2,}")
# Overlap a sentence needs with a passage before the passage is credited for it.
MIN_ATTRIBUTION_OVERLAP = 0.34


def cited_ids(text: str) -> list[int]:
    """The citation ids in `text`, in order of first appearance."""
    found: dict[int, None] = {}
    for match in _CITATION.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            found.setdefault(int(part), None)
    return list(found)


def remap_citations(text: str, mapping: Mapping[int, int]) -> str:
    """Rewrite every `[n]` as `[mapping[n]]`; ids the mapping lacks are removed."""

    def replace(match: re.Match[str]) -> str:
        ids: dict[int, None] = {}
        for part in re.split(r"[,;]", match.group(1)):
            if int(part) in mapping:
                ids.setdefault(mapping[int(part)], None)
        return "".join(f"[{n}]" for n in ids)

    return _tidy(_CITATION.sub(replace, text))


def filter_citations(text: str, valid_ids: Collection[int]) -> str:
    """Keep only the `[n]` whose id is valid."""
    return remap_citations(text, {n: n for n in valid_ids})


def strip_unknown_urls(text: str, known_urls: Collection[str]) -> str:
    """Remove links and bare URLs that are not known source URLs (a link keeps its label)."""

    def unlink(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        return match.group(0) if url in known_urls else f"[{label}]" if label.isdigit() else label

    def unbare(match: re.Match[str]) -> str:
        url = match.group(0).strip("<>").rstrip(".,;:")
        return match.group(0) if url in known_urls else ""

    text = _LINK.sub(unlink, text)
    return _tidy(_EMPTY_PARENS.sub("", _BARE_URL.sub(unbare, text)))


def check_citations(text: str, registry: Sequence[Source]) -> str:
    """`text` with unknown citation ids and unregistered URLs removed, code blocks untouched."""
    valid = {source.id for source in registry}
    urls = {source.url for source in registry}
    parts = _split_code(text)
    return "".join(
        part if is_code else filter_citations(strip_unknown_urls(part, urls), valid)
        for part, is_code in parts
    )


def attribute(text: str, passages: Mapping[int, str]) -> str:
    """Add citations to sentences that cite nothing but clearly restate a passage."""
    out = []
    for sentence in sentences(text):
        if not cited_ids(sentence) and passages:
            best = max(passages, key=lambda n: overlap(sentence, passages[n]))
            if overlap(sentence, passages[best]) >= MIN_ATTRIBUTION_OVERLAP:
                sentence = _cite_at_end(sentence, best)
        out.append(sentence)
    return " ".join(out)


def sources_section(registry: Sequence[Source]) -> str:
    """The report's `## Sources` section, written from the registry."""
    lines = ["## Sources", ""]
    for source in sorted(registry, key=lambda s: s.id):
        title = source.title.replace("[", "(").replace("]", ")")
        day = source.retrieved_at[:10]
        lines.append(f"- **[{source.id}]** [{title}]({source.url}) — retrieved {day}")
    if not registry:
        lines.append("No sources were retrieved.")
    return "\n".join(lines) + "\n"


def _cite_at_end(sentence: str, source_id: int) -> str:
    body = sentence.rstrip()
    end = body[-1] if body and body[-1] in ".!?。！？" else ""
    return f"{body.removesuffix(end)} [{source_id}]{end}" if end else f"{body} [{source_id}]"


def _split_code(text: str) -> list[tuple[str, bool]]:
    """`text` cut into (part, is_code) at fenced code blocks."""
    parts: list[tuple[str, bool]] = []
    fences = list(_FENCE.finditer(text))
    position, inside = 0, False
    for fence in fences:
        start = fence.start() if not inside else text.find("\n", fence.end())
        start = len(text) if start == -1 else start
        parts.append((text[position:start], inside))
        position, inside = start, not inside
    parts.append((text[position:], inside))
    return [(part, is_code) for part, is_code in parts if part]


def _tidy(text: str) -> str:
    return _DOUBLE_SPACE.sub(" ", _SPACE_BEFORE_PUNCT.sub(r"\1", text))
