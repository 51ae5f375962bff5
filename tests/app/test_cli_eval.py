"""`fawn eval hotpotqa` end to end: the real pipeline on the real engine, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.evaluation.hotpotqa import EvalResults, QuestionResult
from agents.tools.corpus import LocalCorpus
from agents.tools.search import corpus_path
from serving.endpoint import Endpoint

FAWN = Path(sys.executable).with_name("fawn")


def _fawn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAWN), *args],
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def _eval_one(
    engine: Endpoint, data: Path, out: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """`fawn eval hotpotqa` on the first question of `data`, against `engine`."""
    args = ("eval", "hotpotqa", "--data", str(data), "--out", str(out), "--limit", "1")
    return _fawn(*args, *options, env={"FAWN_LLM_BASE_URL": engine.base_url})


@pytest.mark.engine
def test_eval_hotpotqa_runs_one_question_and_writes_a_complete_row(
    engine: Endpoint, hotpotqa_path: Path, tmp_path: Path, isolated_env: Path
) -> None:
    out = tmp_path / "results.json"

    result = _eval_one(engine, hotpotqa_path, out)

    assert result.returncode == 0, result.stdout + result.stderr
    results = EvalResults.model_validate_json(out.read_text())
    assert results.model == engine.model
    assert len(results.rows) == 1
    row = results.rows[0]
    assert row.error is None, row.error
    assert row.question == "Were Scott Derrickson and Ed Wood of the same nationality?"
    assert row.answer.strip(), "the pipeline should write an Answer section"
    assert row.source_titles, "the local corpus search should have found sources"
    assert row.llm_calls > 0 and row.prompt_tokens > 0 and row.completion_tokens > 0
    assert row.wall_s > 0
    assert set(json.loads(out.read_text())["rows"][0]) == set(QuestionResult.model_fields)
    assert results.totals is not None and results.totals.questions == 1
    assert "answer recall" in result.stdout and "cited sentences supported" in result.stdout
    # The eval keeps its corpus in its own data dir, never in the user's.
    assert (isolated_env / "eval" / "hotpotqa" / "corpus.sqlite3").is_file()
    assert not (isolated_env / "corpus.sqlite3").exists()

    rerun = _eval_one(engine, hotpotqa_path, out)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 of 1 questions already done" in rerun.stdout
    assert EvalResults.model_validate_json(out.read_text()).rows == results.rows


@pytest.mark.engine
def test_eval_hotpotqa_unanswerable_runs_without_the_gold_paragraphs_and_restores_them(
    engine: Endpoint, hotpotqa_path: Path, tmp_path: Path, isolated_env: Path
) -> None:
    out = tmp_path / "unanswerable.json"

    result = _eval_one(engine, hotpotqa_path, out, "--unanswerable")

    assert result.returncode == 0, result.stdout + result.stderr
    results = EvalResults.model_validate_json(out.read_text())
    assert results.unanswerable and len(results.rows) == 1
    row = results.rows[0]
    assert row.error is None, row.error
    assert not set(row.source_titles) & set(row.supporting_titles)
    assert "abstained (evidence missing)" in result.stdout
    corpus = LocalCorpus(corpus_path(isolated_env / "eval" / "hotpotqa"))
    assert set(row.supporting_titles) <= {doc.title for doc in corpus.list_documents()}
    mixed = _eval_one(engine, hotpotqa_path, out)
    assert mixed.returncode != 0 and "another --out" in mixed.stdout + mixed.stderr


def test_eval_hotpotqa_refuses_a_file_that_is_not_hotpotqa(tmp_path: Path) -> None:
    data = tmp_path / "notes.json"
    data.write_text(json.dumps({"title": "notes"}))

    result = _fawn("eval", "hotpotqa", "--data", str(data), "--out", str(tmp_path / "r.json"))

    assert result.returncode == 2
    assert result.stderr.startswith("Error: Cannot read HotpotQA questions")
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "r.json").exists()
