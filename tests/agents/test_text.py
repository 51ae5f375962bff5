"""Plain-text helpers: yes/no questions are told from open ones by their opening."""

from __future__ import annotations

import pytest

from agents.text import is_yes_no_question


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
