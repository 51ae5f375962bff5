"""Turning files into corpus passages: text, Markdown, HTML, PDF, JSON/JSONL records, HotpotQA.

Local files get `file://` URLs of their absolute path. Long texts are cut into overlapping chunks
of about `CHUNK_WORDS` words, so one passage fits a small model's context next to a few others.
A HotpotQA file (a JSON list of questions whose `context` holds `[title, [sentences]]` pairs)
becomes one passage per distinct paragraph, at its Wikipedia URL.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import trafilatura
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from agents.errors import SearchError
from agents.text import sentences
from agents.tools.corpus import Document

CHUNK_WORDS = 220
CHUNK_OVERLAP_WORDS = 40
TEXT_SUFFIXES = frozenset({".txt", ".text"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
JSON_SUFFIXES = frozenset({".json", ".jsonl"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | {".pdf"}
WIKIPEDIA = "https://en.wikipedia.org/wiki/"


def load_documents(path: Path) -> Iterator[Document]:
    """The passages of a file, or of every supported file under a folder (hidden ones skipped)."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in file.relative_to(path).parts)
            if file.is_file() and file.suffix.lower() in SUPPORTED_SUFFIXES and not hidden:
                yield from _load_file(file)
        return
    if not path.is_file():
        raise SearchError(f"{path} does not exist; give a file or folder to add.")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise SearchError(
            f"Cannot add {path}: supported files are {', '.join(sorted(SUPPORTED_SUFFIXES))}."
        )
    yield from _load_file(path)


def _load_file(path: Path) -> Iterator[Document]:
    suffix = path.suffix.lower()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SearchError(f"Cannot read {path}: {exc.strerror}.") from exc
    url = path.resolve().as_uri()
    if suffix in JSON_SUFFIXES:
        yield from _json_documents(data, path, url)
        return
    if suffix == ".pdf":
        title, text = pdf_text(data, source=str(path))
    elif suffix in HTML_SUFFIXES:
        title, text = html_text(data, url=url)
    else:
        text = data.decode("utf-8", errors="replace")
        title = markdown_title(text) if suffix in MARKDOWN_SUFFIXES else None
    yield from split_document(title=title or path.stem, url=url, text=text)


def split_document(*, title: str, url: str, text: str) -> Iterator[Document]:
    """A document as passages: one per chunk of its text; nothing if it has no text."""
    for number, chunk in enumerate(chunk_text(text)):
        yield Document.passage(title=title, url=url, text=chunk, chunk=number)


def chunk_text(
    text: str, max_words: int = CHUNK_WORDS, overlap_words: int = CHUNK_OVERLAP_WORDS
) -> list[str]:
    """`text` as chunks of whole sentences, up to `max_words` words each, the next one starting
    with the last sentences of the one before (up to `overlap_words` words)."""
    chunks: list[str] = []
    current: list[str] = []
    for piece in _pieces(text, max_words):
        if current and _word_count(current) + len(piece.split()) > max_words:
            chunks.append(" ".join(current))
            current = _tail(current, overlap_words)
            while current and _word_count(current) + len(piece.split()) > max_words:
                current.pop(0)
        current.append(piece)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _pieces(text: str, max_words: int) -> Iterator[str]:
    """Sentences of `text`; one longer than `max_words` is cut into runs of words."""
    for sentence in sentences(" ".join(text.split())):
        tokens = sentence.split()
        for start in range(0, len(tokens), max_words):
            yield " ".join(tokens[start : start + max_words])


def _word_count(pieces: Iterable[str]) -> int:
    return sum(len(piece.split()) for piece in pieces)


def _tail(pieces: list[str], max_words: int) -> list[str]:
    tail: list[str] = []
    for piece in reversed(pieces):
        if _word_count(tail) + len(piece.split()) > max_words:
            break
        tail.insert(0, piece)
    return tail


def markdown_title(text: str) -> str | None:
    """The first `# heading` of a Markdown text."""
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip() or None
    return None


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


def _json_documents(data: bytes, path: Path, url: str) -> Iterator[Document]:
    records = _parse_json(data, path)
    if is_hotpotqa(records):
        yield from hotpotqa_documents(records)
        return
    for number, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise SearchError(
                f"Record {number + 1} of {path} has no `text`; records need "
                '{"title": ..., "url": ..., "text": ...} (title and url optional).'
            )
        record_url = str(record.get("url") or f"{url}#record={number + 1}")
        title = str(record.get("title") or f"{path.stem} {number + 1}")
        yield from split_document(title=title, url=record_url, text=record["text"])


def _parse_json(data: bytes, path: Path) -> list[Any]:
    text = data.decode("utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SearchError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}.") from exc
    return parsed if isinstance(parsed, list) else [parsed]


def is_hotpotqa(records: list[Any]) -> bool:
    """Whether JSON records are HotpotQA questions (each with `[title, [sentences]]` context)."""
    return bool(records) and all(
        isinstance(r, dict)
        and isinstance(r.get("context"), list)
        and all(_is_paragraph(p) for p in r["context"])
        for r in records
    )


def _is_paragraph(item: Any) -> bool:
    return (
        isinstance(item, list)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], list)
        and all(isinstance(s, str) for s in item[1])
    )


def wikipedia_url(title: str) -> str:
    """The English Wikipedia URL of an article title."""
    return WIKIPEDIA + title.replace(" ", "_")


def hotpotqa_documents(questions: list[dict[str, Any]]) -> Iterator[Document]:
    """One passage per distinct paragraph; a title met with different texts gets one chunk each."""
    texts_by_title: dict[str, list[str]] = {}
    for question in questions:
        for title, paragraph in question["context"]:
            text = "".join(paragraph).strip()
            seen = texts_by_title.setdefault(title, [])
            if text and text not in seen:
                seen.append(text)
    for title, texts in texts_by_title.items():
        for number, text in enumerate(texts):
            yield Document.passage(title=title, url=wikipedia_url(title), text=text, chunk=number)
