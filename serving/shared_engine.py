"""One embedded engine per data dir, shared by every Fawn process that has no engine URL.

The engine lives in a detached *host* process (`python -m serving.shared_engine SPEC`): a
supervised vLLM (serving/supervisor.py) on a loopback port, with a Fawn gateway in front of it
that owns the one budget. Its files, in `<data dir>/engine/`:

    record.json   written by the host once it serves: pid, gateway and engine URLs, profile
    users.lock    every client holds LOCK_SH on it while it uses the engine; the kernel drops
                  the lock when the client exits, even on kill -9
    start.lock    LOCK_EX while a client checks for a host and starts one, so only one starts
    host.lock     LOCK_EX held by the live host for its whole life
    host.log      what hosts wrote (the supervisor's events, start-up errors)

A client takes LOCK_SH on users.lock first, then reads the record: a record whose host is alive
and whose gateway answers `/health` as Fawn's is used as it is. Otherwise, under start.lock, it
checks again, retires a stale record (its host dead, or alive but not answering: then it is
stopped), starts a host and waits for its record. The host tries LOCK_EX|LOCK_NB on users.lock
every few seconds; once it gets it and nothing has used the gateway for `idle_shutdown_s`, it
deletes the record *while still holding the lock*, stops the gateway and the engine, and exits.
A client that was waiting for LOCK_SH meanwhile then finds no record and starts a new host, so
it never connects to an engine that is going away.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx
from pydantic import BaseModel, ValidationError

from serving.endpoint import gateway_health
from serving.engine import STOP_GRACE_S, default_profile_name, free_port
from serving.errors import EngineStartError, FawnError
from serving.observability import log_event
from serving.pressure import PressureSettings
from serving.profiles import load_profile
from serving.settings import EngineSettings, GatewaySettings, UpstreamSettings
from serving.supervisor import EngineSupervisor

if TYPE_CHECKING:
    from serving.gateway import GatewayThread

# Named, not __name__: the host runs this module as __main__.
logger = logging.getLogger("serving.shared_engine")

HOST_MODULE = "serving.shared_engine"
RECORD_FILE = "record.json"
USERS_LOCK = "users.lock"
START_LOCK = "start.lock"
HOST_LOCK = "host.lock"
HOST_LOG = "host.log"
SPEC_FILE = "host-spec.json"
# A host that finds another live host exits with this code; its client waits for that one.
EXIT_ANOTHER_HOST = 3
HEALTH_ATTEMPTS = 3
# A host shutting down holds users.lock until its engine is gone (the engine's own stop grace).
SHUTDOWN_WAIT_S = 2 * STOP_GRACE_S + 60
GATEWAY_START_S = 60.0
POLL_S = 0.25


class HostSpec(BaseModel):
    """What a host runs: the settings of the client that started it (no secrets)."""

    engine: EngineSettings
    gateway: GatewaySettings
    pressure: PressureSettings
    models_dir: Path


class EngineRecord(BaseModel):
    """The live host's own description of the engine it serves."""

    pid: int
    gateway_url: str
    engine_url: str
    started_at: float
    profile: str
    model: str
    max_num_seqs: int | None = None


def engine_dir(data_dir: Path) -> Path:
    """Where a data dir's shared engine keeps its record and locks."""
    return data_dir / "engine"


def read_record(directory: Path) -> EngineRecord | None:
    """The record in `directory`, or None when there is none (or it is unreadable)."""
    try:
        return EngineRecord.model_validate_json((directory / RECORD_FILE).read_text())
    except (OSError, ValidationError):
        return None


def live_record(directory: Path) -> EngineRecord | None:
    """The record, if its host is alive and its gateway answers as Fawn's."""
    record = read_record(directory)
    if record is None or not is_host_process(record.pid):
        return None
    return record if _gateway_answers(record.gateway_url) else None


def is_host_process(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) shared-engine host, not a reused pid."""
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return state != "Z" and HOST_MODULE.encode() in cmdline


@contextmanager
def shared_engine(
    spec: HostSpec, data_dir: Path, *, on_tick: Callable[[float], None] | None = None
) -> Iterator[EngineRecord]:
    """Use the data dir's shared engine, starting its host if none serves; yields its record.

    The engine stays in use (its host will not shut down for idleness) until the block ends.
    `on_tick(seconds)` is called about every quarter second while waiting for the engine.
    """
    directory = engine_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def tick() -> None:
        if on_tick:
            on_tick(time.monotonic() - started)

    with _lock_file(directory / USERS_LOCK) as users:
        # A host that is shutting down holds LOCK_EX until its engine is gone.
        _wait_for_lock(users, fcntl.LOCK_SH, tick, SHUTDOWN_WAIT_S, "users")
        record = live_record(directory) or _start_or_join(spec, directory, tick)
        log_event(logger, "shared_engine_used", pid=record.pid, gateway=record.gateway_url)
        yield record


def _start_or_join(spec: HostSpec, directory: Path, tick: Callable[[], None]) -> EngineRecord:
    """Under the start lock: the record another client's host wrote meanwhile, or a new host's."""
    timeout_s = spec.engine.startup_timeout_s + GATEWAY_START_S
    with _lock_file(directory / START_LOCK) as start_lock:
        _wait_for_lock(start_lock, fcntl.LOCK_EX, tick, timeout_s + SHUTDOWN_WAIT_S, "start")
        record = live_record(directory)
        if record is not None:
            return record
        stale = read_record(directory)
        if stale is not None:
            _retire(stale, directory)
        # A host whose client died while it started still holds host.lock: wait for it.
        process = None if _lock_held(directory / HOST_LOCK) else _spawn_host(spec, directory)
        return _wait_for_host(spec, directory, process, tick, timeout_s)


def _wait_for_host(
    spec: HostSpec,
    directory: Path,
    process: subprocess.Popen[bytes] | None,
    tick: Callable[[], None],
    timeout_s: float,
) -> EngineRecord:
    deadline = time.monotonic() + timeout_s
    while True:
        if (directory / RECORD_FILE).exists() and (record := live_record(directory)):
            if process is not None:
                # This client started the host: reap it whenever it ends, so no zombie lingers.
                threading.Thread(target=process.wait, name="reap-host", daemon=True).start()
            return record
        if process is not None and (code := process.poll()) is not None:
            if code != EXIT_ANOTHER_HOST:
                raise EngineStartError(
                    f"The shared engine did not start (its host exited with code {code}). "
                    f"Log ({directory / HOST_LOG}):\n{_tail(directory / HOST_LOG)}"
                )
            process = None
        if process is None and not _lock_held(directory / HOST_LOCK):
            process = _spawn_host(spec, directory)
        if time.monotonic() > deadline:
            raise EngineStartError(
                f"The shared engine did not start within {timeout_s:.0f} s. See "
                f"{directory / HOST_LOG}, or raise FAWN_ENGINE_STARTUP_TIMEOUT_S."
            )
        tick()
        time.sleep(POLL_S)


def _spawn_host(spec: HostSpec, directory: Path) -> subprocess.Popen[bytes]:
    """Start a detached host: its own session, so it outlives this client and its terminal."""
    spec_path = directory / SPEC_FILE
    spec_path.write_text(spec.model_dump_json())
    with (directory / HOST_LOG).open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", HOST_MODULE, str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=True,
        )
    log_event(logger, "shared_engine_host_started", pid=process.pid, dir=directory)
    return process


def _retire(stale: EngineRecord, directory: Path) -> None:
    """Remove a record whose host is dead or not answering, stopping such a host first."""
    alive = is_host_process(stale.pid)
    log_event(
        logger,
        "shared_engine_replaced",
        logging.WARNING,
        pid=stale.pid,
        reason="host alive but its gateway does not answer" if alive else "host gone",
    )
    if alive:
        _end_host(stale.pid)
    if (current := read_record(directory)) is not None and current.pid == stale.pid:
        (directory / RECORD_FILE).unlink(missing_ok=True)


def _end_host(pid: int) -> None:
    """SIGTERM a host (it stops its engine), SIGKILL it if it does not exit in time."""
    for sig, wait_s in ((signal.SIGTERM, SHUTDOWN_WAIT_S), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while is_host_process(pid) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if not is_host_process(pid):
            return


# ---------------------------------------------------------------------------------------------
# The host process


def run_host(spec: HostSpec, directory: Path) -> int:
    """Serve the shared engine until it is idle, stopped, or beyond repair; returns an exit code."""
    host_lock = _open_lock(directory / HOST_LOCK)
    # Retried briefly: a client probing whether a host is alive holds the lock for an instant.
    if not _acquire_within(host_lock, fcntl.LOCK_EX, 2.0):
        log_event(logger, "shared_engine_host_exists", dir=directory)
        return EXIT_ANOTHER_HOST
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop.set())
    # Imported here: the gateway pulls in starlette and uvicorn, which clients do not need.
    from serving.gateway import GatewayThread

    supervisor: EngineSupervisor | None = None
    gateway: GatewayThread | None = None
    users = _open_lock(directory / USERS_LOCK)
    try:
        profile = load_profile(spec.engine.profile or default_profile_name())
        supervisor = EngineSupervisor.for_profile(
            profile,
            models_dir=spec.models_dir,
            log_dir=directory / "engine-log",
            startup_timeout_s=spec.engine.startup_timeout_s,
        )
        supervisor.start(on_tick=lambda _: _raise_if_set(stop))
        gateway = GatewayThread(
            spec.gateway.model_copy(
                update={
                    "upstreams": [
                        UpstreamSettings(url=supervisor.root_url, budget=profile.max_num_seqs)
                    ],
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "api_key": None,
                }
            ),
            spec.pressure,
        )
        gateway.start(GATEWAY_START_S, healthy=True)
        record = EngineRecord(
            pid=os.getpid(),
            gateway_url=gateway.url,
            engine_url=supervisor.root_url,
            started_at=time.time(),
            profile=profile.name,
            model=profile.served_model_name,
            max_num_seqs=profile.max_num_seqs,
        )
        _write_record(directory, record)
        log_event(logger, "shared_engine_ready", **record.model_dump())
        return _serve_until_idle(spec, directory, supervisor, gateway, users, stop)
    except FawnError as exc:
        log_event(logger, "shared_engine_failed", logging.ERROR, error=str(exc).splitlines()[0])
        print(exc, file=sys.stderr, flush=True)
        return 1
    except _Interrupted:
        return 0
    finally:
        _remove_own_record(directory)
        if gateway is not None:
            gateway.stop()
        if supervisor is not None:
            supervisor.stop()
        log_event(logger, "shared_engine_host_exit", pid=os.getpid())
        # users.lock and host.lock are released as this process exits, after the engine is gone.


def _serve_until_idle(
    spec: HostSpec,
    directory: Path,
    supervisor: EngineSupervisor,
    gateway: GatewayThread,
    users: IO[bytes],
    stop: threading.Event,
) -> int:
    """Wait for a stop signal, a dead engine or gateway, or idleness; returns the exit code."""
    idle_s = spec.engine.idle_shutdown_s
    interval = max(0.5, min(5.0, idle_s / 4))
    last_used = time.monotonic()
    while not stop.wait(interval):
        if not supervisor.running:
            log_event(logger, "shared_engine_lost", logging.ERROR, error=supervisor.error)
            return 1
        if not gateway.alive:
            log_event(logger, "shared_engine_gateway_died", logging.ERROR)
            return 1
        if gateway.busy() or not _try_lock(users, fcntl.LOCK_EX):
            last_used = time.monotonic()
            continue
        if time.monotonic() - last_used >= idle_s:
            # Deleted while LOCK_EX is held, and the lock kept until exit: a client waiting for
            # LOCK_SH then finds no record and starts a new host instead of joining this one.
            _remove_own_record(directory)
            log_event(logger, "shared_engine_idle_shutdown", idle_s=idle_s)
            return 0
        fcntl.flock(users, fcntl.LOCK_UN)
    return 0


def _gateway_answers(root_url: str) -> bool:
    """Whether a Fawn gateway answers (healthy or holding calls while its engine restarts)."""
    for attempt in range(HEALTH_ATTEMPTS):
        if gateway_health(root_url) is not None:
            return True
        try:
            httpx.get(root_url, timeout=1.0)
        except httpx.ConnectError:
            return False  # nothing listens: no point asking again
        except httpx.HTTPError:
            pass
        if attempt + 1 < HEALTH_ATTEMPTS:
            time.sleep(1.0)
    return False


def _write_record(directory: Path, record: EngineRecord) -> None:
    """Write atomically, so a reader never sees half a record."""
    temporary = directory / f".{RECORD_FILE}.{os.getpid()}"
    temporary.write_text(record.model_dump_json(indent=2))
    os.replace(temporary, directory / RECORD_FILE)


def _remove_own_record(directory: Path) -> None:
    record = read_record(directory)
    if record is not None and record.pid == os.getpid():
        (directory / RECORD_FILE).unlink(missing_ok=True)


class _Interrupted(Exception):
    """The host was told to stop while its engine was starting."""


def _raise_if_set(event: threading.Event) -> None:
    if event.is_set():
        raise _Interrupted


# ---------------------------------------------------------------------------------------------
# Locks: flock(2) locks belong to the open file and vanish when the process exits, however.


def _open_lock(path: Path) -> IO[bytes]:
    return path.open("a+b")


@contextmanager
def _lock_file(path: Path) -> Iterator[IO[bytes]]:
    handle = _open_lock(path)
    try:
        yield handle
    finally:
        handle.close()


def _try_lock(handle: IO[bytes], mode: int) -> bool:
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _acquire_within(handle: IO[bytes], mode: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not _try_lock(handle, mode):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _wait_for_lock(
    handle: IO[bytes], mode: int, tick: Callable[[], None], timeout_s: float, name: str
) -> None:
    """Take the lock, ticking while it is held elsewhere; EngineStartError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not _try_lock(handle, mode):
        if time.monotonic() > deadline:
            raise EngineStartError(
                f"The shared engine's {name} lock ({handle.name}) stayed taken for "
                f"{timeout_s:.0f} s. A Fawn process holding it may be stuck: stop it, or set "
                "FAWN_LLM_BASE_URL to an engine."
            )
        tick()
        time.sleep(POLL_S)


def _lock_held(path: Path) -> bool:
    """Whether another process holds `path` locked (probed with a lock taken and let go)."""
    with _lock_file(path) as handle:
        if _try_lock(handle, fcntl.LOCK_EX):
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
        return True


def _tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    """`python -m serving.shared_engine SPEC`: run a host for the record dir SPEC is in."""
    parser = argparse.ArgumentParser(description="Host a data dir's shared Fawn engine.")
    parser.add_argument("spec", type=Path, help="The host spec JSON a client wrote.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    spec = HostSpec.model_validate(json.loads(args.spec.read_text()))
    return run_host(spec, args.spec.parent)


if __name__ == "__main__":
    sys.exit(main())
