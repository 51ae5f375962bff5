"""Which of two came first: a time comparison decided from the passages' dates, not the model.

"Who was born first, X or Y?", "Which band formed first?", "Who is older?" compare two dates
that the passages state; a small model reads both and still picks either. The comparison is
made here: each option's own page (the passage read whose title names it) gives its first date,
the one a page opens with (born, founded, formed, released), and the earlier (or the later, when
the question asks for it) wins. When an option has no page or no year among the passages read,
or the dates do not tell them apart, nothing is decided and the model's answer stands.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agents.answer_phrase import choice_options
from agents.sources import Source
from agents.text import MONTHS, content_words, sentences

_EARLIER = re.compile(
    r"\b(?:first|earlier|earliest|older|oldest|before|sooner|preceded)\b", re.IGNORECASE
)
_LATER = re.compile(r"\b(?:later|latest|last|younger|youngest|newer|more recent|after)\b", re.I)
_MONTH_NUMBERS = {month.lower(): number for number, month in enumerate(MONTHS, 1)}
_MONTH = "|".join(MONTHS)
# A date as pages write it ("11 March 1887", "March 11, 1887", "March 1887") or a bare year.
_DATE = re.compile(
    rf"\b(?:(?P<day1>\d{{1,2}})\s+(?P<month1>{_MONTH})\s+|(?P<month2>{_MONTH})\s+"
    rf"(?:(?P<day2>\d{{1,2}}),?\s+)?)?(?P<year>1\d{{3}}|20\d{{2}})(?!\d)",
    re.IGNORECASE,
)
# An option's page is the passage read whose title holds this share of the option's words.
TITLE_MATCH = 0.66


@dataclass(frozen=True)
class Dated:
    """An option with its first date (year, month, day; 0 where the page gives none) and the
    page sentence that states it."""

    option: str
    date: tuple[int, int, int]
    source: Source
    sentence: str


@dataclass(frozen=True)
class Decision:
    """The option the dates pick, and both options' dated evidence (the winner first)."""

    winner: Dated
    other: Dated

    def evidence(self) -> str:
        """Each option's dated sentence with its citation, the winner's first."""
        return f"{_cited(self.winner)} {_cited(self.other)}"


def decide(question: str, read: Sequence[Source]) -> Decision | None:
    """The option a "which came first/later" question's dates pick, or None if undecided."""
    options = choice_options(question)
    if len(options) != 2:
        return None
    asked = question
    for option in options:  # "First for Women" names an option; it asks nothing
        asked = asked.replace(option, " ")
    earlier, later = bool(_EARLIER.search(asked)), bool(_LATER.search(asked))
    if earlier == later:
        return None
    first, second = (_dated(option, read) for option in options)
    if first is None or second is None or not _ordered(first.date, second.date):
        return None
    if (first.date < second.date) != later:
        return Decision(first, second)
    return Decision(second, first)


def _dated(option: str, read: Sequence[Source]) -> Dated | None:
    """The option's first year on its own page, or None without a page or a year."""
    words = content_words(option)
    for source in read:
        title = set(content_words(source.title))
        if not words or sum(word in title for word in words) / len(words) < TITLE_MATCH:
            continue
        for sentence in sentences(source.passage):
            match = _DATE.search(sentence)
            if match:
                return Dated(option, _date(match), source, sentence)
        return None
    return None


def _date(match: re.Match[str]) -> tuple[int, int, int]:
    month = match.group("month1") or match.group("month2")
    day = match.group("day1") or match.group("day2")
    number = _MONTH_NUMBERS[month.lower()] if month else 0
    return (int(match.group("year")), number, int(day) if day else 0)


def _ordered(first: tuple[int, int, int], second: tuple[int, int, int]) -> bool:
    """Whether the dates differ where both are known (1887 against 1943, or March 1975
    against August 1975), so one surely came first."""
    for mine, theirs in zip(first, second, strict=True):
        if not mine or not theirs:
            return False
        if mine != theirs:
            return True
    return False


def _cited(dated: Dated) -> str:
    return f"{dated.sentence.rstrip('.').strip()} [{dated.source.id}]."
