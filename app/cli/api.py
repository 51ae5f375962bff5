"""`fawn api`: serve the REST API (and, later, the web UI)."""

from __future__ import annotations

import typer

from app.settings import load_settings


def api(
    host: str | None = typer.Option(None, help="Address to bind; off loopback needs FAWN_API_KEY."),
    port: int | None = typer.Option(None, help="Port to listen on (default 8080)."),
) -> None:
    """Serve the REST API; unfinished jobs from an earlier run resume on start-up.

    Example: FAWN_API_KEY=secret fawn api --host 0.0.0.0 --port 8080
    """
    import uvicorn

    from app.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
