"""Local corpus routes: list the documents research can search offline, upload, delete.

The checks and the work are app/corpus.py's, which the corpus page uses too; its refusals are the
routes' 413, 415 and 422 (when every uploaded file is refused; otherwise they are reported in
`skipped`), and an unknown document their 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status

from app.api.lookup import corpus
from app.api.schemas import MAX_OFFSET, Problem
from app.corpus import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, CorpusDocument, CorpusPage, UploadResult

__all__ = ["MAX_UPLOAD_BYTES", "UPLOAD_SUFFIXES", "CorpusDocument", "router"]
router = APIRouter(prefix="/api/corpus", tags=["corpus"])
_FORMATS = ", ".join(sorted(UPLOAD_SUFFIXES))


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
async def upload_document(
    file: Annotated[list[UploadFile], File(description=f"One or more files: {_FORMATS}.")],
    request: Request,
) -> UploadResult:
    """Add documents (each at most 10 MiB) to the corpus; the answer reports what each file
    added and every file skipped, with the reason."""
    # One byte more than the limit shows a file too large.
    files = [(f.filename or "", await f.read(MAX_UPLOAD_BYTES + 1)) for f in file]
    return await corpus(request).upload(files)


@router.delete(
    "/documents/{doc_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": Problem}},
)
async def delete_document(doc_id: str, request: Request) -> Response:
    """Remove one passage from the corpus."""
    await corpus(request).delete(doc_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
