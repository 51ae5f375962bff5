"""Value objects for talking to the served model. The app reads them once (app/settings.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_BUDGET = 8
# Binding anywhere else exposes a server to the network, so it needs an API key.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_TIMEOUT_S = 180.0


class Sampling(BaseModel):
    """Sampling defaults: Qwen3-2507 non-thinking recommendations."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    min_p: float = 0.0


class LLMSettings(BaseModel):
    """Where the model is served and how every call to it behaves."""

    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL ending in /v1. None: start the embedded engine.",
    )
    model: str | None = Field(
        default=None, description="Served model name. None: the first model /v1/models lists."
    )
    api_key: str = Field(default="EMPTY", description="Key the engine expects, if any.")
    sampling: Sampling = Field(default_factory=Sampling)
    max_tokens: int = Field(default=1024, gt=0, description="Completion cap for every call.")
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, description="Per-call timeout.")
    retries: int = Field(default=3, ge=0, description="Retries on connection errors and 5xx.")
    budget: int = Field(
        default=DEFAULT_BUDGET, gt=0, description="Most LLM calls in flight at once (the gate)."
    )


class EngineSettings(BaseModel):
    """How Fawn launches an engine itself when no base URL is configured."""

    profile: str | None = Field(
        default=None, description="Profile name; None picks embedded-cpu without a GPU."
    )
    host: str = Field(default="127.0.0.1", description="`fawn serve`'s default address.")
    port: int = Field(default=8000, gt=0, lt=65536, description="`fawn serve`'s default port.")
    startup_timeout_s: float = Field(default=600.0, gt=0)
    idle_shutdown_s: float = Field(
        default=300.0,
        ge=0,
        description="The data dir's shared embedded engine stops after this long unused.",
    )


DEFAULT_GATEWAY_PORT = 8100
# A call the gateway has admitted but not yet sent waits this long for a healthy engine (one
# being restarted by `fawn serve`) before it is answered 503 with Retry-After.
DEFAULT_HOLD_S = 60.0


class UpstreamSettings(BaseModel):
    """One vLLM engine behind the gateway."""

    url: str = Field(description="The engine's root or /v1 URL, e.g. http://127.0.0.1:8000.")
    api_key: str | None = Field(default=None, description="Key the engine expects, if any.")
    budget: int | None = Field(
        default=None,
        gt=0,
        description="Most calls in flight on this engine; default: its max-num-seqs, else 8.",
    )


class GatewaySettings(BaseModel):
    """`fawn gateway`: one LLM budget per engine, shared by every client of the engines."""

    upstreams: list[UpstreamSettings] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_GATEWAY_PORT, gt=0, lt=65536)
    api_key: str | None = Field(
        default=None, description="Bearer key clients must send; required off loopback."
    )
    default_class: str = Field(
        default="research",
        description="Call class of a request without the X-Fawn-Class header.",
    )
    interactive_reserve: int = Field(
        default=1,
        ge=0,
        description="Slots per engine only interactive calls may take (a person waits for a "
        "prefill, not for a batch call to end); the rest of the budget serves every class.",
    )
    hold_s: float = Field(
        default=DEFAULT_HOLD_S,
        ge=0,
        description="How long a call waits for a healthy engine before HTTP 503.",
    )
    health_interval_s: float = Field(default=2.0, gt=0, description="Seconds between checks.")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="Largest request.")
