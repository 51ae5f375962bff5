"""The data dir's shared embedded engine: one host for every command, replaced when it dies, gone
when unused. Real processes throughout: the host runs the real vLLM engine behind the gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.embedded_model import embedded_model_dir, model_dir_problem
from serving.engine import end_process_group, group_members
from serving.errors import EngineStartError
from serving.pressure import PressureSettings
from serving.settings import EngineSettings, GatewaySettings
from serving.shared_engine import (
    HOST_LOG,
    RECORD_FILE,
    EngineRecord,
    HostSpec,
    engine_dir,
    is_host_process,
    live_record,
    read_record,
    shared_engine,
)
from tests.conftest import MODELS_DIR, REPO_ROOT, free_port
from tests.processes import cmdline, wait_for

API_SERVER = "vllm.entrypoints.openai.api_server"

# A Fawn command in miniature: open the services with no engine URL, make one gated call.
CLIENT = """
import json
from app.services import open_services
from app.settings import load_settings
from serving.budget import CallClass
from serving.shared_engine import engine_dir, read_record

settings = load_settings()
with open_services(settings) as services:
    record = read_record(engine_dir(settings.data_dir))
    answer = services.runtime.model_for(CallClass.INTERACTIVE, max_tokens=4).invoke("Say hi.")
    print(json.dumps({
        "host": record.pid,
        "base_url": services.endpoint.base_url,
        "gateway_url": record.gateway_url,
        "engine_url": record.engine_url,
        "max_num_seqs": services.endpoint.max_num_seqs,
        "budget_limit": services.budget.limit,
        "kv_admission": services.budget.kv_capacity is not None,
        "answered": bool(answer.content),
    }))
"""


def _processes(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        if needle in cmdline(int(entry.name)) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _engine_pids(engine_url: str) -> list[int]:
    """The vLLM api_server serving `engine_url` (found by its port)."""
    port = engine_url.rsplit(":", 1)[1]
    return [pid for pid in _processes(API_SERVER) if f"--port {port}" in cmdline(pid)]


def unanswered_record(pid: int) -> EngineRecord:
    """A record naming `pid` whose gateway and engine URLs nothing answers."""
    return EngineRecord(
        pid=pid,
        gateway_url=f"http://127.0.0.1:{free_port()}",
        engine_url=f"http://127.0.0.1:{free_port()}",
        started_at=time.time(),
        profile="embedded-cpu",
        model="smollm2-135m-instruct",
    )


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def no_host_left(isolated_env: Path) -> Iterator[Path]:
    """The test's data dir; any host still running for it afterwards is stopped."""
    yield isolated_env
    for pid in _processes(str(engine_dir(isolated_env))):
        if is_host_process(pid):
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not is_host_process(pid), 60, "the host to stop")  # noqa: B023


def test_a_record_of_a_dead_or_foreign_process_is_not_live(tmp_path: Path) -> None:
    assert read_record(tmp_path) is None
    (tmp_path / RECORD_FILE).write_text("{not json")
    assert read_record(tmp_path) is None
    for pid in (_dead_pid(), os.getpid()):  # gone, and alive but not a host
        record = unanswered_record(pid)
        (tmp_path / RECORD_FILE).write_text(record.model_dump_json())
        assert read_record(tmp_path) == record
        assert live_record(tmp_path) is None


def test_a_host_that_stops_answering_is_stopped_and_a_failing_start_says_why(
    isolated_env: Path,
) -> None:
    directory = engine_dir(isolated_env)
    directory.mkdir(parents=True)
    # Alive, named like a host, but its gateway never answers.
    hung = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "serving.shared_engine"]
    )
    try:
        stale = unanswered_record(hung.pid)
        (directory / RECORD_FILE).write_text(stale.model_dump_json())
        assert is_host_process(hung.pid) and live_record(directory) is None
        spec = HostSpec(
            engine=EngineSettings(profile="no-such-profile"),
            gateway=GatewaySettings(),
            pressure=PressureSettings(),
            models_dir=MODELS_DIR,
        )
        with (
            pytest.raises(EngineStartError, match="its host exited with code 1") as raised,
            shared_engine(spec, isolated_env),
        ):
            pass
        assert "Unknown profile 'no-such-profile'" in str(raised.value)  # the host's log
        assert hung.wait(timeout=5) == -signal.SIGTERM
        assert read_record(directory) is None
    finally:
        if hung.poll() is None:
            hung.kill()


@pytest.mark.engine
def test_two_commands_at_once_share_one_engine_that_stops_once_unused(no_host_left: Path) -> None:
    # A fresh data dir through and through: not even the model is converted yet.
    fresh_models = no_host_left / "models"
    env = {
        **os.environ,
        "FAWN_ENGINE_IDLE_SHUTDOWN_S": "3",
        "FAWN_MODELS_DIR": str(fresh_models),
    }
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
        for _ in range(2)
    ]
    outputs = [client.communicate(timeout=600) for client in clients]
    for client, (_, err) in zip(clients, outputs, strict=True):
        assert client.returncode == 0, err[-3000:]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)

    assert first["host"] == second["host"]  # one host, one engine, one budget
    assert first["base_url"] == second["base_url"] == first["gateway_url"] + "/v1"
    assert first["answered"] and second["answered"]
    assert first["max_num_seqs"] == 8
    # The gateway owns the budget: the process's own only passes calls through.
    assert first["budget_limit"] > 1000 and not first["kv_admission"]
    log = (engine_dir(no_host_left) / HOST_LOG).read_text()
    assert log.count("event=shared_engine_ready") == 1, log[-3000:]
    assert log.count("event=embedded_model_converted") == 1, log[-3000:]
    assert model_dir_problem(embedded_model_dir(fresh_models)) is None

    # Nobody uses it any more: after the idle time the host deletes its record and goes, and
    # its engine with it.
    directory = engine_dir(no_host_left)
    wait_for(lambda: not (directory / RECORD_FILE).exists(), 60, "the record to go")
    wait_for(lambda: not is_host_process(first["host"]), 60, "the host to exit")
    wait_for(lambda: _engine_pids(first["engine_url"]) == [], 30, "the engine to stop")
    assert "event=shared_engine_idle_shutdown" in (directory / HOST_LOG).read_text()


@pytest.mark.engine
def test_a_dead_hosts_record_is_replaced_and_an_engine_never_outlives_its_host(
    no_host_left: Path,
) -> None:
    directory = engine_dir(no_host_left)
    directory.mkdir(parents=True)
    stale = EngineRecord(
        pid=_dead_pid(),
        gateway_url=f"http://127.0.0.1:{free_port()}",
        engine_url=f"http://127.0.0.1:{free_port()}",
        started_at=time.time() - 3600,
        profile="embedded-cpu",
        model="smollm2-135m-instruct",
    )
    (directory / RECORD_FILE).write_text(stale.model_dump_json())
    spec = HostSpec(
        engine=EngineSettings(idle_shutdown_s=600),
        gateway=GatewaySettings(),
        pressure=PressureSettings(),
        models_dir=MODELS_DIR,
    )
    ticks: list[float] = []
    with shared_engine(spec, no_host_left, on_tick=ticks.append) as record:
        assert record.pid != stale.pid and is_host_process(record.pid)
        assert read_record(directory) == record
        assert ticks, "progress is shown while the engine starts"
        health = httpx.get(f"{record.gateway_url}/health", timeout=5).json()
        assert health["gateway"] == "fawn" and health["engines"][0]["url"] == record.engine_url
        engine = _engine_pids(record.engine_url)
        assert len(engine) == 1

        os.kill(record.pid, signal.SIGKILL)
        try:
            wait_for(lambda: group_members(engine[0]) == [], 20, "the engine to die")
        finally:
            end_process_group(engine[0])
        # The record outlives its killed host, but is no longer live: the next command replaces it.
        assert read_record(directory) == record
        assert live_record(directory) is None
