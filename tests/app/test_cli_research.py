"""`fawn research` from a terminal: a stored job, progress on stderr, the report on stdout or
in a file."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from app.jobs.models import Job, JobStatus
from app.jobs.store import SqliteJobStore
from serving.endpoint import Endpoint

FAWN = Path(sys.executable).with_name("fawn")
QUESTION = "Were Scott Derrickson and Ed Wood of the same nationality?"


def _fawn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAWN), "research", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def _jobs(data_dir: Path) -> list[Job]:
    """Every job in the data dir's job store (the one `fawn api` and `fawn jobs` read)."""
    store = SqliteJobStore(data_dir / "jobs.sqlite3")
    try:
        return store.list(limit=100).jobs
    finally:
        store.close()


def test_an_empty_question_is_a_clean_error_and_no_job(isolated_env: Path) -> None:
    result = _fawn("  ")
    assert result.returncode == 2
    assert "Error: The question is empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert _jobs(isolated_env) == []


def test_an_invalid_locale_is_a_clean_error_and_no_job(isolated_env: Path) -> None:
    result = _fawn("--locale", "not a locale!", QUESTION)
    assert result.returncode == 2
    assert "Error: Invalid option" in result.stderr
    assert _jobs(isolated_env) == []


def test_an_out_of_range_option_is_a_usage_error_and_no_job(isolated_env: Path) -> None:
    result = _fawn("--max-steps", "0", QUESTION)
    assert result.returncode == 2
    assert "Invalid value for '--max-steps'" in result.stderr
    assert _jobs(isolated_env) == []


def test_an_unknown_report_kind_is_a_usage_error_and_no_job(isolated_env: Path) -> None:
    result = _fawn("--report", "poem", QUESTION)
    assert result.returncode == 2
    assert "Invalid value for '--report'" in result.stderr and "auto" in result.stderr
    assert _jobs(isolated_env) == []


def test_a_question_too_long_for_the_graph_is_refused_before_any_job(isolated_env: Path) -> None:
    result = _fawn("why " * 2000)
    assert result.returncode == 2
    assert "Error: The question is 7999 characters long" in result.stderr
    assert _jobs(isolated_env) == []


def test_a_podcast_over_the_report_file_is_refused(isolated_env: Path, tmp_path: Path) -> None:
    result = _fawn("--podcast", "--out", str(tmp_path / "report.wav"), QUESTION)
    assert result.returncode == 2
    assert "would be overwritten by the podcast" in result.stderr
    assert _jobs(isolated_env) == []


def test_a_broken_speech_backend_fails_before_the_engine_and_any_job(isolated_env: Path) -> None:
    result = _fawn(
        "--podcast", QUESTION,
        env={"FAWN_TTS_ESPEAK_BINARY": "/nonexistent/espeak-ng",
             "FAWN_LLM_BASE_URL": "http://127.0.0.1:9/v1"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "Error:" in result.stderr and "espeak" in result.stderr
    assert "No LLM engine answers" not in result.stderr, "the speech check comes first"
    assert _jobs(isolated_env) == []


def test_an_unreachable_engine_is_a_clean_error_and_no_job(isolated_env: Path) -> None:
    result = _fawn(QUESTION, env={"FAWN_LLM_BASE_URL": "http://127.0.0.1:9/v1"})
    assert result.returncode == 2
    assert "Error: No LLM engine answers at http://127.0.0.1:9/v1" in result.stderr
    assert _jobs(isolated_env) == []


@pytest.mark.engine
def test_research_runs_as_a_stored_job_and_writes_its_cited_report(
    engine: Endpoint, hotpotqa_path: Path, tmp_path: Path, isolated_env: Path
) -> None:
    out = tmp_path / "report.md"
    result = _fawn(
        "--corpus", str(hotpotqa_path), "--no-coder", "--max-steps", "1",
        "--out", str(out), QUESTION,
        env={"FAWN_LLM_BASE_URL": engine.base_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "stdin is not a terminal: the plan is accepted as made" in result.stderr
    assert "passages added" in result.stderr
    assert "Step 1:" in result.stderr
    assert re.search(r"\[\d+\] Scott Derrickson https://en\.wikipedia\.org/wiki/", result.stderr)
    assert result.stdout == "", "the report goes to --out, not stdout"
    report = out.read_text()
    assert report.startswith(f"# {QUESTION}\n\n## Answer\n\n")
    body, sources = report.split("\n## Sources\n")
    assert re.search(r"\[\d+\]", body)
    assert "https://en.wikipedia.org/wiki/Scott_Derrickson" in sources
    [job] = _jobs(isolated_env)
    assert f"Job {job.id}: follow with `fawn jobs show {job.id}`" in result.stderr
    assert job.status is JobStatus.DONE
    assert job.question == QUESTION
    assert job.report == report, "the report written is the job's stored report"
    assert job.options["max_step_num"] == 1 and job.options["enable_coder"] is False
    assert any(s["url"] == "https://en.wikipedia.org/wiki/Scott_Derrickson" for s in job.sources)
    logged = _event_types(isolated_env, job.id)
    for kind in ("plan", "step_started", "source_added", "step_done", "report_chunk", "done"):
        assert kind in logged, f"no {kind} event in the job's log: {logged}"


@pytest.mark.engine
def test_research_with_podcast_stores_the_audio_and_writes_it_beside_the_report(
    engine: Endpoint, hotpotqa_path: Path, tmp_path: Path, isolated_env: Path
) -> None:
    out = tmp_path / "derrickson.md"
    result = _fawn(
        "--corpus", str(hotpotqa_path), "--no-coder", "--max-steps", "1", "--podcast",
        "--out", str(out), QUESTION,
        env={"FAWN_LLM_BASE_URL": engine.base_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    audio = tmp_path / "derrickson.wav"
    assert f"Podcast written to {audio}" in result.stderr
    assert "Podcast (done)" in result.stderr, "podcast progress is shown live"
    with wave.open(str(audio)) as sound:
        assert sound.getnframes() / sound.getframerate() > 2.0
    [job] = _jobs(isolated_env)
    assert job.status is JobStatus.DONE and job.options["podcast"] is True
    store = SqliteJobStore(isolated_env / "jobs.sqlite3")
    try:
        stored = store.get_artifact(job.id, "podcast.wav")
        transcript = store.get_artifact(job.id, "podcast.txt")
        stages = [e.data["stage"] for e in store.events(job.id) if e.type == "podcast"]
    finally:
        store.close()
    assert stored is not None and stored[1] == audio.read_bytes()
    assert transcript is not None and transcript[1].strip()
    assert stages[-1] == "done" and "speaking" in stages
    assert out.read_text() == job.report


def _event_types(data_dir: Path, job_id: str) -> list[str]:
    store = SqliteJobStore(data_dir / "jobs.sqlite3")
    try:
        return [event.type for event in store.events(job_id)]
    finally:
        store.close()


@pytest.mark.engine
def test_a_failed_job_exits_2_with_its_cause_and_fawn_jobs_retry_finishes_it(
    engine: Endpoint, hotpotqa_path: Path, tmp_path: Path, isolated_env: Path
) -> None:
    # Every LLM call times out at once, and the outage is not waited out: the run fails at its
    # first call, after the job exists.
    result = _fawn(
        "--corpus", str(hotpotqa_path), "--no-coder", "--max-steps", "1", QUESTION,
        env={"FAWN_LLM_BASE_URL": engine.base_url, "FAWN_LLM_TIMEOUT_S": "0.001",
             "FAWN_LLM_RETRIES": "0", "FAWN_JOBS_OUTAGE_LIMIT_S": "0"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    [job] = _jobs(isolated_env)
    assert job.status is JobStatus.FAILED and job.error
    assert job.attempts == 1
    assert f"Error: Job {job.id} failed:" in result.stderr
    assert f"fawn jobs show {job.id}" in result.stderr
    assert f"fawn jobs retry {job.id}" in result.stderr
    assert result.stdout == ""

    out = tmp_path / "report.md"
    retried = subprocess.run(
        [str(FAWN), "jobs", "retry", job.id, "--out", str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "COLUMNS": "200", "FAWN_LLM_BASE_URL": engine.base_url},
    )
    assert retried.returncode == 0, retried.stderr
    [done] = _jobs(isolated_env)
    assert done.id == job.id and done.status is JobStatus.DONE and done.error is None
    assert done.attempts == 2
    assert done.report and out.read_text() == done.report
    again = subprocess.run(
        [str(FAWN), "jobs", "retry", job.id], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2 and "Only failed or cancelled jobs retry" in again.stderr


@pytest.mark.engine
def test_in_a_terminal_the_plan_is_reviewed_and_the_edited_step_is_researched(
    engine: Endpoint, hotpotqa_path: Path, tmp_path: Path, isolated_env: Path
) -> None:
    out = tmp_path / "report.md"
    terminal, stdin = pty.openpty()
    # Typed ahead: the terminal holds the lines until the review prompt reads them.
    os.write(terminal, b"e\nScott Derrickson: What nationality is Scott Derrickson?\n\n")
    result = subprocess.run(
        [str(FAWN), "research", "--corpus", str(hotpotqa_path), "--no-coder",
         "--max-steps", "1", "--out", str(out), QUESTION],
        stdin=stdin, capture_output=True, text=True, timeout=540,
        env={**os.environ, "COLUMNS": "200", "FAWN_LLM_BASE_URL": engine.base_url},
    )  # fmt: skip
    os.close(stdin)
    os.close(terminal)
    assert result.returncode == 0, result.stderr
    assert "stdin is not a terminal" not in result.stderr
    assert "The plan awaits review." in result.stderr
    assert "Accept this plan?" in result.stdout
    assert "Step 1: Scott Derrickson" in result.stderr
    [job] = _jobs(isolated_env)
    assert job.status is JobStatus.DONE and job.options["auto_accept_plan"] is False
    assert job.plan is not None
    assert [step["title"] for step in job.plan["steps"]] == ["Scott Derrickson"]
    assert out.read_text() == job.report
