"""The context budget: every prompt plus its completion cap fits the engine's max_model_len.

Prompts are built from a fixed part (instructions, the question) and trimmable pieces (passages,
notes). `fit` shrinks the pieces, last ones first, until the engine's token count says the prompt
fits; `completion_room` is the final check every call passes, so vLLM never rejects a request
for length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from serving.errors import FawnError
from serving.tokens import Message, TokenCounter

# Headroom for counting differences (template quirks, special tokens).
SAFETY_TOKENS = 16
# A completion smaller than this is useless; refuse instead.
MIN_COMPLETION_TOKENS = 32
FIT_ROUNDS = 6
SHRINK = 0.85


class ContextOverflow(FawnError):
    """A prompt's fixed part alone does not fit the model's context."""


Render = Callable[[list[str]], list[Message]]


@dataclass(frozen=True)
class FittedPrompt:
    """A prompt that fits, and the pieces (possibly fewer, the last one cut) it holds."""

    messages: list[Message]
    pieces: list[str]


@dataclass(frozen=True)
class CompletionRoom:
    """A prompt's token count and the completion cap that still fits after it."""

    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class ContextBudget:
    """The engine's context length and a way to count prompt tokens."""

    max_model_len: int
    counter: TokenCounter

    def prompt_limit(self, max_tokens: int) -> int:
        """Most prompt tokens that leave room for `max_tokens` of completion."""
        return self.max_model_len - max_tokens - SAFETY_TOKENS

    async def completion_room(self, messages: Sequence[Message], max_tokens: int) -> CompletionRoom:
        """`max_tokens`, shrunk if the prompt leaves less room; raises if almost none is left."""
        used = await self.counter.count(messages)
        room = self.max_model_len - used - SAFETY_TOKENS
        if room < MIN_COMPLETION_TOKENS:
            raise ContextOverflow(
                f"A prompt of {used} tokens leaves no room to answer in the model's "
                f"{self.max_model_len}-token context. Ask a shorter question, or serve a model "
                "with a longer context (max-model-len in the engine profile)."
            )
        return CompletionRoom(prompt_tokens=used, max_tokens=min(max_tokens, room))

    async def fit(self, render: Render, pieces: Sequence[str], max_tokens: int) -> FittedPrompt:
        """The prompt `render(kept)` with `pieces` trimmed (last first) so it fits the budget."""
        limit = self.prompt_limit(max_tokens)
        kept = list(pieces)
        messages = render(kept)
        used = await self.counter.count(messages)
        if used <= limit:
            return FittedPrompt(messages, kept)
        fixed = await self.counter.count(render([]))
        if fixed > limit:
            raise ContextOverflow(
                f"The prompt needs {fixed} tokens before any sources are added, more than the "
                f"{limit} the model's {self.max_model_len}-token context leaves. Ask a shorter "
                "question, or serve a model with a longer context."
            )
        for _ in range(FIT_ROUNDS):
            share = (limit - fixed) / max(1, used - fixed) * SHRINK
            kept = shrink_pieces(kept, int(sum(map(len, kept)) * share))
            messages = render(kept)
            used = await self.counter.count(messages)
            if used <= limit:
                return FittedPrompt(messages, kept)
        return FittedPrompt(render([]), [])


def shrink_pieces(pieces: Sequence[str], max_chars: int) -> list[str]:
    """The leading pieces that fit in `max_chars`; the one that crosses the line is cut short."""
    kept: list[str] = []
    left = max_chars
    for piece in pieces:
        if left <= 0:
            break
        if len(piece) <= left:
            kept.append(piece)
        else:
            cut = piece[:left].rsplit(" ", 1)[0].rstrip()
            if cut:
                kept.append(cut + "…")
        left -= len(piece)
    return kept
