"""HotpotQA: the quality yardstick for the research pipeline.

The eval builds a local corpus from the benchmark file's own Wikipedia paragraphs, runs every
question through the research pipeline and scores what comes back:

- answer recall: the normalized gold answer appears in the Answer section (yes/no questions:
  the Answer's verdict, a sentence opening with "yes" or "no", is the gold one);
- EM and F1 of the Answer's short form (its first sentence, or only "yes"/"no" when that
  sentence opens with one) against the gold answer, with the official HotpotQA normalization
  and token F1;
- recall and precision of the gold supporting titles among the cited sources;
- cited-sentence support: the share of the report's sentences citing `[n]` that source n's
  passage supports (agents/support.py, the same check the report's metadata uses).

With `unanswerable`, each question is run on the corpus without its gold paragraphs (they are
taken out for its run and put back after), so the evidence cannot answer it: an honest report
abstains. Such a run also scores the abstention share (Answers that say the evidence does not
answer) and the wrong-answer share (Answers that state an answer without the gold one).

Results are written after every question, so an interrupted eval resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from pydantic import BaseModel, Field, ValidationError

from agents.answerability import is_abstention
from agents.config import ResearchOptions
from agents.markdown import unescape
from agents.research import ResearchResult, run_research
from agents.runtime import Runtime
from agents.text import sentences
from agents.tools.corpus import Document, LocalCorpus
from agents.tools.ingest import WIKIPEDIA, load_documents
from agents.tools.search import corpus_path
from serving.errors import ConfigError

YES_NO = ("yes", "no")
# HotpotQA's F1 gives zero to a mismatched yes/no/noanswer instead of partial token credit.
_SPECIAL_ANSWERS = ("yes", "no", "noanswer")


@dataclass(frozen=True)
class Question:
    """One HotpotQA question with its gold answer and gold supporting titles."""

    id: str
    question: str
    answer: str
    type: str
    level: str
    supporting_titles: tuple[str, ...]


def load_questions(path: Path, limit: int | None = None) -> list[Question]:
    """Read a HotpotQA JSON file (a list of questions), the first `limit` if given."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise TypeError("the top level is not a list of questions")
        questions = [_question(item) for item in raw]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"Cannot read HotpotQA questions from {path} ({type(exc).__name__}: {exc}). "
            "Pass a HotpotQA file in the original format (e.g. hotpotqa-dev-20.json) with --data."
        ) from exc
    return questions if limit is None else questions[:limit]


def _question(item: dict) -> Question:
    titles = dict.fromkeys(str(title) for title, _ in item["supporting_facts"])
    return Question(
        id=str(item["_id"]),
        question=str(item["question"]),
        answer=str(item["answer"]),
        type=str(item.get("type", "")),
        level=str(item.get("level", "")),
        supporting_titles=tuple(titles),
    )


def title_from_url(url: str) -> str | None:
    """The page title behind an English Wikipedia URL, or None for any other URL."""
    if not url.startswith(WIKIPEDIA):
        return None
    path = url.removeprefix(WIKIPEDIA).split("#", 1)[0]
    return unquote(path).replace("_", " ")


def build_corpus(data: Path, data_dir: Path) -> int:
    """Make the corpus under `data_dir` hold exactly the file's paragraphs; returns how many.

    Each distinct paragraph becomes one passage titled with its Wikipedia title, at its
    Wikipedia URL; passages left from another file are removed so runs stay comparable.
    """
    corpus = LocalCorpus(corpus_path(data_dir))
    documents = list(load_documents(data))
    corpus.add(documents)
    wanted = {document.url for document in documents}
    for stale in {doc.url for doc in corpus.list_documents()} - wanted:
        corpus.delete_url(stale)
    return corpus.count()


@contextmanager
def gold_hidden(
    corpus: LocalCorpus, documents: Sequence[Document], question: Question
) -> Iterator[None]:
    """The corpus without the question's gold paragraphs while the block runs; restored after."""
    titles = set(question.supporting_titles)
    gold = [doc for doc in documents if title_from_url(doc.url) in titles]
    for url in {doc.url for doc in gold}:
        corpus.delete_url(url)
    try:
        yield
    finally:
        corpus.add(gold)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, to tie a results file to the data it was measured on."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- scoring -------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD/HotpotQA normalization: lowercase, drop punctuation and articles, collapse spaces."""
    lowered = text.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in string.punctuation)
    no_articles = re.sub(r"\b(a|an|the)\b", " ", no_punctuation)
    return " ".join(no_articles.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when prediction and gold are equal after normalization, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """The official HotpotQA token F1, including its yes/no/noanswer special case."""
    predicted, expected = normalize_answer(prediction), normalize_answer(gold)
    if (predicted in _SPECIAL_ANSWERS or expected in _SPECIAL_ANSWERS) and predicted != expected:
        return 0.0
    predicted_tokens, expected_tokens = predicted.split(), expected.split()
    same = sum((Counter(predicted_tokens) & Counter(expected_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(predicted_tokens)
    recall = same / len(expected_tokens)
    return 2 * precision * recall / (precision + recall)


_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_BARE_URL = re.compile(r"https?://\S+")
_CITATION_MARK = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_LINE_MARKUP = re.compile(r"^\s*(?:#+|[-*+>]|\d+[.)])\s+")
# Boilerplate that opens an answer ("Answer:", "The answer is:") is not part of it.
_ANSWER_LABEL = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is\b\s*:?|:)\s*", re.IGNORECASE
)
_VERDICT = re.compile(r"^\W*(yes|no)\b(?=\s*(?:[,.;:!—–-]|$))", re.IGNORECASE)


def plain_text(markdown: str) -> str:
    """Markdown reduced to the words a reader sees: no links, URLs, citation marks, bullets or
    escapes."""
    text = _LINK.sub(r"\1", unescape(markdown))
    text = _CITATION_MARK.sub("", _BARE_URL.sub("", text))
    text = text.replace("*", "").replace("__", "").replace("`", "")
    lines = (_ANSWER_LABEL.sub("", _LINE_MARKUP.sub("", line)) for line in text.splitlines())
    return "\n".join(line.strip() for line in lines if line.strip())


def split_sentences(markdown: str) -> list[str]:
    """The sentences of a markdown text, in order; every line break also ends a sentence."""
    return [part for line in plain_text(markdown).splitlines() for part in sentences(line)]


def short_answer(answer: str) -> str:
    """The Answer's first sentence, or only its "yes"/"no" when it opens with one."""
    parts = split_sentences(answer)
    if not parts:
        return ""
    verdict = _verdict(parts[0])
    return verdict or parts[0]


def answer_recall(answer: str, gold: str) -> float:
    """1.0 when the Answer holds the gold answer (yes/no: its first verdict is the gold one)."""
    expected = normalize_answer(gold)
    if expected in YES_NO:
        verdicts = (_verdict(sentence) for sentence in split_sentences(answer))
        return float(next((v for v in verdicts if v), None) == expected)
    return float(_contains(normalize_answer(answer).split(), expected.split()))


def _verdict(sentence: str) -> str | None:
    """ "yes" or "no" when the sentence opens with it as a reply ("No, ..."), not as a
    determiner ("No information ...")."""
    match = _VERDICT.match(sentence)
    return match.group(1).lower() if match else None


def _contains(tokens: Sequence[str], phrase: Sequence[str]) -> bool:
    """Whether `phrase` occurs in `tokens` on token boundaries ("1" is not in "1994")."""
    if not phrase:
        return False
    width = len(phrase)
    return any(list(tokens[i : i + width]) == list(phrase) for i in range(len(tokens) - width + 1))


def title_recall_precision(found: Iterable[str], gold: Iterable[str]) -> tuple[float, float]:
    """Recall of the gold titles among `found`, and precision of `found` against the gold."""
    found_set, gold_set = set(found), set(gold)
    hits = len(found_set & gold_set)
    recall = hits / len(gold_set) if gold_set else 0.0
    precision = hits / len(found_set) if found_set else 0.0
    return recall, precision


# ---- results -------------------------------------------------------------------------------


Research = Callable[[str], Awaitable[ResearchResult]]
# The eval measures the pipeline as a user would run it offline: the plan accepted as made, the
# local corpus searched, no code run (HotpotQA needs none, and it keeps runs comparable).
EVAL_OPTIONS = ResearchOptions(auto_accept_plan=True, provider="local", enable_coder=False)


class QuestionResult(BaseModel):
    """One question's run and scores; a failed run keeps its error and scores zero."""

    id: str
    question: str
    type: str
    level: str
    gold_answer: str
    supporting_titles: list[str]
    answer: str = Field(default="", description="The report's Answer section.")
    short_answer: str = Field(default="", description="What EM and F1 compare with the gold.")
    answer_recall: float = 0.0
    exact_match: float = 0.0
    f1: float = 0.0
    abstained: bool = Field(
        default=False, description="The Answer says the evidence does not answer the question."
    )
    cited_sentences: int = 0
    cited_supported: float = Field(
        default=1.0, description="Share of the report's cited sentences their passage supports."
    )
    title_recall: float = Field(default=0.0, description="Gold titles among the cited sources.")
    title_precision: float = Field(default=0.0, description="Cited sources that are gold titles.")
    cited_titles: list[str] = Field(default_factory=list)
    source_title_recall: float = Field(
        default=0.0, description="Diagnostic: gold titles among all sources found, cited or not."
    )
    source_titles: list[str] = Field(default_factory=list)
    report_recall: float = Field(
        default=0.0, description="Diagnostic: the gold answer anywhere in the whole report."
    )
    wall_s: float = 0.0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


class Totals(BaseModel):
    """Means over all rows (failed ones count as zero), and the median wall time."""

    questions: int
    failed: int
    answers_found: int
    answer_recall: float
    # Defaults keep results files written before these totals existed readable.
    abstention: float = Field(
        default=0.0, description="Share of Answers that say the evidence is missing."
    )
    wrong_answer: float = Field(
        default=0.0, description="Share of Answers that state an answer without the gold one."
    )
    cited_supported: float = Field(
        default=1.0, description="Supported cited sentences as a share of all cited sentences."
    )
    exact_match: float
    f1: float
    title_recall: float
    title_precision: float
    source_title_recall: float
    report_recall: float
    mean_wall_s: float
    median_wall_s: float
    mean_llm_calls: float
    mean_prompt_tokens: float
    mean_completion_tokens: float


class EvalResults(BaseModel):
    """A results file: which data and model, one row per finished question, and the totals."""

    benchmark: Literal["hotpotqa"] = "hotpotqa"
    unanswerable: bool = Field(
        default=False, description="Each question was run without its gold paragraphs."
    )
    data: str
    data_sha256: str
    model: str
    updated_at: str = ""
    rows: list[QuestionResult] = Field(default_factory=list)
    totals: Totals | None = None

    def finished_ids(self) -> set[str]:
        """Questions with a scored run; failed ones are tried again on resume."""
        return {row.id for row in self.rows if row.error is None}

    def with_row(self, row: QuestionResult) -> EvalResults:
        """These results with `row` added, replacing an earlier row for the same question."""
        rows = [row if old.id == row.id else old for old in self.rows]
        if not any(old.id == row.id for old in self.rows):
            rows.append(row)
        return self.model_copy(update={"rows": rows, "totals": summarize(rows)})


def score(question: Question, outcome: ResearchResult, wall_s: float) -> QuestionResult:
    """Score one research result against the question's gold answer and supporting titles."""
    cited = _titles(source.url for source in outcome.sources if source.cited)
    found = _titles(source.url for source in outcome.sources)
    title_recall, title_precision = title_recall_precision(cited, question.supporting_titles)
    source_recall, _ = title_recall_precision(found, question.supporting_titles)
    short = short_answer(outcome.answer)
    support = outcome.citations
    return QuestionResult(
        **_identity(question),
        answer=outcome.answer,
        short_answer=short,
        answer_recall=answer_recall(outcome.answer, question.answer),
        abstained=is_abstention(unescape(outcome.answer)),
        cited_sentences=support.cited_sentences,
        cited_supported=round(support.share, 4),
        exact_match=exact_match(short, question.answer),
        f1=f1_score(short, question.answer),
        title_recall=title_recall,
        title_precision=title_precision,
        cited_titles=cited,
        source_title_recall=source_recall,
        source_titles=found,
        report_recall=answer_recall(outcome.report, question.answer),
        wall_s=round(wall_s, 2),
        llm_calls=outcome.llm_calls,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
    )


def failed(question: Question, error: BaseException, wall_s: float) -> QuestionResult:
    """The row of a question whose run raised: the error recorded, every score zero."""
    return QuestionResult(
        **_identity(question), wall_s=round(wall_s, 2), error=f"{type(error).__name__}: {error}"
    )


def _identity(question: Question) -> dict[str, object]:
    return {
        "id": question.id,
        "question": question.question,
        "type": question.type,
        "level": question.level,
        "gold_answer": question.answer,
        "supporting_titles": list(question.supporting_titles),
    }


def _titles(urls: Iterable[str]) -> list[str]:
    """Distinct page titles of source URLs, in order; a non-Wikipedia URL stands for itself."""
    return list(dict.fromkeys(title_from_url(url) or url for url in urls))


def summarize(rows: Sequence[QuestionResult]) -> Totals:
    """Totals over `rows`: means of every score and cost, median wall time."""

    def mean(values: Iterable[float]) -> float:
        values = list(values)
        return round(statistics.fmean(values), 4) if values else 0.0

    return Totals(
        questions=len(rows),
        failed=sum(row.error is not None for row in rows),
        answers_found=sum(row.answer_recall == 1.0 for row in rows),
        answer_recall=mean(row.answer_recall for row in rows),
        abstention=mean(float(row.abstained) for row in rows),
        wrong_answer=mean(float(_wrong(row)) for row in rows),
        cited_supported=_support_share(rows),
        exact_match=mean(row.exact_match for row in rows),
        f1=mean(row.f1 for row in rows),
        title_recall=mean(row.title_recall for row in rows),
        title_precision=mean(row.title_precision for row in rows),
        source_title_recall=mean(row.source_title_recall for row in rows),
        report_recall=mean(row.report_recall for row in rows),
        mean_wall_s=mean(row.wall_s for row in rows),
        median_wall_s=round(statistics.median(row.wall_s for row in rows), 2) if rows else 0.0,
        mean_llm_calls=mean(row.llm_calls for row in rows),
        mean_prompt_tokens=mean(row.prompt_tokens for row in rows),
        mean_completion_tokens=mean(row.completion_tokens for row in rows),
    )


def _wrong(row: QuestionResult) -> bool:
    """A run that states an answer, and not the gold one (a failed run states nothing)."""
    return row.error is None and not row.abstained and row.answer_recall == 0.0


def _support_share(rows: Sequence[QuestionResult]) -> float:
    """Supported cited sentences over all cited sentences of the finished runs."""
    cited = sum(row.cited_sentences for row in rows if row.error is None)
    supported = sum(row.cited_supported * row.cited_sentences for row in rows if row.error is None)
    return round(supported / cited, 4) if cited else 1.0


def open_results(out: Path, data: Path, model: str, *, unanswerable: bool = False) -> EvalResults:
    """The results file at `out` to resume, or fresh results when there is none yet."""
    digest = file_sha256(data)
    if not out.exists():
        return EvalResults(
            data=str(data), data_sha256=digest, model=model, unanswerable=unanswerable
        )
    try:
        results = EvalResults.model_validate_json(out.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise ConfigError(
            f"{out} exists but is not a HotpotQA results file ({type(exc).__name__}). "
            "Pass another --out, or delete it to start over."
        ) from exc
    if (results.data_sha256, results.model, results.unanswerable) != (
        digest,
        model,
        unanswerable,
    ):
        mode = "without gold paragraphs" if results.unanswerable else "with the full corpus"
        raise ConfigError(
            f"{out} holds results for {results.data} on model {results.model!r} {mode}, not "
            f"for this run. Pass another --out, or delete it to start over."
        )
    return results


def write_results(results: EvalResults, out: Path) -> None:
    """Write the results atomically, so an interrupted eval never leaves a torn file."""
    stamped = results.model_copy(update={"updated_at": datetime.now(UTC).isoformat()})
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(stamped.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out)


# ---- the runner ----------------------------------------------------------------------------


def pipeline(runtime: Runtime, options: ResearchOptions = EVAL_OPTIONS) -> Research:
    """The research pipeline as the eval calls it, on `runtime`."""

    async def research(question: str) -> ResearchResult:
        return await run_research(question, options, runtime)

    return research


Isolate = Callable[[Question], AbstractContextManager[None]]


async def evaluate(
    question: Question, research: Research, isolate: Isolate | None = None
) -> QuestionResult:
    """Run one question and score it; any failure is recorded in the row, never raised.

    `isolate` sets the corpus up for the question while it runs (e.g. `gold_hidden`).
    """
    started = time.monotonic()
    try:
        with isolate(question) if isolate else nullcontext():
            outcome = await research(question.question)
    # One failed run must not stop the eval: its error is recorded and it scores zero.
    except Exception as exc:
        return failed(question, exc, time.monotonic() - started)
    return score(question, outcome, time.monotonic() - started)


async def run_eval(
    questions: Sequence[Question],
    research: Research,
    results: EvalResults,
    out: Path,
    *,
    on_start: Callable[[Question], None] | None = None,
    on_result: Callable[[QuestionResult], None] | None = None,
    isolate: Isolate | None = None,
) -> EvalResults:
    """Run every question not finished in `results`, writing `out` after each one."""
    finished = results.finished_ids()
    for question in questions:
        if question.id in finished:
            continue
        if on_start:
            on_start(question)
        row = await evaluate(question, research, isolate)
        results = results.with_row(row)
        write_results(results, out)
        if on_result:
            on_result(row)
    return results
