"""`fawn serve plan` and the launch-time checks, through the real `fawn` console script."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from serving.gpu import read_gpus
from serving.planner import PlanRequest, find_model, plan_memory
from tests.conftest import free_port

FAWN = Path(sys.executable).with_name("fawn")
GiB = 2**30


def _fawn(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(FAWN), *args], capture_output=True, text=True, timeout=120, env=env)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_plan_with_fp8_kv_cache_shows_73728_bytes_per_token_and_the_capacity() -> None:
    result = _fawn(
        "serve", "plan", "--model", "qwen3-4b-instruct-2507",
        "--gpu-memory", "24GiB", "--kv-cache-dtype", "fp8",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = plan_memory(
        PlanRequest(find_model("qwen3-4b-instruct-2507"), 24 * GiB, kv_cache_dtype="fp8")
    )
    assert "73,728 bytes" in result.stdout
    assert f"{expected.kv_capacity_tokens:,} tokens" in result.stdout
    assert f"{expected.max_concurrency:.2f}x" in result.stdout
    assert "Fits" in result.stdout


def test_plan_of_the_embedded_profile_shows_the_cpu_kv_cache_vllm_reported() -> None:
    result = _fawn("serve", "plan", "--profile", "embedded-cpu")
    assert result.returncode == 0, result.stderr
    assert "23,040 bytes" in result.stdout
    assert "46,592 tokens" in result.stdout  # what vLLM's CPU build logged with 1 GiB


@pytest.mark.skipif(bool(read_gpus()), reason="checks the fallback on a machine without a GPU")
def test_plan_of_a_gpu_profile_without_gpu_uses_the_card_it_is_sized_for() -> None:
    result = _fawn("serve", "plan", "--profile", "qwen3-4b-24gb")
    assert result.returncode == 0, result.stderr
    assert "Fits the A10 24 GB (22.49 GiB)" in result.stdout
    assert "147,456 bytes" in result.stdout


def test_plan_that_does_not_fit_exits_2_with_a_one_line_reason_and_fix() -> None:
    result = _fawn(
        "serve", "plan", "--model", "qwen3-4b-instruct-2507",
        "--gpu-memory", "24GB", "--max-model-len", "262144",
    )  # fmt: skip
    _assert_one_line_error(result, "does not fit", "short by", "--max-model-len ")


def test_plan_of_weights_too_large_suggests_a_quantized_checkpoint() -> None:
    result = _fawn("serve", "plan", "--model", "qwen3-4b-instruct-2507", "--gpu-memory", "8gb")
    _assert_one_line_error(result, "weights", "cpatonn/Qwen3-4B-Instruct-2507-AWQ-4bit")


def test_plan_of_unknown_profile_exits_2_listing_the_shipped_ones() -> None:
    result = _fawn("serve", "plan", "--profile", "no-such-profile")
    _assert_one_line_error(result, "Unknown profile 'no-such-profile'", "qwen3-4b-24gb")


def test_plan_of_unknown_model_exits_2_listing_the_known_ones() -> None:
    result = _fawn("serve", "plan", "--model", "llama-70b", "--gpu-memory", "80G")
    _assert_one_line_error(result, "Unknown model 'llama-70b'", "smollm2-135m-instruct")


def test_plan_with_an_unreadable_size_or_no_target_exits_2() -> None:
    _assert_one_line_error(
        _fawn("serve", "plan", "--model", "qwen3-4b-instruct-2507", "--gpu-memory", "big"),
        "24GiB",
    )
    _assert_one_line_error(_fawn("serve", "plan"), "--profile", "--model")


@pytest.mark.skipif(bool(read_gpus()), reason="checks the refusal on a machine without a GPU")
def test_serve_refuses_a_gpu_profile_without_a_gpu_before_launching() -> None:
    result = _fawn("serve", "--profile", "qwen3-4b-24gb", "--port", "9")
    _assert_one_line_error(result, "needs an NVIDIA GPU", "--force")


def test_serve_off_loopback_without_an_api_key_exits_2_before_launching() -> None:
    result = _fawn("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    _assert_one_line_error(result, "off loopback", "FAWN_GATEWAY_API_KEY")


def test_serve_on_a_taken_port_exits_2_before_launching() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = _fawn("serve", "--port", str(port))
    _assert_one_line_error(result, f"Port {port} on 127.0.0.1 is taken", "--port")
