"""The HotpotQA eval on the real benchmark file: loading, and the runner with a scripted
research function (results routed to rows, failures recorded, finished questions skipped)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents.evaluation.hotpotqa import (
    EvalResults,
    Question,
    build_corpus,
    load_questions,
    open_results,
    run_eval,
)
from agents.research import ResearchResult
from agents.sources import Source, new_source
from agents.state import Route
from agents.tools.corpus import Document, LocalCorpus
from agents.tools.ingest import wikipedia_url
from agents.tools.search import corpus_path
from serving.errors import ConfigError, EngineError

MODEL = "smollm2-135m-instruct"


def outcome(answer: str, sources: list[Source], report: str = "") -> ResearchResult:
    """A research result as the pipeline returns it, with scripted content."""
    return ResearchResult(
        question="scripted",
        route=Route.RESEARCH,
        report=report or f"## Answer\n\n{answer}",
        answer=answer,
        sources=sources,
        plan=None,
        llm_calls=4,
        prompt_tokens=1000,
        completion_tokens=200,
        wall_s=1.0,
    )


@dataclass
class ScriptedResearch:
    """Answers each question from a script; a scripted exception is raised instead."""

    script: dict[str, ResearchResult | Exception]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, question: str) -> ResearchResult:
        self.asked.append(question)
        reply = self.script[question]
        if isinstance(reply, Exception):
            raise reply
        return reply


def _source(title: str, *, cited: bool) -> Source:
    source = new_source(wikipedia_url(title), title, f"{title} passage.", "local")
    return source.model_copy(update={"cited": cited})


@pytest.fixture
def questions(hotpotqa_path: Path) -> list[Question]:
    return load_questions(hotpotqa_path, limit=3)


def test_load_questions_reads_gold_answers_and_supporting_titles(hotpotqa_path: Path) -> None:
    questions = load_questions(hotpotqa_path)
    assert len(questions) == 20
    first = questions[0]
    assert first.question == "Were Scott Derrickson and Ed Wood of the same nationality?"
    assert first.answer == "yes"
    assert first.type == "comparison"
    assert set(first.supporting_titles) == {"Scott Derrickson", "Ed Wood"}
    assert all(len(q.supporting_titles) == 2 for q in questions)
    assert len(load_questions(hotpotqa_path, limit=5)) == 5


def test_load_questions_refuses_a_file_that_is_not_hotpotqa(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"questions": []}))
    with pytest.raises(ConfigError, match="--data"):
        load_questions(wrong)


def test_build_corpus_holds_each_distinct_paragraph_at_its_wikipedia_url(
    hotpotqa_path: Path, tmp_path: Path
) -> None:
    raw = json.loads(hotpotqa_path.read_text())
    paragraphs = [(title, "".join(text).strip()) for q in raw for title, text in q["context"]]
    assert len(paragraphs) == 200
    corpus = LocalCorpus(corpus_path(tmp_path))
    corpus.add([Document.passage(title="Stale", url="file:///old.txt", text="From another run.")])

    assert build_corpus(hotpotqa_path, tmp_path) == len(set(paragraphs)) == 199

    stored = {(doc.title, doc.text) for doc in corpus.list_documents()}
    assert stored == set(paragraphs)
    assert all(doc.url == wikipedia_url(doc.title) for doc in corpus.list_documents())
    hits = corpus.search("Scott Derrickson director", limit=3)
    assert hits[0].url == "https://en.wikipedia.org/wiki/Scott_Derrickson"
    # Building again changes nothing.
    assert build_corpus(hotpotqa_path, tmp_path) == 199


async def test_runner_scores_each_question_and_records_a_failure_as_zero(
    questions: list[Question], hotpotqa_path: Path, tmp_path: Path
) -> None:
    good, bad, partial = questions
    research = ScriptedResearch(
        {
            good.question: outcome(
                answer="Yes, both were American [1].",
                report="## Answer\nYes, both were American [1].",
                sources=[_source("Scott Derrickson", cited=True), _source("Ed Wood", cited=True)],
            ),
            bad.question: EngineError("The engine at http://127.0.0.1:1/v1 went away."),
            partial.question: outcome(
                answer="The series is The Hork-Bajir Chronicles.",
                report="It is a companion to Animorphs.",
                sources=[
                    _source("The Hork-Bajir Chronicles", cited=True),
                    _source("Animorphs", cited=False),
                ],
            ),
        }
    )
    out = tmp_path / "results.json"
    results = await run_eval(questions, research, open_results(out, hotpotqa_path, MODEL), out)

    rows = {row.id: row for row in results.rows}
    assert list(rows) == [q.id for q in questions]
    assert rows[good.id].answer_recall == 1.0
    assert rows[good.id].short_answer == "yes"
    assert (rows[good.id].exact_match, rows[good.id].f1) == (1.0, 1.0)
    assert (rows[good.id].title_recall, rows[good.id].title_precision) == (1.0, 1.0)
    assert rows[good.id].llm_calls == 4
    assert rows[good.id].error is None

    assert rows[bad.id].error == "EngineError: The engine at http://127.0.0.1:1/v1 went away."
    assert rows[bad.id].answer_recall == rows[bad.id].f1 == rows[bad.id].title_recall == 0.0

    # Gold "Animorphs" is not in the Answer, only in the report; one of two gold titles is
    # cited, and both were found.
    assert rows[partial.id].answer_recall == 0.0
    assert rows[partial.id].report_recall == 1.0
    assert rows[partial.id].cited_titles == ["The Hork-Bajir Chronicles"]
    assert (rows[partial.id].title_recall, rows[partial.id].title_precision) == (0.5, 1.0)
    assert rows[partial.id].source_title_recall == 1.0

    totals = results.totals
    assert totals is not None
    assert (totals.questions, totals.failed, totals.answers_found) == (3, 1, 1)
    assert totals.answer_recall == pytest.approx(1 / 3, abs=1e-4)
    assert totals.title_recall == pytest.approx(0.5)
    assert totals.mean_llm_calls == pytest.approx(8 / 3, abs=1e-4)

    on_disk = EvalResults.model_validate_json(out.read_text())
    assert on_disk.rows == results.rows
    assert on_disk.model == MODEL


async def test_rerun_skips_finished_questions_and_retries_failed_ones(
    questions: list[Question], hotpotqa_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    answers = {q.question: outcome(answer=q.answer, sources=[]) for q in questions}
    first = ScriptedResearch({**answers, questions[1].question: EngineError("down")})
    await run_eval(questions[:2], first, open_results(out, hotpotqa_path, MODEL), out)
    assert first.asked == [q.question for q in questions[:2]]

    second = ScriptedResearch(answers)
    results = await run_eval(questions, second, open_results(out, hotpotqa_path, MODEL), out)

    assert second.asked == [questions[1].question, questions[2].question]
    assert [row.id for row in results.rows] == [q.id for q in questions]
    assert all(row.error is None and row.answer_recall == 1.0 for row in results.rows)
    assert results.totals is not None and results.totals.failed == 0


async def test_resume_refuses_results_of_another_model(
    questions: list[Question], hotpotqa_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    research = ScriptedResearch({questions[0].question: outcome("yes", [])})
    await run_eval(questions[:1], research, open_results(out, hotpotqa_path, MODEL), out)
    with pytest.raises(ConfigError, match="another --out"):
        open_results(out, hotpotqa_path, "qwen3-4b")
