"""Honest answers: whether the evidence read answers the question, decided from the text alone.

A draft answer counts as a finding only when the evidence backs it:

- for an open question, the passages read hold most of its content words (QUESTION_COVERAGE),
  since passages that leave much of the question unmentioned are about something else, however
  fluently the model reads an answer out of them (a yes/no question's predicate is what it asks
  and may be absent for a "no", so there only its subjects count);
- most subjects the question names (its capitalised phrases) appear in the passages read (a
  subject counts as present when at least SUBJECT_COVERAGE of its content words do), so an answer
  about pages the search never found is not presented as found; one absent name among several
  may be an attribute the passages word differently ("United States" as "American");
- a question offering a choice ("X or Y?") is answered by naming one of its subjects;
- any other open question's answer says something the question does not (its new content words), and
  at least MIN_SUPPORT of those words stand in one passage read, so a guess from the
  model's memory or a restated question is not a finding;
- a yes/no answer carries a verdict, and no reason it gives is contradicted by a passage read
  (a passage sentence restating the reason with the opposite polarity: "X is not an opera
  composer" against "X was an Italian opera composer").

When the evidence does not answer, the Answer says so plainly, names what was not found, and
shows what was found instead. The rules use only the question's wording and the passages, never
particular questions or entities.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agents.citations import remap_citations
from agents.sources import Source
from agents.support import MIN_SUPPORT, negated
from agents.text import (
    content_words,
    entities,
    overlap,
    sentences,
    without_leading_stopwords,
)

# "Most" of a name's words, or of the question's: two in three.
SUBJECT_COVERAGE = 0.66
QUESTION_COVERAGE = 0.66
# A contradiction restates the claim: nearly all of its words in one passage sentence.
CONTRADICTION_OVERLAP = 0.8
NOT_ANSWERED = "The sources found do not answer the question"
# What an unanswered question shows instead: the closest sentence of each passage read.
SHOWN_FINDINGS = 2
_AND = re.compile(r"\s+(?:and|&)\s+")
_CHOICE = re.compile(r"\bor\b", re.IGNORECASE)
_VERDICT = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Judgement:
    """Whether the draft answers the question, and the subjects no passage read mentions."""

    answered: bool
    missing: tuple[str, ...] = ()


def subjects(question: str) -> list[str]:
    """The names the question asks about, each with at least one content word ("X and Y" are
    two names: each must be found on its own)."""
    names = (
        without_leading_stopwords(part) for name in entities(question) for part in _AND.split(name)
    )
    return [name for name in dict.fromkeys(names) if content_words(name)]


def coverage(question: str, read: Sequence[Source]) -> float:
    """Share of the question's content words that the passages read (with titles) hold."""
    return overlap(question, " ".join(f"{s.title} {s.passage}" for s in read))


def missing_subjects(question: str, read: Sequence[Source]) -> list[str]:
    """The question's subjects that no passage read mentions."""
    text = " ".join(f"{s.title} {s.passage}" for s in read)
    return [name for name in subjects(question) if not _names(text, name)]


def contradicted(claim: str, read: Sequence[Source]) -> bool:
    """Whether a passage read states the claim's own words with the opposite polarity: one of
    its sentences holds CONTRADICTION_OVERLAP of them and says "not" where the claim does not,
    or the reverse. (A negated claim beside a passage that says something else is no
    contradiction: "X and Y are not in the same place" against "Y is in Z".)"""
    bare = remap_citations(claim, {})
    return any(
        overlap(bare, sentence) >= CONTRADICTION_OVERLAP and negated(bare) != negated(sentence)
        for source in read
        for sentence in sentences(source.passage)
    )


def _names(text: str, subject: str) -> bool:
    """Whether `text` names `subject` (most of its content words)."""
    words = content_words(subject)
    present = set(content_words(text))
    return sum(word in present for word in words) / len(words) >= SUBJECT_COVERAGE


def verdict(answer: str) -> str | None:
    """ "yes" or "no" when the answer opens with one."""
    match = _VERDICT.match(answer)
    return match.group(1).lower() if match else None


def judge(question: str, draft: str, read: Sequence[Source], *, yes_no: bool) -> Judgement:
    """Whether `draft` (the model's answer) answers `question` from the passages `read`."""
    named = subjects(question)
    missing = tuple(missing_subjects(question, read))
    if not draft.strip() or (missing and len(missing) * 2 >= len(named)):
        return Judgement(False, missing)
    if yes_no:
        reasons = [s for s in sentences(draft) if content_words(_VERDICT.sub("", s))]
        sound = not any(contradicted(reason, read) for reason in reasons)
        return Judgement(verdict(draft) is not None and sound)
    # A yes/no question's predicate is what it asks, and may well be absent ("no"): there only
    # its subjects must be found; an open question's passages must hold most of it.
    if coverage(question, read) < QUESTION_COVERAGE:
        return Judgement(False, missing)
    first = remap_citations(sentences(draft)[0], {})
    if _CHOICE.search(question):
        return Judgement(any(_names(first, subject) for subject in named))
    new = set(content_words(first)) - set(content_words(question))
    if not new:
        return Judgement(False)
    asked = content_words(question)
    best = max((overlap(first, s.passage, asked) for s in read), default=0.0)
    return Judgement(best >= MIN_SUPPORT)


def not_answered(judgement: Judgement, found: Sequence[str]) -> str:
    """The Answer when the evidence does not answer: what was not found, then what was (the
    first SHOWN_FINDINGS of `found`)."""
    if judgement.missing:
        names = " or ".join(judgement.missing)
        head = f"{NOT_ANSWERED}: they say nothing about {names}."
    else:
        head = f"{NOT_ANSWERED}."
    if not found:
        return head
    return f"{head} What they do say: {' '.join(found[:SHOWN_FINDINGS])}"


def is_abstention(answer: str) -> bool:
    """Whether an Answer says the evidence does not answer (how the eval counts abstentions)."""
    return NOT_ANSWERED.lower() in answer.lower()
