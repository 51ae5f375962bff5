"""Plain-text helpers the roles share: content words, sentences, entities, truncation.

Sentences are split by pySBD (rule-based, the "Golden Rules" of sentence boundaries), which keeps
abbreviations, initials and decimals inside their sentence ("Edward Davis Wood Jr. was ...",
"3.5 million", "U.S."), in the language of the run's locale where pySBD knows it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from functools import cache

import pysbd

_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers him his how i if in into is it its itself just me more most my
no nor not now of off on once only or other our out over own same she should so some such than
that the their them then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yes tell find give show
explain describe list name many much
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
# pySBD's languages (ISO 639-1); any other locale is split by the English rules.
_SEGMENTER_LANGUAGES = frozenset(pysbd.languages.LANGUAGE_CODES)
_YES_NO_OPENING = re.compile(
    r"^\W*(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|shall|may)\b",
    re.IGNORECASE,
)
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_LEADING_STOPWORDS = re.compile(rf"^(?:(?:{'|'.join(sorted(STOPWORDS))})\s+)+", re.IGNORECASE)
_ENTITY = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:of|the|for|de|van|von|and|&)?\s*[A-Z][\w'’.-]*)*")


def words(text: str) -> list[str]:
    """The words of `text`, in order, as written."""
    return _WORD.findall(text)


def content_words(text: str) -> list[str]:
    """Lower-cased words of `text` that carry meaning (no stopwords), first occurrence order."""
    seen: dict[str, None] = {}
    for word in words(text):
        lowered = word.lower()
        if lowered not in STOPWORDS and (len(lowered) > 1 or lowered.isdigit()):
            seen.setdefault(lowered, None)
    return list(seen)


def sentences(text: str, locale: str = "en") -> list[str]:
    """`text` split into sentences, abbreviations, initials and decimals kept whole."""
    text = text.strip()
    if not text:
        return []
    return [part.strip() for part in _segmenter(locale).segment(text) if part.strip()]


@cache
def _segmenter(locale: str) -> pysbd.Segmenter:
    language = locale.split("-")[0].lower()
    return pysbd.Segmenter(language=language if language in _SEGMENTER_LANGUAGES else "en")


def is_yes_no_question(question: str) -> bool:
    """Whether `question` opens like a yes/no question ("Are ...", "Did ...")."""
    return bool(_YES_NO_OPENING.match(question))


def entities(text: str) -> list[str]:
    """Capitalised phrases in `text` (names, titles), most frequent first, without sentence
    starters that are stopwords."""
    counts: dict[str, int] = {}
    for match in _ENTITY.finditer(text):
        phrase = match.group(0).strip(" .-")
        if phrase and phrase.lower() not in STOPWORDS:
            counts[phrase] = counts.get(phrase, 0) + 1
    return sorted(counts, key=lambda phrase: -counts[phrase])


def without_leading_stopwords(phrase: str) -> str:
    """`phrase` without the stopwords that open it: a question's opening verb is capitalised
    like the name after it ("Are Local H" is "Local H")."""
    return _LEADING_STOPWORDS.sub("", phrase)


def truncate(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` at a word boundary, marked with an ellipsis."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return ""
    cut = text[: max_chars - 1]
    if " " in cut[max_chars // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip() + "…"


def overlap(text: str, other: str, ignore: Collection[str] = ()) -> float:
    """Share of `text`'s content words (less `ignore`) that also occur in `other`; 0 when
    `text` has none."""
    mine = set(content_words(text)) - set(ignore)
    if not mine:
        return 0.0
    return len(mine & set(content_words(other))) / len(mine)


def unique(items: Iterable[str]) -> list[str]:
    """`items` without repeats (case-insensitive), first occurrence kept."""
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return list(seen.values())
