"""A scripted chat model and a small in-memory search provider for the graph's unit tests.

`ScriptedChatModel` answers each call by role: the role is read from the call itself (the JSON
schema's name for structured calls, the system prompt's opening for prose), and a `Script` maps
roles to replies (a string, a list of strings consumed in order, or a function of the prompt).
It records every call with its start and end time, so tests can see what ran concurrently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agents.context import ContextBudget
from agents.runtime import CodeRunner, Runtime
from agents.sources import Source, new_source
from agents.text import content_words
from agents.tools.search import SearchHit
from serving.budget import CallClass
from serving.tokens import EstimatingTokenCounter

# System prompt openings of the prose prompts in templates/prompts/.
PROSE_ROLES = {
    "You are Fawn": "small_talk",
    "You are a researcher": "notes",
    "You are an analyst": "analysis",
    "You write Python": "code",
    "Answer the question": "answer",
    "You write one section": "section",
}
STRUCTURED_ROLES = {"plan": "plan", "routechoice": "route", "searchquery": "query"}

Reply = str | AIMessage | Callable[[list[BaseMessage]], "str | AIMessage"]


def role_of(messages: Sequence[BaseMessage], kwargs: dict[str, Any]) -> str:
    """Which prompt of the research graph a call is."""
    response_format = kwargs.get("response_format")
    if response_format:
        name = response_format["json_schema"]["name"]
        return STRUCTURED_ROLES.get(name, name)
    system = str(messages[0].content) if messages else ""
    return next(role for opening, role in PROSE_ROLES.items() if system.startswith(opening))


@dataclass
class Call:
    """One call the scripted model answered."""

    role: str
    messages: list[BaseMessage]
    kwargs: dict[str, Any]
    started: float
    ended: float = 0.0

    @property
    def prompt(self) -> str:
        """The whole prompt as one string."""
        return "\n".join(str(m.content) for m in self.messages)


@dataclass
class Script:
    """Replies by role, and how long each role's calls take."""

    replies: dict[str, Reply | list[Reply]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def reply(self, role: str, messages: list[BaseMessage]) -> AIMessage:
        """The scripted reply for a call of `role`."""
        if role not in self.replies:
            raise AssertionError(f"The script has no reply for a {role!r} call.")
        scripted = self.replies[role]
        if isinstance(scripted, list):
            scripted = scripted.pop(0) if len(scripted) > 1 else scripted[0]
        value = scripted(messages) if callable(scripted) else scripted
        if isinstance(value, AIMessage):
            return value
        return AIMessage(
            content=value,
            response_metadata={"finish_reason": "stop"},
            usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
        )

    def of(self, role: str) -> list[Call]:
        """The calls of one role, in order."""
        return [call for call in self.calls if call.role == role]


def cut_off(text: str) -> AIMessage:
    """A reply that hit its token cap."""
    return AIMessage(content=text, response_metadata={"finish_reason": "length"})


class ScriptedChatModel(BaseChatModel):
    """A chat model that plays a Script."""

    script: Any

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise AssertionError("The research graph must call models asynchronously.")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        role = role_of(messages, kwargs)
        call = Call(role, list(messages), kwargs, started=time.monotonic())
        self.script.calls.append(call)
        await asyncio.sleep(self.script.delays.get(role, 0.0))
        reply = self.script.reply(role, list(messages))
        call.ended = time.monotonic()
        return ChatResult(generations=[ChatGeneration(message=reply)])


@dataclass(frozen=True)
class Doc:
    """A document of the in-memory corpus."""

    title: str
    text: str

    @property
    def url(self) -> str:
        """Its Wikipedia-style URL."""
        return "https://en.wikipedia.org/wiki/" + self.title.replace(" ", "_")


@dataclass
class MemorySearch:
    """A provider over a few documents, ranked by shared words; records its queries."""

    docs: list[Doc]
    name: str = "memory"
    queries: list[str] = field(default_factory=list)

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        """Documents sharing words with `query`, best first."""
        self.queries.append(query)
        wanted = set(content_words(query))
        scored = [(len(wanted & set(content_words(d.title + " " + d.text))), d) for d in self.docs]
        ranked = [d for score, d in sorted(scored, key=lambda p: -p[0]) if score > 0]
        return [
            SearchHit(title=d.title, url=d.url, passage=d.text, score=1.0, provider=self.name)
            for d in ranked[:max_results]
        ]


DOCS = [
    Doc("Arthur's Magazine", "Arthur's Magazine (1844–1846) was an American literary periodical "
        "published in Philadelphia in the 19th century."),
    Doc("First for Women", "First for Women is a woman's magazine published by Bauer Media "
        "Group in the USA. The magazine was started in 1989."),
    Doc("Radio City (Indian radio station)", "Radio City is India's first private FM radio "
        "station and was started on 3 July 2001."),
]  # fmt: skip


def scripted_runtime(
    script: Script,
    search: MemorySearch | None = None,
    *,
    run_code: CodeRunner | None = None,
    coder_off_reason: str | None = "bubblewrap is not installed",
    max_model_len: int = 4096,
) -> Runtime:
    """A Runtime whose model plays `script` and whose search is in memory."""
    model = ScriptedChatModel(script=script)
    provider = search or MemorySearch(list(DOCS))

    def model_for(
        call_class: CallClass,
        *,
        max_tokens: int,
        temperature: float | None = None,
        prompt_tokens: int | None = None,
    ) -> BaseChatModel:
        return model

    return Runtime(
        model_for=model_for,
        search_for=lambda _name: provider,
        context_budget=ContextBudget(max_model_len, EstimatingTokenCounter()),
        run_code=run_code,
        coder_off_reason=None if run_code else coder_off_reason,
    )


@pytest.fixture
def memory_search() -> MemorySearch:
    """The in-memory corpus of three real Wikipedia paragraphs."""
    return MemorySearch(list(DOCS))


def numbered_sources(*docs: tuple[str, str]) -> list[Source]:
    """Sources registered as [1], [2], ... from (title, passage) pairs."""
    return [
        new_source(f"https://example.org/{n}", title, text, "local").model_copy(update={"id": n})
        for n, (title, text) in enumerate(docs, 1)
    ]
