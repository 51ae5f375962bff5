"""The corpus page: the local documents research searches offline, with search, upload and delete.

Uploads and deletes go through app/corpus.py, as the corpus API's do, so the page and the API
accept and refuse exactly the same files. An upload that skipped files shows its report at once
(a redirect would lose it); one that added every file redirects, so a reload sends nothing again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from starlette.datastructures import UploadFile

from app.api.errors import fawn_error_status
from app.api.lookup import corpus
from app.api.schemas import MAX_OFFSET
from app.corpus import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_FILES,
    UPLOAD_SUFFIXES,
    CorpusHit,
    InvalidQuery,
    SkippedUpload,
)
from app.web.html import HtmlRoute, page
from serving.errors import FawnError

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
CORPUS_PAGE = 50
SEARCH_HITS = 10


async def _corpus_page(
    request: Request,
    offset: int,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
    query: str | None = None,
    hits: list[CorpusHit] | None = None,
    skipped: list[SkippedUpload] | None = None,
) -> Response:
    listing = await corpus(request).listing(offset=offset, limit=CORPUS_PAGE)
    return page(
        request,
        "corpus.html",
        {
            "listing": listing,
            "notice": notice,
            "error": error,
            "query": query,
            "hits": hits,
            "skipped": skipped or [],
            "accept": ",".join(sorted(UPLOAD_SUFFIXES)),
            "formats": ", ".join(sorted(UPLOAD_SUFFIXES)),
            "max_mib": MAX_UPLOAD_BYTES // (1024 * 1024),
            "max_files": MAX_UPLOAD_FILES,
            "previous": max(offset - CORPUS_PAGE, 0) if offset > 0 else None,
            "next": offset + CORPUS_PAGE if offset + CORPUS_PAGE < listing.total else None,
        },
        status_code=status_code,
    )


@router.get("/corpus", name="corpus")
async def corpus_page(
    request: Request,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    added: Annotated[int | None, Query(ge=0)] = None,
    deleted: Annotated[bool, Query()] = False,
    q: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """The corpus passages, oldest first, with the search and upload forms; `q` searches."""
    notice = None
    if added is not None:
        notice = _upload_notice(added)
    elif deleted:
        notice = "The passage was deleted."
    if q is None:
        return await _corpus_page(request, offset, notice=notice)
    try:
        hits = await corpus(request).search(q, SEARCH_HITS)
    except InvalidQuery as exc:
        return await _corpus_page(request, offset, error=str(exc), query=q, status_code=422)
    return await _corpus_page(request, offset, notice=notice, query=q, hits=hits)


def _upload_notice(passages: int) -> str:
    return f"Upload done: {passages} passage{'s' if passages != 1 else ''} added or updated."


@router.post("/corpus/upload", name="corpus_upload")
async def corpus_upload(request: Request) -> Response:
    """Add uploaded files to the corpus; refused files are explained on the page."""
    # Parsed here, so a missing file is explained on the page.
    uploads = [
        upload
        for upload in (await request.form()).getlist("file")
        if isinstance(upload, UploadFile) and upload.filename
    ]
    if not uploads:
        return await _corpus_page(
            request, 0, error="file: choose a file to upload.", status_code=422
        )
    try:
        # One byte more than the limit shows a file too large.
        files = [(u.filename or "", await u.read(MAX_UPLOAD_BYTES + 1)) for u in uploads]
        result = await corpus(request).upload(files)
    except FawnError as exc:
        status_code, _headers = fawn_error_status(exc)
        return await _corpus_page(request, 0, error=str(exc), status_code=status_code)
    total = (await corpus(request).listing(offset=0, limit=1)).total
    last_page = max(total - 1, 0) // CORPUS_PAGE * CORPUS_PAGE  # new passages are listed last
    passages = result.added + result.updated
    if result.skipped:
        return await _corpus_page(
            request, last_page, notice=_upload_notice(passages), skipped=result.skipped
        )
    target = request.url_for("corpus").include_query_params(added=passages, offset=last_page)
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.post("/corpus/documents/{doc_id}/delete", name="corpus_delete")
async def corpus_delete(doc_id: str, request: Request) -> Response:
    """Remove one passage from the corpus."""
    await corpus(request).delete(doc_id)
    target = request.url_for("corpus").include_query_params(deleted="true")
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)
