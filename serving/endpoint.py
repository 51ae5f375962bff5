"""The served engine: base URL, model name and context length, read from `/v1/models`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from serving.errors import EngineError
from serving.settings import LLMSettings


@dataclass(frozen=True)
class Endpoint:
    """A reachable OpenAI-compatible engine and the model it serves."""

    base_url: str
    model: str
    max_model_len: int
    api_key: str = "EMPTY"
    # The engine's own sequence cap, where Fawn knows it (it launched the engine from a profile).
    max_num_seqs: int | None = None

    @property
    def root_url(self) -> str:
        """The server root (where vLLM serves /health, /metrics and /tokenize)."""
        return self.base_url.rstrip("/").removesuffix("/v1")


def discover_endpoint(base_url: str, llm: LLMSettings, timeout_s: float = 10.0) -> Endpoint:
    """Ask the engine at `base_url` which model it serves and its max_model_len."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {llm.api_key}"}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
        response.raise_for_status()
        models = response.json()["data"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise EngineError(
            f"No LLM engine answers at {base_url} ({type(exc).__name__}: {exc}). Start one with "
            "`fawn serve`, or set FAWN_LLM_BASE_URL to a running OpenAI-compatible server."
        ) from exc
    if not models:
        raise EngineError(f"The engine at {base_url} serves no model.")
    chosen = next((m for m in models if m["id"] == llm.model), None) if llm.model else models[0]
    if chosen is None:
        served = ", ".join(m["id"] for m in models)
        raise EngineError(
            f"The engine at {base_url} does not serve {llm.model!r} (it serves: {served}). "
            "Fix FAWN_LLM_MODEL."
        )
    return Endpoint(
        base_url=base_url.rstrip("/"),
        model=chosen["id"],
        max_model_len=int(chosen.get("max_model_len") or 4096),
        api_key=llm.api_key,
    )


def gateway_health(root_url: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
    """The `/health` body of a Fawn gateway at `root_url`; None if it is not one, or is down.

    A raw vLLM answers /health with an empty body, so this also tells a gateway from an engine.
    """
    try:
        body = httpx.get(f"{root_url.rstrip('/')}/health", timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("gateway") == "fawn" else None


def gateway_engine_urls(health: dict[str, Any]) -> tuple[str, ...]:
    """The root URLs of the engines behind a gateway, from its `/health` body."""
    engines = health.get("engines")
    if not isinstance(engines, list):
        return ()
    return tuple(str(e["url"]) for e in engines if isinstance(e, dict) and e.get("url"))
