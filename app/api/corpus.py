"""Local corpus routes: list the documents research can search offline, upload, delete.

The checks and the work are app/corpus.py's, which the corpus page uses too; its refusals are the
routes' 413, 415 and 422, and an unknown document their 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, UploadFile, status

from app.api.lookup import corpus
from app.api.schemas import MAX_OFFSET, Problem
from app.corpus import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, CorpusDocument, CorpusPage, UploadResult

__all__ = ["MAX_UPLOAD_BYTES", "UPLOAD_SUFFIXES", "CorpusDocument", "router"]
router = APIRouter(prefix="/api/corpus", tags=["corpus"])


@router.get("", response_model=CorpusPage)
async def list_documents(
    request: Request,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CorpusPage:
    """The corpus passages, oldest first."""
    return await corpus(request).listing(offset=offset, limit=limit)


@router.post(
    "/documents",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult,
    responses={413: {"model": Problem}, 415: {"model": Problem}, 422: {"model": Problem}},
)
async def upload_document(file: UploadFile, request: Request) -> UploadResult:
    """Add a .md, .txt, .html or .pdf file (at most 10 MiB) to the corpus."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)  # one byte more shows a file too large
    return await corpus(request).upload(file.filename or "", data)


@router.delete(
    "/documents/{doc_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": Problem}},
)
async def delete_document(doc_id: str, request: Request) -> Response:
    """Remove one passage from the corpus."""
    await corpus(request).delete(doc_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
