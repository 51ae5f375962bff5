"""`fawn mcp serve`: Fawn's MCP server over stdio, or over Streamable HTTP at /mcp.

Both connect to the engine (or start the shared embedded one) and run jobs through the job
service, so research asked for over MCP is an ordinary job under the one LLM budget. Over HTTP
the API's key rules apply: binding off loopback needs FAWN_API_KEY, and with a key set every
request must carry `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.auth import check_bind_is_safe, key_matches
from app.jobs.service import JobService, run_jobs
from app.jobs.store import open_job_store
from app.mcp.tools import build_server
from app.settings import Settings

MCP_PATH = "/mcp"


def serve_stdio(settings: Settings) -> None:
    """Serve MCP on stdin/stdout until the client closes them."""

    async def work(jobs: JobService) -> None:
        await build_server(settings, jobs).run_stdio_async()

    _run(settings, work)


def serve_http(settings: Settings) -> None:
    """Serve MCP over Streamable HTTP on the settings' host and port, at /mcp."""
    import uvicorn

    check_bind_is_safe(settings)

    async def work(jobs: JobService) -> None:
        app = build_server(settings, jobs).streamable_http_app(
            streamable_http_path=MCP_PATH, host=settings.host
        )
        guarded = BearerKey(app, settings.api_key) if settings.api_key else app
        config = uvicorn.Config(guarded, host=settings.host, port=settings.port, log_level="info")
        await uvicorn.Server(config).serve()

    _run(settings, work)


def _run(settings: Settings, work: Any) -> None:
    store = open_job_store(settings)
    try:
        run_jobs(settings, store, work, concurrency=settings.jobs.concurrency)
    finally:
        store.close()


class BearerKey:
    """ASGI middleware: HTTP requests pass only with `Authorization: Bearer <key>`."""

    def __init__(self, app: ASGIApp, key: SecretStr) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an HTTP request without the key (401); pass everything else on."""
        if scope["type"] != "http" or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"detail": "Missing or wrong API key: send `Authorization: Bearer <FAWN_API_KEY>`."}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and key_matches(token, self.key)
