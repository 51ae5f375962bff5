"""The local corpus as the API and the pages offer it: list, search, upload (one set of checks),
delete.

An upload is one or more files, each a document (see agents/tools/documents.py for the types) of
at most 10 MiB whose bytes are what its name says; each is kept under the data dir (so its
sources' file:// URLs point at a file that exists) and its passages join the corpus. A file that
is refused is reported with its reason and the others are still added; when every file is
refused, the first refusal is the answer. Refusals are Fawn errors that name the field, as a 422
does:

    FawnError
    ├── UploadRefused           carries the SkipReason the report gives
    │   ├── UnsupportedUpload   not a supported type, or the bytes are not that type (HTTP 415)
    │   ├── UploadTooLarge      over MAX_UPLOAD_BYTES (413)
    │   └── UnreadableUpload    a damaged file, or one without text (422)
    ├── InvalidQuery            a search with no words to look for (the page says so)
    └── DocumentNotFound        no passage with this id (404)
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from agents.text import words
from agents.tools.corpus import Document, LocalCorpus
from agents.tools.documents import DOCUMENT_SUFFIXES
from agents.tools.ingest import SkippedFile, SkipReason, read_file
from agents.tools.search import corpus_path
from serving.errors import FawnError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_FILES = 100
UPLOAD_SUFFIXES = DOCUMENT_SUFFIXES
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Office documents and EPUB books are zip archives; the bytes of a PDF start with its marker.
_ZIP_SUFFIXES = frozenset({".docx", ".pptx", ".epub", ".odt"})


class UploadRefused(FawnError):
    """An uploaded file that adds nothing; `reason` is what the upload's report says."""

    reason = SkipReason.UNREADABLE

    def __init__(self, message: str, reason: SkipReason | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class UnsupportedUpload(UploadRefused):
    """The file is not a supported type, or its bytes are not what its name says."""

    reason = SkipReason.UNKNOWN_TYPE


class UploadTooLarge(UploadRefused):
    """The file is larger than MAX_UPLOAD_BYTES."""

    reason = SkipReason.TOO_LARGE


class UnreadableUpload(UploadRefused):
    """The file is damaged, or has no text to search."""


class InvalidQuery(FawnError):
    """A corpus search with no words to look for."""


class DocumentNotFound(FawnError):
    """No corpus passage has this id."""


class CorpusDocument(BaseModel):
    """One searchable passage of the corpus (long files are split into several)."""

    id: str
    title: str
    section: str
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
            section=doc.section,
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


class CorpusHit(BaseModel):
    """A passage that matches a search, with its score (bm25; higher is better)."""

    id: str
    title: str
    section: str
    url: str
    passage: str
    score: float


class UploadedFile(BaseModel):
    """What one uploaded file added to the corpus."""

    filename: str
    added: int
    updated: int
    unchanged: int
    documents: list[CorpusDocument]


class SkippedUpload(BaseModel):
    """An uploaded file that added nothing, and why."""

    filename: str
    reason: SkipReason
    detail: str


class UploadResult(BaseModel):
    """What an upload added to the corpus, in all and file by file, and the files it skipped."""

    added: int
    updated: int
    unchanged: int
    files: list[UploadedFile]
    skipped: list[SkippedUpload]


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

    async def search(self, query: str, limit: int = 10) -> list[CorpusHit]:
        """The passages that best match `query`, best first; none when the corpus is empty."""
        if not words(query):
            raise InvalidQuery("q: give some words to search for.")
        if await asyncio.to_thread(self.store.count) == 0:
            return []
        ranked = await asyncio.to_thread(self.store.ranked, query, limit)
        return [
            CorpusHit(
                id=doc.id,
                title=doc.title,
                section=doc.section,
                url=doc.url,
                passage=doc.text,
                score=score,
            )
            for doc, score in ranked
        ]

    async def upload(self, files: list[tuple[str, bytes]]) -> UploadResult:
        """Check each uploaded `(filename, bytes)`, keep it under the data dir and add its
        passages; refused files are reported, and if every file is refused the first refusal is
        raised.

        Each file's bytes may be read one byte past MAX_UPLOAD_BYTES, which is how an oversized
        file shows.
        """
        if len(files) > MAX_UPLOAD_FILES:
            raise UnreadableUpload(
                f"file: upload at most {MAX_UPLOAD_FILES} files at once; add a larger folder "
                "with `fawn corpus add FOLDER`."
            )
        added: list[UploadedFile] = []
        refusals: list[tuple[str, UploadRefused]] = []
        for filename, data in files:
            try:
                added.append(await self._add_file(filename, data))
            except UploadRefused as refusal:
                refusals.append((filename, refusal))
        if refusals and not added:
            raise refusals[0][1]
        return UploadResult(
            added=sum(f.added for f in added),
            updated=sum(f.updated for f in added),
            unchanged=sum(f.unchanged for f in added),
            files=added,
            skipped=[
                SkippedUpload(filename=name, reason=refusal.reason, detail=str(refusal))
                for name, refusal in refusals
            ],
        )

    async def _add_file(self, filename: str, data: bytes) -> UploadedFile:
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
            docs = await asyncio.to_thread(read_file, path, name=Path(name).stem)
        except SkippedFile as skipped:  # the file is damaged or empty: the uploader's fault
            path.unlink(missing_ok=True)
            raise UnreadableUpload(f"file: {name} {skipped.detail}", skipped.reason) from None
        result = await asyncio.to_thread(self.store.add, docs)
        return UploadedFile(
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
    """The bytes must be what the name says: a PDF, a zip archive, or UTF-8 text."""
    if suffix == ".pdf":
        ok = data.startswith(b"%PDF-")
    elif suffix in _ZIP_SUFFIXES:
        ok = data.startswith(b"PK\x03\x04")
    else:
        try:
            data.decode("utf-8")
            ok = b"\x00" not in data
        except UnicodeDecodeError:
            ok = False
    if not ok:
        raise UnsupportedUpload(f"file: the content is not a valid {suffix} file.")
