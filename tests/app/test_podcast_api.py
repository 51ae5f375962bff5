"""Podcast routes on the real engine and a real SQLite job store: start (under pressure), follow,
play with Range.

A finished job is written straight into the store (a research run costs minutes on a CPU; the
podcast only needs the finished report), then the podcast is made through the API exactly as a
client would: POST, follow the `podcast` events, fetch the audio and transcript.
"""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agents.podcast import EspeakVoice, SpeechBackendName, TtsSettings
from agents.podcast.settings import DEFAULT_ESPEAK_VOICES
from app.api.app import create_app
from app.jobs.models import JobOptions, JobStatus
from app.jobs.store import JobStore
from app.settings import Settings
from serving.budget import CallClass
from serving.endpoint import Endpoint
from serving.pressure import PressureSample, PressureSettings
from serving.settings import LLMSettings
from tests.agents.test_podcast import REPORT
from tests.agents.test_tts import SpeechServer, speech_server  # noqa: F401 (fixture)
from tests.conftest import free_port

pytestmark = pytest.mark.engine
QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"
PODCAST_TIMEOUT_S = 400
SECONDS_PER_WORD = (0.2, 1.5)
# Long enough that the script call queues before pressure clears, even on a busy machine.
CLEAR_AFTER_S = 20.0


def podcast_app(engine: Endpoint, data_dir: Path, tts: TtsSettings | None = None) -> FastAPI:
    """The API on `engine`, its pressure clearing `CLEAR_AFTER_S` after readings fall."""
    settings = Settings(
        data_dir=data_dir,
        llm=LLMSettings(base_url=engine.base_url),
        pressure=PressureSettings(clear_after_s=CLEAR_AFTER_S),
        tts=tts or TtsSettings(),
    )
    return create_app(settings)


def finished_job(client: TestClient, report: str = REPORT) -> str:
    """A done job with `report`, written into the app's job store."""
    store: JobStore = client.app.state.store  # type: ignore[attr-defined]
    job = store.create(QUESTION, JobOptions().model_dump())
    store.update(job.id, status=JobStatus.DONE, report=report)
    return job.id


def podcast_events(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    """The job's `podcast` events so far."""
    store: JobStore = client.app.state.store  # type: ignore[attr-defined]
    return [e.data for e in store.events(job_id) if e.type == "podcast"]


def wait_for_podcast(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    """Poll the events until the podcast is done or failed; returns its events."""
    deadline = time.monotonic() + PODCAST_TIMEOUT_S
    while time.monotonic() < deadline:
        events = podcast_events(client, job_id)
        if events and events[-1]["stage"] in ("done", "error"):
            return events
        time.sleep(0.5)
    pytest.fail(f"no podcast after {PODCAST_TIMEOUT_S} s: {podcast_events(client, job_id)}")


@pytest.fixture(scope="module")
def client(engine: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(podcast_app(engine, tmp_path_factory.mktemp("podcast-api"))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def made(client: TestClient) -> dict[str, Any]:
    """One podcast made through the API, started under memory pressure (set on the app's real
    monitor; its own sampling of the engine clears it `CLEAR_AFTER_S` later)."""
    job_id = finished_job(client)
    services = client.app.state.services  # type: ignore[attr-defined]
    services.pressure.update(PressureSample(kv_usage=0.99))
    assert services.budget.under_pressure
    response = client.post(f"/api/research/{job_id}/podcast")
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/research/{job_id}/podcast"
    assert response.json()["already_running"] is False
    deadline = time.monotonic() + CLEAR_AFTER_S / 2
    while services.budget.snapshot().queued[CallClass.TTS] < 1:
        assert time.monotonic() < deadline, "the script call never queued"
        time.sleep(0.05)
    waiting = {
        "snapshot": services.budget.snapshot(),
        "stages": [e["stage"] for e in podcast_events(client, job_id)],
    }
    again = client.post(f"/api/research/{job_id}/podcast")
    early = client.get(f"/api/research/{job_id}/podcast")
    events = wait_for_podcast(client, job_id)
    return {"id": job_id, "events": events, "again": again, "early": early, "waiting": waiting}


def test_podcast_of_an_unfinished_or_unknown_job_is_refused(client: TestClient) -> None:
    store: JobStore = client.app.state.store  # type: ignore[attr-defined]
    queued = store.create(QUESTION, JobOptions().model_dump())
    response = client.post(f"/api/research/{queued.id}/podcast")
    assert response.status_code == 409
    assert "not done" in response.json()["detail"]
    assert client.post("/api/research/no-such-job/podcast").status_code == 404
    assert client.get("/api/research/no-such-job/podcast").status_code == 404


def test_podcast_is_404_while_made_and_a_second_post_joins_it(made: dict[str, Any]) -> None:
    assert made["early"].status_code == 404
    assert "being made" in made["early"].json()["detail"]
    assert made["again"].status_code == 202 and made["again"].json()["already_running"] is True


def test_podcast_started_under_pressure_waits_in_the_tts_class_then_finishes(
    made: dict[str, Any],
) -> None:
    snapshot = made["waiting"]["snapshot"]
    assert snapshot.under_pressure and snapshot.in_flight[CallClass.TTS] == 0
    assert made["waiting"]["stages"] == ["deferred", "script"]
    assert made["events"][-1]["stage"] == "done"


def test_podcast_progress_is_in_the_job_events(made: dict[str, Any]) -> None:
    stages = [e["stage"] for e in made["events"]]
    assert stages[:3] == ["deferred", "script", "script_ready"] and stages[-1] == "done"
    total = made["events"][2]["total"]
    speaking = [e for e in made["events"] if e["stage"] == "speaking"]
    assert [(e["done"], e["total"]) for e in speaking] == [(n, total) for n in range(total)]


def test_podcast_wav_and_transcript_fit_each_other(client: TestClient, made: dict) -> None:
    audio = client.get(f"/api/research/{made['id']}/podcast")
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/wav"
    assert audio.headers["accept-ranges"] == "bytes"
    with wave.open(io.BytesIO(audio.content)) as reader:
        duration = reader.getnframes() / reader.getframerate()
    transcript = client.get(f"/api/research/{made['id']}/podcast/transcript")
    assert transcript.headers["content-type"].startswith("text/plain")
    lines = transcript.text.splitlines()
    assert {line.split(":", 1)[0] for line in lines} == set(TtsSettings().hosts)
    words = sum(len(line.split(":", 1)[1].split()) for line in lines)
    assert SECONDS_PER_WORD[0] < duration / words < SECONDS_PER_WORD[1]


@pytest.mark.parametrize(("fmt", "media_type"), [("ogg", "audio/ogg"), ("mp3", "audio/mpeg")])
def test_podcast_comes_in_compressed_formats(
    client: TestClient, made: dict, fmt: str, media_type: str
) -> None:
    response = client.get(f"/api/research/{made['id']}/podcast", params={"format": fmt})
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    wav = client.get(f"/api/research/{made['id']}/podcast").content
    assert 0 < len(response.content) < len(wav)


def test_range_requests_return_the_matching_bytes(client: TestClient, made: dict) -> None:
    url = f"/api/research/{made['id']}/podcast"
    full = client.get(url).content
    size = len(full)
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=1000-": (1000, size - 1),
        "bytes=-500": (size - 500, size - 1),
        f"bytes=10-{size + 1000}": (10, size - 1),
    }
    for header, (start, end) in cases.items():
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == full[start : end + 1], header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert int(response.headers["content-length"]) == end - start + 1


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes=50-10", "bytes=abc", "bytes=-0"])
def test_unsatisfiable_ranges_are_416(client: TestClient, made: dict, header: str) -> None:
    url = f"/api/research/{made['id']}/podcast"
    size = len(client.get(url).content)
    response = client.get(url, headers={"Range": header.format(size=size)})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"


def test_the_report_is_untouched_by_its_podcast(client: TestClient, made: dict) -> None:
    job = client.get(f"/api/research/{made['id']}").json()
    assert job["status"] == "done"
    assert client.get(f"/api/research/{made['id']}/report").text == REPORT


@pytest.mark.parametrize(
    "tts",
    [
        TtsSettings(espeak_voices=(DEFAULT_ESPEAK_VOICES[0], EspeakVoice(name="xx-nope"))),
        TtsSettings(
            backend=SpeechBackendName.OPENAI, openai_base_url=f"http://127.0.0.1:{free_port()}/v1"
        ),
    ],
    ids=["unknown-espeak-voice", "unreachable-speech-server"],
)
def test_a_bad_speech_configuration_is_a_400_and_the_report_stays(
    engine: Endpoint, tmp_path: Path, tts: TtsSettings
) -> None:
    with TestClient(podcast_app(engine, tmp_path / "data", tts)) as bad:
        job_id = finished_job(bad)
        response = bad.post(f"/api/research/{job_id}/podcast")
        assert response.status_code == 400
        assert "FAWN_TTS_" in response.json()["detail"]
        assert bad.get(f"/api/research/{job_id}/podcast").status_code == 404
        assert bad.get(f"/api/research/{job_id}/report").text == REPORT
        assert bad.app.state.store.artifacts(job_id) == []  # type: ignore[attr-defined]


def test_a_speech_failure_midway_is_an_error_event_and_the_report_stays(
    engine: Endpoint,
    tmp_path: Path,
    speech_server: SpeechServer,  # noqa: F811
) -> None:
    speech_server.answer = "error"
    tts = TtsSettings(backend=SpeechBackendName.OPENAI, openai_base_url=speech_server.base_url)
    with TestClient(podcast_app(engine, tmp_path / "data", tts)) as failing:
        job_id = finished_job(failing)
        assert failing.post(f"/api/research/{job_id}/podcast").status_code == 202
        events = wait_for_podcast(failing, job_id)
        assert events[-1]["stage"] == "error"
        assert "HTTP 400" in events[-1]["message"]
        missing = failing.get(f"/api/research/{job_id}/podcast")
        assert missing.status_code == 404
        assert "The podcast failed" in missing.json()["detail"]
        job = failing.get(f"/api/research/{job_id}").json()
        assert job["status"] == "done" and job["error"] is None
        assert failing.get(f"/api/research/{job_id}/report").text == REPORT
        assert failing.app.state.store.artifacts(job_id) == []  # type: ignore[attr-defined]
