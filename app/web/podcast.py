"""The podcast on the job and report pages: make it, follow it, play it.

The page shows the player and transcript when the audio exists (readable without JavaScript); the
player offers the MP3 or OGG where one was made and the WAV after it, and the download link is
the smallest file made.
what is happening while a podcast is being made, and why the last attempt failed. The button is a
plain form (`make_podcast`, a redirect back to the job page); with JavaScript, static/job.js
posts to the REST API instead and follows the job's `podcast` events live.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import RedirectResponse

from agents.podcast import AudioFormat, PodcastStage
from app.api.errors import fawn_error_status
from app.api.lookup import job_service, job_store
from app.jobs.models import Job, JobStatus
from app.jobs.podcast import EVENT_TYPE, audio_artifact, podcast_pending
from app.web.html import HtmlRoute, error_page
from serving.errors import FawnError

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
FINISHED_STAGES = frozenset({PodcastStage.DONE, PodcastStage.ERROR})


@dataclass(frozen=True)
class PodcastView:
    """What the page shows of a done job's podcast.

    `since` is the sequence number of the last podcast event that ended an attempt: the page
    follows only the events after it, so an old attempt's events never pass for a new one's.
    """

    ready: bool
    running: bool  # being made, or requested with the job and still to come
    error: str | None
    since: int
    start_url: str
    audio_url: str
    transcript_url: str
    # The audio files made, best first (MP3 and OGG are a tenth of the WAV's size).
    sources: tuple[AudioSource, ...] = ()


@dataclass(frozen=True)
class AudioSource:
    """One audio file of the podcast, as the player offers it."""

    url: str
    format: AudioFormat


# The order the player offers formats in: compressed first, the WAV as the fallback.
PLAYER_ORDER = (AudioFormat.MP3, AudioFormat.OGG, AudioFormat.WAV)


def audio_sources(audio_url: str, made: set[str]) -> tuple[AudioSource, ...]:
    """The audio files made, in PLAYER_ORDER, each at its `?format=` URL."""
    return tuple(
        AudioSource(f"{audio_url}?format={fmt.value}", fmt)
        for fmt in PLAYER_ORDER
        if audio_artifact(fmt) in made
    )


def podcast_view(request: Request, job: Job) -> PodcastView:
    """The podcast state of `job` (nothing made, for a job without a finished report)."""
    base = f"/api/research/{job.id}"
    urls = {
        "start_url": f"{base}/podcast",
        "audio_url": f"{base}/podcast",
        "transcript_url": f"{base}/podcast/transcript",
    }
    if job.status is not JobStatus.DONE or not job.report:
        # A job submitted with the podcast option gets it from the runner once the report is done.
        awaited = job.options.get("podcast") is True and not job.status.is_final
        return PodcastView(ready=False, running=awaited, error=None, since=0, **urls)
    store = job_store(request)
    names = {a.name for a in store.artifacts(job.id)}
    events = [e for e in store.events(job.id) if e.type == EVENT_TYPE]
    finished = [e for e in events if e.data.get("stage") in FINISHED_STAGES]
    running = job_service(request).podcast_running(job.id) or podcast_pending(store, job)
    last = events[-1].data if events else {}
    failed = not running and last.get("stage") == PodcastStage.ERROR
    sources = audio_sources(urls["audio_url"], names)
    return PodcastView(
        ready=audio_artifact(AudioFormat.WAV) in names,
        sources=sources,
        running=running,
        error=str(last.get("message") or "unknown error") if failed else None,
        since=finished[-1].seq if finished else 0,
        **urls,
    )


@router.post("/jobs/{job_id}/podcast", name="make_podcast")
async def make_podcast(job_id: str, request: Request) -> Response:
    """Form post: start the podcast through the job service, then follow it on the job page;
    a refusal (no report, a bad speech setup) is a page saying why."""
    try:
        await job_service(request).start_podcast(job_id)
    except FawnError as exc:
        status_code, headers = fawn_error_status(exc)
        return error_page(request, status_code, f"No podcast: {exc}", headers)
    return RedirectResponse(request.url_for("job_page", job_id=job_id), status.HTTP_303_SEE_OTHER)
