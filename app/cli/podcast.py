"""`fawn podcast`: a two-host audio summary of a finished research job, stored with the job."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app.cli.errors import fail
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
    from app.jobs.models import JobStatus
    from app.jobs.podcast import produce_podcast
    from app.jobs.store import open_job_store
    from app.services import open_services

    suffix = out.suffix.lower() if out else ".wav"
    if suffix not in AUDIO_SUFFIXES:
        raise fail(f"--out must end in .wav, .ogg or .mp3, not {suffix or 'nothing'!r}.")
    fmt = AudioFormat(AUDIO_SUFFIXES[suffix])
    settings = load_settings()
    store = open_job_store(settings)
    store_path = store.where
    try:
        job = store.get(job_id)
        if job is None:
            raise fail(
                f"No research job {job_id!r} in {store_path}; check the id (fawn api lists jobs)."
            )
        if job.status is not JobStatus.DONE or not job.report:
            raise fail(f"Job {job_id} is {job.status}: a podcast needs its finished report.")

        backend = speech_backend(settings.tts)
        asyncio.run(backend.check())  # before the engine starts: a bad voice fails in a moment

        def show(event: PodcastProgress) -> None:
            console.print(f"[dim]{event.stage}:[/] {event.message}", highlight=False)

        with ExitStack() as stack:
            with console.status("Connecting to the engine ...") as status:
                services = stack.enter_context(
                    open_services(
                        settings,
                        on_tick=lambda s: status.update(
                            f"Starting the embedded engine ... {s:.0f} s"
                        ),
                    )
                )
            made = asyncio.run(
                produce_podcast(
                    store,
                    job,
                    services.runtime,
                    settings.tts,
                    budget=services.budget,
                    backend=backend,
                    on_progress=show,
                )
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
