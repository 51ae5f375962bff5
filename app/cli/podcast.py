"""`fawn podcast`: a two-host audio summary of a finished research job, stored with the job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app.cli.errors import fail
from app.cli.progress import engine_status
from app.settings import load_settings

console = Console()
AUDIO_SUFFIXES = {".wav": "wav", ".ogg": "ogg", ".mp3": "mp3"}


def podcast(
    job_id: Annotated[str, typer.Argument(help="The finished research job to summarise.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Also write the audio here; .wav, .ogg or .mp3."),
    ] = None,
) -> None:
    """Make a two-host podcast of a job's report; the audio and transcript join the job.

    Example: fawn podcast 3f2c9a0e5b7d4e1f8a6b2c4d9e0f1a2b --out summary.mp3
    """
    # Imported here so that every other command starts without loading langchain.
    from agents.podcast import AudioFormat, PodcastProgress, speech_backend
    from app.jobs.service import JobService, run_jobs
    from app.jobs.store import open_job_store

    suffix = out.suffix.lower() if out else ".wav"
    if suffix not in AUDIO_SUFFIXES:
        raise fail(f"--out must end in .wav, .ogg or .mp3, not {suffix or 'nothing'!r}.")
    fmt = AudioFormat(AUDIO_SUFFIXES[suffix])
    settings = load_settings()
    store = open_job_store(settings)
    try:
        JobService(store).with_report(job_id)  # refused before the engine starts
        backend = speech_backend(settings.tts)
        asyncio.run(backend.check())  # before the engine starts: a bad voice fails in a moment

        def show(event: PodcastProgress) -> None:
            console.print(f"[dim]{event.stage}:[/] {event.message}", highlight=False)

        made = run_jobs(
            settings,
            store,
            lambda jobs: jobs.make_podcast(job_id, backend=backend, on_progress=show),
            on_status=engine_status(console),
        )
    finally:
        store.close()
    if out is not None:
        if fmt not in made.audio:
            raise fail(
                f"No {fmt} encoder is installed (install sox); the WAV is stored with the job."
            )
        out.write_bytes(made.audio[fmt])
        console.print(f"Wrote {out} ({made.duration_s:.0f} s).")
    console.print(made.transcript, highlight=False, soft_wrap=True)
