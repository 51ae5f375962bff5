"""Audio as mono 16-bit PCM: read and write WAV, join clips with pauses, encode OGG and MP3.

WAV is always available (the standard library's `wave`). OGG and MP3 come from `sox` (MP3 needs
the `libsox-fmt-mp3` package) or `ffmpeg`, whichever is installed and can write the format.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import numpy as np

SAMPLE_WIDTH = 2
INT16_MAX = 32767


class AudioFormat(StrEnum):
    """A file format the podcast can be stored in."""

    WAV = "wav"
    OGG = "ogg"
    MP3 = "mp3"

    @property
    def media_type(self) -> str:
        """The HTTP media type of the format."""
        return {"wav": "audio/wav", "ogg": "audio/ogg", "mp3": "audio/mpeg"}[self.value]


class AudioError(ValueError):
    """Bytes that are not audio this module can read, or an encoder that failed."""


@dataclass(frozen=True)
class Pcm:
    """Mono 16-bit samples at `rate` Hz."""

    samples: np.ndarray
    rate: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.rate

    @property
    def rms(self) -> float:
        """Root mean square loudness, in 16-bit units (0 is silence)."""
        if not len(self.samples):
            return 0.0
        return float(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2)))


def read_wav(data: bytes) -> Pcm:
    """PCM from WAV bytes (any channel count, 8 to 32-bit integer samples), mixed down to mono."""
    try:
        with wave.open(io.BytesIO(data)) as reader:
            channels, width, rate = reader.getparams()[:3]
            # A streamed WAV (espeak --stdout) claims a huge length; this reads what is there.
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a readable WAV file ({exc})") from exc
    usable = len(frames) - len(frames) % (width * channels)
    samples = _to_int16(frames[:usable], width).reshape(-1, channels)
    mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
    return Pcm(np.asarray(mono, dtype=np.int16), rate)


def _to_int16(frames: bytes, width: int) -> np.ndarray:
    if width == 1:
        return ((np.frombuffer(frames, np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 2:
        return np.frombuffer(frames, "<i2")
    if width == 3:
        raw = np.frombuffer(frames, np.uint8).reshape(-1, 3)
        return raw[:, 1].astype(np.int16) | (raw[:, 2].astype(np.int8).astype(np.int16) << 8)
    if width == 4:
        return (np.frombuffer(frames, "<i4") >> 16).astype(np.int16)
    raise AudioError(f"unsupported WAV sample width: {width} bytes")


def write_wav(pcm: Pcm) -> bytes:
    """`pcm` as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(pcm.rate)
        writer.writeframes(pcm.samples.astype("<i2").tobytes())
    return buffer.getvalue()


def resample(pcm: Pcm, rate: int) -> Pcm:
    """`pcm` at `rate` Hz (linear interpolation: enough for speech between common rates)."""
    if pcm.rate == rate or not len(pcm.samples):
        return Pcm(pcm.samples, rate)
    count = round(len(pcm.samples) * rate / pcm.rate)
    positions = np.arange(count) * (pcm.rate / rate)
    values = np.interp(positions, np.arange(len(pcm.samples)), pcm.samples.astype(np.float64))
    return Pcm(np.clip(np.round(values), -INT16_MAX - 1, INT16_MAX).astype(np.int16), rate)


def join(clips: Sequence[Pcm], pause_s: float) -> Pcm:
    """The clips one after another at the first clip's rate, `pause_s` of silence between."""
    if not clips:
        raise AudioError("there is nothing to join")
    rate = clips[0].rate
    gap = np.zeros(round(pause_s * rate), dtype=np.int16)
    parts: list[np.ndarray] = []
    for index, clip in enumerate(clips):
        if index:
            parts.append(gap)
        parts.append(resample(clip, rate).samples)
    return Pcm(np.concatenate(parts), rate)


@cache
def _sox_formats() -> frozenset[str]:
    """The file types this sox can write (its `-h` lists them), empty without sox."""
    if shutil.which("sox") is None:
        return frozenset()
    result = subprocess.run(["sox", "-h"], capture_output=True, text=True, check=False)
    lines = result.stdout.splitlines()
    listed = next((ln for ln in lines if ln.startswith("AUDIO FILE FORMATS")), "")
    return frozenset(listed.partition(":")[2].split())


def _encoder_command(fmt: AudioFormat) -> list[str] | None:
    """A command that reads WAV on stdin and writes `fmt` on stdout, or None if none exists."""
    if fmt.value in _sox_formats():
        return ["sox", "-q", "-t", "wav", "-", "-t", fmt.value, "-"]
    if shutil.which("ffmpeg"):
        codec = {AudioFormat.OGG: "libvorbis", AudioFormat.MP3: "libmp3lame"}[fmt]
        reader = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0"]
        return [*reader, "-c:a", codec, "-f", fmt.value, "pipe:1"]
    return None


def encodable_formats() -> list[AudioFormat]:
    """The compressed formats an installed encoder can write (WAV needs none)."""
    return [f for f in (AudioFormat.OGG, AudioFormat.MP3) if _encoder_command(f) is not None]


async def encode(wav: bytes, fmt: AudioFormat) -> bytes:
    """WAV bytes converted to `fmt` by sox or ffmpeg; raises AudioError if that fails."""
    if fmt is AudioFormat.WAV:
        return wav
    command = _encoder_command(fmt)
    if command is None:
        raise AudioError(f"no installed encoder writes {fmt}: install sox (or ffmpeg)")
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(wav)
    if process.returncode != 0 or not out:
        detail = err.decode(errors="replace").strip() or f"exit code {process.returncode}"
        raise AudioError(f"{command[0]} could not write {fmt}: {detail}")
    return out
