"""`fawn gateway`: one LLM budget in front of engines Fawn did not start (serving/gateway)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from app.settings import load_settings
from serving.settings import UpstreamSettings

console = Console(stderr=True, highlight=False)


def gateway(
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="An engine's URL (repeat for several). Default: gateway.upstreams in the config."
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to bind; off loopback needs FAWN_GATEWAY_API_KEY.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8100).")] = None,
    budget: Annotated[
        int | None,
        typer.Option(min=1, help="Most calls in flight per engine (default: its max-num-seqs, 8)."),
    ] = None,
    hold: Annotated[
        float | None,
        typer.Option(min=0, help="Seconds a call waits for a healthy engine before HTTP 503."),
    ] = None,
) -> None:
    """Serve an OpenAI-compatible gateway that gates every client's calls to the engines.

    Point every Fawn process (and any OpenAI client) at it: FAWN_LLM_BASE_URL=http://HOST:PORT/v1.
    Calls carry their class in the X-Fawn-Class header; others count as `research`.

    Example: fawn gateway --upstream http://127.0.0.1:8000 --upstream http://10.0.0.2:8000
    """
    settings = load_settings()
    config = settings.gateway
    changes: dict[str, object] = {}
    if upstream:
        keys = {u.url: u.api_key for u in config.upstreams}
        changes["upstreams"] = [
            UpstreamSettings(url=url, api_key=keys.get(url)) for url in upstream
        ]
    if budget is not None:
        upstreams = changes.get("upstreams", config.upstreams)
        changes["upstreams"] = [u.model_copy(update={"budget": budget}) for u in upstreams]
    changes.update(
        {k: v for k, v in {"host": host, "port": port, "hold_s": hold}.items() if v is not None}
    )
    config = config.model_copy(update=changes)

    from serving.gateway import gateway_server

    server = gateway_server(config, settings.pressure)
    engines = ", ".join(u.url for u in config.upstreams)
    console.print(f"Gateway on http://{config.host}:{config.port}/v1 in front of {engines}")
    server.run()
