"""The phrase that answers: the few words of the Answer a reader looks for first.

A small model answers in a sentence ("Walls and Bridges is the fifth studio album by John
Lennon."); a reader wants the phrase that answers ("Walls and Bridges"), shown first. The phrase
is read out of the model's own sentence by what the question asks for, never written anew:

- a choice ("Who is older, X or Y?"): the option the sentence names first;
- a quantity or a time ("how many", "what year", "when"): the first number or date of the
  sentence that the question does not hold;
- anything else: the first name (a capitalised phrase or a quoted title) of the sentence that
  the question does not hold.

A yes/no answer has its verdict already, and a sentence about as short as its phrase is the
phrase: neither gets one, except a choice, whose phrase is the option as the question writes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from agents.citations import remap_citations
from agents.text import MONTHS, content_words, entities, without_leading_stopwords, words

# Words that agree on this many first letters name the same thing ("seat", "seated").
STEM = 4
# A sentence of at most this many words is already short enough to be read at a glance.
SHORT_SENTENCE_WORDS = 5
_CHOICE = re.compile(r"\s*,?\s+or\s+", re.IGNORECASE)
_LISTED_CHOICE = re.compile(r"[,:?]\s+([^,:?]+?)\s*,?\s+or\s+([^,:?]+?)\s*\?\s*$", re.IGNORECASE)
_TIME = re.compile(
    r"^\W*when\b|\b(?:what|which|in what|in which)\s+(?:[\w'’]+\s+){0,3}?"
    r"(?:year|decade|century|date|time|month|day)\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\bhow\s+(?:many|much|long|far|old|tall|high|big|large|wide|deep|often)\b|"
    r"\b(?:what|which)\s+(?:[\w'’]+\s+){0,3}?(?:population|number|percentage|age|capacity|"
    r"length|height|area|size|amount|distance|score|rank)\b",
    re.IGNORECASE,
)
_MEASURE = re.compile(
    r"\bhow\s+(?:long|far|tall|high|big|large|wide|deep)\b|\b(?:length|height|area|size|distance)\b",
    re.IGNORECASE,
)
_MONTH = f"(?:{'|'.join(MONTHS)})"
_DATE = re.compile(
    rf"\b(?:\d{{1,2}}\s+{_MONTH}\s+\d{{3,4}}|{_MONTH}\s+\d{{1,2}},?\s+\d{{3,4}}|"
    rf"{_MONTH}\s+\d{{3,4}}|\d{{3,4}}s?)\b"
)
_NUMBER = re.compile(
    r"(?<![\w.,/–-])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|(?<![\w.,/–-])\d+(?:\.\d+)?(?!\d)"
)
_YEAR = re.compile(r"\b(?:1\d{3}|20\d{2})\b")
_ASKS_YEAR = re.compile(r"\byear\b", re.IGNORECASE)
# A number right after a capitalised word is part of a name ("Reply 1988", "Route 13").
_IN_NAME = re.compile(r"\b[A-Z][\w'’.-]*\s+$")
_UNIT = re.compile(r"\s*-?\s*([a-z]{1,12})\b")
_QUOTED = re.compile(r"[\"“]([^\"“”]{2,80})[\"”]")


def answer_phrase(question: str, answer: str) -> str | None:
    """The phrase of `answer`'s first sentence that answers `question`, or None when the
    sentence is the phrase already or holds none the question asks for."""
    sentence = remap_citations(answer, {}).strip()
    options = choice_options(question)
    if options:
        # An option as written in the question, even after a short sentence ("Childers.")
        named = _first_named(sentence, options)
        return None if named is None or _same(named, sentence) else named
    if len(words(sentence)) <= SHORT_SENTENCE_WORDS:
        return None
    if _TIME.search(question):
        dates = _YEAR if _ASKS_YEAR.search(question) else _DATE
        return _first_new(dates.finditer(sentence), question)
    if _QUANTITY.search(question):
        return _quantity(sentence, question)
    return _first_new_name(sentence, question)


def choice_options(question: str) -> list[str]:
    """The two names a question offers to choose from ("X or Y?"), or none.

    Written out (", X or Y?") the options are the question's last two phrases, taken whole
    ("Hurricane No. 1"); otherwise they are the capitalised names either side of "or".
    """
    listed = _LISTED_CHOICE.search(question)
    if listed:
        return [listed.group(1).strip(), listed.group(2).strip()]
    names = entities(question)
    for first in names:
        for second in names:
            joined = first != second and re.search(
                rf"{re.escape(first)}{_CHOICE.pattern}{re.escape(second)}", question, re.IGNORECASE
            )
            if joined:
                return [without_leading_stopwords(first), without_leading_stopwords(second)]
    return []


def _same(phrase: str, sentence: str) -> bool:
    return [w.lower() for w in words(phrase)] == [w.lower() for w in words(sentence)]


def _first_named(sentence: str, options: list[str]) -> str | None:
    """The option `sentence` names first (by its words, so "Childers" names "Robert Erskine
    Childers"), or None when it names neither."""
    lowered = [word.lower() for word in words(sentence)]
    positions = {}
    for option in options:
        hits = [lowered.index(word) for word in content_words(option) if word in lowered]
        if hits:
            positions[option] = min(hits)
    return min(positions, key=positions.__getitem__) if positions else None


def _quantity(sentence: str, question: str) -> str | None:
    """The new number that counts what the question counts (a word next to it shares its stem
    with one of the question's: "3,677-seat" for "can seat how many"), else the first new one;
    with its unit for a measure ("6.2 km" for "how long")."""
    counted = {word[:STEM] for word in content_words(question)}
    best: tuple[bool, re.Match[str]] | None = None
    for match in _NUMBER.finditer(sentence):
        if match.group(0) in question or _IN_NAME.search(sentence[: match.start()]):
            continue
        if _YEAR.fullmatch(match.group(0)):
            continue  # a count is rarely a year: "(2015-2016)" is when, not how many
        near = words(sentence[: match.start()])[-2:] + words(sentence[match.end() :])[:1]
        names_it = any(word.lower()[:STEM] in counted for word in near)
        if best is None or (names_it and not best[0]):
            best = (names_it, match)
    if best is None:
        return None
    match = best[1]
    unit = _UNIT.match(sentence, match.end()) if _MEASURE.search(question) else None
    return match.group(0) + (f" {unit.group(1)}" if unit else "")


def _first_new(matches: Iterator[re.Match[str]], question: str) -> str | None:
    """The first match the question does not hold."""
    return next((m.group(0) for m in matches if m.group(0) not in question), None)


def _first_new_name(sentence: str, question: str) -> str | None:
    """The first quoted title or capitalised phrase of `sentence` with a word the question lacks."""
    asked = set(content_words(question))
    found = [(m.start(1), m.group(1)) for m in _QUOTED.finditer(sentence)]
    found += [(sentence.find(name), name) for name in entities(sentence)]
    for _position, name in sorted(found, key=lambda item: (item[0], -len(item[1]))):
        new = set(content_words(name)) - asked
        if new:
            return name.strip(" ,.;:")
    return None
