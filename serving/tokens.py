"""Count prompt tokens the way the engine will: vLLM's `/tokenize`, else a conservative estimate.

The engine applies the model's chat template, so its count is exact. When `/tokenize` does not
answer (a timeout, a network hiccup) that call gets the estimate; only a server that says it has
no `/tokenize` (another OpenAI-compatible server) is not asked again. The estimate errs high: a
token per three letters of an ASCII word, per ASCII symbol and per byte of anything else, plus a
per-message template overhead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

import httpx

from serving.endpoint import Endpoint
from serving.transport import PerLoopAsyncTransport

Message = Mapping[str, str]

TOKENIZE_TIMEOUT_S = 10.0
# Answers meaning "this server has no /tokenize": not found, method not allowed, not implemented.
# Anything else (a timeout, a 5xx, a refused connection) may pass, so only that call is estimated.
NO_TOKENIZE_STATUSES = frozenset({404, 405, 501})
# The chat template wraps every message in role markers; SmolLM2's adds ~5 tokens, Qwen's ~6.
TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS_PER_PROMPT = 8
ASCII_CHARS_PER_TOKEN = 3
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")


class TokenCounter(Protocol):
    """Counts the tokens a chat prompt takes once the engine applies its chat template."""

    async def count(self, messages: Sequence[Message]) -> int:
        """Prompt tokens for `messages`, including the generation prompt."""
        ...


def estimate_text_tokens(text: str) -> int:
    """A conservative token count for `text`: ASCII words at 3 letters a token, every ASCII
    symbol a token, and every byte of other characters a token."""
    words = sum(math.ceil(len(w) / ASCII_CHARS_PER_TOKEN) for w in _ASCII_WORD.findall(text))
    symbols = sum(1 for char in text if char.isascii() and not (char.isalnum() or char.isspace()))
    other_bytes = sum(len(char.encode("utf-8")) for char in text if not char.isascii())
    return words + symbols + other_bytes


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A conservative token count for a chat prompt, for when the engine cannot count."""
    body = sum(estimate_text_tokens(m.get("content", "")) for m in messages)
    return body + TEMPLATE_TOKENS_PER_MESSAGE * len(messages) + TEMPLATE_TOKENS_PER_PROMPT


class EstimatingTokenCounter:
    """A TokenCounter that never calls the engine (tests, engines without `/tokenize`)."""

    async def count(self, messages: Sequence[Message]) -> int:
        """The conservative estimate for `messages`."""
        return estimate_tokens(messages)


class EngineTokenCounter:
    """A TokenCounter that asks the engine's `/tokenize`, falling back to the estimate.

    `client` is a pooled client to send on (the runtime passes `EnginePool.tokenize_client`);
    without one the counter builds its own on first use and keeps it.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        timeout_s: float = TOKENIZE_TIMEOUT_S,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self._client = client
        self._no_tokenize = False
        self._last_exact = True

    @property
    def exact(self) -> bool:
        """Whether the latest count came from the engine (False after a fallback)."""
        return self._last_exact and not self._no_tokenize

    async def count(self, messages: Sequence[Message]) -> int:
        """The engine's count for `messages`; the estimate if `/tokenize` does not answer."""
        counted = None if self._no_tokenize else await self._ask_engine(messages)
        self._last_exact = counted is not None
        return estimate_tokens(messages) if counted is None else counted

    async def _ask_engine(self, messages: Sequence[Message]) -> int | None:
        payload = {"model": self._endpoint.model, "messages": [dict(m) for m in messages]}
        headers = {"Authorization": f"Bearer {self._endpoint.api_key}"}
        try:
            response = await self._http().post(
                self._endpoint.root_url + "/tokenize",
                json=payload,
                headers=headers,
                timeout=self._timeout_s,
            )
            if response.status_code in NO_TOKENIZE_STATUSES:
                # A server without /tokenize stays without it: stop asking for this run.
                self._no_tokenize = True
                return None
            response.raise_for_status()
            return int(response.json()["count"])
        except (httpx.HTTPError, KeyError, ValueError, TypeError):
            return None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False as for the chat clients: the engine is reached directly.
            self._client = httpx.AsyncClient(transport=PerLoopAsyncTransport(), trust_env=False)
        return self._client
