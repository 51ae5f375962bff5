"""`GET /api/health` (app, engine, search, sandbox, pressure) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
from typing import Literal

import httpx
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from agents.tools.sandbox import sandbox_unavailable_reason
from app.services import Services

router = APIRouter(tags=["health"])
ENGINE_HEALTH_TIMEOUT_S = 3.0


class Component(BaseModel):
    """One part of Fawn and whether it works."""

    ok: bool
    detail: str


class Health(BaseModel):
    """Whether Fawn can take and finish research jobs right now."""

    status: Literal["ok", "degraded"]
    app: Component
    engine: Component
    search: Component
    sandbox: Component
    pressure: Component


@router.get("/api/health", response_model=Health)
async def get_health(request: Request) -> Health:
    """The state of each component; `degraded` when any is not ok."""
    services: Services = request.app.state.services
    engine = await _engine(services.endpoint.root_url, services.endpoint.model)
    sandbox_reason = await asyncio.to_thread(sandbox_unavailable_reason)
    pressure = services.pressure.state
    parts = {
        "app": Component(ok=True, detail="running"),
        "engine": engine,
        "search": Component(ok=True, detail="local corpus (offline default); web via DuckDuckGo"),
        "sandbox": Component(
            ok=sandbox_reason is None, detail=sandbox_reason or "bubblewrap sandbox works"
        ),
        "pressure": Component(ok=not pressure.under_pressure, detail=pressure.describe()),
    }
    status = "ok" if all(part.ok for part in parts.values()) else "degraded"
    return Health(status=status, **parts)


async def _engine(root_url: str, model: str) -> Component:
    try:
        async with httpx.AsyncClient(timeout=ENGINE_HEALTH_TIMEOUT_S) as client:
            response = await client.get(f"{root_url}/health")
        if response.status_code == 200:
            return Component(ok=True, detail=f"{model} at {root_url}")
        return Component(ok=False, detail=f"{root_url}/health answered {response.status_code}")
    except httpx.HTTPError as exc:
        return Component(ok=False, detail=f"{root_url} unreachable ({type(exc).__name__})")


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics of the app: the budget's calls, queues, deferrals, 503s, pressure."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
