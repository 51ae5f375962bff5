"""The corpus page: the local documents research searches offline, with upload and delete.

Uploads and deletes go through app/corpus.py, as the corpus API's do, so the page and the API
accept and refuse exactly the same files.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from starlette.datastructures import UploadFile

from app.api.errors import fawn_error_status
from app.api.lookup import corpus
from app.api.schemas import MAX_OFFSET
from app.corpus import MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES
from app.web.html import HtmlRoute, page
from serving.errors import FawnError

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
CORPUS_PAGE = 50


async def _corpus_page(
    request: Request,
    offset: int,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    listing = await corpus(request).listing(offset=offset, limit=CORPUS_PAGE)
    return page(
        request,
        "corpus.html",
        {
            "listing": listing,
            "notice": notice,
            "error": error,
            "accept": ",".join(sorted(UPLOAD_SUFFIXES)),
            "formats": ", ".join(sorted(UPLOAD_SUFFIXES)),
            "max_mib": MAX_UPLOAD_BYTES // (1024 * 1024),
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
) -> Response:
    """The corpus passages, oldest first, with the upload form."""
    notice = None
    if added is not None:
        notice = f"Upload done: {added} passage{'s' if added != 1 else ''} added or updated."
    elif deleted:
        notice = "The passage was deleted."
    return await _corpus_page(request, offset, notice=notice)


@router.post("/corpus/upload", name="corpus_upload")
async def corpus_upload(request: Request) -> Response:
    """Add an uploaded file to the corpus; a refused file is explained on the page."""
    upload = (await request.form()).get("file")  # parsed here, so a missing file is explained
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _corpus_page(
            request, 0, error="file: choose a file to upload.", status_code=422
        )
    try:
        data = await upload.read(MAX_UPLOAD_BYTES + 1)  # one byte more shows a file too large
        result = await corpus(request).upload(upload.filename, data)
    except FawnError as exc:
        status_code, _headers = fawn_error_status(exc)
        return await _corpus_page(request, 0, error=str(exc), status_code=status_code)
    total = (await corpus(request).listing(offset=0, limit=1)).total
    last_page = max(total - 1, 0) // CORPUS_PAGE * CORPUS_PAGE  # new passages are listed last
    target = request.url_for("corpus").include_query_params(
        added=result.added + result.updated, offset=last_page
    )
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.post("/corpus/documents/{doc_id}/delete", name="corpus_delete")
async def corpus_delete(doc_id: str, request: Request) -> Response:
    """Remove one passage from the corpus."""
    await corpus(request).delete(doc_id)
    target = request.url_for("corpus").include_query_params(deleted="true")
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)
