"""The two-host script: the model writes the discussion, the intro and outro are fixed.

The model sees the report's Answer, Key points and analysis as plain speakable text and returns
JSON lines of {speaker, line}. Lines are cleaned (no citations, Markdown or URLs; repetition cut;
capped), and the script is rejected unless both hosts speak, enough lines remain, and most of
them share words with the report. A rejected script gets one repair retry; then a deterministic
script built from the Answer and Key points is used, so a podcast never has an empty or junk
script, whatever a small model writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from agents.llm import ModelCalls
from agents.podcast.settings import TtsSettings
from agents.prompts import render_messages
from agents.runtime import Runtime
from agents.structured import clean_text, generate_structured
from agents.text import content_words, overlap, sentences, truncate, unique
from serving.budget import CallClass

MIN_LINES = 4
MIN_LINE_WORDS = 3
# A line is grounded when this share of its content words occurs in the report.
GROUNDED_SHARE = 0.5
QUESTION_CHARS = 200
ANSWER_SENTENCES = 3
ANALYSIS_CHARS = 1500
_FENCED = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\s]*\)")
_CITATION = re.compile(r"\s*\[\s*\d+(?:\s*[,;–-]\s*\d+)*\s*\]")
_URL = re.compile(r"<https?://[^>\s]+>|https?://[^\s)\]>]+")
_EMPTY_PARENS = re.compile(r"\(\s*\)")
_MARKUP = re.compile(r"[*_`#>|\\]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
_SPACES = re.compile(r"\s+")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)


class ScriptLine(BaseModel):
    """One turn of the podcast."""

    speaker: str = Field(description="The name of the host who speaks.")
    line: str = Field(description="What the host says: one or two short spoken sentences.")


class PodcastScript(BaseModel):
    """The lines of the podcast, in order."""

    lines: list[ScriptLine]

    @property
    def transcript(self) -> str:
        """One `Speaker: line` per line."""
        return "\n".join(f"{turn.speaker}: {turn.line}" for turn in self.lines) + "\n"

    @property
    def words(self) -> int:
        """How many words are spoken."""
        return sum(len(turn.line.split()) for turn in self.lines)


@dataclass(frozen=True)
class ReportDigest:
    """What a podcast may say about a report, as speakable text."""

    question: str
    answer: list[str]
    key_points: list[str]
    analysis: str

    @property
    def facts(self) -> list[str]:
        """The answer's sentences, then the key points not already said."""
        return unique([*self.answer, *self.key_points])

    @property
    def text(self) -> str:
        """Everything the digest holds, for grounding checks."""
        return " ".join([self.question, *self.facts, self.analysis])


@dataclass(frozen=True)
class WrittenScript:
    """A script with its intro and outro, and why the fallback was used if it was."""

    script: PodcastScript
    attempts: int
    fallback_reason: str | None = None


def speakable(text: str) -> str:
    """`text` as a host would say it: no code, images, links, citations, URLs or Markdown."""
    text = _FENCED.sub(" ", text)
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _CITATION.sub("", text)
    text = _URL.sub(" ", text)
    text = _EMPTY_PARENS.sub(" ", text)
    text = _LIST_MARK.sub("", text)
    text = _MARKUP.sub(" ", text)
    text = _SPACES.sub(" ", text)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


def report_sections(report: str) -> tuple[str, dict[str, str]]:
    """The report's title and its sections by lower-cased `## ` heading ("" before the first)."""
    title, current = "", ""
    sections = {current: ""}
    for line in report.splitlines():
        if line.startswith("# ") and not title and current == "":
            title = line[2:].strip()
        elif line.startswith("## "):
            current = line[3:].strip().lower()
            sections[current] = ""
        else:
            sections[current] += line + "\n"
    return title, sections


def digest_report(report: str, question: str | None = None) -> ReportDigest:
    """The speakable parts of a Markdown report (a report without sections is all answer)."""
    title, sections = report_sections(report)
    # A report without an Answer section (a small-talk reply) is all answer.
    body = sections.get("answer", sections[""])
    points = [
        speakable(line)
        for line in sections.get("key points", "").splitlines()
        if line.strip().startswith(("-", "*"))
    ]
    analysis = re.sub(r"^###.*$", "", sections.get("analysis", ""), flags=re.MULTILINE)
    return ReportDigest(
        question=truncate(speakable(question or title), QUESTION_CHARS),
        answer=sentences(speakable(body))[:ANSWER_SENTENCES],
        key_points=[p for p in points if p],
        analysis=truncate(speakable(analysis), ANALYSIS_CHARS),
    )


def script_schema(hosts: Sequence[str], max_lines: int, max_line_chars: int) -> dict[str, Any]:
    """The JSON schema sent to the engine: speakers limited to the hosts, lines capped."""
    schema = PodcastScript.model_json_schema()
    turn = schema["$defs"]["ScriptLine"]["properties"]
    turn["speaker"]["enum"] = list(hosts)
    # A small model can loop inside one string; the cap ends the line instead of the budget.
    turn["line"]["maxLength"] = max_line_chars
    schema["properties"]["lines"].update(minItems=MIN_LINES, maxItems=max_lines)
    return schema


def clean_line(text: str, max_chars: int) -> str:
    """A model's line made speakable and cut to whole sentences within `max_chars`."""
    text = speakable(clean_text(text))
    kept = ""
    for sentence in sentences(text):
        if len(kept) + len(sentence) + 1 > max_chars:
            break
        kept = f"{kept} {sentence}".strip()
    return kept or truncate(text, max_chars)


def check_script(
    script: PodcastScript, digest: ReportDigest, settings: TtsSettings
) -> PodcastScript:
    """The script cleaned, or ValueError saying why it cannot be used."""
    kept: list[ScriptLine] = []
    seen: set[str] = set()
    for turn in script.lines[: settings.max_lines]:
        line = clean_line(turn.line, settings.max_line_chars)
        key = " ".join(content_words(line))
        usable = turn.speaker in settings.hosts and len(line.split()) >= MIN_LINE_WORDS
        if usable and key not in seen:
            seen.add(key)
            kept.append(ScriptLine(speaker=turn.speaker, line=line))
    if len(kept) < MIN_LINES:
        raise ValueError(
            f"only {len(kept)} usable lines; write {MIN_LINES} to {settings.max_lines} "
            "different lines of at least a few words"
        )
    if {turn.speaker for turn in kept} != set(settings.hosts):
        raise ValueError(f"both hosts, {' and '.join(settings.hosts)}, must speak")
    grounded = sum(overlap(turn.line, digest.text) >= GROUNDED_SHARE for turn in kept)
    if grounded * 2 < len(kept):
        raise ValueError("most lines must repeat facts from the report, in its own words")
    return PodcastScript(lines=kept)


NOTHING_FOUND = "The research found nothing it could report with confidence."


def fallback_script(digest: ReportDigest, settings: TtsSettings) -> PodcastScript:
    """The report's answer and key points read out, the hosts taking turns."""
    answer = [clean_line(s, settings.max_line_chars) for s in digest.answer]
    points = [
        clean_line(p, settings.max_line_chars) for p in digest.key_points if p not in digest.answer
    ]
    turns = [f"Here is the short answer. {answer[0]}", *answer[1:]] if answer else []
    if points:
        turns += [f"The report also found this. {points[0]}", *points[1:]]
    turns = [turn for turn in turns if turn][: settings.max_lines] or [NOTHING_FOUND]
    # The first host speaks the intro, so the second one starts the discussion.
    hosts = settings.hosts
    return PodcastScript(
        lines=[ScriptLine(speaker=hosts[(i + 1) % 2], line=turn) for i, turn in enumerate(turns)]
    )


def framed(body: PodcastScript, digest: ReportDigest, hosts: Sequence[str]) -> PodcastScript:
    """`body` between a short intro (first host) and outro (whoever did not speak last)."""
    first, second = hosts
    topic = f" Today's question: {digest.question}" if digest.question else ""
    intro = f"Welcome to the Fawn research podcast. I'm {first}, here with {second}.{topic}"
    last = body.lines[-1].speaker if body.lines else first
    closer = second if last == first else first
    outro = (
        "That's the summary. The full report, with its sources, is in Fawn. Thanks for listening."
    )
    return PodcastScript(
        lines=[
            ScriptLine(speaker=first, line=intro),
            *body.lines,
            ScriptLine(speaker=closer, line=outro),
        ]
    )


async def write_script(
    digest: ReportDigest, runtime: Runtime, settings: TtsSettings
) -> tuple[WrittenScript, ModelCalls]:
    """The framed script: the model's (TTS class, one repair) or the fallback; and its calls."""
    calls = ModelCalls(runtime)
    hosts = settings.hosts
    pieces = [*digest.facts, digest.analysis] if digest.analysis else digest.facts
    fitted = await runtime.context_budget.fit(
        lambda kept: render_messages(
            "podcast_script",
            question=digest.question,
            facts=kept,
            hosts=hosts,
            min_lines=MIN_LINES,
            max_lines=settings.max_lines,
        ),
        pieces,
        settings.script_max_tokens,
    )
    result = await generate_structured(
        calls,
        CallClass.TTS,
        fitted.messages,
        PodcastScript,
        max_tokens=settings.script_max_tokens,
        fallback=lambda _reason: fallback_script(digest, settings),
        check=lambda script: check_script(script, digest, settings),
        json_schema=script_schema(hosts, settings.max_lines, settings.max_line_chars),
    )
    written = WrittenScript(
        framed(result.value, digest, hosts), result.attempts, result.fallback_reason
    )
    return written, calls
