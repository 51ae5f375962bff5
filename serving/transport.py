"""httpx transports that put every HTTP call to the engine through the budget gate.

A request takes a slot of its call class (the `CALL_CLASS_HEADER` it carries, else the transport's
default) sized by its estimated KV footprint before it is sent, and keeps it until the response
body is read or closed, so a streamed completion holds its slot until the stream ends. One
transport, and so one connection pool, serves every class. Connection errors and 5xx answers are
retried with exponential backoff while the slot is held; 4xx answers and read timeouts are not
(resending would only add load).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import random
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx

from serving.budget import CALL_CLASS_HEADER, Budget, CallClass
from serving.observability import log_event

logger = logging.getLogger(__name__)

# Prompt estimate weights, fitted to over-count a byte-level BPE tokenizer (SmolLM2's, measured on
# HotpotQA prose, JSON, URLs, code and numbers): a letter is a third of a token, and so is a space
# before a letter (BPE merges it into the word); digits, punctuation and other whitespace may be a
# token each, and anything outside ASCII at most one token per UTF-8 byte. Prose comes out ~1.6x
# its real count (never under it in HotpotQA), numbers and JSON ~1.0-1.4x.
LETTER_TOKENS = 1 / 3
# Chat-template tokens around each message (role markers) and around the whole prompt (a default
# system prompt some templates add, and the generation prompt).
MESSAGE_OVERHEAD_TOKENS = 8
PROMPT_OVERHEAD_TOKENS = 32
# A caller that counted its prompt with the engine's tokenizer passes the count in this header
# (see `chat_model(prompt_tokens=...)`); the transport takes it off before sending.
PROMPT_TOKENS_HEADER = "x-fawn-prompt-tokens"
RETRYABLE_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to resend after a connection error or a 5xx answer."""

    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    # A gateway's Retry-After (engine restarting, budget full) is honoured up to this long.
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based): doubling, with jitter, and
        at least what the server asked for in Retry-After (capped)."""
        backoff = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
        if retry_after_s is None:
            return backoff
        return max(backoff, min(retry_after_s, self.max_retry_after_s))


@dataclass(frozen=True)
class KvEstimate:
    """Estimates a request's KV footprint: prompt tokens plus the completion it may generate."""

    default_max_tokens: int | None = None
    max_model_len: int | None = None

    def __call__(self, body: bytes, prompt_tokens: int | None = None) -> int:
        """KV tokens the request may occupy; 0 for a body that is not a completion request.

        `prompt_tokens` is an exact count (the engine's tokenizer) where the caller has one.
        """
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return 0
        if not isinstance(payload, dict):
            return 0
        prompt = estimate_prompt_tokens(payload) if prompt_tokens is None else prompt_tokens
        completion = payload.get("max_completion_tokens") or payload.get("max_tokens")
        if not isinstance(completion, int):
            completion = self.default_max_tokens
        if completion is None:
            # vLLM lets an uncapped completion run to the end of the context.
            completion = (self.max_model_len or prompt) - prompt
        total = prompt + max(completion, 0)
        return min(total, self.max_model_len) if self.max_model_len else total


def estimate_prompt_tokens(payload: dict[str, object]) -> int:
    """Prompt tokens of a chat or completion request body, over-counted on purpose."""
    texts = list(_prompt_texts(payload))
    if not texts:
        return 0
    messages = payload.get("messages")
    overhead = PROMPT_OVERHEAD_TOKENS
    if isinstance(messages, list):
        overhead += MESSAGE_OVERHEAD_TOKENS * len(messages)
    return math.ceil(sum(estimate_text_tokens(text) for text in texts)) + overhead


def estimate_text_tokens(text: str) -> float:
    """Tokens `text` may take, erring high (see the weights above)."""
    tokens = 0.0
    for index, char in enumerate(text):
        if not char.isascii():
            tokens += len(char.encode())
        elif char.isalpha() or (char.isspace() and _letter_at(text, index + 1)):
            tokens += LETTER_TOKENS
        else:
            tokens += 1
    return tokens


def _letter_at(text: str, index: int) -> bool:
    return index < len(text) and text[index].isascii() and text[index].isalpha()


def _prompt_texts(payload: dict[str, object]) -> Iterator[str]:
    """The text a request puts into the prompt: message contents, tool calls, tool schemas."""
    messages = payload.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                is_text = isinstance(part, dict) and isinstance(part.get("text"), str)
                yield part["text"] if is_text else json.dumps(part, ensure_ascii=False)
        if message.get("tool_calls"):
            yield json.dumps(message["tool_calls"], ensure_ascii=False)
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        yield prompt
    if payload.get("tools"):
        # The chat template writes tool schemas into the prompt.
        yield json.dumps(payload["tools"], ensure_ascii=False)


class GatedAsyncTransport(httpx.AsyncBaseTransport):
    """An async transport whose every request holds a budget slot of its call class.

    `default_class` is the class of a request without `CALL_CLASS_HEADER`. The default `inner`
    keeps one connection pool per event loop (see `PerLoopAsyncTransport`).
    """

    def __init__(
        self,
        budget: Budget,
        default_class: CallClass,
        *,
        estimate: KvEstimate | None = None,
        retry: RetryPolicy | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._budget = budget
        self._default_class = default_class
        self._estimate = estimate or KvEstimate()
        self._retry = retry or RetryPolicy()
        self._inner = inner or PerLoopAsyncTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Take a slot, send with retries, and release the slot when the body is done."""
        call_class = _call_class(request, self._default_class)
        body = await request.aread()
        slot = await self._budget.acquire(
            call_class, self._estimate(body, _take_prompt_tokens(request))
        )
        try:
            response = await self._send(request)
        except BaseException:
            slot.release()
            raise
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ReleasingAsyncStream(response.stream, slot.release),
            extensions=response.extensions,
        )

    async def _send(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self._retry.retries + 1):
            last = attempt == self._retry.retries
            retry_after = None
            try:
                response = await self._inner.handle_async_request(request)
            except RETRYABLE_ERRORS as exc:
                if last:
                    raise
                self._note_retry(type(exc).__name__, attempt)
            else:
                if response.status_code < 500 or last:
                    return response
                retry_after = _retry_after(response)
                await response.aclose()
                self._note_retry(f"http_{response.status_code}", attempt)
            await asyncio.sleep(self._retry.delay(attempt, retry_after))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _note_retry(self, reason: str, attempt: int) -> None:
        self._budget.metrics.retries.labels(reason).inc()
        log_event(logger, "llm_retry", logging.WARNING, reason=reason, attempt=attempt + 1)

    async def aclose(self) -> None:
        """Close the connection pool underneath."""
        await self._inner.aclose()


class GatedTransport(httpx.BaseTransport):
    """The sync twin of `GatedAsyncTransport` (the budget core is thread-safe)."""

    def __init__(
        self,
        budget: Budget,
        default_class: CallClass,
        *,
        estimate: KvEstimate | None = None,
        retry: RetryPolicy | None = None,
        inner: httpx.BaseTransport | None = None,
    ) -> None:
        self._budget = budget
        self._default_class = default_class
        self._estimate = estimate or KvEstimate()
        self._retry = retry or RetryPolicy()
        self._inner = inner or httpx.HTTPTransport(verify=_ssl_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Take a slot, send with retries, and release the slot when the body is done."""
        call_class = _call_class(request, self._default_class)
        body = request.read()
        slot = self._budget.acquire_sync(
            call_class, self._estimate(body, _take_prompt_tokens(request))
        )
        try:
            response = self._send(request)
        except BaseException:
            slot.release()
            raise
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, slot.release),
            extensions=response.extensions,
        )

    def _send(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self._retry.retries + 1):
            last = attempt == self._retry.retries
            retry_after = None
            try:
                response = self._inner.handle_request(request)
            except RETRYABLE_ERRORS as exc:
                if last:
                    raise
                self._note_retry(type(exc).__name__, attempt)
            else:
                if response.status_code < 500 or last:
                    return response
                retry_after = _retry_after(response)
                response.close()
                self._note_retry(f"http_{response.status_code}", attempt)
            time.sleep(self._retry.delay(attempt, retry_after))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _note_retry(self, reason: str, attempt: int) -> None:
        self._budget.metrics.retries.labels(reason).inc()
        log_event(logger, "llm_retry", logging.WARNING, reason=reason, attempt=attempt + 1)

    def close(self) -> None:
        """Close the connection pool underneath."""
        self._inner.close()


class PerLoopAsyncTransport(httpx.AsyncBaseTransport):
    """One async connection pool per event loop, behind one transport that any loop may use.

    httpx's pooled connections belong to the loop that opened them: once `asyncio.run` returns,
    a kept-alive connection from its loop fails the next loop's request with "Event loop is
    closed" (seen with httpx 0.28). Fawn runs several loops in one process (successive
    `asyncio.run`s in the CLI, the API server's loop, one loop per async test), so a client
    shared by all of them keeps a pool per loop. A closed loop's pool is dropped unclosed: its
    sockets can only be closed through that loop, so garbage collection closes them.
    """

    def __init__(self, factory: Callable[[], httpx.AsyncBaseTransport] | None = None) -> None:
        self._factory = factory or (lambda: httpx.AsyncHTTPTransport(verify=_ssl_context()))
        self._pools: dict[asyncio.AbstractEventLoop, httpx.AsyncBaseTransport] = {}
        self._lock = threading.Lock()

    @property
    def pools(self) -> int:
        """Connection pools held for loops that are still open."""
        with self._lock:
            return sum(1 for loop in self._pools if not loop.is_closed())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send on the running loop's pool, opening it on the loop's first request."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._pools = {k: v for k, v in self._pools.items() if not k.is_closed()}
            pool = self._pools.get(loop)
            if pool is None:
                pool = self._pools[loop] = self._factory()
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the running loop's pool now and the other loops' pools on their own loops."""
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.pop(loop, None)
        self.close()
        if pool is not None:
            await pool.aclose()

    def close(self) -> None:
        """Close every pool on its own loop, for owners outside any loop (and at exit)."""
        with self._lock:
            pools, self._pools = self._pools, {}
        for loop, pool in pools.items():
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(pool.aclose(), loop)


def _call_class(request: httpx.Request, default: CallClass) -> CallClass:
    """The request's call class; the header is (re)written so the gateway budgets it the same."""
    try:
        call_class = CallClass(request.headers.get(CALL_CLASS_HEADER, default))
    except ValueError:
        call_class = default
    request.headers[CALL_CLASS_HEADER] = call_class.value
    return call_class


def _retry_after(response: httpx.Response) -> float | None:
    """The seconds a 503's Retry-After asks for (the delay form; a date is ignored)."""
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _take_prompt_tokens(request: httpx.Request) -> int | None:
    """The caller's exact prompt count, removed from the request the engine will see."""
    value = request.headers.pop(PROMPT_TOKENS_HEADER, None)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every transport: building one per chat model costs ~50 ms."""
    return httpx.create_ssl_context()


class _ReleasingAsyncStream(httpx.AsyncByteStream):
    """A response body that gives the slot back when it ends, fails, or is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        finally:
            self._release()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()


class _ReleasingStream(httpx.SyncByteStream):
    """Sync `_ReleasingAsyncStream`."""

    def __init__(self, stream: httpx.SyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        finally:
            self._release()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._release()
