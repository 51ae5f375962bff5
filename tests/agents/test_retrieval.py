"""Queries for a step, and the order passages are read in (real HotpotQA dev paragraphs)."""

from __future__ import annotations

from agents.retrieval import first_query, follow_up_query, page_name, rank_for_answer
from agents.sources import Source, new_source
from agents.state import Step, StepType

KISS_AND_TELL = (
    "Kiss and Tell is a 1945 American comedy film starring then 17-year-old Shirley Temple as "
    "Corliss Archer. In the film, two teenage girls cause their respective parents much concern "
    "when they start to become interested in boys."
)
SHIRLEY_TEMPLE = (
    "Shirley Temple Black (April 23, 1928 – February 10, 2014) was an American actress, singer, "
    "dancer, businesswoman, and diplomat who was Hollywood's number one box-office draw as a "
    "child actress from 1935 to 1938. As an adult, she was named United States ambassador to "
    "Ghana and to Czechoslovakia and also served as Chief of Protocol of the United States."
)
SECRETARY = (
    "The office of Secretary of State for Constitutional Affairs was a British Government "
    "position, created in 2003."
)
MEET_CORLISS = (
    "Meet Corliss Archer is an American television sitcom that aired on CBS (July 13, 1951 - "
    "August 10, 1951) and in syndication via the Ziv Company from April to December 1954."
)


def source(title: str, passage: str) -> Source:
    return new_source(
        "https://en.wikipedia.org/wiki/" + title.replace(" ", "_"), title, passage, "local"
    )


def test_page_name_drops_the_disambiguation() -> None:
    assert page_name("Ed Wood (film)") == "Ed Wood"
    assert page_name("Kiss and Tell (1945 film)") == "Kiss and Tell"
    assert page_name("Brown County, Kansas") == "Brown County, Kansas"


def test_rank_reads_the_bridge_page_the_first_passage_names_before_look_alikes() -> None:
    question = (
        "What government position was held by the woman who portrayed Corliss Archer in the "
        "film Kiss and Tell?"
    )
    found = [
        source("Meet Corliss Archer (TV series)", MEET_CORLISS),
        source("Secretary of State for Constitutional Affairs", SECRETARY),
        source("Kiss and Tell (1945 film)", KISS_AND_TELL),
        source("Shirley Temple", SHIRLEY_TEMPLE),
    ]
    ranked = [s.title for s in rank_for_answer(question, found)]
    assert ranked[:2] == ["Kiss and Tell (1945 film)", "Shirley Temple"]


def test_rank_finds_a_bridge_page_named_in_another_case_but_not_inside_a_word() -> None:
    question = "2014 S/S is the debut album of a South Korean boy group that was formed by who?"
    found = [
        source("SF9 (band)", "SF9 is a South Korean boy group formed by FNC Entertainment. "
               "The group debuted in 2016 with the single album Feeling Sensation."),
        source("2014 S/S", "2014 S/S is the debut album of South Korean group WINNER. It was "
               "released on August 12, 2014 by the group's record label."),
        source("Winner (band)", "Winner is a South Korean boy group formed in 2013 by YG "
               "Entertainment."),
        source("Feel (album)", "Feel is an album whose title song was a winner at music shows."),
    ]  # fmt: skip
    ranked = [s.title for s in rank_for_answer(question, found)]
    assert ranked[:2] == ["2014 S/S", "Winner (band)"]


def test_rank_reads_both_pages_a_comparison_names_first() -> None:
    question = "Were Scott Derrickson and Ed Wood of the same nationality?"
    found = [
        source("Ed Wood (film)", "Ed Wood is a 1994 American biographical period comedy-drama "
               "film directed and produced by Tim Burton, and starring Johnny Depp as Ed Wood."),
        source("Woodson, Arkansas", "Woodson is a census-designated place in Pulaski County, "
               "Arkansas. It is the namesake of Ed Wood Sr., a plantation owner."),
        source("Scott Derrickson", "Scott Derrickson (born July 16, 1966) is an American "
               "director, screenwriter and producer."),
        source("Ed Wood", "Edward Davis Wood Jr. (October 10, 1924 – December 10, 1978) was an "
               "American filmmaker, actor, writer, producer, and director."),
    ]  # fmt: skip
    ranked = [s.title for s in rank_for_answer(question, found)]
    assert set(ranked[:2]) == {"Scott Derrickson", "Ed Wood"}
    assert sorted(ranked) == sorted(s.title for s in found)


def test_rank_keeps_the_order_when_there_is_nothing_to_compare() -> None:
    one = [source("Shirley Temple", SHIRLEY_TEMPLE)]
    assert rank_for_answer("Who was Shirley Temple?", one) == one
    two = [source("Kiss and Tell", KISS_AND_TELL), source("Shirley Temple", SHIRLEY_TEMPLE)]
    assert rank_for_answer("?", two) == two


def test_first_query_is_the_question_plus_new_step_terms() -> None:
    step = Step(
        title="Actress career",
        description="Find the actress's later government career.",
        step_type=StepType.RESEARCH,
        need_search=True,
    )
    question = "Which actress played Corliss Archer?"
    assert first_query(question) == question
    assert first_query(question, step) == f"{question} career actress's later government"


def test_follow_up_query_searches_the_names_the_first_passages_revealed() -> None:
    question = "What position was held by the woman who portrayed Corliss Archer in Kiss and Tell?"
    query = follow_up_query(question, [source("Kiss and Tell (1945 film)", KISS_AND_TELL)])
    assert "Shirley Temple" in query
    assert query.startswith("position held woman portrayed corliss archer kiss")
