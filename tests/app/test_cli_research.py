"""`fawn research` from a terminal: progress on stderr, the report on stdout or in a file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_an_empty_question_is_a_clean_error() -> None:
    result = _fawn("  ")
    assert result.returncode == 2
    assert "Error: The question is empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_locale_is_a_clean_error() -> None:
    result = _fawn("--locale", "not a locale!", QUESTION)
    assert result.returncode == 2
    assert "Error: Invalid option" in result.stderr


def test_an_unreachable_engine_is_a_clean_error() -> None:
    result = _fawn(QUESTION, env={"FAWN_LLM_BASE_URL": "http://127.0.0.1:9/v1"})
    assert result.returncode == 2
    assert "Error: No LLM engine answers at http://127.0.0.1:9/v1" in result.stderr


@pytest.mark.engine
def test_research_adds_the_corpus_and_writes_a_cited_report(
    engine: Endpoint, hotpotqa_path: Path, tmp_path: Path
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
