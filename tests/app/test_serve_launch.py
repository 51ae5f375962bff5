"""`fawn serve` brings the embedded engine up behind the gateway, restarts it when it dies, and
never leaves an engine process behind: not on SIGTERM, not when it is killed itself."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.engine import end_process_group, group_members, port_answers
from tests.app.api.conftest import build_corpus
from tests.conftest import free_port
from tests.processes import cmdline, wait_for

pytestmark = pytest.mark.engine

FAWN = Path(sys.executable).with_name("fawn")
API_SERVER = "vllm.entrypoints.openai.api_server"
BATCH_QUESTIONS = [
    "Which magazine was started first, Arthur's Magazine or First for Women?",
    "Were Scott Derrickson and Ed Wood of the same nationality?",
]


def _processes_mentioning(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            text = cmdline(int(entry.name))
            if needle in text and "pytest" not in text:
                found.append(int(entry.name))
    return found


def _engine_of(serve_pid: int) -> int | None:
    """The vLLM api_server that `fawn serve` (pid `serve_pid`) runs right now."""
    for pid in _processes_mentioning(API_SERVER):
        try:
            stat = (Path("/proc") / str(pid) / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == serve_pid:
            return pid
    return None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(FAWN), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
    )


def _read_until(process: subprocess.Popen[str], text: str, timeout_s: float) -> str:
    """What `process` printed up to `text` (read from the pipe unbuffered, so that
    `communicate` later gets the rest)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout_s
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"{text!r} never printed; got:\n{seen.decode()}"
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"the process ended before printing {text!r}:\n{seen.decode()}"
            seen += chunk
    return seen.decode()


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


def _batch(public: str, data_dir: Path, hotpotqa: Path) -> subprocess.Popen[str]:
    """A real `fawn batch` of two questions through the gateway at `public`."""
    build_corpus(data_dir, hotpotqa)
    questions = data_dir / "questions.txt"
    questions.write_text("\n".join(BATCH_QUESTIONS) + "\n")
    env = {**os.environ, "FAWN_DATA_DIR": str(data_dir), "FAWN_LLM_BASE_URL": f"{public}/v1"}
    return subprocess.Popen(
        [str(FAWN), "batch", str(questions), "--out", str(data_dir / "out"), "--max-steps", "1",
         "--concurrency", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_serve_restarts_a_killed_engine_and_a_killed_serve_leaves_no_engine(
    tmp_path: Path, hotpotqa_path: Path
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    process = _serve("--port", str(port))
    engines: list[int] = []
    batch: subprocess.Popen[str] | None = None
    try:
        models = _wait_for_models(f"{public}/v1", process, timeout_s=300)
        assert models["data"][0]["id"] == "smollm2-135m-instruct"
        health = httpx.get(f"{public}/health", timeout=5).json()
        assert health["gateway"] == "fawn" and health["status"] == "ok"
        engine = _engine_of(process.pid)
        assert engine is not None
        engines.append(engine)
        # The engine listens on a loopback port of its own, behind the gateway.
        assert health["engines"][0]["url"].startswith("http://127.0.0.1:")
        assert f"--port {port}" not in cmdline(engine)
        assert len(group_members(engine)) > 1  # the api_server and vLLM's EngineCore

        # A second `fawn serve` on the taken port fails at once instead of starting an engine.
        second = subprocess.run(
            [str(FAWN), "serve", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"Port {port} on 127.0.0.1 is taken by a Fawn gateway" in second.stderr

        # A batch is running when the engine dies: it must still finish, every job done.
        batch = _batch(public, tmp_path / "batch", hotpotqa_path)
        wait_for(
            lambda: httpx.get(f"{public}/health", timeout=5).json()["engines"][0]["in_flight"],
            240,
            "the batch to reach the engine",
        )
        os.kill(engine, signal.SIGKILL)
        wait_for(lambda: group_members(engine) == [], 30, "the killed engine's EngineCore to go")
        wait_for(
            lambda: _engine_of(process.pid) not in (None, engine) and _answers(f"{public}/health"),
            240,
            "the engine to come back behind the gateway",
        )
        restarted = _engine_of(process.pid)
        assert restarted is not None
        engines.append(restarted)
        reply = httpx.post(
            f"{public}/v1/chat/completions",
            json={
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "Say hi."}],
                "max_tokens": 4,
            },
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        _, batch_err = batch.communicate(timeout=900)
        assert batch.returncode == 0, batch_err
        assert "0 not done" in " ".join(batch_err.split()), batch_err

        process.kill()  # SIGKILL: no handler runs in `fawn serve`
        process.wait(timeout=30)
        wait_for(lambda: group_members(restarted) == [], 30, "the engine to die with serve")
        assert not port_answers("127.0.0.1", port)
    finally:
        if batch is not None and batch.poll() is None:
            batch.kill()
        if process.poll() is None:
            process.kill()
        for pgid in engines:
            end_process_group(pgid)


def test_serve_without_gateway_serves_vllm_on_the_port_and_sigterm_leaves_no_orphans() -> None:
    port = free_port()
    process = _serve("--no-gateway", "--port", str(port))
    try:
        models = _wait_for_models(f"http://127.0.0.1:{port}/v1", process, timeout_s=300)
        assert models["data"][0]["id"] == "smollm2-135m-instruct"
        engine = _engine_of(process.pid)
        assert engine is not None and f"--port {port}" in cmdline(engine)
        assert "gateway" not in httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).text
        # vLLM answers on the port a moment before `fawn serve` has seen it healthy and said so.
        shown = _read_until(process, "Press Ctrl-C to stop.", timeout_s=120)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
        output = shown + rest
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}/v1" in output
    assert "Engine stopped" in output
    assert _processes_mentioning(f"--port {port}") == []
    assert group_members(engine) == []  # EngineCore too


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
