"""The real embedded engine: it starts from the embedded-cpu profile and serves the model."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from serving.endpoint import Endpoint, discover_endpoint
from serving.errors import EngineError
from serving.settings import LLMSettings

pytestmark = pytest.mark.engine


def test_engine_reports_model_and_context_length(engine: Endpoint) -> None:
    assert engine.model == "smollm2-135m-instruct"
    assert engine.max_model_len == 4096
    assert httpx.get(engine.root_url + "/health", timeout=5).status_code == 200


def test_engine_answers_a_chat_completion(engine: Endpoint) -> None:
    client = OpenAI(base_url=engine.base_url, api_key="EMPTY")
    reply = client.chat.completions.create(
        model=engine.model,
        # Not "What is the capital of France?": there the model's first token is a near-tie that
        # bf16 rounding on vLLM decides against Paris.
        messages=[{"role": "user", "content": "Name the capital of France."}],
        max_tokens=32,
        temperature=0,
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_engine_returns_schema_valid_json_for_structured_output(engine: Endpoint) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population_millions": {"type": "number"},
        },
        "required": ["city", "population_millions"],
        "additionalProperties": False,
    }
    client = OpenAI(base_url=engine.base_url, api_key="EMPTY")
    reply = client.chat.completions.create(
        model=engine.model,
        messages=[
            {
                "role": "user",
                "content": "Give the capital of France as `city` and its population in "
                "millions as `population_millions`, as JSON.",
            }
        ],
        max_tokens=64,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "capital", "schema": schema},
        },
    )
    parsed = json.loads(reply.choices[0].message.content or "")
    assert set(parsed) == {"city", "population_millions"}
    assert isinstance(parsed["city"], str)
    assert isinstance(parsed["population_millions"], int | float)


def test_unreachable_endpoint_is_a_clear_engine_error() -> None:
    with pytest.raises(EngineError, match="fawn serve"):
        discover_endpoint("http://127.0.0.1:9/v1", LLMSettings(), timeout_s=2)
