"""The reporter: a short answer from the best two passages, cleaned, cited, with its evidence."""

from __future__ import annotations

import json

import pytest

from agents.config import ResearchOptions
from agents.nodes.reporter import direct_answer, evidence, finish_answer
from agents.research import run_research
from agents.sources import Source, new_source
from tests.agents.conftest import DOCS, Script, scripted_runtime

PLAN = {
    "locale": "en-US",
    "thought": "Compare where the magazines were published.",
    "title": "Magazine places",
    "has_enough_context": False,
    "steps": [
        {
            "title": "Magazine publication places",
            "description": "Where Arthur's Magazine and First for Women were published.",
            "step_type": "research",
            "need_search": True,
        }
    ],
}


def registered(*docs: tuple[str, str]) -> list[Source]:
    return [
        new_source(f"https://en.wikipedia.org/wiki/{title}", title, text, "local").model_copy(
            update={"id": n}
        )
        for n, (title, text) in enumerate(docs, 1)
    ]


REGISTRY = registered(
    ("Radio City", "Radio City is India's first private FM radio station, started in 2001."),
    ("End of Days", "End of Days is a 1999 American fantasy action horror thriller film."),
    ("Oh My God", "Oh My God is a song by Guns N' Roses, released in 1999 as a film promo."),
)


def script(answer: str) -> Script:
    return Script(
        replies={
            "plan": json.dumps(PLAN),
            "query": json.dumps({"query": ""}),
            "notes": "Arthur's Magazine was published in Philadelphia [1].",
            "answer": answer,
        }
    )


def test_finish_answer_cites_the_passage_read_that_holds_the_answer() -> None:
    read = [REGISTRY[2], REGISTRY[1]]
    assert finish_answer("1999.", read, REGISTRY, "") == "1999 [3]."


@pytest.mark.parametrize(
    ("sentence", "question", "direct"),
    [
        (
            "2014 S/S is the debut album of a boy group that was formed by YG Entertainment.",
            "2014 S/S is the debut album of a boy group that was formed by who?",
            "YG Entertainment.",
        ),
        (
            "The woman who portrayed Corliss Archer in Kiss and Tell was the Chief of Protocol.",
            "What position was held by the woman who portrayed Corliss Archer in Kiss and Tell?",
            "Chief of Protocol.",
        ),
        ("The answer is: 9,984.", "What is the population?", "9,984."),
        # Nothing new after the opening, an opening that names a choice, or no opening: kept.
        (
            "Terry Richardson is older than Annie Morton.",
            "Who is older, Annie Morton or Terry Richardson?",
            "Terry Richardson is older than Annie Morton.",
        ),
        (
            "The band was formed in Chicago.",
            "Was the band formed in Chicago or in Boston?",
            "The band was formed in Chicago.",
        ),
        ("The year was 1999.", "What year did the band play?", "The year was 1999."),
    ],
)
def test_direct_answer_drops_an_opening_that_restates_the_question(
    sentence: str, question: str, direct: str
) -> None:
    assert direct_answer(sentence, question) == direct


def test_finish_answer_starts_with_the_direct_answer_and_keeps_its_citation() -> None:
    text = "The promo was released in 1999. It was for a film."
    question = "In what year was the promo released?"
    answer = finish_answer(text, [REGISTRY[2]], REGISTRY, "", question)
    assert answer == "1999 [3]. It was for a film [3]."


def test_finish_answer_drops_a_passage_title_the_model_copied_as_a_label() -> None:
    answer = finish_answer("End of Days: End of Days is a 1999 film.", REGISTRY, REGISTRY, "")
    assert answer == "End of Days is a 1999 film [2]."


def test_finish_answer_drops_a_sentence_cut_off_at_the_token_cap() -> None:
    text = "No. Radio City and End of Days are not from the same country, as Radio"
    assert finish_answer(text, REGISTRY[:2], REGISTRY, "") == "No."


def test_finish_answer_removes_unknown_ids_and_keeps_an_unsupported_answer_uncited() -> None:
    answer = finish_answer("## Kingston, Jamaica [7].", REGISTRY[:2], REGISTRY, "")
    assert answer == "Kingston, Jamaica."
    assert finish_answer("   ", REGISTRY[:2], REGISTRY, "fallback") == "fallback"


def test_evidence_is_the_sentence_of_each_passage_closest_to_question_and_answer() -> None:
    two = registered(
        ("Kiss and Tell", "Kiss and Tell is a 1945 film. It stars Shirley Temple as Corliss."),
        ("Shirley Temple", "Shirley Temple was an actress. She served as Chief of Protocol."),
    )
    question = "Which government post did the actress who played Corliss hold?"
    points = evidence(question, "Chief of Protocol", two)
    assert points == [
        "It stars Shirley Temple as Corliss [1].",
        "She served as Chief of Protocol [2].",
    ]


async def test_a_yes_no_question_is_answered_from_its_two_named_pages() -> None:
    played = script("Yes. Both were published in the United States.")
    question = "Were Arthur's Magazine and First for Women both published in the United States?"
    result = await run_research(
        question, ResearchOptions(auto_accept_plan=True), scripted_runtime(played)
    )
    (call,) = played.of("answer")
    assert call.prompt.rstrip().endswith(f"Question: {question}\nAnswer yes or no.")
    assert f"{DOCS[0].title}: {DOCS[0].text}" in call.prompt
    assert f"{DOCS[1].title}: {DOCS[1].text}" in call.prompt
    assert DOCS[2].title not in call.prompt
    assert result.answer.startswith("Yes.")
    assert (
        "published in Philadelphia in the 19th century [" in result.report.split("## Analysis")[0]
    )


async def test_an_open_question_gets_no_yes_no_instruction_and_a_fallback_when_silent() -> None:
    played = script("")
    question = "Which magazine was published in Philadelphia, Arthur's Magazine or First for Women?"
    result = await run_research(
        question, ResearchOptions(auto_accept_plan=True), scripted_runtime(played)
    )
    assert "yes or no" not in played.of("answer")[0].prompt
    assert result.answer and result.answer in result.report
    assert result.answer.endswith("].")
