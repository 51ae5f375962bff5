"""Honest answers and faithful citations: what the evidence does not back is not a finding."""

from __future__ import annotations

from agents.answerability import NOT_ANSWERED, is_abstention, judge, not_answered, subjects
from agents.llm import ModelCalls
from agents.support import LexicalSupport, ModelSupport, audit, lexical_support, verify
from tests.agents.conftest import Script, numbered_sources, scripted_runtime

VERDI = numbered_sources(
    ("Giuseppe Verdi", "Giuseppe Fortunino Francesco Verdi was an Italian opera composer."),
    ("Ambroise Thomas", "Charles Louis Ambroise Thomas was a French composer of operas."),
)
UNRELATED = numbered_sources(
    ("Women's Health", "Women's Health is a magazine on health, published since 2005."),
    ("Bauer Media", "Bauer Media Group is a German media company."),
)


def test_an_answer_about_subjects_no_passage_mentions_is_not_a_finding() -> None:
    question = "Which magazine was started first, Arthur's Magazine or First for Women?"
    judgement = judge(question, "First for Women began in 1996.", UNRELATED, yes_no=False)
    assert not judgement.answered
    assert judgement.missing == ("Arthur's Magazine", "First for Women")
    found = ["Bauer Media Group is a German media company [2].", "It prints magazines [1]."]
    answer = not_answered(judgement, [*found, "A third finding [3]."])
    assert answer.startswith(NOT_ANSWERED) and "1996" not in answer
    assert answer.endswith(f"What they do say: {found[0]} {found[1]}")
    assert "Arthur's Magazine or First for Women" in answer and is_abstention(answer)


def test_a_verdict_whose_reason_its_passage_contradicts_is_not_a_finding() -> None:
    question = "Are Giuseppe Verdi and Ambroise Thomas both opera composers?"
    wrong = "No, Giuseppe Verdi is not an opera composer [1]."
    assert not judge(question, wrong, VERDI, yes_no=True).answered
    right = "Yes, Giuseppe Verdi was an opera composer [1]."
    assert judge(question, right, VERDI, yes_no=True).answered


def test_an_open_answer_must_say_what_a_passage_holds() -> None:
    question = "What nationality was the composer Giuseppe Verdi?"
    assert judge(question, "Italian [1].", VERDI, yes_no=False).answered
    assert not judge(question, "Spanish.", VERDI, yes_no=False).answered
    assert not judge(question, "The composer Giuseppe Verdi.", VERDI, yes_no=False).answered


def test_a_choice_is_answered_by_naming_one_option() -> None:
    question = "Who was born first, Giuseppe Verdi or Ambroise Thomas?"
    assert judge(question, "Giuseppe Verdi was born first.", VERDI, yes_no=False).answered
    assert not judge(question, "Mozart.", VERDI, yes_no=False).answered


def test_the_lexical_floor_needs_the_words_and_the_same_polarity() -> None:
    passage = VERDI[0].passage
    assert lexical_support("Verdi was an Italian opera composer [1].", passage)
    assert not lexical_support("Verdi was not an Italian opera composer [1].", passage)
    assert not lexical_support("Verdi was a Spanish painter and sculptor [1].", passage)


async def test_verify_removes_citations_their_passage_does_not_support() -> None:
    passages = {s.id: s.passage for s in VERDI}
    text = "Verdi was an Italian opera composer [1][2]. Thomas was a painter of fruit [2]."
    kept = await verify(text, passages, LexicalSupport(), drop_unsupported=True)
    assert kept.text == "Verdi was an Italian opera composer [1]."
    assert (kept.checked, kept.removed) == (2, 1)
    uncited = await verify(text, passages, LexicalSupport(), drop_unsupported=False)
    assert uncited.text.endswith("Thomas was a painter of fruit.")


def test_audit_counts_the_cited_sentences_of_a_report_body() -> None:
    passages = {s.id: s.passage for s in VERDI}
    report = (
        "# Q\n\n## Answer\n\nVerdi was an Italian opera composer [1].\n\n## Key points\n\n"
        "- Thomas painted fruit [2].\n- No citation here.\n\n```python\nx = a[1]\n```\n\n"
        "## Sources\n\n- **[1]** [Verdi](https://example.org/1)\n"
    )
    assert audit(report, passages) == (2, 1)


def test_passages_that_leave_most_of_the_question_unmentioned_do_not_answer_it() -> None:
    question = "In which city did the Italian composer of the opera Aida die in 1901?"
    about_thomas = numbered_sources(
        ("Ambroise Thomas", "Thomas was a French composer who died in Paris.")
    )
    assert not judge(question, "Paris [1].", about_thomas, yes_no=False).answered
    about_verdi = numbered_sources(
        ("Giuseppe Verdi", "The Italian opera composer of Aida, Verdi, died in Milan in 1901.")
    )
    assert judge(question, "Milan [1].", about_verdi, yes_no=False).answered


async def test_model_entailment_decides_and_falls_back_to_the_lexical_floor_on_junk() -> None:
    passages = {s.id: s.passage for s in VERDI}
    text = "Verdi was an Italian opera composer [1]. Thomas wrote operas [2]."
    script = Script(replies={"entailment": ['{"supported": false}', "not json", "still not"]})
    check = ModelSupport(ModelCalls(scripted_runtime(script)))
    kept = await verify(text, passages, check, drop_unsupported=True)
    # The model rejected the first sentence; its junk on the second left the lexical floor,
    # which "Thomas wrote operas" against "a French composer of operas" passes.
    assert kept.text == "Thomas wrote operas [2]."
    judged = script.of("entailment")
    assert "Sentence: Verdi was an Italian opera composer." in judged[0].prompt
    assert len(judged) == 3, "one call, then one call and its repair retry"


def test_a_yes_no_question_needs_its_subjects_found_not_its_predicate() -> None:
    question = "Were Giuseppe Verdi and Ambroise Thomas both born in the United States?"
    assert subjects(question) == ["Giuseppe Verdi", "Ambroise Thomas", "United States"]
    assert judge(question, "No.", VERDI, yes_no=True).answered
    assert not judge(question, "No.", UNRELATED, yes_no=True).answered


def test_a_negated_reason_beside_a_passage_that_says_something_else_is_no_contradiction() -> None:
    places = numbered_sources(
        ("Laleli Mosque", "The Laleli Mosque is an 18th-century mosque in Laleli, Istanbul."),
        ("Esma Sultan Mansion", "The Esma Sultan Mansion is located in the Ortaköy neighborhood."),
    )
    question = "Are the Laleli Mosque and Esma Sultan Mansion located in the same neighborhood?"
    reason = "No, the Laleli Mosque and Esma Sultan Mansion are not in the same neighborhood [2]."
    assert judge(question, reason, places, yes_no=True).answered
