"""The Python sandbox, against real bubblewrap and real processes: isolation, limits, figures."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.errors import SandboxError
from agents.tools.sandbox import (
    KillReason,
    SandboxLimits,
    SandboxResult,
    run_python,
    sandbox_unavailable_reason,
)
from agents.tools.sandbox.figures import PNG_MAGIC
from tests.conftest import MODELS_DIR, REPO_ROOT

QUICK = SandboxLimits(wall_seconds=10)


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


async def _run_json(code: str, limits: SandboxLimits = QUICK) -> object:
    """Run code that prints one JSON document, and return it parsed."""
    result = await run_python(code, limits)
    assert result.ok, result.stderr
    return json.loads(result.stdout)


async def test_hello_world_comes_back_on_stdout() -> None:
    result = await run_python("import sys\nprint('hello', 6 * 7)\nprint('warn', file=sys.stderr)")
    assert result.ok
    assert result.stdout == "hello 42\n"
    assert result.stderr == "warn\n"
    assert result.exit_code == 0
    assert (result.killed_reason, result.timed_out, result.truncated) == (None, False, False)
    assert result.duration_s > 0


async def test_failing_code_reports_its_exit_code_and_traceback() -> None:
    result = await run_python("import sys\nprint('partial')\nraise SystemExit(3)")
    assert not result.ok
    assert result.exit_code == 3
    assert result.killed_reason is None
    assert result.stdout == "partial\n"
    result = await run_python("1 / 0")
    assert result.exit_code == 1
    assert "ZeroDivisionError" in result.stderr
    assert 'File "/sandbox/main.py", line 1' in result.stderr


async def test_network_is_unreachable_even_to_a_host_loopback_listener() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = f"""
import json, socket
outcome = {{}}
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3)
    outcome["connect"] = "connected"
except OSError as exc:
    outcome["connect"] = type(exc).__name__
for name in ("localhost", "example.com"):
    try:
        socket.getaddrinfo(name, 443)
        outcome[name] = "resolved"
    except OSError as exc:
        outcome[name] = type(exc).__name__
print(json.dumps(outcome))
"""
    assert socket.getaddrinfo("localhost", 443), "the host itself resolves localhost"
    try:
        outcome = await _run_json(code)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert outcome == {
        "connect": "ConnectionRefusedError",
        "localhost": "gaierror",
        "example.com": "gaierror",
    }


async def test_no_host_file_outside_the_work_dir_is_visible(
    tmp_path: Path, isolated_env: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "jobs.sqlite").write_text("job data")
    home_files = [path for path in Path.home().iterdir() if path.name != ".pyenv"]
    host_paths = [
        REPO_ROOT / "pyproject.toml",
        REPO_ROOT / "agents" / "tools" / "sandbox" / "runner.py",
        secret,
        isolated_env / "jobs.sqlite",
        MODELS_DIR,
        *home_files[:5],
    ]
    assert all(path.exists() for path in host_paths)
    code = f"""
import json, os
paths = {json.dumps([str(path) for path in host_paths])}
print(json.dumps({{"visible": [p for p in paths if os.path.lexists(p)], "cwd": os.getcwd(),
                  "home": os.listdir("/home") if os.path.exists("/home") else None}}))
"""
    seen = await _run_json(code)
    assert seen == {"visible": [], "cwd": "/sandbox/work", "home": None}


async def test_environment_is_rebuilt_without_the_hosts_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAWN_API_KEY", "fawn-secret-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    environ = await _run_json("import json, os\nprint(json.dumps(dict(os.environ)))")
    assert isinstance(environ, dict)
    assert "FAWN_API_KEY" not in environ
    assert "OPENAI_API_KEY" not in environ
    assert "secret-value" not in json.dumps(environ)
    assert environ["HOME"] == "/sandbox/work"
    assert environ["MPLBACKEND"] == "Agg"
    assert not any(name.startswith("FAWN_") for name in environ)


async def test_only_the_work_dir_is_writable() -> None:
    code = """
import json, os, sys
targets = ["/x", "/usr/x", "/etc/x", "/sandbox/x", "/sandbox/main.py", "/dev/x", "/dev/shm/x",
           os.path.join(sys.prefix, "x"), os.path.join(sys.base_prefix, "x")]
refused = []
for target in targets:
    try:
        with open(target, "w") as file:
            file.write("x")
    except OSError:
        refused.append(target)
with open("here.txt", "w") as file:
    file.write("kept")
with open("/tmp/scratch.txt", "w") as file:
    file.write("scratch")
print(json.dumps({"refused": refused == targets, "listing": sorted(os.listdir("."))}))
"""
    assert await _run_json(code) == {"refused": True, "listing": ["here.txt", "scratch.txt"]}


async def test_infinite_loop_is_stopped_by_the_cpu_limit() -> None:
    result = await run_python(
        "while True:\n    pass", SandboxLimits(cpu_seconds=1, wall_seconds=15)
    )
    assert result.killed_reason == KillReason.CPU_TIME
    assert result.timed_out
    assert result.exit_code is None
    assert not result.ok
    assert result.duration_s < 10


async def test_wall_time_kill_takes_the_whole_process_tree() -> None:
    marker = str(900_000 + uuid.uuid4().int % 99_999)
    code = f"""
import subprocess, time
subprocess.Popen(["/bin/sleep", "{marker}"], start_new_session=True)
print("started", flush=True)
time.sleep(600)
"""
    started = time.monotonic()
    result = await run_python(code, SandboxLimits(wall_seconds=2))
    assert time.monotonic() - started < 10
    assert result.killed_reason == KillReason.WALL_TIME
    assert result.timed_out
    assert result.exit_code is None
    assert result.stdout == "started\n"
    await asyncio.sleep(0.5)
    assert _processes_mentioning(f"sleep {marker}") == []


async def test_cancelling_a_run_kills_the_sandbox() -> None:
    marker = str(800_000 + uuid.uuid4().int % 99_999)
    code = f"import subprocess\nsubprocess.run(['/bin/sleep', '{marker}'])"
    task = asyncio.create_task(run_python(code, SandboxLimits(wall_seconds=60)))
    deadline = time.monotonic() + 20
    while not _processes_mentioning(f"sleep {marker}"):
        assert time.monotonic() < deadline, "the sandboxed sleep never started"
        await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    assert _processes_mentioning(f"sleep {marker}") == []


async def test_memory_bomb_hits_the_memory_limit() -> None:
    code = "data = bytearray(2 * 1024**3)\nprint(len(data))"
    result = await run_python(code, SandboxLimits(memory_mb=256))
    assert result.killed_reason == KillReason.MEMORY
    assert not result.ok
    assert "MemoryError" in result.stderr
    assert result.stdout == ""


async def test_process_limit_stops_forking() -> None:
    code = """
import os, time
children = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        children += 1
    print(children, "no limit")
except BlockingIOError:
    print(children)
"""
    result = await run_python(code, SandboxLimits(max_processes=16))
    assert result.ok, result.stderr
    assert 0 < int(result.stdout) < 16


async def test_fork_bomb_is_contained_and_killed() -> None:
    code = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
    started = time.monotonic()
    result = await run_python(code, SandboxLimits(max_processes=32, wall_seconds=2))
    assert time.monotonic() - started < 15
    assert result.timed_out
    assert result.killed_reason in (KillReason.WALL_TIME, KillReason.CPU_TIME)


async def test_huge_output_is_cut_to_the_cap_and_runaway_output_killed() -> None:
    result = await run_python("while True:\n    print('x' * 100)", SandboxLimits(output_bytes=1000))
    assert result.truncated
    assert result.killed_reason == KillReason.OUTPUT
    assert len(result.stdout) < 1000 + 100
    assert "bytes cut by the sandbox's output limit" in result.stdout


async def test_output_a_little_over_the_cap_keeps_head_and_tail_and_exit_code() -> None:
    code = "print('START')\nprint('y' * 5000)\nprint('END')"
    result = await run_python(code, SandboxLimits(output_bytes=1000))
    assert result.ok
    assert result.truncated
    assert result.killed_reason is None
    assert result.stdout.startswith("START\n")
    assert result.stdout.endswith("END\n")
    assert len(result.stdout) < 1100


async def test_disk_limit_stops_code_that_fills_the_work_dir() -> None:
    code = """
import time
for index in range(40):
    with open(f"fill{index}.bin", "wb") as file:
        file.write(b"x" * 8_000_000)
    time.sleep(0.05)
print("wrote everything")
"""
    result = await run_python(code, SandboxLimits(disk_mb=32, wall_seconds=15))
    assert result.killed_reason == KillReason.DISK
    assert "wrote everything" not in result.stdout


async def test_matplotlib_figure_comes_back_as_a_png() -> None:
    code = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [3, 1, 2])
plt.title("chart")
plt.savefig("chart.png")
plt.savefig("/tmp/second.png")
"""
    result = await run_python(code, SandboxLimits(wall_seconds=60, cpu_seconds=30))
    assert result.ok, result.stderr
    assert [figure.name for figure in result.figures] == ["chart.png", "second.png"]
    chart = result.figures[0]
    assert chart.png.startswith(PNG_MAGIC)
    assert len(chart.png) > 1000
    assert chart.data_uri.startswith("data:image/png;base64,")
    assert base64.b64decode(chart.data_uri.split(",", 1)[1]) == chart.png
    restored = SandboxResult.model_validate_json(result.model_dump_json())
    assert restored.figures[0].png == chart.png


async def test_symlinks_and_fake_pngs_never_come_back() -> None:
    host_file = REPO_ROOT / "pyproject.toml"
    code = f"""
import os
os.symlink({str(host_file)!r}, "leak.png")
with open("fake.png", "w") as file:
    file.write("not an image")
os.mkfifo("pipe.png")
"""
    result = await run_python(code, QUICK)
    assert result.ok, result.stderr
    assert result.figures == []
    assert result.skipped_figures == ["fake.png: not a PNG file"]


async def test_figure_count_and_size_are_capped() -> None:
    png = PNG_MAGIC + b"\0" * 100
    code = f"""
for name in ["a.png", "b.png", "c.png", "d.png"]:
    with open(name, "wb") as file:
        file.write({png!r})
with open("big.png", "wb") as file:
    file.write({png!r} * 50)
"""
    result = await run_python(code, SandboxLimits(max_figures=3, max_figure_bytes=1000))
    assert [figure.name for figure in result.figures] == ["a.png", "b.png", "c.png"]
    assert result.skipped_figures == [
        "big.png: larger than 1,000 bytes",
        "d.png: more than 3 figures",
    ]


async def test_concurrent_runs_stay_apart() -> None:
    code = "import os\nopen('mine.txt', 'w').write('x')\nprint(sorted(os.listdir('.')))"
    results = await asyncio.gather(*(run_python(code, QUICK) for _ in range(3)))
    assert [result.stdout for result in results] == ["['mine.txt']\n"] * 3


def test_sandbox_is_available_here() -> None:
    assert sandbox_unavailable_reason() is None


async def test_missing_bubblewrap_refuses_to_run_and_says_how_to_fix(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-bwrap")
    marker = tmp_path / "ran"
    with pytest.raises(SandboxError, match="apt-get install bubblewrap"):
        await run_python(f"open({str(marker)!r}, 'w')", bwrap=missing)
    assert not marker.exists()
    reason = sandbox_unavailable_reason(bwrap=missing)
    assert reason is not None
    assert "no-bwrap" in reason
    assert "apt-get install bubblewrap" in reason


async def test_bwrap_that_cannot_create_namespaces_switches_the_coder_off(tmp_path: Path) -> None:
    # A stand-in for bwrap on a host without user namespaces: it fails the way bwrap does there.
    broken = tmp_path / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    with pytest.raises(SandboxError, match="cannot create its sandbox") as raised:
        await run_python("print('hi')", bwrap=str(broken))
    assert "No permissions to create new namespace" in str(raised.value)
    assert "user namespaces" in str(raised.value)
    assert "No permissions" in (sandbox_unavailable_reason(bwrap=str(broken)) or "")


def test_limits_reject_nonsense_values() -> None:
    with pytest.raises(ValidationError):
        SandboxLimits(memory_mb=0)
    with pytest.raises(ValidationError):
        SandboxLimits(wall_seconds=-1)
    with pytest.raises(ValidationError):
        QUICK.cpu_seconds = 5  # type: ignore[misc]


async def test_sandbox_has_this_python_and_its_packages_but_not_fawn() -> None:
    import matplotlib
    import numpy

    code = """
import json, sys, importlib.util
import matplotlib, numpy
print(json.dumps({"python": list(sys.version_info[:2]), "numpy": numpy.__version__,
                  "matplotlib": matplotlib.__version__,
                  "fawn": [importlib.util.find_spec(name) is not None
                           for name in ("agents", "app", "serving")]}))
"""
    seen = await _run_json(code, SandboxLimits(wall_seconds=60, cpu_seconds=30))
    assert seen == {
        "python": list(sys.version_info[:2]),
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
        "fawn": [False, False, False],
    }
