"""Turning files into corpus passages: documents by their sections, JSON/JSONL records, HotpotQA.

A document (see agents/tools/documents.py for the formats) is converted to Markdown and cut at
its headings; each section's text becomes passages of about `CHUNK_WORDS` words that carry the
section's heading path, so one passage fits a small model's context next to a few others and
still says where it comes from. Local files get `file://` URLs of their absolute path. A HotpotQA
file (a JSON list of questions whose `context` holds `[title, [sentences]]` pairs) becomes one
passage per distinct paragraph, at its Wikipedia URL.

`read_path` reads a file or a whole folder and reports every file it skipped, with the reason;
`load_documents` is the strict form for callers that need all of a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from agents.errors import SearchError
from agents.text import sentences
from agents.tools.corpus import Document
from agents.tools.documents import DOCUMENT_SUFFIXES, UnreadableDocument, to_markdown
from agents.tools.documents import html_text as html_text  # re-exported for the page reader
from agents.tools.documents import pdf_text as pdf_text  # re-exported for the page reader
from agents.tools.sections import SECTION_SEPARATOR, markdown_sections, markdown_title

CHUNK_WORDS = 220
CHUNK_OVERLAP_WORDS = 40
JSON_SUFFIXES = frozenset({".json", ".jsonl"})
SUPPORTED_SUFFIXES = DOCUMENT_SUFFIXES | JSON_SUFFIXES
WIKIPEDIA = "https://en.wikipedia.org/wiki/"


class SkipReason(StrEnum):
    """Why a file added no passages."""

    UNKNOWN_TYPE = "unknown_type"
    UNREADABLE = "unreadable"
    EMPTY = "empty"
    NOT_RECORDS = "not_records"
    # Only uploads have a size limit; a file given on the command line is read whole.
    TOO_LARGE = "too_large"


class SkippedFile(SearchError):
    """A file that adds nothing to the corpus, and why: raised for a file, reported in a folder."""

    def __init__(self, path: Path, reason: SkipReason, detail: str) -> None:
        super().__init__(f"{path} {detail}")
        self.path, self.reason, self.detail = path, reason, detail


@dataclass(frozen=True)
class ReadFile:
    """A file that was read, with its passages."""

    path: Path
    documents: list[Document]


def read_path(path: Path) -> Iterator[ReadFile | SkippedFile]:
    """Every file of a folder (hidden ones left out), or the one file, read or skipped; a file
    that cannot be read is reported and the next one read."""
    if path.is_dir():
        files = (
            file
            for file in sorted(path.rglob("*"))
            if file.is_file()
            and not any(part.startswith(".") for part in file.relative_to(path).parts)
        )
    elif path.is_file():
        files = iter([path])
    else:
        raise SearchError(f"{path} does not exist; give a file or folder to add.")
    for file in files:
        try:
            yield ReadFile(file, read_file(file))
        except SkippedFile as skipped:
            yield skipped


def load_documents(path: Path) -> Iterator[Document]:
    """The passages of a file or folder; raises the first SkippedFile (use `read_path` to go on)."""
    for result in read_path(path):
        if isinstance(result, SkippedFile):
            raise result
        yield from result.documents


def read_file(path: Path, *, name: str | None = None) -> list[Document]:
    """The passages of one file; SkippedFile says why there are none. A document without a title
    of its own is titled `name`, by default the file's name without its suffix."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise SkippedFile(
            path,
            SkipReason.UNKNOWN_TYPE,
            f"is of unknown type {suffix or '(no suffix)'}; supported files are "
            f"{', '.join(sorted(SUPPORTED_SUFFIXES))}.",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SkippedFile(path, SkipReason.UNREADABLE, f"cannot be read: {exc.strerror}.") from exc
    url = path.resolve().as_uri()
    if suffix in JSON_SUFFIXES:
        documents = list(_json_documents(data, path, url))
    else:
        try:
            converted = to_markdown(data, suffix)
        except UnreadableDocument as exc:
            raise SkippedFile(
                path, SkipReason.UNREADABLE, f"cannot be read as a {suffix} file ({exc})."
            ) from exc
        documents = list(
            document_passages(
                title=converted.title, markdown=converted.markdown, url=url, name=name or path.stem
            )
        )
    if not documents:
        raise SkippedFile(path, SkipReason.EMPTY, "holds no text.")
    return documents


def document_passages(
    *, title: str | None, markdown: str, url: str, name: str
) -> Iterator[Document]:
    """A converted document as passages, section by section; titled by `title`, else its first
    top-level heading, else `name`. A section path that starts with the title leaves it out."""
    title = " ".join((title or "").split()) or markdown_title(markdown) or name
    number = 0
    for section in markdown_sections(markdown):
        headings = section.headings
        if headings and headings[0].casefold() == title.casefold():
            headings = headings[1:]
        section_title = SECTION_SEPARATOR.join(headings)
        for chunk in chunk_text(section.text):
            yield Document.passage(
                title=title, url=url, text=chunk, chunk=number, section=section_title
            )
            number += 1


def split_document(*, title: str, url: str, text: str) -> Iterator[Document]:
    """A text with no headings as passages: one per chunk of its text; nothing if it has none."""
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


def _json_documents(data: bytes, path: Path, url: str) -> Iterator[Document]:
    records = _parse_json(data, path)
    if is_hotpotqa(records):
        yield from hotpotqa_documents(records)
        return
    for number, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise SkippedFile(
                path,
                SkipReason.NOT_RECORDS,
                f"is not records: record {number + 1} has no `text`; records need "
                '{"title": ..., "url": ..., "text": ...} (title and url optional).',
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
        raise SkippedFile(
            path, SkipReason.UNREADABLE, f"is not valid JSON (line {exc.lineno}): {exc.msg}."
        ) from exc
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
