"""The podcast from report to audio: script validation, repair and fallback, speech, deferral.

Script rules run on a scripted chat model; speech is the real espeak-ng. The deferral test runs
the whole podcast on the real engine behind a real budget whose pressure monitor reads a
settable source: under pressure the script call waits in the TTS class, and finishes once the
pressure clears.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from langchain_core.language_models import BaseChatModel
from prometheus_client import CollectorRegistry

from agents.podcast import (
    EspeakVoice,
    PodcastProgress,
    PodcastStage,
    SpeechError,
    TtsSettings,
    make_podcast,
)
from agents.podcast.audio import AudioFormat
from agents.podcast.script import (
    MIN_LINES,
    PodcastScript,
    ScriptLine,
    check_script,
    digest_report,
    speakable,
    write_script,
)
from agents.podcast.settings import DEFAULT_ESPEAK_VOICES
from agents.runtime import Runtime, connect_runtime
from agents.text import overlap
from serving.budget import Budget, CallClass
from serving.endpoint import Endpoint
from serving.observability import gate_metrics
from serving.pressure import PressureMonitor, PressureSettings, SettableSource
from serving.settings import LLMSettings
from tests.agents.conftest import Script, cut_off, scripted_runtime

REPORT = """# Which magazine was started first, Arthur's Magazine or First for Women?

## Answer

Arthur's Magazine was started first, in 1844 [1]. First for Women began in 1989 [2].

## Key points

- Arthur's Magazine (1844–1846) was an American literary periodical published in Philadelphia [1].
- First for Women is a woman's magazine published by Bauer Media Group in the USA [2].

## Analysis

### Founding dates

Arthur's Magazine was published from 1844 to 1846 in
[Philadelphia](https://en.wikipedia.org/wiki/Philadelphia) [1]. First for Women was started
in 1989 by Bauer Media Group [2].

```python
print(1989 - 1844)
```

## Sources

1. [Arthur's Magazine](https://en.wikipedia.org/wiki/Arthur%27s_Magazine)
2. [First for Women](https://en.wikipedia.org/wiki/First_for_Women)
"""
SETTINGS = TtsSettings()
MAYA, THEO = SETTINGS.hosts
SECONDS_PER_WORD = (0.2, 1.5)
AUDIBLE_RMS = 300.0
GOOD_LINES = [
    (THEO, "Arthur's Magazine came first: it was started in 1844 in Philadelphia [1]."),
    (MAYA, "And First for Women, when did that one begin?"),
    (THEO, "First for Women began in 1989, published by Bauer Media Group."),
    (MAYA, "So Arthur's Magazine was started long before First for Women."),
]


def script_json(lines: list[tuple[str, str]]) -> str:
    return json.dumps({"lines": [{"speaker": s, "line": text} for s, text in lines]})


def body_of(script: PodcastScript) -> list[ScriptLine]:
    """The lines between the fixed intro and outro."""
    return script.lines[1:-1]


def wav_facts(data: bytes) -> tuple[float, float]:
    """Duration (s) and RMS of a WAV file, read with the standard library's parser."""
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        rate, frames = reader.getframerate(), reader.readframes(reader.getnframes())
    samples = np.frombuffer(frames, "<i2").astype(np.float64)
    return len(samples) / rate, float(np.sqrt(np.mean(samples**2)))


def recording_classes(runtime: Runtime, classes: list[CallClass]) -> Runtime:
    """`runtime` with the budget class of every model it builds written to `classes`."""

    def model_for(
        call_class: CallClass,
        *,
        max_tokens: int,
        temperature: float | None = None,
        prompt_tokens: int | None = None,
    ) -> BaseChatModel:
        classes.append(call_class)
        return runtime.model_for(
            call_class, max_tokens=max_tokens, temperature=temperature, prompt_tokens=prompt_tokens
        )

    return dataclasses.replace(runtime, model_for=model_for)


def test_the_digest_is_speakable_answer_points_and_analysis() -> None:
    digest = digest_report(REPORT)
    assert digest.question.startswith("Which magazine was started first")
    assert digest.answer == [
        "Arthur's Magazine was started first, in 1844.",
        "First for Women began in 1989.",
    ]
    assert digest.key_points[1] == (
        "First for Women is a woman's magazine published by Bauer Media Group in the USA."
    )
    assert "Philadelphia" in digest.analysis
    for text in [*digest.facts, digest.analysis]:
        assert "[" not in text and "http" not in text and "print(" not in text and "#" not in text


def test_a_reply_without_sections_is_all_answer_under_its_title() -> None:
    digest = digest_report("# Hello\n\nHi! I am Fawn. I research questions. Ask me one.")
    assert digest.question == "Hello"
    assert digest.answer == ["Hi!", "I am Fawn.", "I research questions."]
    assert digest.key_points == [] and digest.analysis == ""


def test_speakable_drops_markup_but_keeps_the_words() -> None:
    assert speakable("**Bold** claim [1, 2] (<https://x.org>) and `code`.") == (
        "Bold claim and code."
    )


async def test_a_good_model_script_is_cleaned_and_framed_by_intro_and_outro() -> None:
    script = Script(replies={"podcastscript": script_json(GOOD_LINES)})
    classes: list[CallClass] = []
    runtime = recording_classes(scripted_runtime(script), classes)
    written, calls = await write_script(digest_report(REPORT), runtime, SETTINGS)
    assert written.fallback_reason is None and written.attempts == 1
    assert classes == [CallClass.TTS]
    lines = written.script.lines
    assert lines[0].speaker == MAYA and "Welcome" in lines[0].line and "Theo" in lines[0].line
    assert "Thanks for listening" in lines[-1].line and lines[-1].speaker == THEO
    assert [(t.speaker, t.line) for t in body_of(written.script)] == [
        (s, text.replace(" [1]", "")) for s, text in GOOD_LINES
    ]
    assert calls.usage.calls == 1
    schema = script.calls[0].kwargs["response_format"]["json_schema"]["schema"]
    assert schema["$defs"]["ScriptLine"]["properties"]["speaker"]["enum"] == [MAYA, THEO]
    assert schema["properties"]["lines"]["maxItems"] == SETTINGS.max_lines
    assert schema["$defs"]["ScriptLine"]["properties"]["line"]["maxLength"] == 280
    assert "Bauer Media Group" in script.calls[0].prompt
    assert "https://" not in script.calls[0].prompt


async def test_junk_gets_one_repair_then_the_fallback_built_from_the_report() -> None:
    script = Script(replies={"podcastscript": ["Sure! Here is a podcast.", '{"lines": []}']})
    written, _ = await write_script(digest_report(REPORT), scripted_runtime(script), SETTINGS)
    assert len(script.calls) == 2
    assert "rejected" in script.calls[1].prompt and "not valid JSON" in script.calls[1].prompt
    assert written.fallback_reason is not None
    body = body_of(written.script)
    answer, points = digest_report(REPORT).answer, digest_report(REPORT).key_points
    assert [t.line for t in body] == [
        f"Here is the short answer. {answer[0]}",
        answer[1],
        f"The report also found this. {points[0]}",
        points[1],
    ]
    assert [t.speaker for t in body] == [THEO, MAYA, THEO, MAYA]


async def test_a_cut_off_script_is_repaired_instead_of_raised() -> None:
    replies = [cut_off('{"lines": [{"speaker": "Theo", "line": "Arthur'), script_json(GOOD_LINES)]
    script = Script(replies={"podcastscript": replies})
    written, _ = await write_script(digest_report(REPORT), scripted_runtime(script), SETTINGS)
    assert written.attempts == 2 and written.fallback_reason is None
    assert "cut off" in script.calls[1].prompt


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([(THEO, text) for _, text in GOOD_LINES], "both hosts"),
        (GOOD_LINES[:2], "usable lines"),
        ([(THEO, "Wow."), (MAYA, "Yes!"), *GOOD_LINES[:2]], "usable lines"),
        ([GOOD_LINES[0], GOOD_LINES[0], GOOD_LINES[1], GOOD_LINES[0]], "usable lines"),
        (
            [
                (THEO, "Bananas are a rich source of potassium for athletes."),
                (MAYA, "Volcanoes erupt when magma pressure builds underground."),
                (THEO, "Penguins huddle together to survive Antarctic winters."),
                GOOD_LINES[2],
            ],
            "facts from the report",
        ),
    ],
    ids=["one-host", "too-few", "too-short", "repeated", "off-topic"],
)
def test_scripts_that_cannot_be_used_are_rejected_saying_why(
    lines: list[tuple[str, str]], reason: str
) -> None:
    script = PodcastScript.model_validate_json(script_json(lines))
    with pytest.raises(ValueError, match=reason):
        check_script(script, digest_report(REPORT), SETTINGS)


def test_lines_are_capped_in_number_and_length() -> None:
    long_line = "Arthur's Magazine was started in 1844 in Philadelphia. " * 12
    lines = [(MAYA if i % 2 else THEO, f"Line {i}: {long_line}") for i in range(30)]
    script = check_script(
        PodcastScript.model_validate_json(script_json(lines)), digest_report(REPORT), SETTINGS
    )
    assert MIN_LINES <= len(script.lines) <= SETTINGS.max_lines
    assert all(len(t.line) <= SETTINGS.max_line_chars for t in script.lines)


async def test_make_podcast_speaks_every_line_and_reports_progress() -> None:
    script = Script(replies={"podcastscript": script_json(GOOD_LINES)})
    events: list[PodcastProgress] = []
    podcast = await make_podcast(
        REPORT, scripted_runtime(script), SETTINGS, on_progress=events.append
    )
    total = len(podcast.script.lines)
    assert total == len(GOOD_LINES) + 2
    stages = [e.stage for e in events]
    assert stages[:2] == [PodcastStage.SCRIPT, PodcastStage.SCRIPT_READY]
    speaking = [e for e in events if e.stage is PodcastStage.SPEAKING]
    assert [(e.done, e.total) for e in speaking] == [(n, total) for n in range(total)]
    assert stages[-1] is PodcastStage.DONE
    duration, rms = wav_facts(podcast.wav)
    assert duration == pytest.approx(podcast.duration_s)
    assert rms > AUDIBLE_RMS
    per_word = duration / podcast.script.words
    assert SECONDS_PER_WORD[0] < per_word < SECONDS_PER_WORD[1]
    assert podcast.transcript.splitlines() == [
        f"{t.speaker}: {t.line}" for t in podcast.script.lines
    ]
    assert set(podcast.audio) == {AudioFormat.WAV, AudioFormat.OGG, AudioFormat.MP3}


async def test_a_bad_voice_fails_before_any_llm_call() -> None:
    script = Script(replies={"podcastscript": script_json(GOOD_LINES)})
    settings = TtsSettings(espeak_voices=(DEFAULT_ESPEAK_VOICES[0], EspeakVoice(name="xx-nope")))
    with pytest.raises(SpeechError, match="xx-nope"):
        await make_podcast(REPORT, scripted_runtime(script), settings)
    assert script.calls == []


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.engine
async def test_podcast_waits_under_pressure_then_completes_on_the_real_engine(
    engine: Endpoint, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    metrics = gate_metrics(registry)
    source = SettableSource()
    monitor = PressureMonitor([source], PressureSettings(clear_after_s=0.0), metrics=metrics)
    budget = Budget(4, pressure=monitor, metrics=metrics)
    runtime = connect_runtime(engine, LLMSettings(), budget, data_dir=tmp_path)
    source.set(kv_usage=0.97)
    assert monitor.sample_once().under_pressure

    events: list[PodcastProgress] = []
    task = asyncio.create_task(make_podcast(REPORT, runtime, SETTINGS, on_progress=events.append))
    await wait_for(lambda: budget.snapshot().queued[CallClass.TTS] == 1, 30, "the queued call")
    await asyncio.sleep(1.0)
    snapshot = budget.snapshot()
    assert snapshot.in_flight[CallClass.TTS] == 0 and snapshot.admitted_total == 0
    assert registry.get_sample_value("fawn_llm_deferrals_total", {"call_class": "tts"}) == 1
    assert [e.stage for e in events] == [PodcastStage.SCRIPT]
    assert not task.done()

    source.set(kv_usage=0.1)
    assert not monitor.sample_once().under_pressure
    podcast = await asyncio.wait_for(task, timeout=400)
    assert budget.snapshot().admitted_total >= podcast.usage.calls >= 1
    assert events[-1].stage is PodcastStage.DONE
    body = body_of(podcast.script)
    assert len(body) >= 1 and {t.speaker for t in podcast.script.lines} == {MAYA, THEO}
    digest = digest_report(REPORT)
    grounded = [t for t in body if overlap(t.line, digest.text) >= 0.5]
    assert len(grounded) * 2 >= len(body), podcast.transcript
    duration, rms = wav_facts(podcast.wav)
    assert rms > AUDIBLE_RMS
    assert SECONDS_PER_WORD[0] < duration / podcast.script.words < SECONDS_PER_WORD[1]
