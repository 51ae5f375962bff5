"""A Markdown text as sections: each run of text under its headings, so passages keep their place.

markdown-it reads the headings (ATX `#` and underlined setext ones), so a `#` inside a code block
or a line of `---` under a list is not taken for one.
"""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

# Joins a heading path into one line, e.g. `Configuration › S3 settings`.
SECTION_SEPARATOR = " › "


@dataclass(frozen=True)
class Section:
    """The text under one heading; `headings` is the path to it, outermost first."""

    headings: tuple[str, ...]
    text: str


def markdown_sections(markdown: str) -> list[Section]:
    """The sections of a Markdown text that hold text, in order; text before any heading comes
    first, with no headings. Raw HTML blocks (comments such as slide numbers) are left out."""
    lines = markdown.splitlines()
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []

    def close() -> None:
        text = "\n".join(body).strip()
        if text:
            sections.append(Section(tuple(title for _, title in path), text))
        body.clear()

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    for index, token in enumerate(tokens):
        if token.level != 0 or token.map is None or token.type == "html_block":
            continue
        if token.type == "heading_open":
            close()
            level = int(token.tag[1])
            path[:] = [(lvl, title) for lvl, title in path if lvl < level]
            title = _plain(tokens[index + 1])
            if title:
                path.append((level, title))
        else:
            body.extend(lines[token.map[0] : token.map[1]])
    close()
    return sections


def markdown_title(markdown: str) -> str | None:
    """The first top-level (`#`) heading of a Markdown text."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1" and token.level == 0:
            return _plain(tokens[index + 1]) or None
    return None


def _plain(inline: Token) -> str:
    """A heading's words without their Markdown (emphasis, links, code marks)."""
    words = (c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
    return " ".join("".join(words).split())
