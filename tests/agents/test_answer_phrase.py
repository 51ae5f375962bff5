"""The phrase that answers: read out of the model's own sentence by what the question asks."""

from __future__ import annotations

import pytest

from agents.answer_phrase import answer_phrase, choice_options
from agents.report import answer_markdown
from agents.sources import new_source


@pytest.mark.parametrize(
    ("question", "sentence", "phrase"),
    [
        (
            "Who is older, Annie Morton or Terry Richardson?",
            "Terry Richardson is older than Annie Morton [1].",
            "Terry Richardson",
        ),
        (
            "Which writer was from England, Henry Roth or Robert Erskine Childers?",
            "Erskine Childers was the writer from England [2].",
            "Robert Erskine Childers",
        ),
        (
            "Does The Border Surrender or Unsane have more members?",
            "The Border Surrender has four members, more than Unsane.",
            "Border Surrender",
        ),
    ],
)
def test_a_choice_is_the_option_the_sentence_names_first(
    question: str, sentence: str, phrase: str
) -> None:
    assert answer_phrase(question, sentence) == phrase


def test_a_short_answer_to_a_choice_gets_the_option_as_the_question_writes_it() -> None:
    question = "Which writer was from England, Henry Roth or Robert Erskine Childers?"
    assert answer_phrase(question, "Erskine Childers [2].") == "Robert Erskine Childers"
    assert answer_phrase(question, "Robert Erskine Childers [2].") is None


@pytest.mark.parametrize(
    ("question", "sentence", "phrase"),
    [
        (
            "What was the 2014 population of the city where the hospital is located?",
            "The population of Lake Wales was 15,140 in 2014 [1].",
            "15,140",
        ),
        ("How long is the circuit?", "The Mount Panorama Circuit is 6.213 km long.", "6.213 km"),
        (
            "When did the war end?",
            "The war ended on 2 September 1945 in Tokyo.",
            "2 September 1945",
        ),
        ("In what year did the war end?", "The war ended on 2 September 1945 in Tokyo.", "1945"),
    ],
)
def test_a_quantity_or_time_is_the_first_new_number_or_date(
    question: str, sentence: str, phrase: str
) -> None:
    assert answer_phrase(question, sentence) == phrase


def test_a_name_is_the_first_one_the_question_does_not_hold() -> None:
    question = "Nobody Loves You was written by John Lennon and released on what album?"
    sentence = "Walls and Bridges is the fifth studio album by English musician John Lennon [1]."
    assert answer_phrase(question, sentence) == "Walls and Bridges"
    quoted = 'The fight song of the university is "Rock Chalk, Jayhawk" and it is sung often.'
    assert answer_phrase("What is the university's fight song?", quoted) == "Rock Chalk, Jayhawk"


def test_a_count_is_the_number_next_to_what_the_question_counts() -> None:
    arena = "It is a 4,000-capacity (3,677-seat) multi-purpose arena in Lewiston."
    assert answer_phrase("The arena can seat how many people?", arena) == "3,677"
    county = "The lake is 8 miles east of the town; the county population was 9,984 in 2010."
    assert answer_phrase("What is the county's population?", county) == "9,984"


def test_a_number_inside_a_range_or_a_name_is_not_a_count() -> None:
    season = "The 2006–07 season of Route 13 was the 38th season of the league."
    assert answer_phrase("How many people can the arena seat?", season) == "38"


def test_a_short_sentence_or_one_without_the_kind_asked_has_no_phrase() -> None:
    assert answer_phrase("Who directed the film?", "Scott Derrickson [1].") is None
    assert (
        answer_phrase("How many people live there?", "The town is small and quiet today.") is None
    )
    assert (
        answer_phrase("Who is older, Ann Lee or Bo Ray?", "Nobody knows which one it is.") is None
    )


def test_options_are_the_names_either_side_of_or() -> None:
    assert choice_options("Who was born first, Jan de Bont or Raoul Walsh?") == [
        "Jan de Bont",
        "Raoul Walsh",
    ]
    assert choice_options("Who directed Alien?") == []


def test_the_answer_opens_with_its_phrase_in_bold_and_escaped() -> None:
    source = new_source("https://example.org/a", "A", "Walls and Bridges is an album.", "local")
    registry = [source.model_copy(update={"id": 1})]
    markdown = answer_markdown("Walls and Bridges is an album [1].", registry, "Walls <b>")
    assert markdown == "**Walls \\<b\\>.** Walls and Bridges is an album [1]."
    assert answer_markdown("Walls and Bridges [1].", registry) == "Walls and Bridges [1]."
