"""Podcast routes: make a finished report's two-host audio summary, then play it (with Range).

`POST /api/research/{id}/podcast` checks the speech backend and starts the podcast in the
background (app/jobs/podcast.py makes it: `podcast` events in the job's log, the audio and
transcript as job artifacts, the report never changed). A job submitted with the option
`podcast` gets its podcast from the runner, with no POST.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from agents.podcast import AudioFormat, PodcastStage
from app.api.lookup import find_job, job_service, job_store
from app.api.schemas import Problem
from app.jobs.podcast import TRANSCRIPT, audio_artifact, last_podcast_event

router = APIRouter(prefix="/api/research", tags=["podcast"])
_BYTES_RANGE = re.compile(r"^(\d*)-(\d*)$")
_NOT_FOUND = {404: {"model": Problem, "description": "No such job, or no podcast yet."}}


class PodcastLinks(BaseModel):
    """Where the podcast will be."""

    audio: str
    transcript: str
    events: str


class PodcastStarted(BaseModel):
    """A podcast is being made (`already_running`: by an earlier request)."""

    job_id: str
    already_running: bool
    links: PodcastLinks


@router.post(
    "/{job_id}/podcast",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PodcastStarted,
    responses={
        **_NOT_FOUND,
        400: {"model": Problem, "description": "The speech backend is misconfigured."},
        409: {"model": Problem, "description": "The report is not done."},
    },
)
async def start_podcast(job_id: str, request: Request, response: Response) -> PodcastStarted:
    """Start making the report's podcast; follow it in the job's events (`podcast`)."""
    already_running = await job_service(request).start_podcast(job_id)
    base = f"/api/research/{job_id}"
    links = PodcastLinks(
        audio=f"{base}/podcast", transcript=f"{base}/podcast/transcript", events=f"{base}/events"
    )
    response.headers["Location"] = links.audio
    return PodcastStarted(job_id=job_id, already_running=already_running, links=links)


@router.get(
    "/{job_id}/podcast",
    responses={
        200: {"content": {f.media_type: {} for f in AudioFormat}, "description": "The audio."},
        206: {"description": "The requested byte range of the audio."},
        416: {"model": Problem, "description": "The byte range is invalid or past the end."},
        **_NOT_FOUND,
    },
)
async def get_podcast(
    job_id: str,
    request: Request,
    format: Annotated[AudioFormat, Query(description="wav, ogg or mp3.")] = AudioFormat.WAV,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """The podcast audio; supports single byte ranges (`Range: bytes=0-1023`)."""
    find_job(request, job_id)
    found = await asyncio.to_thread(job_store(request).get_artifact, job_id, audio_artifact(format))
    if found is None:
        why = await asyncio.to_thread(_missing, request, job_id, format)
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=why)
    artifact, data = found
    return ranged(data, artifact.media_type, range_)


@router.get(
    "/{job_id}/podcast/transcript",
    responses={200: {"content": {"text/plain": {}}}, **_NOT_FOUND},
)
async def get_transcript(job_id: str, request: Request) -> Response:
    """The podcast's lines, one `Speaker: line` each."""
    find_job(request, job_id)
    found = await asyncio.to_thread(job_store(request).get_artifact, job_id, TRANSCRIPT)
    if found is None:
        why = await asyncio.to_thread(_missing, request, job_id, None)
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=why)
    artifact, data = found
    return Response(data, media_type=artifact.media_type)


def _missing(request: Request, job_id: str, fmt: AudioFormat | None) -> str:
    """Why there is nothing to serve yet, and what to do."""
    if job_service(request).podcast_running(job_id):
        return "The podcast is being made; follow the job's events (type podcast)."
    store = job_store(request)
    if fmt is not None and store.get_artifact(job_id, audio_artifact(AudioFormat.WAV)):
        return f"The podcast has no {fmt} file: install sox (or ffmpeg), then make it again."
    last = last_podcast_event(store, job_id)
    if last is not None and last.stage is PodcastStage.ERROR:
        return f"The podcast failed: {last.message} Fix it, then POST again."
    return f"No podcast yet: POST /api/research/{job_id}/podcast to make one."


def ranged(data: bytes, media_type: str, header: str | None) -> Response:
    """`data` whole (200), or the one byte range `header` asks for (206); 416 if unsatisfiable."""
    size = len(data)
    span = byte_range(header, size) if header else None
    if span is None:
        return Response(data, media_type=media_type, headers={"Accept-Ranges": "bytes"})
    start, end = span
    return Response(
        data[start : end + 1],
        status_code=status.HTTP_206_PARTIAL_CONTENT,
        media_type=media_type,
        headers={"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{size}"},
    )


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) of a single `bytes=` range; None means "send it all".

    Other units and multi-range requests are ignored (allowed by RFC 9110); a malformed or
    unsatisfiable byte range raises HTTP 416.
    """
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _BYTES_RANGE.match(spec.strip())
    if match is None or match.groups() == ("", ""):
        raise _unsatisfiable(size, f"malformed range {header!r}")
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size, "an empty suffix range")
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size, f"range {header!r} is outside 0-{size - 1}")
    return start, end


def _unsatisfiable(size: int, reason: str) -> HTTPException:
    return HTTPException(
        status.HTTP_416_RANGE_NOT_SATISFIABLE,
        detail=f"Cannot serve {reason}; the audio has {size} bytes.",
        headers={"Content-Range": f"bytes */{size}"},
    )
