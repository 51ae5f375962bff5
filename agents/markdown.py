"""Untrusted text made safe to put in a Markdown report.

Source titles, passages and model prose are data, not markup: a title `<img src=x onerror=...>`
must reach every Markdown client as text, a passage's `## Heading` must not become structure, and
`*` or `[` must not turn into emphasis or links. `escape` backslash-escapes the characters
CommonMark gives meaning to (a backslash-escaped character is always literal, and raw HTML needs
an unescaped `<`); `prose` also flattens text to one paragraph, drops heading marks and keeps the
report's own `[n]` citations working. `unescape` reverses `escape` for readers of the words
(scoring, speech).
"""

from __future__ import annotations

import re

# Characters with inline meaning in CommonMark/GFM: code, emphasis, links, raw HTML, strikethrough.
_INLINE = re.compile(r"([\\`*_\[\]<>~])")
_ESCAPED = re.compile(r"\\([\\`*_\[\]<>~#+.)|!-])")
_CITATION = re.compile(r"(\[\d+\])")
# A heading mark anywhere in flattened text ("... text ## Heading more"), never "C#" or "#1".
_HEADING_MARK = re.compile(r"(?:^|(?<=\s))#{1,6}(?=\s|$)")
# What opens a block at the start of a line: a list item (`-`, `+`, `1.`, `1)`), a table row.
_BLOCK_START = re.compile(r"^([-+|]|\d{1,9}[.)])(?=\s|$)")
_SPACES = re.compile(r"\s+")
_HEADING_LINE = re.compile(r"^#{1,6}(?:\s|$)")
_LINE_MARK = re.compile(r"^(?:[>*+-]\s*|\d{1,9}[.)]\s+)+")


def escape(text: str) -> str:
    """`text` with every Markdown-significant character made literal; for titles and labels."""
    return _block_safe(_INLINE.sub(r"\\\1", _SPACES.sub(" ", text).strip()))


def prose(text: str) -> str:
    """Untrusted prose as one safe Markdown paragraph; its `[n]` citations stay citations."""
    flat = _HEADING_MARK.sub("", _SPACES.sub(" ", text)).strip()
    parts = _CITATION.split(_SPACES.sub(" ", flat))
    escaped = "".join(
        part if _CITATION.fullmatch(part) else _INLINE.sub(r"\\\1", part) for part in parts
    )
    return _block_safe(escaped.strip())


def flatten(text: str, *, keep_headings: bool = False) -> str:
    """Model prose as one line: list and quote marks taken off, heading lines dropped (a heading
    is structure, not a finding) or, with `keep_headings`, kept as plain text (a short answer a
    small model wrote as a heading is still the answer)."""
    lines = (line.strip() for line in text.splitlines())
    kept = (
        _HEADING_MARK.sub("", line) if keep_headings else line
        for line in lines
        if line and (keep_headings or not _HEADING_LINE.match(line))
    )
    return " ".join(_LINE_MARK.sub("", line).strip() for line in kept if line.strip())


def unescape(markdown: str) -> str:
    """`markdown` without the backslash escapes `escape` and `prose` add."""
    return _ESCAPED.sub(r"\1", markdown)


def _block_safe(line: str) -> str:
    """`line` with an opening that would start a list or table escaped ("1924." stays text)."""
    match = _BLOCK_START.match(line)
    if not match:
        return line
    mark = match.group(1)
    return mark[:-1] + "\\" + mark[-1] + line[match.end() :]
