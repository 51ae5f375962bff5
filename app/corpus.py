"""The local corpus as the API and the pages offer it: list, upload (one set of checks), delete.

An upload must be a .md, .txt, .html or .pdf file of at most 10 MiB whose bytes are what its name
says; it is kept under the data dir (so its sources' file:// URLs point at a file that exists) and
its passages join the corpus. Refusals are Fawn errors that name the field, as a 422 does:

    FawnError
    ├── UnsupportedUpload   not a supported type, or the bytes are not that type (HTTP 415)
    ├── UploadTooLarge      over MAX_UPLOAD_BYTES (413)
    ├── UnreadableUpload    a damaged file, or one without text (422)
    └── DocumentNotFound    no passage with this id (404)
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from agents.errors import SearchError
from agents.tools.corpus import Document, LocalCorpus
from agents.tools.ingest import load_documents
from agents.tools.search import corpus_path
from serving.errors import FawnError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
UPLOAD_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf"})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UnsupportedUpload(FawnError):
    """The file is not a supported type, or its bytes are not what its name says."""


class UploadTooLarge(FawnError):
    """The file is larger than MAX_UPLOAD_BYTES."""


class UnreadableUpload(FawnError):
    """The file is damaged, or has no text to search."""


class DocumentNotFound(FawnError):
    """No corpus passage has this id."""


class CorpusDocument(BaseModel):
    """One searchable passage of the corpus (long files are split into several)."""

    id: str
    title: str
    url: str
    chunk: int
    chars: int
    added_at: datetime | None

    @classmethod
    def of(cls, doc: Document) -> CorpusDocument:
        """The listing entry of a stored passage."""
        return cls(
            id=doc.id,
            title=doc.title,
            url=doc.url,
            chunk=doc.chunk,
            chars=len(doc.text),
            added_at=doc.added_at,
        )


class CorpusPage(BaseModel):
    """One page of the corpus listing."""

    documents: list[CorpusDocument]
    total: int
    offset: int
    limit: int


class UploadResult(BaseModel):
    """What an upload added to the corpus."""

    filename: str
    added: int
    updated: int
    unchanged: int
    documents: list[CorpusDocument]


class Corpus:
    """The local corpus of a data dir, with its uploads folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.store = LocalCorpus(corpus_path(data_dir))

    async def listing(self, *, offset: int = 0, limit: int = 50) -> CorpusPage:
        """The passages, oldest first."""
        docs = await asyncio.to_thread(self.store.list_documents, limit, offset)
        total = await asyncio.to_thread(self.store.count)
        return CorpusPage(
            documents=[CorpusDocument.of(d) for d in docs], total=total, offset=offset, limit=limit
        )

    async def upload(self, filename: str, data: bytes) -> UploadResult:
        """Check an uploaded file, keep it under the data dir and add its passages.

        `data` may be read one byte past MAX_UPLOAD_BYTES, which is how an oversized file shows.
        """
        name = _SAFE_NAME.sub("_", Path(filename).name).strip("._")
        suffix = Path(name).suffix.lower()
        if not name or suffix not in UPLOAD_SUFFIXES:
            raise UnsupportedUpload(f"file: upload a {', '.join(sorted(UPLOAD_SUFFIXES))} file.")
        if len(data) > MAX_UPLOAD_BYTES:
            raise UploadTooLarge(f"file: larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB.")
        _check_content(data, suffix)
        digest = hashlib.sha256(data).hexdigest()[:12]
        path = self.data_dir / "uploads" / f"{digest}-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        try:
            docs = await asyncio.to_thread(lambda: list(load_documents(path)))
        except SearchError as exc:  # the file is damaged: the uploader's fault, not a 502
            path.unlink(missing_ok=True)
            raise UnreadableUpload(
                f"file: {name} cannot be read as a {suffix} file ({exc.__cause__ or exc})."
            ) from None
        if not docs:
            path.unlink(missing_ok=True)
            raise UnreadableUpload("file: no text could be extracted.")
        result = await asyncio.to_thread(self.store.add, docs)
        return UploadResult(
            filename=name,
            added=result.added,
            updated=result.updated,
            unchanged=result.unchanged,
            documents=[CorpusDocument.of(d) for d in docs],
        )

    async def delete(self, doc_id: str) -> None:
        """Remove one passage; DocumentNotFound if there is none."""
        if not await asyncio.to_thread(self.store.delete, doc_id):
            raise DocumentNotFound(f"No corpus document {doc_id!r}.")


def _check_content(data: bytes, suffix: str) -> None:
    """The bytes must be what the name says: a PDF, or UTF-8 text."""
    if suffix == ".pdf":
        ok = data.startswith(b"%PDF-")
    else:
        try:
            data.decode("utf-8")
            ok = b"\x00" not in data
        except UnicodeDecodeError:
            ok = False
    if not ok:
        raise UnsupportedUpload(f"file: the content is not a valid {suffix} file.")
