"""Every citation resolves to a registered source; no URL is invented; Sources come from the
registry."""

from __future__ import annotations

from agents.citations import (
    check_citations,
    cited_ids,
    filter_citations,
    ground,
    remap_citations,
    sources_section,
    strip_unknown_urls,
)
from agents.report import assemble_report
from agents.sources import LocalRefs, Source, merge_sources, new_source
from agents.state import CodeRun, StepResult, StepType

ARTHUR = new_source(
    "https://en.wikipedia.org/wiki/Arthur's_Magazine",
    "Arthur's Magazine",
    "Arthur's Magazine (1844–1846) was an American literary periodical published in Philadelphia.",
    "local",
)
FIRST = new_source(
    "https://en.wikipedia.org/wiki/First_for_Women#History",
    "First for Women",
    "First for Women is a woman's magazine published by Bauer Media Group. It was started in 1989.",
    "local",
)


def registry() -> list[Source]:
    return merge_sources([], [ARTHUR, FIRST])


def test_registry_gives_sequential_ids_and_merges_by_url() -> None:
    first = merge_sources([], [ARTHUR])
    both = merge_sources(first, [FIRST, ARTHUR.model_copy(update={"passage": "other"})])
    assert [(s.id, s.title) for s in both] == [(1, "Arthur's Magazine"), (2, "First for Women")]
    assert both[0].passage.startswith("Arthur's Magazine (1844"), "the first passage is kept"
    assert both[1].url == "https://en.wikipedia.org/wiki/First_for_Women", "fragment dropped"


def test_citing_a_known_url_marks_it_cited_without_a_new_id() -> None:
    merged = merge_sources(registry(), [ARTHUR.model_copy(update={"cited": True})])
    assert [(s.id, s.cited) for s in merged] == [(1, True), (2, False)]


def test_unknown_citation_ids_are_removed() -> None:
    text = "Arthur's came first [1][7]. It was in Philadelphia [3, 1]. Nothing here [9]."
    assert filter_citations(text, {1, 2}) == (
        "Arthur's came first [1]. It was in Philadelphia [1]. Nothing here."
    )


def test_bracketed_words_and_links_are_not_citations() -> None:
    text = "See [the magazine] and [2](https://en.wikipedia.org/wiki/First_for_Women)."
    assert cited_ids(text) == []


def test_local_numbers_are_mapped_to_registry_ids() -> None:
    refs = LocalRefs(urls=[FIRST.url, ARTHUR.url, "https://not.registered/x"])
    mapping = refs.registry_ids(registry())
    assert mapping == {1: 2, 2: 1}
    assert remap_citations("A [1]. B [2]. C [3].", mapping) == "A [2]. B [1]. C."


def test_invented_urls_are_stripped_and_registered_ones_kept() -> None:
    known = {s.url for s in registry()}
    text = (
        f"Read [the article]({ARTHUR.url}) or [this](https://invented.example/page), "
        "also https://made.up/x and <https://fake.example>. Ref [3](https://nope.example)."
    )
    cleaned = strip_unknown_urls(text, known)
    assert ARTHUR.url in cleaned
    for invented in ("invented.example", "made.up", "fake.example", "nope.example"):
        assert invented not in cleaned
    assert "or this, also and." in cleaned and "Ref [3]." in cleaned


def test_code_blocks_are_not_checked() -> None:
    text = "Result [5].\n\n```python\nprint(values[5])  # https://example.com\n```\n"
    checked = check_citations(text, registry())
    assert checked.startswith("Result.")
    assert "print(values[5])  # https://example.com" in checked


def test_grounding_cites_the_passage_a_sentence_restates() -> None:
    passages = {s.id: s.passage for s in registry()}
    text = "First for Women was started in 1989 by Bauer Media Group. Magazines are fun."
    assert ground(text, passages, drop_unsupported=False) == (
        "First for Women was started in 1989 by Bauer Media Group [2]. Magazines are fun."
    )


def test_grounding_replaces_a_citation_the_passage_does_not_support() -> None:
    passages = {s.id: s.passage for s in registry()}
    text = "Arthur's Magazine was published in Philadelphia [2]."
    assert ground(text, passages, drop_unsupported=True) == (
        "Arthur's Magazine was published in Philadelphia [1]."
    )


def test_grounding_drops_unsupported_sentences_from_notes() -> None:
    passages = {s.id: s.passage for s in registry()}
    text = "Write two to four sentences with facts [1]. First for Women started in 1989 [2]."
    assert ground(text, passages, drop_unsupported=True) == "First for Women started in 1989 [2]."


def test_sources_section_lists_the_registry_in_id_order() -> None:
    section = sources_section(list(reversed(registry())))
    lines = [line for line in section.splitlines() if line.startswith("- ")]
    assert lines[0].startswith("- **[1]** [Arthur's Magazine](https://en.wikipedia.org/wiki/")
    assert lines[1].startswith("- **[2]** [First for Women](")


def test_report_sources_come_from_the_registry_not_the_model() -> None:
    answer = "Arthur's Magazine came first [1][4]. ## Sources\n[4] https://invented.example"
    result = StepResult(
        iteration=1,
        index=0,
        title="Start dates",
        step_type=StepType.RESEARCH,
        notes="It was started in 1989 [1]. Arthur's dates from 1844 [2].",
        refs=LocalRefs(urls=[FIRST.url, ARTHUR.url]),
        code=CodeRun(code="print(1844 < 1989)", stdout="True\n", stderr="", exit_code=0, ok=True),
    )
    report = assemble_report("Which came first?", answer, [result], registry())
    body, sources = report.split("\n## Sources\n")
    assert set(cited_ids(body)) == {1, 2}
    assert "invented.example" not in report
    assert "It was started in 1989 [2]. Arthur's dates from 1844 [1]." in body
    assert "```python\nprint(1844 < 1989)\n```" in body and "True" in body
    assert ARTHUR.url in sources and FIRST.url in sources
