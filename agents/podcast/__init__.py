"""The podcast: a two-host audio summary of a finished report, spoken locally.

    podcast = await make_podcast(report, runtime, TtsSettings(), on_progress=print)
    Path("podcast.wav").write_bytes(podcast.wav)

`script` writes the two-host script (model, one repair, deterministic fallback), `tts` holds the
speech backends (espeak-ng, OpenAI-compatible servers), `audio` joins and encodes the clips, and
`episode` runs the whole thing.
"""

from agents.podcast.audio import AudioFormat, encodable_formats
from agents.podcast.episode import (
    Podcast,
    PodcastProgress,
    PodcastStage,
    ProgressSink,
    make_podcast,
)
from agents.podcast.script import PodcastScript, ScriptLine
from agents.podcast.settings import EspeakVoice, SpeechBackendName, TtsSettings
from agents.podcast.tts import SpeechBackend, SpeechError, speech_backend

__all__ = [
    "AudioFormat",
    "EspeakVoice",
    "Podcast",
    "PodcastProgress",
    "PodcastScript",
    "PodcastStage",
    "ProgressSink",
    "ScriptLine",
    "SpeechBackend",
    "SpeechBackendName",
    "SpeechError",
    "TtsSettings",
    "encodable_formats",
    "make_podcast",
    "speech_backend",
]
