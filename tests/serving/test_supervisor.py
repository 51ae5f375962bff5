"""The engine supervisor and the no-orphans guarantee, on a stand-in engine (real processes).

The stand-in is a small HTTP server answering /health that, like vLLM's api_server, starts a
child in its process group (as vLLM starts EngineCore) which does not die with it. The real
vLLM engine is covered through `fawn serve` in tests/app/test_serve_launch.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from serving.engine import EngineProcess, group_members, spawn_engine
from serving.errors import EngineStartError
from serving.supervisor import EngineSupervisor, RestartPolicy
from tests.conftest import REPO_ROOT, free_port

# argv: port, mode (serve | crash | once: serve on the first launch only), marker file.
STAND_IN = r"""
import http.server, os, subprocess, sys
port, mode, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
if mode == "crash" or (mode == "once" and os.path.exists(marker)):
    print("stand-in engine failing on purpose", flush=True)
    sys.exit(3)
open(marker, "w").close()

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""
FAST = RestartPolicy(first_delay_s=0.1, max_delay_s=0.5, max_quick_failures=3)


def stand_in(tmp_path: Path, mode: str = "serve") -> Callable[[], EngineProcess]:
    """A launcher of the stand-in engine, on one port for every launch."""
    port = free_port()

    def launch() -> EngineProcess:
        return spawn_engine(
            [sys.executable, "-c", STAND_IN, str(port), mode, str(tmp_path / "launched")],
            base_url=f"http://127.0.0.1:{port}/v1",
            log_path=tmp_path / "engine.log",
        )

    return launch


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[EngineSupervisor]:
    supervisor = EngineSupervisor(stand_in(tmp_path), name="stand-in", policy=FAST)
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()


def wait_for(condition: Callable[[], object], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_restart_delays_double_up_to_the_cap() -> None:
    policy = RestartPolicy(first_delay_s=1, max_delay_s=5, max_quick_failures=4)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert not policy.gives_up(3) and policy.gives_up(4)


def test_a_killed_engine_is_restarted_on_the_same_url_and_its_leftovers_swept(
    supervised: EngineSupervisor,
) -> None:
    first = supervised.pid
    assert first is not None and len(group_members(first)) == 2  # the server and its child
    url = supervised.root_url

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: supervised.pid not in (None, first) and supervised.healthy)

    assert group_members(first) == []  # the child that outlived the server is gone too
    assert supervised.root_url == url
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    assert supervised.restarts == 1 and supervised.running
    second = supervised.pid
    assert second is not None
    supervised.stop()
    assert group_members(second) == [] and not supervised.running


def test_a_first_start_that_fails_raises_with_the_log_and_leaves_nothing(tmp_path: Path) -> None:
    supervisor = EngineSupervisor(stand_in(tmp_path, "crash"), name="stand-in", policy=FAST)
    with pytest.raises(EngineStartError, match="exited with code 3") as raised:
        supervisor.start()
    assert "failing on purpose" in str(raised.value)
    engine = supervisor.engine
    assert engine is not None and group_members(engine.pid) == []
    assert supervisor.restarts == 0 and not supervisor.running


def test_an_engine_that_keeps_dying_is_given_up_with_a_clear_error(tmp_path: Path) -> None:
    supervisor = EngineSupervisor(stand_in(tmp_path, "once"), name="stand-in", policy=FAST)
    supervisor.start()
    try:
        os.kill(supervisor.pid or 0, signal.SIGKILL)
        assert supervisor.wait(timeout_s=30)
    finally:
        supervisor.stop()
    assert supervisor.error is not None
    message = str(supervisor.error)
    assert "failed 3 times in a row" in message and "exited with code 3" in message
    assert "failing on purpose" in message  # the log tail
    assert not supervisor.running and supervisor.pid is None


OWNER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.serving.test_supervisor import stand_in
from serving.supervisor import EngineSupervisor
supervisor = EngineSupervisor(stand_in(Path(sys.argv[2])), name="stand-in")
supervisor.start()
print(supervisor.pid, flush=True)
time.sleep(3600)
"""


def test_the_engine_and_its_children_die_with_an_owner_killed_by_sigkill(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(REPO_ROOT), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert owner.stdout is not None
        engine_pid = int(owner.stdout.readline())
        assert len(group_members(engine_pid)) == 2
        owner.kill()
        owner.wait()
        # PR_SET_PDEATHSIG ends the server at once; the watchdog sweeps the child it left.
        wait_for(lambda: group_members(engine_pid) == [], timeout_s=15)
    finally:
        if owner.poll() is None:
            owner.kill()
