"""How a podcast is made: the two hosts, the speech backend and its voices, the length caps.

Nested in the app settings as `settings.tts` (environment: `FAWN_TTS_BACKEND=openai`,
`FAWN_TTS_OPENAI_BASE_URL=http://host:8880/v1`, ...).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, SecretStr, model_validator

DEFAULT_HOSTS = ("Maya", "Theo")


class SpeechBackendName(StrEnum):
    """Where speech comes from."""

    ESPEAK = "espeak"
    OPENAI = "openai"


class EspeakVoice(BaseModel):
    """One espeak-ng voice: a voice name (optionally `+variant`), pitch and speed."""

    name: str = Field(min_length=1, description="espeak-ng voice, e.g. 'en-us+m3'.")
    pitch: int = Field(default=50, ge=0, le=99, description="espeak-ng -p (0-99).")
    speed: int = Field(default=165, ge=80, le=450, description="Words per minute (espeak-ng -s).")


# Measured here: en-us+m3 at pitch 35 speaks around 95 Hz, en-us+f2 at pitch 70 around 240 Hz.
DEFAULT_ESPEAK_VOICES = (
    EspeakVoice(name="en-us+m3", pitch=35, speed=160),
    EspeakVoice(name="en-us+f2", pitch=70, speed=175),
)


class TtsSettings(BaseModel):
    """The podcast: hosts, speech backend, voices (first host first) and length caps."""

    backend: SpeechBackendName = Field(
        default=SpeechBackendName.ESPEAK, description="espeak (local) or openai (/audio/speech)."
    )
    hosts: tuple[str, str] = Field(default=DEFAULT_HOSTS, description="The two hosts' names.")
    espeak_binary: str = Field(default="espeak-ng", description="The espeak-ng executable.")
    espeak_voices: tuple[EspeakVoice, EspeakVoice] = DEFAULT_ESPEAK_VOICES
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible speech server, e.g. http://host:8880/v1."
    )
    openai_model: str = Field(default="tts-1", description="Speech model name.")
    openai_voices: tuple[str, str] = Field(
        default=("alloy", "onyx"), description="Speech server voices for the two hosts."
    )
    openai_api_key: SecretStr | None = Field(default=None, description="Bearer key, if needed.")
    timeout_s: float = Field(default=60.0, gt=0, description="Per-line speech request timeout.")
    max_lines: int = Field(default=10, ge=4, le=40, description="Most discussion lines.")
    max_line_chars: int = Field(default=280, ge=60, le=1000, description="Longest line spoken.")
    pause_s: float = Field(default=0.35, ge=0, le=3, description="Silence between lines.")
    script_max_tokens: int = Field(default=700, ge=128, description="Cap on the script call.")

    @model_validator(mode="after")
    def _distinct_hosts(self) -> TtsSettings:
        first, second = (name.strip() for name in self.hosts)
        if not first or not second or first.lower() == second.lower():
            raise ValueError("tts.hosts must be two different, non-empty names.")
        return self
