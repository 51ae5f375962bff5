"""The gateway's HTTP face: an OpenAI-compatible server that puts every call through one budget.

Clients send ordinary OpenAI requests; the call class comes in the `X-Fawn-Class` header (a
request without it gets the configured default class, so any OpenAI client is budgeted too). A
completion is checked, its prompt counted by the engine's own `/tokenize`, admitted onto the
engine with the most room (serving/gateway/engines.py), and proxied with vLLM's per-request
`priority` set from its class. The slot is held until the answer ends; a client that disconnects
frees it at once and the upstream request is closed, so the engine stops generating.

Bad input is a 4xx naming the field; no engine within the hold time is a 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpx
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from serving.budget import CALL_CLASS_HEADER, DEFAULT_WAIT_TIMEOUT_S, CallClass
from serving.errors import ConfigError
from serving.gateway.engines import (
    Admission,
    Engine,
    EnginePool,
    NoEngineAvailable,
    UnknownModel,
    build_engine,
)
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.policy import EnginePolicy
from serving.observability import log_event
from serving.pressure import PressureSettings
from serving.settings import LOOPBACK_HOSTS, GatewaySettings
from serving.transport import KvEstimate, estimate_prompt_tokens

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
# vLLM serves lower numbers first; the gateway's class order, carried into the engine's own queue.
PRIORITY = {call_class: rank for rank, call_class in enumerate(CallClass)}
# Headers of the engine's answer worth passing on (the rest are hop-by-hop or the gateway's own).
PASSED_HEADERS = ("content-type", "x-request-id")
# nginx's code for a client that closed the connection first; nobody reads it, the logs do.
CLIENT_CLOSED_REQUEST = 499
T = TypeVar("T")


class RequestRejected(Exception):
    """A request the gateway refuses before it reaches an engine (a 4xx naming the problem)."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


@dataclass(frozen=True)
class Call:
    """A checked completion request."""

    path: str
    payload: dict[str, Any]
    call_class: CallClass
    model: str | None
    stream: bool


def create_gateway_app(
    settings: GatewaySettings, pressure: PressureSettings, policy: EnginePolicy | None = None
) -> Starlette:
    """The gateway's ASGI app; refuses a bind off loopback without an API key.

    `policy` picks the engine for each admitted call (default: the one with the most room).
    """
    if settings.host not in LOOPBACK_HOSTS and not settings.api_key:
        raise ConfigError(
            f"The gateway binds to {settings.host}, off loopback, so it needs an API key: set "
            "FAWN_GATEWAY_API_KEY (or gateway.api_key in the config file)."
        )
    if not settings.upstreams:
        raise ConfigError(
            "The gateway has no engine to send calls to: pass --upstream URL (for example "
            "--upstream http://127.0.0.1:8000), or list [[gateway.upstreams]] in the config file."
        )
    default_class = _call_class(settings.default_class, "gateway.default_class")
    engines = [
        build_engine(
            upstream,
            index,
            pressure=pressure,
            wait_timeout_s=DEFAULT_WAIT_TIMEOUT_S,
            interactive_reserve=settings.interactive_reserve,
        )
        for index, upstream in enumerate(settings.upstreams)
    ]
    pool = EnginePool(
        engines, hold_s=settings.hold_s, health_interval_s=settings.health_interval_s, policy=policy
    )
    gateway = _Gateway(pool, settings, default_class, GatewayMetrics(lambda: pool.engines))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.start()
        log_event(logger, "gateway_ready", engines=len(engines), hold_s=settings.hold_s)
        try:
            yield
        finally:
            await pool.stop()

    routes = [
        Route(CHAT_PATH, gateway.guarded(gateway.chat), methods=["POST"]),
        Route(COMPLETIONS_PATH, gateway.guarded(gateway.completions), methods=["POST"]),
        Route("/v1/models", gateway.guarded(gateway.models), methods=["GET"]),
        Route("/tokenize", gateway.guarded(gateway.tokenize), methods=["POST"]),
        Route("/gateway/admissions", gateway.guarded(gateway.admissions), methods=["GET"]),
        Route("/health", gateway.health, methods=["GET"]),
        Route("/metrics", gateway.metrics_page, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.pool = pool
    return app


def gateway_server(settings: GatewaySettings, pressure: PressureSettings) -> uvicorn.Server:
    """A uvicorn server running the gateway on `settings.host:port` (call `.run()` to serve)."""
    app = create_gateway_app(settings, pressure)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", lifespan="on"
    )
    return uvicorn.Server(config)


Endpoint = Callable[[Request], Awaitable[Response]]


class _Gateway:
    """The route handlers, over one engine pool."""

    def __init__(
        self,
        pool: EnginePool,
        settings: GatewaySettings,
        default_class: CallClass,
        metrics: GatewayMetrics,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.default_class = default_class
        self.metrics = metrics

    def guarded(self, handler: Endpoint) -> Endpoint:
        """The handler behind the API key, with the gateway's errors turned into answers."""

        async def endpoint(request: Request) -> Response:
            try:
                self._authorize(request)
                return await handler(request)
            except RequestRejected as exc:
                return _error(exc.status, str(exc), exc.param)
            except UnknownModel as exc:
                return _error(404, str(exc), "model", code="model_not_found")
            except NoEngineAvailable as exc:
                return _error(
                    503,
                    str(exc),
                    kind="service_unavailable",
                    headers={"Retry-After": str(exc.retry_after_s)},
                )

        return endpoint

    async def chat(self, request: Request) -> Response:
        """POST /v1/chat/completions."""
        return await self._complete(await self._call(request, CHAT_PATH), request)

    async def completions(self, request: Request) -> Response:
        """POST /v1/completions."""
        return await self._complete(await self._call(request, COMPLETIONS_PATH), request)

    async def models(self, request: Request) -> Response:
        """GET /v1/models: every model the engines in rotation serve."""
        healthy = [e for e in self.pool.engines if e.healthy] or self.pool.engines
        data: dict[str, dict[str, object]] = {}
        for engine in healthy:
            for model, length in engine.models.items():
                data.setdefault(
                    model,
                    {"id": model, "object": "model", "owned_by": "fawn", "max_model_len": length},
                )
        return JSONResponse({"object": "list", "data": list(data.values())})

    async def tokenize(self, request: Request) -> Response:
        """POST /tokenize, passed to an engine that serves the model (it takes no slot)."""
        payload = _json_object(await self._body(request))
        engine = self._tokenizer_engine(_model_of(payload))
        if engine is None:
            raise NoEngineAvailable("No engine is available to tokenize.", self.pool.retry_after_s)
        try:
            response = await engine.client.post("/tokenize", json=payload)
        except httpx.HTTPError as exc:
            self.pool.mark_down(engine, f"{type(exc).__name__}: {exc}")
            raise NoEngineAvailable(
                f"The engine failed while tokenizing ({type(exc).__name__}).",
                self.pool.retry_after_s,
            ) from exc
        return _passed_on(response, response.content)

    async def admissions(self, request: Request) -> Response:
        """GET /gateway/admissions: the order recent calls were admitted in, with their class."""
        return JSONResponse({"admissions": self.pool.recent})

    async def health(self, request: Request) -> Response:
        """GET /health: 200 while some engine is in rotation, else 503; says it is a gateway."""
        engines = [engine.describe() for engine in self.pool.engines]
        ok = any(engine.healthy for engine in self.pool.engines)
        body = {"gateway": "fawn", "status": "ok" if ok else "unavailable", "engines": engines}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_page(self, request: Request) -> Response:
        """GET /metrics: the gateway's Prometheus metrics."""
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def _authorize(self, request: Request) -> None:
        key = self.settings.api_key
        if not key:
            return
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ").strip() or request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise RequestRejected(
                401, "Missing or wrong API key: send `Authorization: Bearer <key>`."
            )

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestRejected(413, f"The request body is over the {limit:,}-byte limit.")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise RequestRejected(413, f"The request body is over the {limit:,}-byte limit.")
        return bytes(body)

    async def _call(self, request: Request, path: str) -> Call:
        """Read and check a completion request."""
        header = request.headers.get(CALL_CLASS_HEADER)
        call_class = self.default_class if header is None else _call_class(header, None)
        payload = _json_object(await self._body(request))
        _check_payload(path, payload)
        model = _model_of(payload)
        self.pool.check_model(model)
        if model is None and self.pool.model_names():
            model = payload["model"] = self.pool.model_names()[0]
        stream = bool(payload.get("stream", False))
        return Call(path, payload, call_class, model, stream)

    async def _complete(self, call: Call, request: Request) -> Response:
        """Admit, send with retries before the first byte, and answer (streamed or not)."""
        prompt_tokens = await self._count_prompt(call)
        body = json.dumps(call.payload).encode()
        length = self.pool.max_model_len(call.model) if call.model else None
        if length is not None and prompt_tokens >= length:
            raise RequestRejected(
                400,
                f"The prompt is {prompt_tokens:,} tokens but the model's context holds {length:,}. "
                "Shorten the prompt.",
                "messages" if call.path == CHAT_PATH else "prompt",
            )
        kv_tokens = KvEstimate(max_model_len=length)(body, prompt_tokens)
        attempts = len(self.pool.engines) + 2
        for attempt in range(attempts):
            try:
                admission = await _unless_client_leaves(
                    request,
                    self.pool.admit(call.call_class, call.model, kv_tokens),
                    on_late_result=lambda late: late.slot.release(),
                )
            except _ClientLeft:
                return Response(status_code=CLIENT_CLOSED_REQUEST)
            self.metrics.queue_wait.labels(call.call_class.value).observe(admission.slot.waited_s)
            try:
                upstream = await _unless_client_leaves(request, self._send(admission.engine, call))
            except httpx.TransportError as exc:
                admission.slot.release()
                self.pool.mark_down(admission.engine, f"{type(exc).__name__}: {exc}")
                self.metrics.upstream_retries.labels(admission.engine.name).inc()
                log_event(logger, "upstream_retry", logging.WARNING, attempt=attempt + 1)
                continue
            except _ClientLeft:
                admission.slot.release()
                return Response(status_code=CLIENT_CLOSED_REQUEST)
            except BaseException:
                admission.slot.release()
                raise
            self.metrics.requests.labels(call.call_class.value, str(upstream.status_code)).inc()
            if call.stream and upstream.status_code == 200:
                return _streamed(upstream, admission)
            return await _answered(upstream, admission, request)
        raise NoEngineAvailable(
            f"Every engine failed before answering ({attempts} tries).", self.pool.retry_after_s
        )

    async def _send(self, engine: Engine, call: Call) -> httpx.Response:
        """Send to `engine` with vLLM's priority for the class, unless the engine refuses it."""
        payload = dict(call.payload)
        rank = PRIORITY[call.call_class]
        with_priority = rank > 0 and engine.priority_scheduling is not False
        if with_priority:
            payload["priority"] = rank
        response = await _post(engine, call.path, payload)
        if with_priority and response.status_code == 400:
            text = (await response.aread()).decode(errors="replace")
            if "priority" not in text.lower():
                return response
            # The engine runs first-come-first-served and rejects `priority`: stop sending it.
            await response.aclose()
            engine.priority_scheduling = False
            log_event(logger, "engine_without_priority_scheduling", engine=engine.name)
            payload.pop("priority")
            return await _post(engine, call.path, payload)
        if with_priority and response.status_code < 400:
            engine.priority_scheduling = True
        return response

    async def _count_prompt(self, call: Call) -> int:
        """The prompt's tokens by the engine's own tokenizer, else the over-counting estimate."""
        engine = self._tokenizer_engine(call.model)
        request = _tokenize_request(call)
        if engine is None or request is None:
            return estimate_prompt_tokens(call.payload)
        try:
            response = await engine.client.post("/tokenize", json=request)
        except httpx.HTTPError:
            return estimate_prompt_tokens(call.payload)
        if 400 <= response.status_code < 500 and response.status_code not in (404, 405):
            raise RequestRejected(400, _upstream_message(response), _field_of(call))
        try:
            response.raise_for_status()
            return int(response.json()["count"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return estimate_prompt_tokens(call.payload)

    def _tokenizer_engine(self, model: str | None) -> Engine | None:
        return next((e for e in self.pool.engines if e.healthy and e.serves(model)), None)


async def _post(engine: Engine, path: str, payload: dict[str, Any]) -> httpx.Response:
    request = engine.client.build_request("POST", path, json=payload)
    return await engine.client.send(request, stream=True)


def _streamed(upstream: httpx.Response, admission: Admission) -> StreamingResponse:
    """Pass the engine's stream on; the slot is freed when it ends or the client goes away."""

    async def finish() -> None:
        admission.slot.release()
        # Shielded: a disconnect cancels the response, and the close must still reach the
        # engine (closing the connection is what makes vLLM abort the request).
        with anyio.CancelScope(shield=True):
            await upstream.aclose()

    return _FinishingStreamingResponse(
        upstream.aiter_raw(), finish, status_code=upstream.status_code, headers=_headers(upstream)
    )


class _FinishingStreamingResponse(StreamingResponse):
    """A streamed response that always runs `finish`, even when the client leaves before the
    first chunk (then the body iterator never starts, so a `finally` inside it would not run)."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        finish: Callable[[], Awaitable[None]],
        *,
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers)
        self._finish = finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._finish()


async def _answered(upstream: httpx.Response, admission: Admission, request: Request) -> Response:
    """Read the whole answer, unless the client leaves first (then the upstream call is closed)."""
    try:
        content = await _unless_client_leaves(request, upstream.aread())
    except _ClientLeft:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except httpx.HTTPError as exc:
        raise NoEngineAvailable(f"The engine failed mid-answer ({type(exc).__name__}).", 5) from exc
    finally:
        admission.slot.release()
        with anyio.CancelScope(shield=True):
            await upstream.aclose()
    return _passed_on(upstream, content)


class _ClientLeft(Exception):
    """The client closed its connection before the answer was ready."""


async def _unless_client_leaves(
    request: Request, work: Awaitable[T], on_late_result: Callable[[T], None] | None = None
) -> T:
    """Await `work`, cancelling it (which closes its upstream request) if the client leaves.

    `on_late_result` disposes of a result that arrived as the client left (a slot to give back).
    """
    task = asyncio.ensure_future(work)
    leaving = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, leaving}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        leaving.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError, NoEngineAvailable):
            late = await task
            if on_late_result is not None:
                on_late_result(late)
        raise _ClientLeft
    return task.result()


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _passed_on(upstream: httpx.Response, content: bytes) -> Response:
    return Response(content, status_code=upstream.status_code, headers=_headers(upstream))


def _headers(upstream: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in upstream.headers.items() if k.lower() in PASSED_HEADERS}


def _error(
    status: int,
    message: str,
    param: str | None = None,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in OpenAI's shape, so every OpenAI client shows the message."""
    error = {"message": message, "type": kind, "param": param, "code": code or status}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _call_class(value: str, setting: str | None) -> CallClass:
    try:
        return CallClass(value.strip().lower())
    except ValueError:
        allowed = ", ".join(c.value for c in CallClass)
        where = setting or f"the {CALL_CLASS_HEADER} header"
        message = f"Unknown call class {value!r} in {where}; use one of: {allowed}."
        if setting:
            raise ConfigError(message) from None
        raise RequestRejected(400, message, CALL_CLASS_HEADER) from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise RequestRejected(400, f"The request body is not valid JSON ({exc}).") from None
    if not isinstance(payload, dict):
        raise RequestRejected(400, "The request body must be a JSON object.")
    return payload


def _check_payload(path: str, payload: dict[str, Any]) -> None:
    """Reject the shapes an engine would fail on, naming the field."""
    if path == CHAT_PATH:
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestRejected(400, "`messages` must be a non-empty list.", "messages")
        if not all(isinstance(m, dict) and "role" in m for m in messages):
            raise RequestRejected(400, "Each message must be an object with a `role`.", "messages")
    elif not isinstance(payload.get("prompt"), str | list) or not payload.get("prompt"):
        raise RequestRejected(400, "`prompt` must be a non-empty string or list.", "prompt")
    for name in ("max_tokens", "max_completion_tokens"):
        value = payload.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise RequestRejected(400, f"`{name}` must be a positive integer.", name)
    if "stream" in payload and not isinstance(payload["stream"], bool):
        raise RequestRejected(400, "`stream` must be true or false.", "stream")
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestRejected(400, "`model` must be a string.", "model")


def _model_of(payload: dict[str, Any]) -> str | None:
    model = payload.get("model")
    return model if isinstance(model, str) and model else None


def _field_of(call: Call) -> str:
    return "messages" if call.path == CHAT_PATH else "prompt"


def _tokenize_request(call: Call) -> dict[str, Any] | None:
    """The `/tokenize` body that counts the prompt as the engine will build it."""
    payload = call.payload
    if call.path == CHAT_PATH:
        request: dict[str, Any] = {
            "model": call.model,
            "messages": payload["messages"],
            "add_generation_prompt": True,
        }
        for key in ("tools", "chat_template_kwargs", "add_generation_prompt"):
            if key in payload:
                request[key] = payload[key]
        return request
    if isinstance(payload.get("prompt"), str):
        return {"model": call.model, "prompt": payload["prompt"]}
    return None


def _upstream_message(response: httpx.Response) -> str:
    """The engine's own error message, for a 4xx passed on."""
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        body = response.json()
        error = body.get("error", body)
        return str(error.get("message") or error.get("detail") or body)
    return response.text[:500] or f"HTTP {response.status_code}"


__all__ = ["create_gateway_app", "gateway_server"]
