"""HotpotQA scoring against hand-worked examples: normalization, EM, F1, recall, titles."""

from __future__ import annotations

import pytest

from agents.evaluation.hotpotqa import (
    answer_recall,
    exact_match,
    f1_score,
    normalize_answer,
    short_answer,
    split_sentences,
    title_from_url,
    title_recall_precision,
)
from agents.tools.ingest import wikipedia_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Chief of Protocol.", "chief of protocol"),
        ("  Greenwich   Village, New York City ", "greenwich village new york city"),
        ("An apple a day", "apple day"),
        ("3,677 seated", "3677 seated"),
        ("Theatre", "theatre"),
    ],
)
def test_normalize_answer_lowercases_strips_punctuation_articles_and_spaces(
    text: str, expected: str
) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert exact_match("the Animorphs!", "Animorphs") == 1.0
    assert exact_match("Animorphs series", "Animorphs") == 0.0


def test_f1_gives_partial_credit_by_shared_tokens() -> None:
    # prediction "chief of protocol of united states" (6 tokens) vs gold "chief of protocol" (3):
    # 3 shared tokens, precision 3/6, recall 3/3, F1 = 2 * 0.5 * 1 / 1.5 = 2/3.
    assert f1_score("Chief of Protocol of the United States", "Chief of Protocol") == pytest.approx(
        2 / 3
    )


def test_f1_counts_repeated_tokens_only_as_often_as_the_gold_has_them() -> None:
    # prediction tokens [new, york, new] (3), gold [new, york] (2): common = new:1, york:1 = 2,
    # precision 2/3, recall 2/2, F1 = 0.8.
    assert f1_score("New York new", "New York") == pytest.approx(0.8)


def test_f1_is_zero_when_yes_no_answers_do_not_match_exactly() -> None:
    assert f1_score("yes", "yes") == 1.0
    assert f1_score("no", "yes") == 0.0
    # A gold "yes" gets no partial credit from a longer prediction that contains it.
    assert f1_score("yes they are", "yes") == 0.0
    # A predicted "no" gets no credit against a non-yes/no gold either.
    assert f1_score("no", "no comment") == 0.0


def test_f1_is_zero_without_shared_tokens() -> None:
    assert f1_score("Paris", "London") == 0.0
    assert f1_score("", "London") == 0.0


def test_answer_recall_finds_gold_on_token_boundaries() -> None:
    answer = "The Lewiston Maineiacs played at the Colisée, which seats 3,677 seated fans."
    assert answer_recall(answer, "3,677 seated") == 1.0
    assert answer_recall("It opened in 1999.", "1999") == 1.0
    # "1" is a different token from "1999": no match inside a longer number.
    assert answer_recall("It opened in 1999.", "1") == 0.0
    assert answer_recall("Shirley Temple", "Chief of Protocol") == 0.0


def test_answer_recall_on_yes_no_questions_reads_the_verdict() -> None:
    assert answer_recall("Yes, both were American.", "yes") == 1.0
    assert answer_recall("No. They stand in different neighbourhoods.", "no") == 1.0
    assert answer_recall("Yes, both were American.", "no") == 0.0
    # "no" used as a determiner is not a verdict, and "yesterday" is not "yes".
    assert answer_recall("No information was found in the sources.", "no") == 0.0
    assert answer_recall("Yesterday both were American.", "yes") == 0.0
    # The first verdict counts, even after an opening sentence that gives none.
    assert answer_recall("Both are in Istanbul. No, they are not in the same one.", "no") == 1.0


def test_split_sentences_keeps_abbreviations_and_initials_inside_a_sentence() -> None:
    text = "Edward Davis Wood Jr. was born in the U.S. in 1924. He died in 1978."
    assert split_sentences(text) == [
        "Edward Davis Wood Jr. was born in the U.S. in 1924.",
        "He died in 1978.",
    ]


def test_split_sentences_drops_markdown_links_urls_and_citation_marks() -> None:
    text = "**Answer:** [Shirley Temple](https://en.wikipedia.org/wiki/Shirley_Temple) [1].\n- More"
    assert split_sentences(text) == ["Shirley Temple.", "More"]


def test_short_answer_is_the_first_sentence_or_its_verdict() -> None:
    assert short_answer("Chief of Protocol. She also acted.") == "Chief of Protocol."
    assert short_answer("**Yes**, both are American.") == "yes"
    assert short_answer("No. They differ.") == "no"
    assert short_answer("The answer is: Robert Erskine Childers [2].") == "Robert Erskine Childers."
    assert short_answer("The answer is 9,984 [2].") == "9,984."
    assert short_answer("") == ""


def test_wikipedia_urls_round_trip_to_titles() -> None:
    title = "Oh My God (Guns N' Roses song)"
    url = wikipedia_url(title)
    assert url == "https://en.wikipedia.org/wiki/Oh_My_God_(Guns_N'_Roses_song)"
    assert title_from_url(url) == title
    assert title_from_url("https://en.wikipedia.org/wiki/Androscoggin_Bank_Colis%C3%A9e") == (
        "Androscoggin Bank Colisée"
    )
    assert title_from_url("https://example.com/Shirley_Temple") is None


def test_title_recall_and_precision_over_cited_titles() -> None:
    gold = ["Shirley Temple", "Kiss and Tell (1945 film)"]
    cited = ["Shirley Temple", "Janet Waldo", "Meet Corliss Archer"]
    recall, precision = title_recall_precision(cited, gold)
    assert recall == pytest.approx(1 / 2)
    assert precision == pytest.approx(1 / 3)
    assert title_recall_precision([], gold) == (0.0, 0.0)
    assert title_recall_precision(gold, gold) == (1.0, 1.0)
