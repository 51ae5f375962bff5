"""`fawn api`: serve the REST API and the web UI (and, unless told not to, run jobs too)."""

from __future__ import annotations

import typer

from app.settings import load_settings


def api(
    host: str | None = typer.Option(None, help="Address to bind; off loopback needs FAWN_API_KEY."),
    port: int | None = typer.Option(None, help="Port to listen on (default 8080)."),
    worker: bool = typer.Option(
        True,
        "--worker/--no-worker",
        help="Run jobs in this process too. --no-worker: only the API; `fawn worker` "
        "processes on the same data dir or FAWN_DATABASE_URL run the jobs.",
    ),
) -> None:
    """Serve the REST API and the web UI; with its worker, unfinished jobs resume on start-up.

    Example: FAWN_API_KEY=secret fawn api --host 0.0.0.0 --port 8080 --no-worker
    """
    import uvicorn

    from app.api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    uvicorn.run(
        create_app(settings, worker=worker),
        host=settings.host,
        port=settings.port,
        log_level="info",
    )
