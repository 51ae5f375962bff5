"""Report Markdown → HTML that is safe to show: nothing a model or a web page wrote may run.

Two layers. markdown-it renders with raw HTML off (so `<script>` in a report is text) and a core
rule that links citations `[n]` to the Sources entry `#source-n`, marks external links to open in
a new tab, and turns images that are not `data:` figures into their alt text. nh3 then cleans the
result against a strict allow-list of tags and attributes, re-checking every URL, so a bug in the
first layer still cannot let script or remote content through.
"""

from __future__ import annotations

import re
from functools import cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

SOURCES_HEADING = "Sources"
EXTERNAL_SCHEMES = ("http://", "https://", "mailto:")
EXTERNAL_REL = "noopener noreferrer nofollow"
ALLOWED_TAGS = frozenset(
    {
        "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "img", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th",
        "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "target"},
    "img": {"src", "alt", "title"},
    "li": {"id"},
    "ol": {"start"},
}
_CITATION = re.compile(r"\[(\d{1,4})\]")
_SOURCE_MARK = re.compile(r"^\[(\d{1,4})\]$")
_SOURCE_ID = re.compile(r"^source-\d{1,4}$")
_FIGURE_URI = re.compile(r"^data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]+$")


def is_external(url: str) -> bool:
    """True for the link targets that leave the page: http(s) and mailto."""
    return url.lower().startswith(EXTERNAL_SCHEMES)


def is_figure(url: str) -> bool:
    """True for an inline raster image (`data:image/...;base64,`), the only images shown."""
    return bool(_FIGURE_URI.match(url))


def render_report(markdown: str) -> str:
    """The report as sanitized HTML, with citations linked to its Sources list."""
    return sanitize(_markdown().render(markdown))


def sanitize(html: str) -> str:
    """`html` with every tag, attribute and URL outside the allow-list removed."""
    return _cleaner().clean(html)


@cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    # file: links (uploaded corpus documents) must parse so the rule can show their text.
    default_validate = md.validateLink
    md.validateLink = lambda url: url.lower().startswith("file:") or default_validate(url)
    md.core.ruler.push("fawn_links", _link_rule)
    return md


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute,
        link_rel=EXTERNAL_REL,
        url_schemes={"http", "https", "mailto", "data"},
    )


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    """The last word on every attribute value; None drops the attribute."""
    if tag == "a" and name == "href":
        return value if value.startswith("#") or is_external(value) else None
    if tag == "a" and name == "target":
        return value if value == "_blank" else None
    if tag == "img" and name == "src":
        return value if is_figure(value) else None
    if tag == "li" and name == "id":
        return value if _SOURCE_ID.match(value) else None
    return value


def _link_rule(state: StateCore) -> None:
    """Core rule: anchor the Sources entries, link citations, fix links and images."""
    tokens = state.tokens
    source_ids = _anchor_sources(tokens)
    in_sources = False
    for position, token in enumerate(tokens):
        in_sources = _section_is_sources(tokens, position, in_sources)
        if token.type == "inline" and token.children is not None:
            token.children = _rewrite_inline(token.children, source_ids, link=not in_sources)


def _anchor_sources(tokens: list[Token]) -> set[int]:
    """Give each `**[n]** ...` item of the Sources list the id `source-n`; returns the ids."""
    ids: set[int] = set()
    in_sources, item = False, None
    for position, token in enumerate(tokens):
        in_sources = _section_is_sources(tokens, position, in_sources)
        if in_sources and token.type == "list_item_open":
            item = token
        elif in_sources and item is not None and token.type == "inline":
            number = _leading_mark(token.children or [])
            if number is not None:
                item.attrSet("id", f"source-{number}")
                ids.add(number)
            item = None
    return ids


def _section_is_sources(tokens: list[Token], position: int, in_sources: bool) -> bool:
    """Whether the token at `position` lies in the Sources section (a top-level heading starts
    a new section; anything else stays in the section it is in)."""
    token = tokens[position]
    if token.type == "heading_open" and token.tag in ("h1", "h2"):
        return tokens[position + 1].content.strip() == SOURCES_HEADING
    return in_sources


def _leading_mark(children: list[Token]) -> int | None:
    """n when the inline content starts with `[n]` (bold or not)."""
    texts = [child for child in children if child.type == "text" and child.content.strip()]
    if not texts:
        return None
    match = _SOURCE_MARK.match(texts[0].content.strip())
    return int(match.group(1)) if match else None


def _rewrite_inline(children: list[Token], source_ids: set[int], *, link: bool) -> list[Token]:
    """Citations linked, external links opening a new tab, other links and images as text."""
    out: list[Token] = []
    kept: list[bool] = []  # per open link: whether it stays a link
    for child in children:
        if child.type == "link_open":
            href = str(child.attrGet("href") or "")
            kept.append(href.startswith("#") or is_external(href))
            if is_external(href):
                child.attrSet("target", "_blank")
                child.attrSet("rel", EXTERNAL_REL)
            if not kept[-1]:
                continue
        elif child.type == "link_close" and not kept.pop():
            continue
        if child.type == "image" and not is_figure(str(child.attrGet("src") or "")):
            out.append(_text(f"[image: {child.content}]" if child.content else "[image]"))
        elif child.type == "text" and link and not any(kept):
            out.extend(_link_citations(child.content, source_ids))
        else:
            out.append(child)
    return out


def _link_citations(text: str, source_ids: set[int]) -> list[Token]:
    """`text` split into text tokens and `[n]` links to `#source-n` (for known sources)."""
    out: list[Token] = []
    position = 0
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if number not in source_ids:
            continue
        if match.start() > position:
            out.append(_text(text[position : match.start()]))
        opening = Token("link_open", "a", 1)
        opening.attrSet("href", f"#source-{number}")
        out += [opening, _text(match.group(0)), Token("link_close", "a", -1)]
        position = match.end()
    if position < len(text):
        out.append(_text(text[position:]))
    return out


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token
