"""The one way the roles call the model: context check, completion cap, usage accounting.

`ModelCalls` wraps the runtime's model factory for one node run. It checks that the prompt plus
the completion cap fits the engine's context (shrinking the cap, or refusing before vLLM would)
and adds up token usage for the graph state. A completion cut off at its cap comes back as text
with `finish_reason="length"`, never raised. Engine failures arrive already translated into
EngineError by the model factory (serving/client.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import openai
from pydantic import BaseModel

from serving.budget import CallClass

if TYPE_CHECKING:
    from agents.runtime import Runtime

Message = Mapping[str, str]
LENGTH = "length"


class Usage(BaseModel):
    """LLM calls and tokens spent so far; the state adds these up across nodes."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


def add_usage(total: Usage | None, more: Usage | None) -> Usage:
    """Reducer: usage adds up."""
    return (total or Usage()) + (more or Usage())


@dataclass(frozen=True)
class Completion:
    """What the model wrote (raw) and why it stopped."""

    text: str
    finish_reason: str | None

    @property
    def cut_off(self) -> bool:
        """True when the completion hit its token cap."""
        return self.finish_reason == LENGTH


class ModelCalls:
    """The model calls of one node run, with their usage added up."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.usage = Usage()

    async def complete(
        self,
        call_class: CallClass,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """Ask the model once; the prompt is checked against the context first."""
        room = await self._runtime.context_budget.completion_room(messages, max_tokens)
        # The engine's own prompt count makes the gate's KV admission exact.
        model = self._runtime.model_for(
            call_class,
            max_tokens=room.max_tokens,
            temperature=temperature,
            prompt_tokens=room.prompt_tokens,
        )
        runnable = model.bind(response_format=response_format) if response_format else model
        try:
            reply = await runnable.ainvoke([dict(m) for m in messages])
        except openai.LengthFinishReasonError as exc:
            # The client's structured-output parser raises on a cut-off; it is just a long reply.
            return self._cut_off(exc.completion)
        usage = reply.usage_metadata or {}
        self._add(usage.get("input_tokens", 0), usage.get("output_tokens", 0))
        content = reply.content if isinstance(reply.content, str) else _text_of(reply.content)
        return Completion(content, reply.response_metadata.get("finish_reason"))

    def _cut_off(self, completion: Any) -> Completion:
        usage = completion.usage
        self._add(usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)
        content = completion.choices[0].message.content if completion.choices else ""
        return Completion(content or "", LENGTH)

    def _add(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.usage = self.usage + Usage(
            calls=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )


def _text_of(blocks: list[Any]) -> str:
    return "".join(
        block if isinstance(block, str) else str(block.get("text", "")) for block in blocks
    )
