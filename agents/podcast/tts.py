"""Speech backends behind one interface: local espeak-ng, or any OpenAI-compatible speech server.

A backend turns one line of text into PCM in the voice of host 0 or host 1. `check()` runs
before any LLM call is spent on a script, so a wrong voice or an unreachable server fails fast;
every failure is a `SpeechError` whose message names the setting to fix.
"""

from __future__ import annotations

import asyncio
import shutil
from functools import cached_property
from typing import Protocol

import httpx

from agents.podcast.audio import AudioError, Pcm, read_wav
from agents.podcast.settings import EspeakVoice, SpeechBackendName, TtsSettings
from serving.errors import ConfigError

CHECK_TIMEOUT_S = 5.0
ERROR_BODY_CHARS = 300


class SpeechError(ConfigError):
    """A speech backend is misconfigured, missing or unreachable; the message says what to fix."""


class SpeechBackend(Protocol):
    """Speaks one line in the voice of host 0 or host 1."""

    async def check(self) -> None:
        """Raise SpeechError if the backend cannot speak with its configured voices."""
        ...

    async def speak(self, text: str, host: int) -> Pcm:
        """`text` spoken by host `host` (0 or 1)."""
        ...


class EspeakBackend:
    """espeak-ng on this machine; each host has a voice (with variant), pitch and speed."""

    def __init__(self, voices: tuple[EspeakVoice, EspeakVoice], binary: str = "espeak-ng") -> None:
        self.voices = voices
        self.binary = binary

    @cached_property
    def executable(self) -> str:
        """The espeak-ng path; raises SpeechError when it is not installed."""
        found = shutil.which(self.binary)
        if found is None:
            raise SpeechError(
                f"{self.binary} is not installed: `apt install espeak-ng`, or point "
                "FAWN_TTS_ESPEAK_BINARY at it, or use a speech server (FAWN_TTS_BACKEND=openai)."
            )
        return found

    async def check(self) -> None:
        """Every configured voice and variant is one espeak-ng knows."""
        variants = await self._variants()
        for voice in self.voices:
            base, _, variant = voice.name.partition("+")
            if variant and variant not in variants:
                raise SpeechError(
                    f"espeak-ng has no voice variant {variant!r} (in {voice.name!r}). Fix "
                    f"FAWN_TTS_ESPEAK_VOICES; `espeak-ng --voices=variant` lists them "
                    f"(e.g. {', '.join(sorted(variants)[:6])})."
                )
            code, err = await self._run(["-q", "-v", base], "x")
            if code != 0:
                raise SpeechError(
                    f"espeak-ng has no voice {base!r} ({err or f'exit code {code}'}). Fix "
                    "FAWN_TTS_ESPEAK_VOICES; `espeak-ng --voices` lists the voices."
                )

    async def speak(self, text: str, host: int) -> Pcm:
        """`text` in host `host`'s espeak-ng voice."""
        voice = self.voices[host]
        args = ["-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed), "--stdout"]
        process = await asyncio.create_subprocess_exec(
            self.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # The text goes on stdin so that a line starting with "-" is never read as an option.
        out, err = await process.communicate(text.encode())
        if process.returncode != 0:
            detail = err.decode(errors="replace").strip() or f"exit code {process.returncode}"
            raise SpeechError(f"espeak-ng failed with voice {voice.name!r}: {detail}")
        try:
            return read_wav(out)
        except AudioError as exc:
            raise SpeechError(f"espeak-ng wrote no usable audio: {exc}") from exc

    async def _variants(self) -> set[str]:
        process = await asyncio.create_subprocess_exec(
            self.executable,
            "--voices=variant",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await process.communicate()
        rows = out.decode(errors="replace").splitlines()[1:]
        return {row.split()[4].rpartition("/")[2] for row in rows if len(row.split()) >= 5}

    async def _run(self, args: list[str], text: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            self.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate(text.encode())
        return process.returncode or 0, err.decode(errors="replace").strip()


class OpenAiSpeechBackend:
    """An OpenAI-compatible `POST {base_url}/audio/speech`, asked for WAV."""

    def __init__(
        self,
        base_url: str | None,
        model: str,
        voices: tuple[str, str],
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        if not base_url:
            raise SpeechError(
                "The openai speech backend needs a server: set FAWN_TTS_OPENAI_BASE_URL "
                "(e.g. http://localhost:8880/v1), or use FAWN_TTS_BACKEND=espeak."
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.voices = voices
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, CHECK_TIMEOUT_S))

    async def check(self) -> None:
        """The server answers HTTP at all (any status: the route may not serve GET)."""
        try:
            async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S, trust_env=False) as client:
                await client.get(self.base_url, headers=self.headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from exc

    async def speak(self, text: str, host: int) -> Pcm:
        """`text` in host `host`'s voice on the speech server."""
        body = {
            "model": self.model,
            "input": text,
            "voice": self.voices[host],
            "response_format": "wav",
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
                response = await client.post(
                    f"{self.base_url}/audio/speech", json=body, headers=self.headers
                )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from exc
        if response.status_code != 200:
            raise SpeechError(
                f"The speech server at {self.base_url} refused a line (HTTP "
                f"{response.status_code}: {response.text[:ERROR_BODY_CHARS].strip()}). Check "
                "FAWN_TTS_OPENAI_MODEL, FAWN_TTS_OPENAI_VOICES and FAWN_TTS_OPENAI_API_KEY."
            )
        try:
            return read_wav(response.content)
        except AudioError as exc:
            raise SpeechError(
                f"The speech server at {self.base_url} did not answer with WAV audio ({exc})."
            ) from exc

    def _unreachable(self, exc: Exception) -> SpeechError:
        return SpeechError(
            f"No speech server answers at {self.base_url} ({type(exc).__name__}: {exc}). Start "
            "it, fix FAWN_TTS_OPENAI_BASE_URL, or use FAWN_TTS_BACKEND=espeak."
        )


def speech_backend(settings: TtsSettings) -> SpeechBackend:
    """The backend `settings` name, with its two voices."""
    if settings.backend is SpeechBackendName.OPENAI:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAiSpeechBackend(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_voices,
            api_key=key,
            timeout_s=settings.timeout_s,
        )
    return EspeakBackend(settings.espeak_voices, settings.espeak_binary)
