"""Model output a run can rely on, whatever a small model writes.

Every completion has `<think>…</think>` removed and runaway repetition cut. Structured output is
asked for with a JSON schema (vLLM's guided decoding), then parsed and validated; on failure the
model gets one retry that shows it the validation error, and after that a deterministic fallback
is used. A completion cut off at its token cap (finish_reason=length) is a parse failure like any
other: it is repaired or replaced, never raised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from agents.context import ContextOverflow
from agents.llm import Completion, Message, ModelCalls
from serving.budget import CallClass

Model = TypeVar("Model", bound=BaseModel)

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_CLOSE_THINK = re.compile(r"^.*?</think>", re.DOTALL | re.IGNORECASE)
_JSON_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_WORD = re.compile(r"\S+")
_RUN_OF_ONE_CHAR = re.compile(r"(.)\1{24,}", re.DOTALL)
# A phrase of this many words seen three times means the model is looping.
REPEAT_WINDOW = 6
REPEAT_LIMIT = 3
# Enough of a bad answer to show the model what it wrote, in the repair turn.
ECHO_CHARS = 600


def strip_think(text: str) -> str:
    """`text` without reasoning blocks (closed, unclosed, or opened in the prompt)."""
    text = _THINK.sub("", text)
    return _CLOSE_THINK.sub("", text, count=1) if "</think>" in text.lower() else text


def trim_repetition(text: str) -> tuple[str, bool]:
    """`text` cut where it starts looping, and whether it did.

    Looping means a phrase of REPEAT_WINDOW words appearing REPEAT_LIMIT times without
    overlapping, or one character repeated 25 times. The text keeps the first copy of the
    repeating part and is cut where the second one begins.
    """
    run = _RUN_OF_ONE_CHAR.search(text)
    if run:
        text = text[: run.start() + 1]
    tokens = list(_WORD.finditer(text))
    starts: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(tokens) - REPEAT_WINDOW + 1):
        window = tuple(t.group(0).lower() for t in tokens[i : i + REPEAT_WINDOW])
        seen = starts.setdefault(window, [])
        seen.append(i)
        if _separate_copies(seen) >= REPEAT_LIMIT:
            return text[: tokens[seen[1]].start()].rstrip(), True
    return text, run is not None


def _separate_copies(starts: list[int]) -> int:
    """How many of the occurrences at `starts` do not overlap one another."""
    copies, last = 0, -REPEAT_WINDOW
    for start in starts:
        if start - last >= REPEAT_WINDOW:
            copies, last = copies + 1, start
    return copies


def clean_text(text: str) -> str:
    """Model prose ready to use: no reasoning, no loop, trimmed."""
    return trim_repetition(strip_think(text))[0].strip()


def json_schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI `response_format` asking for JSON that follows `schema`."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


class ParseFailure(ValueError):
    """A completion that is not a valid instance of the requested schema."""


def parse_structured(
    completion: Completion, schema: type[Model], check: Callable[[Model], Model] | None = None
) -> Model:
    """The completion as a validated `schema` instance; raises ParseFailure saying why not."""
    if completion.cut_off:
        raise ParseFailure("the JSON was cut off before it ended; write a shorter answer")
    text = strip_think(completion.text).strip()
    fenced = _JSON_FENCE.search(text)
    text = fenced.group(1).strip() if fenced else text
    if not text:
        raise ParseFailure("the answer was empty")
    try:
        value = schema.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ParseFailure(f"the answer is not valid JSON ({exc.msg} at char {exc.pos})") from exc
    except ValidationError as exc:
        raise ParseFailure(_validation_summary(exc)) from exc
    return check(value) if check else value


@dataclass(frozen=True)
class Structured(Generic[Model]):
    """A validated value, and why the fallback was used if it was."""

    value: Model
    attempts: int
    fallback_reason: str | None = None


async def generate_structured(
    calls: ModelCalls,
    call_class: CallClass,
    messages: Sequence[Message],
    schema: type[Model],
    *,
    max_tokens: int,
    fallback: Callable[[str], Model],
    check: Callable[[Model], Model] | None = None,
    json_schema: dict[str, Any] | None = None,
) -> Structured[Model]:
    """Ask for `schema` as JSON; one repair retry showing the error; else `fallback(reason)`.

    `check` adds rules the JSON schema cannot express (raise ValueError to reject);
    `json_schema` overrides the schema sent to the engine (e.g. to cap list lengths).
    """
    response_format = json_schema_format(
        schema.__name__.lower(), json_schema or schema.model_json_schema()
    )
    conversation = list(messages)
    reason = ""
    for attempt in (1, 2):
        try:
            completion = await calls.complete(
                call_class,
                conversation,
                max_tokens=max_tokens,
                temperature=0.0,
                response_format=response_format,
            )
        except ContextOverflow:
            if attempt == 1:
                raise
            break  # the repair turn made the prompt too long: fall back instead
        try:
            return Structured(parse_structured(completion, schema, check), attempt)
        except ValueError as exc:
            reason = str(exc)
        conversation = [*messages, *_repair_turn(completion.text, reason)]
    return Structured(fallback(reason), 2, fallback_reason=reason)


async def generate_text(
    calls: ModelCalls,
    call_class: CallClass,
    messages: Sequence[Message],
    *,
    max_tokens: int,
    temperature: float | None = None,
) -> str:
    """Ask for prose; returns it clean (see `clean_text`), possibly empty."""
    completion = await calls.complete(
        call_class, messages, max_tokens=max_tokens, temperature=temperature
    )
    return clean_text(completion.text)


def _repair_turn(bad_output: str, reason: str) -> list[Message]:
    shown = bad_output.strip()[:ECHO_CHARS] or "(nothing)"
    return [
        {"role": "assistant", "content": shown},
        {
            "role": "user",
            "content": f"That answer was rejected: {reason}. Answer again with one complete "
            "JSON object that follows the schema and the instructions above.",
        },
    ]


def _validation_summary(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in error['loc']) or 'the object'}: {error['msg']}"
        for error in exc.errors()[:4]
    ]
    return "the JSON does not match the schema (" + "; ".join(problems) + ")"
