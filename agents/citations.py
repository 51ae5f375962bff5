"""Citations: every `[n]` in a report resolves to a registered source, and no URL is invented.

Model-written text is checked here before it reaches a report: unknown ids are removed, links and
bare URLs that are not a registered source's URL are stripped, and the Sources section is written
from the registry, never by the model. Fenced code blocks are left alone (`a[1]` is not a citation).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from agents.markdown import escape
from agents.sources import Source
from agents.text import content_words, overlap, sentences

_CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\](?!\()")
_LINK = re.compile(r"\[([^\]\n]*)\]\((https?://[^)\s]+)\)")
_BARE_URL = re.compile(r"(?<![(<])\bhttps?://[^\s)\]>]+|<https?://[^>\s]+>")
_EMPTY_PARENS = re.compile(r"\(\s*\)")
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,;:!?])")
_DOUBLE_SPACE = re.compile(r"(?<=\S)[ \t]{2,}")
_NEEDS_BRACKETS = re.compile(r"[\s()<>]")
# Share of a sentence's content words a passage must hold to count as supporting it.
MIN_SUPPORT = 0.5


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


def ground(
    text: str, passages: Mapping[int, str], *, drop_unsupported: bool, known: str = ""
) -> str:
    """`text` with each sentence cited by the passage that supports it best, repeats removed.

    A passage supports a sentence when it holds at least MIN_SUPPORT of the sentence's content
    words that `known` (the question) does not already contain, so restating the question is
    not a finding. The model's own citations stay when they support the sentence as well as the
    best passage does; otherwise the best passage is cited. Unsupported sentences are dropped,
    or kept uncited.
    """
    ignore = set(content_words(known))
    out: dict[str, str] = {}
    for sentence in sentences(text):
        bare = remap_citations(sentence, {})
        scores = {n: overlap(bare, passage, ignore) for n, passage in passages.items()}
        best = max(scores.values(), default=0.0)
        if best >= MIN_SUPPORT:
            claimed = [n for n in cited_ids(sentence) if scores.get(n, 0.0) >= best]
            bare = _cite_at_end(bare, claimed or [max(scores, key=scores.__getitem__)])
        elif drop_unsupported:
            continue
        out.setdefault(remap_citations(bare, {}).lower(), bare)
    return " ".join(out.values())


def sources_section(registry: Sequence[Source]) -> str:
    """The report's `## Sources` section, written from the registry."""
    lines = ["## Sources", ""]
    for source in sorted(registry, key=lambda s: s.id):
        day = source.retrieved_at[:10]
        link = f"[{escape(source.title)}]({link_target(source.url)})"
        lines.append(f"- **[{source.id}]** {link} — retrieved {day}")
    if not registry:
        lines.append("No sources were retrieved.")
    return "\n".join(lines) + "\n"


def link_target(url: str) -> str:
    """`url` as a Markdown link destination; one with spaces or parentheses in `<...>`, the form
    CommonMark reads whole."""
    if not _NEEDS_BRACKETS.search(url):
        return url
    return "<" + url.replace("<", "%3C").replace(">", "%3E") + ">"


def _cite_at_end(sentence: str, source_ids: list[int]) -> str:
    body = sentence.rstrip()
    end = body[-1] if body and body[-1] in ".!?。！？" else ""
    marks = "".join(f"[{n}]" for n in source_ids)
    return f"{body.removesuffix(end).rstrip()} {marks}{end}"


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
