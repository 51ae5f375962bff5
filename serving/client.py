"""The one place that builds a chat model: a ChatOpenAI whose every request goes through the gate.

Sync and async invocation are both gated (each has its own gated transport), the OpenAI client
never retries on its own (the gate does), and openai/httpx errors are translated here into
`EngineError` / `BudgetTimeout`, so agents only ever catch Fawn errors. A structured output cut
off by `max_tokens` still raises openai's `LengthFinishReasonError`: that is the model's answer
being too long, which callers repair or fall back from, not an engine failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from serving.budget import Budget, CallClass
from serving.endpoint import Endpoint
from serving.errors import EngineError, FawnError
from serving.settings import LLMSettings
from serving.transport import (
    PROMPT_TOKENS_HEADER,
    GatedAsyncTransport,
    GatedTransport,
    KvEstimate,
    RetryPolicy,
)


class GatedChatOpenAI(ChatOpenAI):
    """ChatOpenAI whose client errors come out as Fawn errors with a fix in the message."""

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return super()._generate(*args, **kwargs)
        except openai.APIError as exc:
            raise engine_error(exc, self.openai_api_base) from exc

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return await super()._agenerate(*args, **kwargs)
        except openai.APIError as exc:
            raise engine_error(exc, self.openai_api_base) from exc

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        try:
            yield from super()._stream(*args, **kwargs)
        except openai.APIError as exc:
            raise engine_error(exc, self.openai_api_base) from exc

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        try:
            async for chunk in super()._astream(*args, **kwargs):
                yield chunk
        except openai.APIError as exc:
            raise engine_error(exc, self.openai_api_base) from exc


def chat_model(
    endpoint: Endpoint,
    llm: LLMSettings,
    budget: Budget,
    call_class: CallClass,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    prompt_tokens: int | None = None,
) -> ChatOpenAI:
    """A chat model on `endpoint` whose calls take `call_class` slots in `budget`.

    `prompt_tokens`, the engine's own count of the prompt where the caller has it, makes the
    gate's KV admission exact instead of a deliberate over-estimate.
    """
    completion_cap = max_tokens or llm.max_tokens
    estimate = KvEstimate(default_max_tokens=completion_cap, max_model_len=endpoint.max_model_len)
    retry = RetryPolicy(retries=llm.retries)
    timeout = httpx.Timeout(llm.timeout_s, connect=min(llm.timeout_s, 10.0))
    # trust_env=False: a proxy picked up from the environment would be mounted in front of the
    # gated transport and let requests bypass the gate.
    sync_client = httpx.Client(
        transport=GatedTransport(budget, call_class, estimate=estimate, retry=retry),
        timeout=timeout,
        trust_env=False,
    )
    async_client = httpx.AsyncClient(
        transport=GatedAsyncTransport(budget, call_class, estimate=estimate, retry=retry),
        timeout=timeout,
        trust_env=False,
    )
    sampling = llm.sampling
    return GatedChatOpenAI(
        model=endpoint.model,
        base_url=endpoint.base_url,
        api_key=SecretStr(endpoint.api_key),
        temperature=sampling.temperature if temperature is None else temperature,
        top_p=sampling.top_p,
        max_tokens=completion_cap,
        extra_body={"top_k": sampling.top_k, "min_p": sampling.min_p},
        timeout=llm.timeout_s,
        max_retries=0,
        use_responses_api=False,
        default_headers={PROMPT_TOKENS_HEADER: str(prompt_tokens)} if prompt_tokens else None,
        http_client=sync_client,
        http_async_client=async_client,
    )


def engine_error(exc: openai.APIError, base_url: str | None) -> FawnError:
    """Translate an OpenAI client error into the Fawn error a user can act on."""
    causes = _causes(exc)
    fawn = next((cause for cause in causes if isinstance(cause, FawnError)), None)
    if fawn is not None:
        return fawn
    where = base_url or "the configured engine"
    if isinstance(exc, openai.APITimeoutError):
        return EngineError(
            f"The LLM engine at {where} did not answer in time. It may be overloaded: check "
            "`fawn doctor`, or raise FAWN_LLM_TIMEOUT_S."
        )
    if isinstance(exc, openai.APIConnectionError):
        return EngineError(
            f"Cannot reach the LLM engine at {where} ({_cause_text(exc)}). Start it with "
            "`fawn serve`, or set FAWN_LLM_BASE_URL to a running OpenAI-compatible server."
        )
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return EngineError(
            f"The LLM engine at {where} failed with HTTP {exc.status_code} after every retry: "
            f"{exc.message}. See the engine log; `fawn doctor` checks its health."
        )
    if isinstance(exc, openai.APIStatusError):
        return EngineError(
            f"The LLM engine at {where} refused the request (HTTP {exc.status_code}): "
            f"{exc.message}. If the prompt is too long for the model's context, lower the "
            "research breadth; if the model is unknown, fix FAWN_LLM_MODEL."
        )
    return EngineError(f"The LLM engine at {where} failed: {exc}.")


def _causes(exc: BaseException) -> list[BaseException]:
    """The chain of `raise ... from` causes below `exc` (langchain and openai each wrap once)."""
    chain = []
    cause = exc.__cause__
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__
    return chain


def _cause_text(exc: BaseException) -> str:
    root = (_causes(exc) or [exc])[-1]
    return f"{type(root).__name__}: {root}"


__all__ = ["CallClass", "GatedChatOpenAI", "chat_model", "engine_error"]
