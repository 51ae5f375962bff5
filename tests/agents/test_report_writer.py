"""The full report's mechanics, on a scripted model: sections in parallel and in plan order,
headings, repeats and unsupported citations cut, lengths capped, the card when it fails."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import BaseMessage

from agents.citations import cited_ids
from agents.config import ReportMode, ReportStyle, ResearchOptions
from agents.events import ReportChunk, ResearchEvent
from agents.report_writer import SECTION_WORDS, capped, cut_repeats
from agents.research import ResearchResult, run_research
from serving.errors import EngineError
from tests.agents.conftest import Script, scripted_runtime
from tests.agents.test_graph_routing import ARTHUR, FIRST, QUESTION, default_script, plan_json


def section_reply(messages: list[BaseMessage]) -> str:
    """A section as a careless model writes it: a heading, the passage's fact, that fact again,
    a claim no passage makes, all citing the source its notes cite."""
    prompt = "\n".join(str(m.content) for m in messages)
    source = re.search(r"^\[(\d+)\] ", prompt.split("Sources:")[1], re.MULTILINE)
    n = source.group(1) if source else "1"
    fact = "Arthur's Magazine was an American literary periodical published in Philadelphia"
    if "First for Women" in prompt.split("Section:")[1].split("\n")[0]:
        fact = "First for Women is a woman's magazine published by Bauer Media Group in the USA"
    return (
        f"## Findings\n{fact} [{n}]. {fact} [{n}]. "
        f"The moon is made of green cheese and sings at night [{n}]."
    )


async def full_report(script: Script, **options: Any) -> tuple[ResearchResult, list[ResearchEvent]]:
    events: list[ResearchEvent] = []
    result = await run_research(
        QUESTION,
        ResearchOptions(auto_accept_plan=True, report_mode=ReportMode.FULL, **options),
        scripted_runtime(script),
        on_event=events.append,
    )
    return result, events


def full_script() -> Script:
    script = default_script(
        plan=plan_json(ARTHUR, FIRST),
        notes="The magazine was published in Philadelphia [1]. It is published by Bauer [2].",
        section=section_reply,
    )
    script.delays["section"] = 0.2
    return script


async def test_a_forced_full_report_writes_checked_sections_in_plan_order_in_parallel() -> None:
    script = full_script()
    result, events = await full_report(script)
    sections = script.of("section")
    assert len(sections) == 2
    assert sections[1].started < sections[0].ended, "sections are written at the same time"
    body = result.report.split("\n## Sources")[0]
    headings = re.findall(r"^## (.+)$", body, re.MULTILINE)
    assert headings == ["Answer", ARTHUR["title"], FIRST["title"]]
    assert "Findings" not in body and "cheese" not in body
    assert body.count("American literary periodical published in Philadelphia") == 1
    assert set(cited_ids(body)) <= {s.id for s in result.sources}
    assert result.citations.supported == result.citations.cited_sentences > 0
    chunks = [e.text for e in events if isinstance(e, ReportChunk)]
    assert len(chunks) == 4 and "".join(chunks) == result.report


async def test_a_full_report_that_cannot_be_written_falls_back_to_the_card() -> None:
    def engine_down(_messages: list[BaseMessage]) -> str:
        raise EngineError("The engine went away.")

    script = full_script()
    script.replies["section"] = engine_down
    result, _events = await full_report(script)
    assert "## Key points" in result.report and "## Analysis" in result.report
    assert result.answer and result.citations.cited_sentences > 0


async def test_a_section_whose_text_no_passage_supports_keeps_its_grounded_notes() -> None:
    script = full_script()
    script.replies["section"] = "The moon is made of green cheese [1]."
    result, _events = await full_report(script)
    assert "cheese" not in result.report and "## Key points" not in result.report
    assert "published in Philadelphia" in result.report.split(f"## {ARTHUR['title']}")[1]


def test_sections_are_capped_to_whole_sentences_and_cut_of_repeats() -> None:
    text = "One two three four five. Six seven eight. Nine ten eleven twelve thirteen."
    assert capped(text, 8) == "One two three four five. Six seven eight."
    assert capped(text, 2) == "One two three four five."
    said = ["Arthur's Magazine was published in Philadelphia [1]."]
    repeated = "Arthur's Magazine was published in Philadelphia [2]. It ran from 1844 [1]."
    assert cut_repeats(repeated, said) == "It ran from 1844 [1]."
    assert SECTION_WORDS[ReportStyle.SOCIAL_MEDIA] < SECTION_WORDS[ReportStyle.ACADEMIC]
