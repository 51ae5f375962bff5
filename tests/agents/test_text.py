"""Plain-text helpers: yes/no questions told by their opening; sentences split by pySBD."""

from __future__ import annotations

import pytest

from agents.text import is_yes_no_question, sentences


@pytest.mark.parametrize(
    ("question", "yes_no"),
    [
        ("Were Scott Derrickson and Ed Wood of the same nationality?", True),
        ("Are Local H and For Against both from the United States?", True),
        ("did the band tour in 1999?", True),
        ("Who is older, Annie Morton or Terry Richardson?", False),
        ("Island of Ireland: which country holds most of it?", False),
        ("What year did Guns N Roses perform a promo?", False),
    ],
)
def test_yes_no_questions_are_told_by_their_opening_verb(question: str, yes_no: bool) -> None:
    assert is_yes_no_question(question) is yes_no


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Ed Wood (born Edward Davis Wood Jr.) was an American filmmaker. He died in 1978.",
            ["Ed Wood (born Edward Davis Wood Jr.) was an American filmmaker.", "He died in 1978."],
        ),
        (
            "It grossed $3.5 million in the U.S. in 1999. J. R. R. Tolkien wrote it [2].",
            ["It grossed $3.5 million in the U.S. in 1999.", "J. R. R. Tolkien wrote it [2]."],
        ),
        ("Was it? Yes [1]. Dr. Smith agreed!", ["Was it?", "Yes [1].", "Dr. Smith agreed!"]),
        ("", []),
    ],
)
def test_sentences_keep_abbreviations_initials_and_decimals_whole(
    text: str, expected: list[str]
) -> None:
    assert sentences(text) == expected


def test_sentences_follow_the_locale_language() -> None:
    assert sentences("我是学生。你好！", "zh-CN") == ["我是学生。", "你好！"]
    assert sentences("One. Two.", "xx-YY") == ["One.", "Two."]
