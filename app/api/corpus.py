"""Local corpus routes: list the documents research can search offline, upload, delete."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, UploadFile, status
from pydantic import BaseModel

from agents.errors import SearchError
from agents.tools.corpus import Document, LocalCorpus
from agents.tools.ingest import load_documents
from agents.tools.search import corpus_path
from app.api.schemas import Problem

router = APIRouter(prefix="/api/corpus", tags=["corpus"])
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
UPLOAD_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf"})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


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


def _corpus(request: Request) -> LocalCorpus:
    return LocalCorpus(corpus_path(request.app.state.settings.data_dir))


@router.get("", response_model=CorpusPage)
async def list_documents(
    request: Request,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CorpusPage:
    """The corpus passages, oldest first."""
    corpus = _corpus(request)
    docs = await asyncio.to_thread(corpus.list_documents, limit, offset)
    total = await asyncio.to_thread(corpus.count)
    return CorpusPage(
        documents=[CorpusDocument.of(d) for d in docs], total=total, offset=offset, limit=limit
    )


@router.post(
    "/documents",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult,
    responses={413: {"model": Problem}, 415: {"model": Problem}, 422: {"model": Problem}},
)
async def upload_document(file: UploadFile, request: Request) -> UploadResult:
    """Add a .md, .txt, .html or .pdf file (at most 10 MiB) to the corpus."""
    name = _SAFE_NAME.sub("_", Path(file.filename or "").name).strip("._")
    suffix = Path(name).suffix.lower()
    if not name or suffix not in UPLOAD_SUFFIXES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"file: upload a {', '.join(sorted(UPLOAD_SUFFIXES))} file.",
        )
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"file: larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB.",
        )
    _check_content(data, suffix)
    digest = hashlib.sha256(data).hexdigest()[:12]
    # Kept under the data dir so the source's file:// URL points at a file that exists.
    path = request.app.state.settings.data_dir / "uploads" / f"{digest}-{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    try:
        docs = await asyncio.to_thread(lambda: list(load_documents(path)))
    except SearchError as exc:  # the file is damaged: the client's fault, not a 502
        path.unlink(missing_ok=True)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"file: {name} cannot be read as a {suffix} file ({exc.__cause__ or exc}).",
        ) from None
    if not docs:
        path.unlink(missing_ok=True)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="file: no text could be extracted."
        )
    result = await asyncio.to_thread(_corpus(request).add, docs)
    return UploadResult(
        filename=name,
        added=result.added,
        updated=result.updated,
        unchanged=result.unchanged,
        documents=[CorpusDocument.of(d) for d in docs],
    )


@router.delete(
    "/documents/{doc_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": Problem}},
)
async def delete_document(doc_id: str, request: Request) -> Response:
    """Remove one passage from the corpus."""
    if not await asyncio.to_thread(_corpus(request).delete, doc_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No corpus document {doc_id!r}.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"file: the content is not a valid {suffix} file.",
        )
