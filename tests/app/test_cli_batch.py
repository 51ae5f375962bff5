"""`fawn batch` on the real engine: one report per question, summary.json, and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.jobs.store import SqliteJobStore
from serving.endpoint import Endpoint
from tests.app.api.conftest import build_corpus

pytestmark = pytest.mark.engine
FAWN = Path(sys.executable).with_name("fawn")
QUESTIONS = [
    "Which magazine was started first, Arthur's Magazine or First for Women?",
    "Were Scott Derrickson and Ed Wood of the same nationality?",
]


def run_batch(
    batch_file: Path, out: Path, data_dir: Path, engine: Endpoint
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAWN_DATA_DIR": str(data_dir), "FAWN_LLM_BASE_URL": engine.base_url}
    return subprocess.run(
        [str(FAWN), "batch", str(batch_file), "--out", str(out), "--max-steps", "1",
         "--concurrency", "2"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_batch_writes_reports_and_a_rerun_skips_finished_questions(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    batch_file = tmp_path / "questions.txt"
    batch_file.write_text("# two HotpotQA questions\n" + "\n".join(QUESTIONS) + "\n\n")
    out = tmp_path / "reports"

    first = run_batch(batch_file, out, tmp_path, engine)
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [row["question"] for row in summary] == QUESTIONS
    assert all(row["status"] == "done" for row in summary)
    for row in summary:
        assert "## Answer" in (out / row["report_file"]).read_text()

    rerun = run_batch(batch_file, out, tmp_path, engine)
    assert rerun.returncode == 0, rerun.stderr
    assert "2 questions, 2 already done" in rerun.stderr
    assert json.loads((out / "summary.json").read_text()) == summary
    assert SqliteJobStore(tmp_path / "jobs.sqlite3").list().total == 2


def test_batch_resumes_an_interrupted_job_instead_of_starting_over(
    engine: Endpoint, tmp_path: Path, hotpotqa_path: Path
) -> None:
    build_corpus(tmp_path, hotpotqa_path)
    batch_file = tmp_path / "questions.jsonl"
    batch_file.write_text(json.dumps({"question": QUESTIONS[0], "max_step_num": 1}) + "\n")
    out = tmp_path / "reports"
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    # An earlier run that was interrupted: its job is queued in the store and in the summary.
    job = store.create(QUESTIONS[0], {"max_step_num": 1, "auto_accept_plan": True})
    out.mkdir()
    (out / "summary.json").write_text(
        json.dumps([{"index": 1, "question": QUESTIONS[0], "job_id": job.id, "status": "queued"}])
    )

    result = run_batch(batch_file, out, tmp_path, engine)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary[0]["job_id"] == job.id and summary[0]["status"] == "done"
    assert store.list().total == 1


def test_batch_file_with_a_bad_line_is_a_clear_error(tmp_path: Path) -> None:
    batch_file = tmp_path / "questions.jsonl"
    batch_file.write_text('{"question": "ok"}\n{"nope": 1}\n')
    result = subprocess.run(
        [str(FAWN), "batch", str(batch_file), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Line 2" in result.stderr and "Traceback" not in result.stderr
