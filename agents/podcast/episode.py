"""From a finished report to a podcast: check the voices, write the script, speak it, encode it.

The script call runs in the budget's TTS class, the lowest: under memory pressure it waits (it is
deferred, never dropped) and goes on when the pressure clears. Progress goes to `on_progress`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel

from agents.llm import Usage
from agents.podcast.audio import (
    AudioError,
    AudioFormat,
    Pcm,
    encodable_formats,
    encode,
    join,
    write_wav,
)
from agents.podcast.script import PodcastScript, digest_report, write_script
from agents.podcast.settings import TtsSettings
from agents.podcast.tts import SpeechBackend, speech_backend
from agents.runtime import Runtime

logger = logging.getLogger(__name__)


class PodcastStage(StrEnum):
    """Where a podcast is in the making."""

    DEFERRED = "deferred"  # its script call waits for memory pressure to clear
    SCRIPT = "script"
    SCRIPT_READY = "script_ready"
    SPEAKING = "speaking"
    ENCODING = "encoding"
    DONE = "done"
    ERROR = "error"


class PodcastProgress(BaseModel):
    """One step of progress; `done`/`total` count spoken lines while speaking."""

    stage: PodcastStage
    message: str
    done: int | None = None
    total: int | None = None
    fallback_reason: str | None = None


ProgressSink = Callable[[PodcastProgress], None]


@dataclass(frozen=True)
class Podcast:
    """The script, its audio in every format made (WAV always), and what it cost."""

    script: PodcastScript
    audio: dict[AudioFormat, bytes]
    duration_s: float
    usage: Usage
    fallback_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def transcript(self) -> str:
        """The spoken lines, one `Speaker: line` each."""
        return self.script.transcript

    @property
    def wav(self) -> bytes:
        """The audio as WAV."""
        return self.audio[AudioFormat.WAV]


async def make_podcast(
    report: str,
    runtime: Runtime,
    settings: TtsSettings,
    *,
    question: str | None = None,
    backend: SpeechBackend | None = None,
    formats: Sequence[AudioFormat] | None = None,
    on_progress: ProgressSink | None = None,
) -> Podcast:
    """A two-host podcast of `report` (Markdown); `formats` beyond WAV default to all encodable.

    Raises SpeechError before any LLM call when the speech backend cannot work.
    """
    progress = on_progress or (lambda _event: None)
    backend = backend or speech_backend(settings)
    await backend.check()
    progress(PodcastProgress(stage=PodcastStage.SCRIPT, message="Writing the script."))
    written, calls = await write_script(digest_report(report, question), runtime, settings)
    script = written.script
    source = (
        "built from the report's answer and key points"
        if written.fallback_reason
        else "written by the model"
    )
    progress(
        PodcastProgress(
            stage=PodcastStage.SCRIPT_READY,
            message=f"The script is ready: {len(script.lines)} lines, {source}.",
            total=len(script.lines),
            fallback_reason=written.fallback_reason,
        )
    )
    clips = await _speak(script, backend, settings.hosts, progress)
    audio_pcm = join(clips, settings.pause_s)
    wanted = encodable_formats() if formats is None else formats
    audio, notes = await _encode(write_wav(audio_pcm), wanted, progress)
    made = ", ".join(sorted(audio))
    summary = f"The podcast is ready: {audio_pcm.duration_s:.0f} s as {made}."
    progress(PodcastProgress(stage=PodcastStage.DONE, message=" ".join([summary, *notes])))
    return Podcast(script, audio, audio_pcm.duration_s, calls.usage, written.fallback_reason, notes)


async def _speak(
    script: PodcastScript, backend: SpeechBackend, hosts: Sequence[str], progress: ProgressSink
) -> list[Pcm]:
    clips = []
    total = len(script.lines)
    for done, turn in enumerate(script.lines):
        progress(
            PodcastProgress(
                stage=PodcastStage.SPEAKING,
                message=f"Speaking line {done + 1} of {total}.",
                done=done,
                total=total,
            )
        )
        clips.append(await backend.speak(turn.line, hosts.index(turn.speaker)))
    return clips


async def _encode(
    wav: bytes, formats: Sequence[AudioFormat], progress: ProgressSink
) -> tuple[dict[AudioFormat, bytes], list[str]]:
    """WAV plus every other format that encodes; a failed encoder costs its format, not the rest."""
    audio = {AudioFormat.WAV: wav}
    notes = []
    for fmt in formats:
        if fmt is AudioFormat.WAV:
            continue
        progress(PodcastProgress(stage=PodcastStage.ENCODING, message=f"Encoding {fmt}."))
        try:
            audio[fmt] = await encode(wav, fmt)
        except AudioError as exc:
            logger.warning("podcast encoding failed: %s", exc)
            notes.append(f"No {fmt} file: {exc}.")
    return audio, notes
