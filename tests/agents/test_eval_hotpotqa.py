"""The HotpotQA eval on the real benchmark file: loading, and the runner with a scripted
research function (results routed to rows, failures recorded, finished questions skipped)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents.answerability import NOT_ANSWERED
from agents.evaluation.hotpotqa import (
    EvalResults,
    Question,
    build_corpus,
    gold_hidden,
    load_questions,
    open_results,
    run_eval,
)
from agents.research import ResearchResult
from agents.sources import Source, new_source
from agents.state import Route
from agents.support import CitationSupport
from agents.tools.corpus import Document, LocalCorpus
from agents.tools.ingest import load_documents, wikipedia_url
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


def test_gold_hidden_takes_a_questions_gold_paragraphs_out_while_it_runs(
    questions: list[Question], hotpotqa_path: Path, tmp_path: Path
) -> None:
    total = build_corpus(hotpotqa_path, tmp_path)
    corpus = LocalCorpus(corpus_path(tmp_path))
    documents = list(load_documents(hotpotqa_path))
    question = questions[0]
    with gold_hidden(corpus, documents, question):
        titles = {doc.title for doc in corpus.list_documents()}
        assert not titles & set(question.supporting_titles)
        assert corpus.count() == total - len(question.supporting_titles)
    assert corpus.count() == total
    assert set(question.supporting_titles) <= {doc.title for doc in corpus.list_documents()}


async def test_an_unanswerable_run_scores_abstentions_wrong_answers_and_support(
    questions: list[Question], hotpotqa_path: Path, tmp_path: Path
) -> None:
    build_corpus(hotpotqa_path, tmp_path)
    corpus = LocalCorpus(corpus_path(tmp_path))
    documents = list(load_documents(hotpotqa_path))
    seen: list[set[str]] = []

    def isolate(question: Question) -> AbstractContextManager[None]:
        return gold_hidden(corpus, documents, question)

    class Watching(ScriptedResearch):
        async def __call__(self, question: str) -> ResearchResult:
            seen.append({doc.title for doc in corpus.list_documents()})
            return await super().__call__(question)

    abstained = outcome(f"{NOT_ANSWERED}: they say nothing about Ed Wood.", [])
    wrong = outcome("The series is Goosebumps [1].", [])
    wrong = wrong.model_copy(update={"citations": CitationSupport(cited_sentences=4, supported=3)})
    right = outcome(questions[2].answer, [])
    research = Watching(
        {
            questions[0].question: abstained,
            questions[1].question: wrong,
            questions[2].question: right,
        }
    )
    out = tmp_path / "results.json"
    results = await run_eval(
        questions,
        research,
        open_results(out, hotpotqa_path, MODEL, unanswerable=True),
        out,
        isolate=isolate,
    )
    for question, titles in zip(questions, seen, strict=True):
        assert not titles & set(question.supporting_titles)
    totals = results.totals
    assert totals is not None
    assert totals.abstention == pytest.approx(1 / 3, abs=1e-4)
    assert totals.wrong_answer == pytest.approx(1 / 3, abs=1e-4)
    assert totals.cited_supported == pytest.approx(0.75)
    assert [row.abstained for row in results.rows] == [True, False, False]
    with pytest.raises(ConfigError, match="without gold paragraphs"):
        open_results(out, hotpotqa_path, MODEL)
