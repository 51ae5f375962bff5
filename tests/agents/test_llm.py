"""`ModelCalls`: every call is fitted to the context and tells the gate its prompt size."""

from __future__ import annotations

import dataclasses

from langchain_core.language_models import BaseChatModel

from agents.llm import ModelCalls
from serving.budget import CallClass
from tests.agents.conftest import Script, scripted_runtime


async def test_a_call_hands_the_counted_prompt_and_fitted_cap_to_the_model_factory() -> None:
    runtime = scripted_runtime(Script({"answer": "Paris."}), max_model_len=512)
    seen: list[tuple[int, int | None]] = []

    def model_for(
        call_class: CallClass,
        *,
        max_tokens: int,
        temperature: float | None = None,
        prompt_tokens: int | None = None,
    ) -> BaseChatModel:
        seen.append((max_tokens, prompt_tokens))
        return runtime.model_for(call_class, max_tokens=max_tokens)

    calls = ModelCalls(dataclasses.replace(runtime, model_for=model_for))
    messages = [
        {"role": "system", "content": "Answer the question in one sentence."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    completion = await calls.complete(CallClass.RESEARCH, messages, max_tokens=4096)

    counted = await runtime.context_budget.counter.count(messages)
    assert completion.text == "Paris."
    assert seen == [(512 - counted - 16, counted)]
    assert calls.usage.calls == 1
