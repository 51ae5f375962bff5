"""One file as Markdown with its headings, converted by a library for each format people keep.

    converted = to_markdown(path.read_bytes(), ".docx")  # MarkdownDocument(title, markdown)

Word, PowerPoint and EPUB go through markitdown; reStructuredText through docutils and
OpenDocument text through odfpy, both to HTML that markitdown turns into Markdown; HTML pages
through trafilatura (main text, no menus); PDF through pypdf, its outline (bookmarks) giving the
headings. Every failure of a converter on a file is an `UnreadableDocument`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trafilatura
from docutils.core import publish_parts
from markitdown import DocumentConverter, StreamInfo
from markitdown.converters import DocxConverter, EpubConverter, HtmlConverter, PptxConverter
from odf.odf2xhtml import ODF2XHTML
from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import Destination

from agents.errors import SearchError

# Markdownify escapes `_` and `*` by default, which turns `multipart_threshold` into
# `multipart\_threshold` in every passage a model reads.
_MARKDOWNIFY = {"escape_underscores": False, "escape_asterisks": False}
# Uploaded reStructuredText must not read the server's files (`.. include::`), pass raw HTML
# through, or print docutils' warnings into the text; unknown Sphinx roles are dropped quietly.
_DOCUTILS = {
    "_disable_config": True,
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "report_level": 5,
    "halt_level": 5,
    # Keep the first heading a heading (promoting it to the title would turn a lone section
    # below it into a subtitle), at level 1 like a Markdown `#`.
    "doctitle_xform": False,
    "initial_header_level": 1,
}


class UnreadableDocument(SearchError):
    """A converter could not read the file: damaged, encrypted, or not the format its name says."""


@dataclass(frozen=True)
class MarkdownDocument:
    """A converted file: its title when the format records one, and its text as Markdown."""

    title: str | None
    markdown: str


def to_markdown(data: bytes, suffix: str) -> MarkdownDocument:
    """The file's text as Markdown with its headings, by its suffix (one of DOCUMENT_SUFFIXES)."""
    convert = _CONVERTERS[suffix.lower()]
    try:
        return convert(data)
    except UnreadableDocument:
        raise
    # Each converter parses untrusted bytes with its own parsers (zip, XML, PDF), which fail in
    # many ways; any failure means "this file cannot be read", said once, here.
    except Exception as exc:
        raise UnreadableDocument(f"{type(exc).__name__}: {exc}") from exc


def _text(data: bytes) -> MarkdownDocument:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument("not UTF-8 text") from exc
    if "\x00" in text:
        raise UnreadableDocument("binary data, not text")
    return MarkdownDocument(title=None, markdown=text)


def _markitdown(
    converter: DocumentConverter, extension: str
) -> Callable[[bytes], MarkdownDocument]:
    def convert(data: bytes) -> MarkdownDocument:
        info = StreamInfo(extension=extension)
        result = converter.convert(io.BytesIO(data), info, **_MARKDOWNIFY)
        return MarkdownDocument(title=result.title, markdown=result.markdown)

    return convert


def _html_to_markdown(html: str) -> MarkdownDocument:
    result = HtmlConverter().convert_string(html, **_MARKDOWNIFY)
    return MarkdownDocument(title=result.title, markdown=result.markdown)


def _html(data: bytes) -> MarkdownDocument:
    """The page's main text (trafilatura drops menus and footers), or all of it if none is found."""
    html = _text(data).markdown
    metadata = trafilatura.extract_metadata(html)
    main = trafilatura.extract(html, output_format="markdown", include_formatting=True)
    if not main:
        return _html_to_markdown(html)
    return MarkdownDocument(title=metadata.title if metadata else None, markdown=main)


def _rst(data: bytes) -> MarkdownDocument:
    parts = publish_parts(_text(data).markdown, writer="html5", settings_overrides=_DOCUTILS)
    return _html_to_markdown(parts["html_body"])


def _odt(data: bytes) -> MarkdownDocument:
    html = ODF2XHTML(generate_css=False, embedable=True).odf2xhtml(io.BytesIO(data))
    return _html_to_markdown(html)


def _pdf(data: bytes) -> MarkdownDocument:
    """The pages' text, each outline entry as a heading where its page starts (a PDF keeps no
    other record of its headings; the text before one on the same page joins its section)."""
    reader = PdfReader(io.BytesIO(data))
    headings: dict[int, list[str]] = {}
    for depth, entry in _outline(reader.outline, 1):
        page = reader.get_destination_page_number(entry)
        title = " ".join(str(entry.title).split())
        if page is not None and title:
            headings.setdefault(page, []).append("#" * min(depth, 6) + " " + title)
    parts: list[str] = []
    for number, page in enumerate(reader.pages):
        parts.extend(headings.get(number, []))
        parts.append(page.extract_text() or "")
    title = reader.metadata.title if reader.metadata else None
    return MarkdownDocument(title=title, markdown="\n\n".join(parts))


def _outline(items: list[Any], depth: int) -> list[tuple[int, Destination]]:
    """pypdf's nested outline (a list after an entry holds its children) as (depth, entry)."""
    flat: list[tuple[int, Destination]] = []
    for item in items:
        if isinstance(item, list):
            flat.extend(_outline(item, depth + 1))
        else:
            flat.append((depth, item))
    return flat


def html_text(html: bytes | str, *, url: str | None = None) -> tuple[str | None, str]:
    """The title and main text of an HTML page (all its text when no main part is found)."""
    extracted = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    if extracted is not None and extracted.text:
        return extracted.title, extracted.text
    return (extracted.title if extracted else None), trafilatura.html2txt(html)


def pdf_text(data: bytes, *, source: str) -> tuple[str | None, str]:
    """The title (from its metadata) and the text of every page of a PDF."""
    try:
        reader = PdfReader(io.BytesIO(data))
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        title = reader.metadata.title if reader.metadata else None
    except (PyPdfError, ValueError, KeyError) as exc:
        raise SearchError(f"Cannot read the PDF {source}: {exc}.") from exc
    return title, text


_CONVERTERS: dict[str, Callable[[bytes], MarkdownDocument]] = {
    ".md": _text,
    ".markdown": _text,
    ".txt": _text,
    ".text": _text,
    ".html": _html,
    ".htm": _html,
    ".rst": _rst,
    ".rest": _rst,
    ".pdf": _pdf,
    ".docx": _markitdown(DocxConverter(), ".docx"),
    ".pptx": _markitdown(PptxConverter(), ".pptx"),
    ".epub": _markitdown(EpubConverter(), ".epub"),
    ".odt": _odt,
}
DOCUMENT_SUFFIXES = frozenset(_CONVERTERS)
