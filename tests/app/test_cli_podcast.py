"""`fawn podcast JOB_ID` from a terminal: a finished job's podcast joins the job's artifacts.

The finished job is written straight into a real SQLite store (its report is test input); the
podcast is made by the real command on the real engine, spoken by the real espeak-ng.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.jobs.models import JobOptions, JobStatus
from app.jobs.store import SqliteJobStore
from serving.endpoint import Endpoint
from tests.agents.test_podcast import AUDIBLE_RMS, REPORT, SECONDS_PER_WORD, wav_facts
from tests.conftest import free_port

FAWN = Path(sys.executable).with_name("fawn")
QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"
# Where nothing answers: a command that got past the speech check would fail on it instead.
NO_ENGINE = "http://127.0.0.1:9/v1"


def _fawn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAWN), "podcast", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def finished_job(data_dir: Path, status: JobStatus = JobStatus.DONE) -> str:
    """A job with REPORT in the store under `data_dir`; returns its id."""
    store = SqliteJobStore(data_dir / "jobs.sqlite3")
    try:
        job = store.create(QUESTION, JobOptions().model_dump())
        store.update(job.id, status=status, report=REPORT if status is JobStatus.DONE else None)
        return job.id
    finally:
        store.close()


def open_store(data_dir: Path) -> SqliteJobStore:
    return SqliteJobStore(data_dir / "jobs.sqlite3")


@pytest.mark.engine
def test_podcast_of_a_finished_job_stores_an_audible_podcast(
    engine: Endpoint, isolated_env: Path, tmp_path: Path
) -> None:
    job_id = finished_job(isolated_env)
    out = tmp_path / "summary.mp3"
    result = _fawn(job_id, "--out", str(out), env={"FAWN_LLM_BASE_URL": engine.base_url})
    assert result.returncode == 0, result.stderr
    store = open_store(isolated_env)
    try:
        names = {a.name for a in store.artifacts(job_id)}
        transcript = store.get_artifact(job_id, "podcast.txt")
        wav = store.get_artifact(job_id, "podcast.wav")
        mp3 = store.get_artifact(job_id, "podcast.mp3")
        job = store.get(job_id)
        stages = [e.data["stage"] for e in store.events(job_id) if e.type == "podcast"]
    finally:
        store.close()
    assert {"podcast.txt", "podcast.wav", "podcast.mp3"} <= names
    assert transcript is not None and wav is not None and mp3 is not None
    assert out.read_bytes() == mp3[1]
    text = transcript[1].decode()
    assert text.strip() in result.stdout
    words = sum(len(line.split(":", 1)[1].split()) for line in text.splitlines())
    duration, rms = wav_facts(wav[1])
    assert rms > AUDIBLE_RMS
    assert SECONDS_PER_WORD[0] < duration / words < SECONDS_PER_WORD[1]
    assert stages[0] == "script" and stages[-1] == "done"
    assert job is not None and job.status is JobStatus.DONE and job.report == REPORT


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FAWN_TTS_ESPEAK_VOICES": '[{"name": "en-us+m3"}, {"name": "xx-nope"}]'}, "xx-nope"),
        (
            {
                "FAWN_TTS_BACKEND": "openai",
                "FAWN_TTS_OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
            },
            "FAWN_TTS_OPENAI_BASE_URL",
        ),
    ],
    ids=["unknown-espeak-voice", "unreachable-speech-server"],
)
def test_a_bad_speech_configuration_exits_2_and_leaves_the_report(
    isolated_env: Path, env: dict[str, str], says: str
) -> None:
    job_id = finished_job(isolated_env)
    result = _fawn(job_id, env={"FAWN_LLM_BASE_URL": NO_ENGINE, **env})
    assert result.returncode == 2, result.stderr
    assert "Error:" in result.stderr and says in result.stderr
    assert "FAWN_TTS_" in result.stderr, "the message names the setting to fix"
    assert "Traceback" not in result.stderr
    store = open_store(isolated_env)
    try:
        job = store.get(job_id)
        assert job is not None and job.status is JobStatus.DONE and job.report == REPORT
        assert store.artifacts(job_id) == []
        assert [e for e in store.events(job_id) if e.type == "podcast"] == []
    finally:
        store.close()


def test_a_podcast_needs_a_known_finished_job(isolated_env: Path) -> None:
    unknown = _fawn("no-such-job", env={"FAWN_LLM_BASE_URL": NO_ENGINE})
    assert unknown.returncode == 2
    assert "Error: No research job 'no-such-job'" in unknown.stderr
    queued = finished_job(isolated_env, JobStatus.QUEUED)
    unfinished = _fawn(queued, env={"FAWN_LLM_BASE_URL": NO_ENGINE})
    assert unfinished.returncode == 2
    assert f"Job {queued} is queued: a podcast needs its finished report" in unfinished.stderr


def test_an_unknown_audio_suffix_is_refused(isolated_env: Path, tmp_path: Path) -> None:
    job_id = finished_job(isolated_env)
    result = _fawn(job_id, "--out", str(tmp_path / "summary.flac"))
    assert result.returncode == 2
    assert "--out must end in .wav, .ogg or .mp3" in result.stderr
