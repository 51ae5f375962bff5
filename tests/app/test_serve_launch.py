"""`fawn serve` brings the embedded engine up, answers /v1/models, and stops without orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.engine

FAWN = Path(sys.executable).with_name("fawn")


def _processes_mentioning(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmdline and "pytest" not in cmdline:
            found.append(int(entry.name))
    return found


def _wait_for_models(base_url: str, process: subprocess.Popen[str], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            response = httpx.get(f"{base_url}/models", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"/v1/models did not answer within {timeout_s} s")


def test_serve_starts_embedded_engine_and_sigterm_leaves_no_orphans() -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(FAWN), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        models = _wait_for_models(f"http://127.0.0.1:{port}/v1", process, timeout_s=300)
        assert models["data"][0]["id"] == "smollm2-135m-instruct"
        assert _processes_mentioning(f"--port {port}"), "the engine should run as a child"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}/v1" in output
    assert "Engine stopped" in output
    assert _processes_mentioning(f"--port {port}") == []


def test_serve_with_unknown_profile_exits_2_with_one_line_error() -> None:
    result = subprocess.run(
        [str(FAWN), "serve", "--profile", "no-such-profile"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Unknown profile 'no-such-profile'" in result.stderr
    assert "embedded-cpu" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
