"""Value objects for talking to the served model. The app reads them once (app/settings.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_BUDGET = 8
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
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    startup_timeout_s: float = Field(default=600.0, gt=0)
