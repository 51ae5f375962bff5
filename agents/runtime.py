"""The bundle of things a research run needs but does not store: model, search, sandbox, context.

It is the LangGraph run context (`graph.ainvoke(..., context=runtime)`), rebuilt by whoever runs
or resumes a graph; the checkpointed state holds only data. Tests build one with a scripted chat
model; `connect_runtime` builds the real one on an engine endpoint, whose pooled HTTP clients the
caller closes with `Runtime.close` when done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Protocol

from langchain_core.language_models import BaseChatModel

from agents.config import SearchProviderName
from agents.context import ContextBudget
from agents.tools.mcp_config import McpSettings
from agents.tools.sandbox import SandboxResult, run_python, sandbox_unavailable_reason
from agents.tools.search import SearchProvider, make_provider
from serving.budget import Budget, CallClass
from serving.client import EnginePool, engine_pool
from serving.endpoint import Endpoint
from serving.settings import LLMSettings
from serving.tokens import EngineTokenCounter


class ModelFactory(Protocol):
    """Builds the chat model for one call: its budget class, completion cap and temperature."""

    def __call__(
        self,
        call_class: CallClass,
        *,
        max_tokens: int,
        temperature: float | None = None,
        prompt_tokens: int | None = None,
    ) -> BaseChatModel:
        """A chat model whose calls are capped at `max_tokens`.

        `prompt_tokens` is the engine's count of the prompt, where known, for exact KV admission.
        """
        ...


CodeRunner = Callable[[str], Awaitable[SandboxResult]]


@dataclass(frozen=True)
class Runtime:
    """What the research graph's nodes use to call the model, search and run code."""

    model_for: ModelFactory
    search_for: Callable[[SearchProviderName], SearchProvider]
    context_budget: ContextBudget
    run_code: CodeRunner | None = None
    coder_off_reason: str | None = "No code runner was configured."
    # The pooled engine clients behind `model_for` (none for a scripted runtime).
    clients: EnginePool | None = None
    # The MCP servers whose `step_tools` plan steps call.
    mcp: McpSettings = field(default_factory=McpSettings)

    def close(self) -> None:
        """Close the pooled engine clients, if this runtime has any."""
        if self.clients is not None:
            self.clients.close()

    async def aclose(self) -> None:
        """`close` from inside an event loop, awaiting that loop's own connection pools."""
        if self.clients is not None:
            await self.clients.aclose()


def connect_runtime(
    endpoint: Endpoint,
    llm: LLMSettings,
    budget: Budget,
    *,
    data_dir: Path,
    mcp: McpSettings | None = None,
) -> Runtime:
    """The production runtime: gated chat models on `endpoint`, real search (with the MCP
    servers `mcp` configures), the sandbox.

    Its chat models come from the process's one pool for `endpoint` and `budget`; close it with
    `Runtime.close` when the runtime is done.
    """
    clients = engine_pool(endpoint, llm, budget)

    @cache
    def search_for(name: SearchProviderName) -> SearchProvider:
        return make_provider(name, data_dir=data_dir, mcp=mcp)

    reason = sandbox_unavailable_reason()
    return Runtime(
        model_for=clients.chat_model,
        search_for=search_for,
        context_budget=ContextBudget(
            endpoint.max_model_len,
            EngineTokenCounter(endpoint, client=clients.tokenize_client),
        ),
        run_code=None if reason else run_python,
        coder_off_reason=reason,
        clients=clients,
        mcp=mcp or McpSettings(),
    )
