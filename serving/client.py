"""The one place that builds a chat model: a ChatOpenAI whose every request goes through the gate.

Sync and async invocation are both gated, through one pooled client each per engine and budget
that every call class shares (the class travels in a request header); chat models are reused per
configuration. The OpenAI client never retries on its own (the gate does), and openai/httpx
errors are translated here into `EngineError` / `BudgetTimeout`, so agents only ever catch Fawn
errors. A structured output cut off by `max_tokens` still raises openai's
`LengthFinishReasonError`: that is the model's answer being too long, which callers repair or
fall back from, not an engine failure.
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx
import openai
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from serving.budget import CALL_CLASS_HEADER, Budget, CallClass
from serving.endpoint import Endpoint
from serving.errors import EngineError, EngineUnreachable, FawnError
from serving.settings import LLMSettings
from serving.transport import (
    PROMPT_TOKENS_HEADER,
    GatedAsyncTransport,
    GatedTransport,
    KvEstimate,
    PerLoopAsyncTransport,
    RetryPolicy,
)

# The class of a request that reaches the pooled transports without a class header; every chat
# model sets the header, so this is only a safety net (and the gateway's own default).
DEFAULT_CALL_CLASS = CallClass.RESEARCH


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


# Chat models kept per pool. A call's prompt count is part of a model's configuration, so most
# configurations are met once; the bound keeps those from piling up over a long batch.
DEFAULT_CACHED_MODELS = 64


class EnginePool:
    """The pooled HTTP clients and cached chat models for one engine, budget and LLM settings.

    Every chat model it makes shares one sync and one async gated client (so one connection pool,
    whatever the call class); the class travels in each request's `CALL_CLASS_HEADER`. Clients
    are built on first use. Whoever builds the pool closes it (`close` or `aclose`); pools from
    `engine_pool` that nobody closed are closed at exit.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        llm: LLMSettings,
        budget: Budget,
        *,
        max_models: int = DEFAULT_CACHED_MODELS,
    ) -> None:
        self.endpoint = endpoint
        self.llm = llm
        self.budget = budget
        self.max_models = max_models
        self.clients_built = 0
        self.models_built = 0
        self.closed = False
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None
        self._tokenize: httpx.AsyncClient | None = None
        self._loop_pools: list[PerLoopAsyncTransport] = []
        self._models: OrderedDict[tuple[CallClass, int, float, int | None], GatedChatOpenAI] = (
            OrderedDict()
        )

    @property
    def sync_client(self) -> httpx.Client:
        """The gated client for sync invocations."""
        with self._lock:
            if self._sync is None:
                transport = GatedTransport(
                    self.budget, DEFAULT_CALL_CLASS, estimate=self._estimate(), retry=self._retry()
                )
                self._sync = self._client(httpx.Client, transport)
            return self._sync

    @property
    def async_client(self) -> httpx.AsyncClient:
        """The gated client for async invocations, on whichever event loop runs them."""
        with self._lock:
            if self._async is None:
                transport = GatedAsyncTransport(
                    self.budget,
                    DEFAULT_CALL_CLASS,
                    estimate=self._estimate(),
                    retry=self._retry(),
                    inner=self._per_loop(),
                )
                self._async = self._client(httpx.AsyncClient, transport)
            return self._async

    @property
    def tokenize_client(self) -> httpx.AsyncClient:
        """An ungated async client for the engine's `/tokenize` (counting is not an LLM call)."""
        with self._lock:
            if self._tokenize is None:
                self._tokenize = self._client(httpx.AsyncClient, self._per_loop())
            return self._tokenize

    def chat_model(
        self,
        call_class: CallClass,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        prompt_tokens: int | None = None,
    ) -> GatedChatOpenAI:
        """The chat model for this configuration, reused while it stays among the recent ones.

        `prompt_tokens`, the engine's own count of the prompt where the caller has it, makes the
        gate's KV admission exact instead of a deliberate over-estimate.
        """
        completion_cap = max_tokens or self.llm.max_tokens
        sampling = self.llm.sampling
        temperature = sampling.temperature if temperature is None else temperature
        key = (call_class, completion_cap, temperature, prompt_tokens)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        headers = {CALL_CLASS_HEADER: call_class.value}
        if prompt_tokens:
            headers[PROMPT_TOKENS_HEADER] = str(prompt_tokens)
        model = GatedChatOpenAI(
            model=self.endpoint.model,
            base_url=self.endpoint.base_url,
            api_key=SecretStr(self.endpoint.api_key),
            temperature=temperature,
            top_p=sampling.top_p,
            max_tokens=completion_cap,
            extra_body={"top_k": sampling.top_k, "min_p": sampling.min_p},
            timeout=self.llm.timeout_s,
            max_retries=0,
            use_responses_api=False,
            default_headers=headers,
            http_client=self.sync_client,
            http_async_client=self.async_client,
        )
        with self._lock:
            # Two threads may have built the same model; keep the first, drop the spare.
            kept = self._models.setdefault(key, model)
            self._models.move_to_end(key)
            self.models_built += kept is model
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        return kept

    def close(self) -> None:
        """Close the clients (async pools on their own running loops) and forget the models."""
        with self._lock:
            self.closed = True
            sync, self._sync, self._async, self._tokenize = self._sync, None, None, None
            loop_pools, self._loop_pools = self._loop_pools, []
            self._models.clear()
        _forget(self)
        if sync is not None:
            sync.close()
        for pool in loop_pools:
            pool.close()

    async def aclose(self) -> None:
        """`close`, awaiting the running loop's own pools."""
        with self._lock:
            loop_pools = list(self._loop_pools)
        for pool in loop_pools:
            await pool.aclose()
        self.close()

    def _estimate(self) -> KvEstimate:
        return KvEstimate(
            default_max_tokens=self.llm.max_tokens, max_model_len=self.endpoint.max_model_len
        )

    def _retry(self) -> RetryPolicy:
        return RetryPolicy(retries=self.llm.retries)

    def _per_loop(self) -> PerLoopAsyncTransport:
        pool = PerLoopAsyncTransport()
        self._loop_pools.append(pool)
        return pool

    def _client(self, kind: type[_Client], transport: Any) -> _Client:
        """A client on `transport`; lock held."""
        if self.closed:
            raise RuntimeError("This EnginePool is closed; open the services again.")
        self.clients_built += 1
        timeout = httpx.Timeout(self.llm.timeout_s, connect=min(self.llm.timeout_s, 10.0))
        # trust_env=False: a proxy picked up from the environment would be mounted in front of
        # the gated transport and let requests bypass the gate.
        return kind(transport=transport, timeout=timeout, trust_env=False)


_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)
_pools: dict[tuple[Endpoint, int, str], EnginePool] = {}
_pools_lock = threading.Lock()


def engine_pool(endpoint: Endpoint, llm: LLMSettings, budget: Budget) -> EnginePool:
    """The process's pool for `endpoint`, `budget` and `llm`, built on first use."""
    # The pool holds the budget, so its id cannot be reused while the entry exists.
    key = (endpoint, id(budget), llm.model_dump_json())
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = EnginePool(endpoint, llm, budget)
        return pool


def _forget(pool: EnginePool) -> None:
    with _pools_lock:
        for key in [key for key, value in _pools.items() if value is pool]:
            del _pools[key]


@atexit.register
def _close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.close()


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

    It comes from the process's pool for this engine and budget (`engine_pool`), so repeated
    calls share one connection pool and, for the same configuration, one model.
    `prompt_tokens`, the engine's own count of the prompt where the caller has it, makes the
    gate's KV admission exact instead of a deliberate over-estimate.
    """
    return engine_pool(endpoint, llm, budget).chat_model(
        call_class, max_tokens=max_tokens, temperature=temperature, prompt_tokens=prompt_tokens
    )


def engine_error(exc: openai.APIError, base_url: str | None) -> FawnError:
    """Translate an OpenAI client error into the Fawn error a user can act on."""
    causes = _causes(exc)
    fawn = next((cause for cause in causes if isinstance(cause, FawnError)), None)
    if fawn is not None:
        return fawn
    where = base_url or "the configured engine"
    if isinstance(exc, openai.APITimeoutError):
        return EngineUnreachable(
            f"The LLM engine at {where} did not answer in time. It may be overloaded: check "
            "`fawn doctor`, or raise FAWN_LLM_TIMEOUT_S."
        )
    if isinstance(exc, openai.APIConnectionError):
        return EngineUnreachable(
            f"Cannot reach the LLM engine at {where} ({_cause_text(exc)}). Start it with "
            "`fawn serve`, or set FAWN_LLM_BASE_URL to a running OpenAI-compatible server."
        )
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return EngineUnreachable(
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


__all__ = [
    "CallClass",
    "EnginePool",
    "GatedChatOpenAI",
    "chat_model",
    "engine_error",
    "engine_pool",
]
