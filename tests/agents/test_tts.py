"""Speech backends and audio on real tools: espeak-ng, sox, and an OpenAI-style speech server.

The speech server is a real HTTP server (uvicorn in a thread) that answers `/v1/audio/speech`
with espeak-ng's audio, so the OpenAI backend is exercised over real sockets.
"""

from __future__ import annotations

import io
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.podcast import EspeakVoice, SpeechBackendName, SpeechError, TtsSettings
from agents.podcast.audio import (
    AudioFormat,
    Pcm,
    encodable_formats,
    encode,
    join,
    read_wav,
    resample,
    write_wav,
)
from agents.podcast.settings import DEFAULT_ESPEAK_VOICES
from agents.podcast.tts import EspeakBackend, OpenAiSpeechBackend, speech_backend
from tests.conftest import free_port

SENTENCE = (
    "Arthur's Magazine was an American literary periodical published in Philadelphia "
    "from eighteen forty four to eighteen forty six."
)
# Speech at any sane rate spends between 0.2 and 1.5 seconds per word, pauses included.
SECONDS_PER_WORD = (0.2, 1.5)
# Quiet speech is still far above this (espeak speaks at an RMS of about 3000).
AUDIBLE_RMS = 300.0


def parse_wav(data: bytes) -> tuple[wave._wave_params, np.ndarray]:
    """The header and samples of a WAV file, read with the standard library only."""
    with wave.open(io.BytesIO(data)) as reader:
        params = reader.getparams()
        frames = reader.readframes(params.nframes)
    return params, np.frombuffer(frames, "<i2")


def median_pitch_hz(pcm: Pcm) -> float:
    """The median fundamental frequency of the voiced 40 ms frames (autocorrelation)."""
    x = pcm.samples.astype(np.float64)
    size = int(0.04 * pcm.rate)
    shortest, longest = int(pcm.rate / 500), int(pcm.rate / 60)
    pitches = []
    for start in range(0, len(x) - size, size // 2):
        frame = x[start : start + size] - x[start : start + size].mean()
        if np.sqrt(np.mean(frame**2)) < 500:
            continue
        corr = np.correlate(frame, frame, "full")[size - 1 :]
        lags = corr[shortest:longest]
        # The first lag close to the best one: later multiples of the period are octave errors.
        lag = int(np.argmax(lags > 0.85 * lags.max()))
        while lag + 1 < len(lags) and lags[lag + 1] > lags[lag]:
            lag += 1
        if corr[shortest + lag] > 0.3 * corr[0]:
            pitches.append(pcm.rate / (shortest + lag))
    assert pitches, "no voiced frames"
    return float(np.median(pitches))


async def test_espeak_speaks_audible_wav_whose_length_fits_the_words() -> None:
    pcm = await EspeakBackend(DEFAULT_ESPEAK_VOICES).speak(SENTENCE, 0)
    params, samples = parse_wav(write_wav(pcm))
    assert (params.nchannels, params.sampwidth) == (1, 2)
    assert params.framerate >= 8000
    assert params.nframes == len(samples) > 0
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > AUDIBLE_RMS
    per_word = params.nframes / params.framerate / len(SENTENCE.split())
    assert SECONDS_PER_WORD[0] < per_word < SECONDS_PER_WORD[1]


async def test_the_two_default_hosts_speak_at_clearly_different_pitches() -> None:
    backend = EspeakBackend(DEFAULT_ESPEAK_VOICES)
    first, second = [await backend.speak(SENTENCE, host) for host in (0, 1)]
    low, high = sorted([median_pitch_hz(first), median_pitch_hz(second)])
    assert high / low > 1.5, (low, high)


async def test_a_line_that_starts_with_a_dash_is_spoken_not_read_as_an_option() -> None:
    pcm = await EspeakBackend(DEFAULT_ESPEAK_VOICES).speak("-v is not an option here.", 1)
    assert pcm.duration_s > 0.5 and pcm.rms > AUDIBLE_RMS


@pytest.mark.parametrize("name", ["xx-no-such-voice", "en-us+no-such-variant"])
async def test_an_unknown_espeak_voice_fails_the_check_naming_the_setting(name: str) -> None:
    backend = EspeakBackend((DEFAULT_ESPEAK_VOICES[0], EspeakVoice(name=name)))
    with pytest.raises(SpeechError, match="FAWN_TTS_ESPEAK_VOICES") as caught:
        await backend.check()
    assert name.rpartition("+")[2] in str(caught.value)


async def test_the_default_espeak_voices_pass_the_check() -> None:
    await EspeakBackend(DEFAULT_ESPEAK_VOICES).check()


async def test_a_missing_espeak_binary_says_how_to_install_it() -> None:
    backend = EspeakBackend(DEFAULT_ESPEAK_VOICES, binary="espeak-ng-not-installed")
    with pytest.raises(SpeechError, match="apt install espeak-ng"):
        await backend.check()


def test_the_openai_backend_needs_a_base_url() -> None:
    with pytest.raises(SpeechError, match="FAWN_TTS_OPENAI_BASE_URL"):
        speech_backend(TtsSettings(backend=SpeechBackendName.OPENAI))


async def test_an_unreachable_speech_server_fails_the_check_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAiSpeechBackend(url, "tts-1", ("alloy", "onyx"), timeout_s=2)
    with pytest.raises(SpeechError, match="No speech server answers") as caught:
        await backend.check()
    assert url in str(caught.value)
    with pytest.raises(SpeechError, match="FAWN_TTS_OPENAI_BASE_URL"):
        await backend.speak("Hello.", 0)


@dataclass
class SpeechServer:
    """An OpenAI-compatible speech endpoint that speaks with espeak-ng; records each request."""

    base_url: str
    requests: list[dict[str, object]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    answer: str = "wav"  # or "error", "junk"

    async def speech(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.authorizations.append(request.headers.get("authorization"))
        if self.answer == "error":
            return JSONResponse({"error": {"message": "unknown voice"}}, status_code=400)
        if self.answer == "junk":
            return Response(b"<html>not audio</html>", media_type="text/html")
        voice = {"alloy": "en-us+m3", "onyx": "en-us+f2"}[str(body["voice"])]
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "--stdout"], input=str(body["input"]).encode(),
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        # Resampled to 24 kHz, as OpenAI's own speech is, so joining must convert rates.
        return Response(write_wav(resample_to_24k(read_wav(wav))), media_type="audio/wav")


def resample_to_24k(pcm: Pcm) -> Pcm:
    return resample(pcm, 24000)


@pytest.fixture
def speech_server() -> Iterator[SpeechServer]:
    port = free_port()
    server = SpeechServer(base_url=f"http://127.0.0.1:{port}/v1")
    app = Starlette(routes=[Route("/v1/audio/speech", server.speech, methods=["POST"])])
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "speech server did not start"
        time.sleep(0.01)
    yield server
    uv.should_exit = True
    thread.join(timeout=10)


def openai_settings(server: SpeechServer) -> TtsSettings:
    return TtsSettings(
        backend=SpeechBackendName.OPENAI,
        openai_base_url=server.base_url,
        openai_model="kokoro",
        openai_voices=("alloy", "onyx"),
        openai_api_key="sk-local",
    )


async def test_openai_backend_asks_for_wav_in_each_hosts_voice(speech_server: SpeechServer) -> None:
    backend = speech_backend(openai_settings(speech_server))
    await backend.check()  # the route serves no GET: any HTTP answer means reachable
    first = await backend.speak("The magazine began in 1844.", 0)
    second = await backend.speak("It closed two years later.", 1)
    assert [r["voice"] for r in speech_server.requests] == ["alloy", "onyx"]
    assert speech_server.requests[0] == {
        "model": "kokoro",
        "input": "The magazine began in 1844.",
        "voice": "alloy",
        "response_format": "wav",
    }
    assert speech_server.authorizations == ["Bearer sk-local", "Bearer sk-local"]
    assert first.rate == second.rate == 24000
    assert first.rms > AUDIBLE_RMS and second.rms > AUDIBLE_RMS


@pytest.mark.parametrize(
    ("answer", "message"), [("error", "HTTP 400: .*unknown voice"), ("junk", "not answer with WAV")]
)
async def test_a_speech_server_refusal_or_junk_is_a_speech_error(
    speech_server: SpeechServer, answer: str, message: str
) -> None:
    speech_server.answer = answer
    backend = speech_backend(openai_settings(speech_server))
    with pytest.raises(SpeechError, match=message):
        await backend.speak("Hello there.", 0)


async def test_join_converts_rates_and_puts_a_pause_between_clips() -> None:
    backend = EspeakBackend(DEFAULT_ESPEAK_VOICES)
    first = await backend.speak("First line.", 0)
    second = resample_to_24k(await backend.speak("Second line.", 1))
    joined = join([first, second], pause_s=0.5)
    assert joined.rate == first.rate
    expected = first.duration_s + 0.5 + second.duration_s
    assert joined.duration_s == pytest.approx(expected, abs=0.01)
    gap = joined.samples[len(first.samples) : len(first.samples) + int(0.5 * first.rate)]
    assert not gap.any()


def sox(data: bytes, *args: str) -> bytes:
    """`data` converted by sox, stdin to stdout (`args` name both types)."""
    return subprocess.run(["sox", *args], input=data, capture_output=True, check=True).stdout


@pytest.mark.parametrize(
    "layout",
    [
        ("-b", "16", "-c", "2", "-r", "44100"),
        ("-b", "8", "-e", "unsigned", "-c", "1", "-r", "16000"),
    ],
)
async def test_stereo_and_8_bit_wav_read_as_the_same_mono_speech(layout: tuple[str, ...]) -> None:
    pcm = await EspeakBackend(DEFAULT_ESPEAK_VOICES).speak(SENTENCE, 0)
    converted = read_wav(sox(write_wav(pcm), "-t", "wav", "-", *layout, "-t", "wav", "-"))
    assert converted.rate == int(layout[layout.index("-r") + 1])
    assert converted.duration_s == pytest.approx(pcm.duration_s, abs=0.02)
    assert converted.rms == pytest.approx(pcm.rms, rel=0.1)


@pytest.mark.parametrize(("fmt", "magic"), [(AudioFormat.OGG, b"OggS"), (AudioFormat.MP3, None)])
async def test_sox_encodes_ogg_and_mp3_that_decode_to_the_same_length(
    fmt: AudioFormat, magic: bytes | None
) -> None:
    assert fmt in encodable_formats(), f"no {fmt} encoder: install sox and libsox-fmt-mp3"
    pcm = await EspeakBackend(DEFAULT_ESPEAK_VOICES).speak(SENTENCE, 1)
    wav = write_wav(pcm)
    encoded = await encode(wav, fmt)
    assert len(encoded) < len(wav)
    if magic:
        assert encoded.startswith(magic)
    decoded = read_wav(sox(encoded, "-t", fmt.value, "-", "-t", "wav", "-"))
    # MP3 frames pad the end a little.
    assert decoded.duration_s == pytest.approx(pcm.duration_s, abs=0.15)
    assert decoded.rms > AUDIBLE_RMS
